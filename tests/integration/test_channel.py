"""Channels: opening and closing, channel.flow, soft errors (channel.close) versus hard errors
(connection.close), and the exact reply code and text RabbitMQ sends for each."""

from __future__ import annotations

import amqp
import pika
import pytest
from pamqp import commands as C

from ._raw import raw_frame

# -- opening, closing, using -------------------------------------------------------------------


def test_open_many_channels(conn):
    channels = [conn.channel() for _ in range(200)]
    assert len({ch.channel_number for ch in channels}) == 200
    for ch in channels[::20]:
        ch.queue_declare("", exclusive=True)
    for ch in channels:
        ch.close()
    assert conn.is_open
    conn.channel().queue_declare("", exclusive=True)


def test_channel_number_reused_after_close(raw):
    r = raw()
    for _ in range(3):
        r.open_channel(1)
        r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1)
        r.rpc(C.Channel.Close(200, "bye", 0, 0), C.Channel.CloseOk, 1)


def test_high_channel_number(raw):
    r = raw()
    r.open_channel(65535)
    r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 65535)


def test_method_on_unopened_channel(raw):
    r = raw()
    r.send(C.Queue.Declare(queue="", exclusive=True), 5)
    close = r.expect_connection_close()
    assert (close.reply_code, close.class_id, close.method_id) == (504, 50, 10)
    assert close.reply_text == "CHANNEL_ERROR - expected 'channel.open'"


def test_method_on_closed_channel(raw):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Channel.Close(200, "bye", 0, 0), C.Channel.CloseOk, 1)
    r.send(C.Queue.Declare(queue="", exclusive=True), 1)
    close = r.expect_connection_close()
    assert close.reply_code == 504
    assert close.reply_text == "CHANNEL_ERROR - expected 'channel.open'"


def test_second_channel_open(raw):
    r = raw()
    r.open_channel(1)
    r.send(C.Channel.Open(), 1)
    close = r.expect_connection_close()
    assert (close.reply_code, close.class_id, close.method_id) == (504, 20, 10)
    assert close.reply_text == "CHANNEL_ERROR - second 'channel.open' seen"


def test_pika_refuses_to_use_a_closed_channel(conn):
    ch = conn.channel()
    ch.close()
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        ch.queue_declare("", exclusive=True)
    assert conn.is_open


def test_channel_flow_active(raw):
    r = raw()
    r.open_channel(1)
    ok = r.rpc(C.Channel.Flow(active=True), C.Channel.FlowOk, 1)
    assert ok.active is True


def test_channel_flow_pika(conn):
    ch = conn.channel()
    assert ch.flow(True) is True


def test_channel_flow_inactive_is_not_implemented(raw):
    r = raw()
    r.open_channel(1)
    r.send(C.Channel.Flow(active=False), 1)
    close = r.expect_connection_close()
    assert (close.reply_code, close.class_id, close.method_id) == (540, 20, 20)
    assert close.reply_text == "NOT_IMPLEMENTED - active=false"


def test_frames_after_channel_close_are_ignored_until_close_ok(raw):
    """After the server's channel.close, the channel ignores everything but close-ok;
    then the number can be opened again."""
    r = raw()
    r.open_channel(1)
    r.send(C.Queue.Declare(queue="it.no-such-queue", passive=True), 1)
    _ch, close = r.recv_frame()
    assert isinstance(close, C.Channel.Close)
    assert close.reply_code == 404
    r.send(C.Queue.Declare(queue="", exclusive=True), 1)
    with pytest.raises(TimeoutError):
        r.recv_frame(timeout=0.5)
    r.send(C.Channel.CloseOk(), 1)
    r.open_channel(1)
    r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1)


def test_channel_close_names_the_failed_method(raw):
    r = raw()
    r.open_channel(1)
    r.send(C.Exchange.Declare(exchange="it.no-such-exchange", passive=True), 1)
    close = r.expect_channel_close(1)
    assert (close.reply_code, close.class_id, close.method_id) == (404, 40, 10)
    assert close.reply_text == "NOT_FOUND - no exchange 'it.no-such-exchange' in vhost '/'"


# -- soft errors close the channel only -----------------------------------------------------------


