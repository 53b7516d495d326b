"""Queues: server-named, passive, durable, exclusive, auto-delete, redeclare equivalence,
declare-ok counts, bind/unbind, purge, delete."""

from __future__ import annotations

import re
import time

import pika
import pytest
from pamqp import commands as C

from ._util import declare_temp_queue, drain


def _exists(conn, queue: str) -> bool:
    ch = conn.channel()
    try:
        ch.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code == 405:  # someone's exclusive queue, still there
            return True
        assert e.reply_code == 404
        return False
    ch.close()
    return True


def _wait_gone(conn, queue: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _exists(conn, queue):
        assert time.monotonic() < deadline, f"queue {queue} still exists"
        time.sleep(0.02)


# -- declare ---------------------------------------------------------------------------------------


def test_server_named_queue(channel):
    ok = channel.queue_declare("", exclusive=True).method
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_-]{22}", ok.queue), ok.queue
    assert (ok.message_count, ok.consumer_count) == (0, 0)
    other = channel.queue_declare("", exclusive=True).method.queue
    assert other != ok.queue


def test_server_named_queue_is_usable(channel):
    q = declare_temp_queue(channel)
    channel.basic_publish("", q, b"m")
    assert drain(channel, q) == [b"m"]


def test_declare_is_idempotent(channel, names):
    q = names.queue()
    assert channel.queue_declare(q).method.queue == q
    assert channel.queue_declare(q).method.queue == q


def test_declare_ok_counts(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()  # counts are exact once the publishes are confirmed
    q = names.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    ok = ch.queue_declare(q).method
    assert (ok.message_count, ok.consumer_count) == (3, 0)
    consumer_ch = conn.channel()
    consumer_ch.basic_qos(prefetch_count=1)
    consumer_ch.basic_consume(q, lambda *a: None)
    conn.channel().basic_consume(q, lambda *a: None)  # takes the other two
    conn.process_data_events(time_limit=0.2)
    ok = ch.queue_declare(q, passive=True).method
    # message_count counts ready messages only; unacked ones are not included
    assert (ok.message_count, ok.consumer_count) == (0, 2)


def test_passive_declare(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, b"m")
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 1, 0)
    # passive ignores durable/exclusive/auto-delete/arguments
    ch.queue_declare(
        q, passive=True, durable=False, auto_delete=True, arguments={"x-max-length": 1}
    )


def test_passive_declare_missing(channel, names):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.queue_declare(q, passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '/'"


def test_durable_queue(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, b"persistent", pika.BasicProperties(delivery_mode=2))
    assert drain(ch, q) == [b"persistent"]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, durable=False)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': "
        "received 'false' but current is 'true'"
    )


def test_redeclare_exclusive_queue_without_exclusive_on_same_connection(conn, names):
    """Even on its own connection, redeclaring an exclusive queue as non-exclusive is 405."""
    q = names.queue()
    conn.channel().queue_declare(q, exclusive=True)
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q)
    assert ei.value.reply_code == 405
    assert ei.value.reply_text.startswith(
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'."
    )
    assert conn.channel().queue_declare(q, exclusive=True).method.queue == q


def test_redeclare_argument_mismatch(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-message-ttl": 60000})
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={"x-message-ttl": 1000})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': "
        "received '1000' but current is '60000'"
    )
    # the same arguments again are fine
    conn.channel().queue_declare(q, arguments={"x-message-ttl": 60000})


def test_redeclare_unknown_argument_is_not_compared(conn, names):
    """Only arguments RabbitMQ knows are checked for equivalence."""
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-custom": "a"})
    conn.channel().queue_declare(q, arguments={"x-custom": "b"})
    conn.channel().queue_declare(q)


def test_invalid_argument_type(channel, names):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.queue_declare(q, arguments={"x-max-length": "ten"})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text.startswith(
        f"PRECONDITION_FAILED - invalid arg 'x-max-length' for queue '{q}' in vhost '/': "
    )


def test_declare_nowait(channel, names):
    q = names.queue()
    channel._impl.queue_declare(q, callback=None)  # nowait
    assert channel.queue_declare(q, passive=True).method.queue == q


def test_declare_with_empty_name_reuses_last_declared_queue(raw):
    """An empty queue name in later methods means the channel's last declared queue."""
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.rpc(
        C.Queue.Bind(queue="", exchange="amq.direct", routing_key="last-queue-test"),
        C.Queue.BindOk,
        1,
    )
    r.publish(1, b"via-last", exchange="amq.direct", routing_key="last-queue-test")
    r.expect(C.Basic.Ack, 1)
    ok = r.rpc(C.Queue.Declare(queue=q, passive=True), C.Queue.DeclareOk, 1)
    assert ok.message_count == 1
    got = r.get(1, "")
    assert got is not None and got[2] == b"via-last"
    r.rpc(
        C.Queue.Unbind(queue="", exchange="amq.direct", routing_key="last-queue-test"),
        C.Queue.UnbindOk,
        1,
    )


def test_empty_queue_name_without_previous_declare(raw):
    r = raw()
    r.open_channel(1)
    r.send(C.Basic.Consume(queue="", consumer_tag="x"), 1)
    close = r.expect_channel_close(1)
    assert (close.reply_code, close.class_id, close.method_id) == (404, 60, 20)
    assert close.reply_text == "NOT_FOUND - no previously declared queue"