def test_soft_error_closes_only_that_channel(conn, names):
    q = names.queue()
    ch1 = conn.channel()
    ch2 = conn.channel()
    ch1.queue_declare(q, auto_delete=False)
    ch1.basic_publish("", q, b"kept")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.queue_declare(names.queue(), passive=True)
    assert ei.value.reply_code == 404
    assert ch2.is_closed
    assert ch1.is_open
    assert conn.is_open
    assert ch1.queue_declare(q, passive=True).method.message_count == 1
    ch3 = conn.channel()
    assert ch3.basic_get(q, auto_ack=True)[2] == b"kept"


def test_hard_error_closes_every_channel(connect):
    conn = connect()
    ch1 = conn.channel()
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
        ch2.exchange_declare("it.bad-type", "no-such-type")
    assert conn.is_closed
    assert ch1.is_closed


def truncated(text: str) -> str:
    """reply-text is a shortstr: RabbitMQ cuts a longer text to 252 characters and '...'."""
    return text if len(text) <= 255 else text[:252] + "..."


@pytest.mark.parametrize("length", [200, 219, 220, 240, 255])
def test_long_reply_text_is_truncated(conn, length):
    q = "q" * length
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    full = f"NOT_FOUND - no queue '{q}' in vhost '/'"
    assert ei.value.reply_text == truncated(full)
    assert len(ei.value.reply_text) == min(255, len(full))
    assert ei.value.reply_text.endswith("...") == (len(full) > 255)


# -- the reply codes ------------------------------------------------------------------------------
#
# Each case runs ``action(ch, names, other_channel_factory, used)`` on a fresh pika channel
# and expects channel.close with exactly this code and text. {q}/{x} in the text are the
# names the action used, which it records in ``used``.


def _passive_queue(ch, n, other, used):
    q = n.queue()
    used["q"] = q
    ch.queue_declare(q, passive=True)


def _passive_exchange(ch, n, other, used):
    x = n.exchange()
    used["x"] = x
    ch.exchange_declare(x, passive=True)


def _bind_missing_queue(ch, n, other, used):
    q = n.queue()
    used["q"] = q
    ch.queue_bind(q, "amq.direct", "k")


def _bind_missing_exchange(ch, n, other, used):
    q = ch.queue_declare("", exclusive=True).method.queue
    used["q"] = q
    x = n.exchange()
    used["x"] = x
    ch.queue_bind(q, x, "k")


def _publish_missing_exchange(ch, n, other, used):
    x = n.exchange()
    used["x"] = x
    ch.basic_publish(x, "k", b"body")
    ch.queue_declare("", exclusive=True)  # a round trip: the close arrives meanwhile


def _consume_missing_queue(ch, n, other, used):
    q = n.queue()
    used["q"] = q
    ch.basic_consume(q, lambda *a: None)


def _get_missing_queue(ch, n, other, used):
    q = n.queue()
    used["q"] = q
    ch.basic_get(q)


def _purge_missing_queue(ch, n, other, used):
    q = n.queue()
    used["q"] = q
    ch.queue_purge(q)


def _exclusive_queue_of_other_connection(op):
    def action(ch, n, other, used):
        q = n.queue()
        used["q"] = q
        other().queue_declare(q, exclusive=True)
        op(ch, q)

    return action


def _declare_reserved_exchange(ch, n, other, used):
    x = "amq." + n.exchange()
    used["x"] = x
    ch.exchange_declare(x, "direct")


def _declare_reserved_queue(ch, n, other, used):
    q = "amq." + n.queue()
    used["q"] = q
    ch.queue_declare(q)


def _delete_system_exchange(ch, n, other, used):
    ch.exchange_delete("amq.direct")


def _default_exchange_op(op):
    def action(ch, n, other, used):
        q = ch.queue_declare("", exclusive=True).method.queue
        used["q"] = q
        op(ch, q)

    return action


def _publish_internal(ch, n, other, used):
    x = n.exchange()
    used["x"] = x
    ch.exchange_declare(x, "fanout", internal=True)
    ch.basic_publish(x, "", b"body")
    ch.queue_declare("", exclusive=True)


def _exclusive_consumer(first_exclusive):
    def action(ch, n, other, used):
        q = ch.queue_declare("", exclusive=True).method.queue
        used["q"] = q
        ch.basic_consume(q, lambda *a: None, exclusive=first_exclusive)
        ch.basic_consume(q, lambda *a: None, exclusive=not first_exclusive)

    return action


def _user_id_mismatch(ch, n, other, used):
    q = ch.queue_declare("", exclusive=True).method.queue
    used["q"] = q
    ch.basic_publish("", q, b"body", pika.BasicProperties(user_id="not-guest"))
    ch.queue_declare("", exclusive=True)


def _redeclare_queue(first, second):
    def action(ch, n, other, used):
        q = n.queue()
        used["q"] = q
        ch.queue_declare(q, **first)
        ch.queue_declare(q, **second)

    return action


def _redeclare_exchange(first, second):
    def action(ch, n, other, used):
        x = n.exchange()
        used["x"] = x
        ch.exchange_declare(x, **first)
        ch.exchange_declare(x, **second)

    return action


def _unknown_tag(op):
    def action(ch, n, other, used):
        op(ch)
        ch.queue_declare("", exclusive=True)

    return action


def _double_ack(ch, n, other, used):
    q = ch.queue_declare("", exclusive=True).method.queue
    used["q"] = q
    ch.basic_publish("", q, b"body")
    tag = ch.basic_get(q)[0].delivery_tag
    ch.basic_ack(tag)
    ch.basic_ack(tag)
    ch.queue_declare("", exclusive=True)


def _delete_queue_in_use(ch, n, other, used):
    q = n.queue()
    used["q"] = q
    ch.queue_declare(q)
    other().basic_consume(q, lambda *a: None)
    ch.queue_delete(q, if_unused=True)


def _delete_queue_not_empty(ch, n, other, used):
    q = n.queue()
    used["q"] = q
    ch.queue_declare(q)
    ch.basic_publish("", q, b"body")
    ch.queue_delete(q, if_empty=True)


def _delete_exchange_in_use(ch, n, other, used):
    x = n.exchange()
    used["x"] = x
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    used["q"] = q
    ch.queue_bind(q, x, "k")
    ch.exchange_delete(x, if_unused=True)


def _mode_switch(first, second):
    def action(ch, n, other, used):
        first(ch)
        second(ch)

    return action


RESOURCE_LOCKED = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'. "
    "It could be originally declared on another connection or the exclusive property value "
    "does not match that of the original declaration."
)