# -- exclusive -------------------------------------------------------------------------------------


def test_exclusive_queue_usable_from_other_channels_of_its_connection(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, exclusive=True)
    ch = conn.channel()
    ch.basic_publish("", q, b"m")
    assert drain(ch, q) == [b"m"]


def test_exclusive_queue_other_connection_gets_405(connect, names):
    q = names.queue()
    connect().channel().queue_declare(q, exclusive=True)
    ch = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, exclusive=True)
    assert ei.value.reply_code == 405
    assert ei.value.reply_text.startswith(
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'."
    )


def test_other_connection_may_publish_to_exclusive_queue(connect, names):
    q = names.queue()
    owner = connect().channel()
    owner.queue_declare(q, exclusive=True)
    other = connect().channel()
    other.confirm_delivery()
    other.basic_publish("", q, b"from-other", mandatory=True)
    assert drain(owner, q) == [b"from-other"]


def test_exclusive_queue_removed_when_connection_closes(connect, names):
    q = names.queue()
    owner = connect()
    owner.channel().queue_declare(q, exclusive=True)
    observer = connect()
    assert _exists(observer, q)
    owner.close()
    _wait_gone(observer, q)


def test_exclusive_queue_survives_its_channel(connect, names):
    q = names.queue()
    owner = connect()
    ch = owner.channel()
    ch.queue_declare(q, exclusive=True)
    ch.close()
    assert _exists(owner, q)


def test_exclusive_durable_queue_is_still_removed(connect, names):
    q = names.queue()
    owner = connect()
    owner.channel().queue_declare(q, exclusive=True, durable=True)
    observer = connect()
    owner.close()
    _wait_gone(observer, q)


# -- auto-delete -----------------------------------------------------------------------------------


def test_auto_delete_after_last_consumer_cancels(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert _exists(conn, q)
    ch.basic_cancel(t2)
    _wait_gone(conn, q)


def test_auto_delete_when_consumer_channel_closes(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    ch.close()
    _wait_gone(conn, q)


def test_auto_delete_when_consumer_connection_closes(connect, names):
    q = names.queue()
    owner = connect()
    ch = owner.channel()
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    observer = connect()
    owner.close()
    _wait_gone(observer, q)


def test_auto_delete_never_consumed_stays(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    ch.basic_publish("", q, b"m")
    assert drain(ch, q) == [b"m"]  # basic.get is not a consumer
    assert _exists(conn, q)


def test_auto_delete_queue_loses_messages_on_deletion(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q, auto_delete=True)
    tag = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag)
    _wait_gone(conn, q)
    ch.queue_declare(q, auto_delete=True)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


# -- bind / unbind ---------------------------------------------------------------------------------


def test_bind_unbind(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q = declare_temp_queue(channel)
    assert channel.queue_bind(q, x, "k").method.NAME == "Queue.BindOk"
    channel.basic_publish(x, "k", b"bound")
    assert channel.queue_unbind(q, x, "k").method.NAME == "Queue.UnbindOk"
    channel.basic_publish(x, "k", b"unbound")
    assert drain(channel, q) == [b"bound"]


def test_bind_with_empty_routing_key(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q = declare_temp_queue(channel)
    channel.queue_bind(q, x, "")
    channel.basic_publish(x, "", b"empty-key")
    channel.basic_publish(x, q, b"queue-name-key")
    assert drain(channel, q) == [b"empty-key"]


# -- purge -----------------------------------------------------------------------------------------


def test_purge(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    assert ch.queue_purge(q).method.message_count == 5
    assert ch.queue_purge(q).method.message_count == 0
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_purge_leaves_unacked_messages(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    method, _p, body = ch.basic_get(q, auto_ack=False)
    assert body == b"0"
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, _p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"0" and method.redelivered


# -- delete ----------------------------------------------------------------------------------------


def test_delete_reports_message_count(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, str(i).encode())
    assert ch.queue_delete(q).method.message_count == 4
    assert not _exists(conn, q)


def test_delete_missing_queue_is_ok(channel, names):
    assert channel.queue_delete(names.queue()).method.message_count == 0


def test_delete_if_unused(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    tag = ch.basic_consume(q, lambda *a: None)
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.queue_delete(q, if_unused=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == f"PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"
    ch.basic_cancel(tag)
    assert ch.queue_delete(q, if_unused=True).method.message_count == 0


def test_delete_if_empty(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"m")
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.queue_delete(q, if_empty=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == f"PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"
    drain(ch, q)
    assert ch.queue_delete(q, if_empty=True).method.message_count == 0


def test_delete_if_empty_with_only_unacked_messages(conn, names):
    """if-empty looks at ready messages: a queue whose messages are all unacked is 'empty'."""
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"m")
    assert ch.basic_get(q, auto_ack=False)[0] is not None
    assert ch.queue_delete(q, if_empty=True).method.message_count == 0
    assert not _exists(conn, q)


def test_delete_removes_messages(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"old")
    ch.queue_delete(q)
    ch.queue_declare(q)
    assert drain(ch, q) == []