SOFT_ERRORS = [
    # 404 NOT_FOUND
    ("passive-queue", _passive_queue, 404, "NOT_FOUND - no queue '{q}' in vhost '/'"),
    ("passive-exchange", _passive_exchange, 404, "NOT_FOUND - no exchange '{x}' in vhost '/'"),
    ("bind-missing-queue", _bind_missing_queue, 404, "NOT_FOUND - no queue '{q}' in vhost '/'"),
    (
        "bind-missing-exchange",
        _bind_missing_exchange,
        404,
        "NOT_FOUND - no exchange '{x}' in vhost '/'",
    ),
    (
        "publish-missing-exchange",
        _publish_missing_exchange,
        404,
        "NOT_FOUND - no exchange '{x}' in vhost '/'",
    ),
    (
        "consume-missing-queue",
        _consume_missing_queue,
        404,
        "NOT_FOUND - no queue '{q}' in vhost '/'",
    ),
    ("get-missing-queue", _get_missing_queue, 404, "NOT_FOUND - no queue '{q}' in vhost '/'"),
    ("purge-missing-queue", _purge_missing_queue, 404, "NOT_FOUND - no queue '{q}' in vhost '/'"),
    # 405 RESOURCE_LOCKED: another connection's exclusive queue
    (
        "exclusive-declare",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.queue_declare(q, exclusive=True)),
        405,
        RESOURCE_LOCKED,
    ),
    (
        "exclusive-declare-nonexclusive",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.queue_declare(q)),
        405,
        RESOURCE_LOCKED,
    ),
    (
        "exclusive-passive",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.queue_declare(q, passive=True)),
        405,
        RESOURCE_LOCKED,
    ),
    (
        "exclusive-consume",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.basic_consume(q, lambda *a: None)),
        405,
        RESOURCE_LOCKED,
    ),
    (
        "exclusive-get",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.basic_get(q)),
        405,
        RESOURCE_LOCKED,
    ),
    (
        "exclusive-bind",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.queue_bind(q, "amq.fanout")),
        405,
        RESOURCE_LOCKED,
    ),
    (
        "exclusive-purge",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.queue_purge(q)),
        405,
        RESOURCE_LOCKED,
    ),
    (
        "exclusive-delete",
        _exclusive_queue_of_other_connection(lambda ch, q: ch.queue_delete(q)),
        405,
        RESOURCE_LOCKED,
    ),
    # 403 ACCESS_REFUSED
    (
        "reserved-exchange-name",
        _declare_reserved_exchange,
        403,
        "ACCESS_REFUSED - exchange name '{x}' contains reserved prefix 'amq.*'",
    ),
    (
        "reserved-queue-name",
        _declare_reserved_queue,
        403,
        "ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'",
    ),
    (
        "delete-system-exchange",
        _delete_system_exchange,
        403,
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
    ),
    (
        "bind-default-exchange",
        _default_exchange_op(lambda ch, q: ch.queue_bind(q, "", "k")),
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    ),
    (
        "unbind-default-exchange",
        _default_exchange_op(lambda ch, q: ch.queue_unbind(q, "", q)),
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    ),
    (
        "declare-default-exchange",
        _default_exchange_op(lambda ch, q: ch.exchange_declare("", "direct", passive=True)),
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    ),
    (
        "delete-default-exchange",
        _default_exchange_op(lambda ch, q: ch.exchange_delete("")),
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
    ),
    (
        "publish-internal-exchange",
        _publish_internal,
        403,
        "ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'",
    ),
    (
        "exclusive-consumer-then-other",
        _exclusive_consumer(True),
        403,
        "ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use",
    ),
    (
        "consumer-then-exclusive",
        _exclusive_consumer(False),
        403,
        "ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use",
    ),
    # 406 PRECONDITION_FAILED
    (
        "user-id-mismatch",
        _user_id_mismatch,
        406,
        "PRECONDITION_FAILED - user_id property set to 'not-guest' "
        "but authenticated user was 'guest'",
    ),
    (
        "queue-durable-mismatch",
        _redeclare_queue({}, {"durable": True}),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': "
        "received 'true' but current is 'false'",
    ),
    (
        "queue-auto-delete-mismatch",
        _redeclare_queue({"auto_delete": True}, {}),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '{q}' in vhost '/': "
        "received 'false' but current is 'true'",
    ),
    (
        "queue-arg-value-mismatch",
        _redeclare_queue({"arguments": {"x-max-length": 10}}, {"arguments": {"x-max-length": 11}}),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
        "received '11' but current is '10'",
    ),
    (
        "queue-arg-missing",
        _redeclare_queue({"arguments": {"x-max-length": 10}}, {}),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
        "received none but current is the value '10' of type 'signedint'",
    ),
    (
        "exchange-type-mismatch",
        _redeclare_exchange({"exchange_type": "direct"}, {"exchange_type": "fanout"}),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{x}' in vhost '/': "
        "received 'fanout' but current is 'direct'",
    ),
    (
        "exchange-durable-mismatch",
        _redeclare_exchange(
            {"exchange_type": "direct"}, {"exchange_type": "direct", "durable": True}
        ),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '{x}' in vhost '/': "
        "received 'true' but current is 'false'",
    ),
    (
        "ack-unknown-tag",
        _unknown_tag(lambda ch: ch.basic_ack(99)),
        406,
        "PRECONDITION_FAILED - unknown delivery tag 99",
    ),
    (
        "nack-unknown-tag",
        _unknown_tag(lambda ch: ch.basic_nack(99)),
        406,
        "PRECONDITION_FAILED - unknown delivery tag 99",
    ),
    (
        "reject-unknown-tag",
        _unknown_tag(lambda ch: ch.basic_reject(99)),
        406,
        "PRECONDITION_FAILED - unknown delivery tag 99",
    ),
    ("double-ack", _double_ack, 406, "PRECONDITION_FAILED - unknown delivery tag 1"),
    (
        "delete-queue-if-unused",
        _delete_queue_in_use,
        406,
        "PRECONDITION_FAILED - queue '{q}' in vhost '/' in use",
    ),
    (
        "delete-queue-if-empty",
        _delete_queue_not_empty,
        406,
        "PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty",
    ),
    (
        "delete-exchange-if-unused",
        _delete_exchange_in_use,
        406,
        "PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use",
    ),
    (
        "tx-then-confirm",
        _mode_switch(lambda ch: ch.tx_select(), lambda ch: ch.confirm_delivery()),
        406,
        "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
    ),
    (
        "confirm-then-tx",
        _mode_switch(lambda ch: ch.confirm_delivery(), lambda ch: ch.tx_select()),
        406,
        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
    ),
    (
        "commit-not-transactional",
        _mode_switch(lambda ch: None, lambda ch: ch.tx_commit()),
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    ),
    (
        "rollback-not-transactional",
        _mode_switch(lambda ch: None, lambda ch: ch.tx_rollback()),
        406,
        "PRECONDITION_FAILED - channel is not transactional",
    ),
]


@pytest.mark.parametrize(
    ("action", "code", "text"), [c[1:] for c in SOFT_ERRORS], ids=[c[0] for c in SOFT_ERRORS]
)
def test_soft_error(connect, names, action, code, text):
    conn = connect()
    ch = conn.channel()
    used: dict[str, str] = {}
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        action(ch, names, lambda: connect().channel(), used)
    assert ei.value.reply_code == code
    assert ei.value.reply_text == truncated(text.format(**used))
    assert ch.is_closed
    # the connection is still usable
    assert conn.is_open
    assert conn.channel().queue_declare("", exclusive=True).method.queue


# -- hard errors: connection.close naming the offending method ------------------------------------


def _dup_consumer_tag(r):
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="tag"), C.Basic.ConsumeOk, 1)
    r.send(C.Basic.Consume(queue=q, consumer_tag="tag"), 1)


def _immediate(r):
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.send(C.Basic.Publish(exchange="", routing_key=q, immediate=True), 1)
    r.send_bytes(raw_frame(2, 1, b"\x00\x3c\x00\x00" + (1).to_bytes(8, "big") + b"\x00\x00"))
    r.send_bytes(raw_frame(3, 1, b"x"))


HARD_ERRORS = [
    (
        "unknown-exchange-type",
        lambda r: r.send(C.Exchange.Declare(exchange="it.x", exchange_type="no-such-type"), 1),
        503,
        (40, 10),
        "COMMAND_INVALID - unknown exchange type 'no-such-type'",
    ),
    (
        "duplicate-consumer-tag",
        _dup_consumer_tag,
        530,
        (60, 20),
        "NOT_ALLOWED - attempt to reuse consumer tag 'tag'",
    ),
    (
        "qos-prefetch-size",
        lambda r: r.send(C.Basic.Qos(prefetch_size=10), 1),
        540,
        (60, 10),
        "NOT_IMPLEMENTED - prefetch_size!=0 (10)",
    ),
    ("publish-immediate", _immediate, 540, (60, 40), "NOT_IMPLEMENTED - immediate=true"),
    (
        "channel-flow-inactive",
        lambda r: r.send(C.Channel.Flow(active=False), 1),
        540,
        (20, 20),
        "NOT_IMPLEMENTED - active=false",
    ),
    (
        "second-channel-open",
        lambda r: r.send(C.Channel.Open(), 1),
        504,
        (20, 10),
        "CHANNEL_ERROR - second 'channel.open' seen",
    ),
]


@pytest.mark.parametrize(
    ("action", "code", "method", "text"),
    [c[1:] for c in HARD_ERRORS],
    ids=[c[0] for c in HARD_ERRORS],
)
def test_hard_error(raw, action, code, method, text):
    r = raw()
    r.open_channel(1)
    action(r)
    _ch, close = r.wait_for(C.Connection.Close)
    assert close.reply_code == code
    assert (close.class_id, close.method_id) == method
    assert close.reply_text == text
    r.send(C.Connection.CloseOk())
    assert r.read_until_closed() == b""


def test_duplicate_consumer_tag_py_amqp(amqp_params):
    c = amqp.Connection(
        f"{amqp_params.host}:{amqp_params.port}",
        userid=amqp_params.user,
        password=amqp_params.password,
        virtual_host=amqp_params.vhost,
    )
    c.connect()
    try:
        ch = c.channel()
        q = ch.queue_declare("", exclusive=True).queue
        ch.basic_consume(q, consumer_tag="tag", callback=lambda m: None)
        with pytest.raises(amqp.exceptions.NotAllowed) as ei:
            ch.basic_consume(q, consumer_tag="tag", callback=lambda m: None)
        assert ei.value.reply_code == 530
        assert ei.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'tag'"
    finally:
        c.collect()
