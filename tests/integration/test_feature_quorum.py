"""Quorum queues (x-queue-type: quorum) as a single-node RabbitMQ 3.10 has them: the declare
rules, their 406 texts, and x-delivery-limit with the x-delivery-count header.

Pinned behaviour (checked against RabbitMQ 3.10.8):

* durable only; no exclusive, no auto-delete; not server-named. The checks run in this
  order: server-named, unsupported arguments, auto-delete, exclusive, non-durable, each a
  406 PRECONDITION_FAILED closing the channel:
    "Cannot declare a server-named queue for type rabbit_quorum_queue"
    "invalid arg 'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue"
    "invalid property 'auto-delete' for queue 'q' in vhost '/'"
    "invalid property 'exclusive-owner' for queue 'q' in vhost '/'"
    "invalid property 'non-durable' for queue 'q' in vhost '/'"
* x-queue-type is part of equivalence, with the usual inequivalent-arg texts;
* every return of a message (reject/nack with requeue, a closed channel) counts as a
  delivery attempt; with x-delivery-limit N a message is delivered at most N + 1 times,
  then dropped, or dead-lettered with reason "delivery_limit";
* the x-delivery-count header (type l, 64-bit signed) is the number of earlier returns.
  A consumer's first delivery has no such header; basic.get always adds it (0 the first
  time). It is not stored in the message: a dead-lettered message does not carry it.
* where a returned message goes: basic.reject, basic.nack and basic.recover put it after
  the messages already waiting, in the order returned (a multiple nack: delivery order);
  the unacknowledged messages of a closed channel or connection go back to their original
  places (a classic queue puts every return back in its original place).
"""

from __future__ import annotations

import pika
import pytest

from ._features import (
    Collector,
    counts,
    get_all,
    get_eventually,
    get_one,
    raw_get_headers,
    ready,
    settle,
    types_of,
    values_of,
    wait_until,
)

QUORUM = {"x-queue-type": "quorum"}


@pytest.fixture
def ch(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def _declare(ch, q: str, **arguments):
    return ch.queue_declare(q, durable=True, arguments={**QUORUM, **arguments}).method


def _declare_error(conn, q: str, **kwargs) -> pika.exceptions.ChannelClosedByBroker:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, **kwargs)
    assert info.value.reply_code == 406
    return info.value


# -- declaring --------------------------------------------------------------------------------


def test_durable_quorum_queue(ch, conn, names):
    q = names.queue()
    ok = _declare(ch, q)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    assert _declare(ch, q).queue == q  # equivalent
    assert ch.queue_declare(q, passive=True).method.queue == q


@pytest.mark.parametrize(
    ("kwargs", "prop"),
    [
        ({}, "non-durable"),
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
        ({"exclusive": True}, "exclusive-owner"),  # checked before non-durable
        ({"auto_delete": True}, "auto-delete"),
        ({"durable": True, "auto_delete": True, "exclusive": True}, "auto-delete"),
    ],
)
def test_invalid_properties(conn, names, kwargs, prop):
    q = names.queue()
    err = _declare_error(conn, q, arguments=QUORUM, **kwargs)
    assert err.reply_text == (
        f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{q}' in vhost '/'"
    )


@pytest.mark.parametrize(
    ("key", "value"), [("x-max-priority", 5), ("x-queue-mode", "lazy")]
)
def test_unsupported_arguments(conn, names, key, value):
    q = names.queue()
    err = _declare_error(conn, q, durable=True, arguments={**QUORUM, key: value})
    assert err.reply_text == (
        f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/' "
        "of queue type rabbit_quorum_queue"
    )


def test_arguments_are_checked_before_properties(conn, names):
    q = names.queue()
    err = _declare_error(conn, q, arguments={**QUORUM, "x-max-priority": 5})  # not durable
    assert "invalid arg 'x-max-priority'" in err.reply_text


@pytest.mark.parametrize(
    "kwargs", [{"durable": True}, {"exclusive": True}, {"durable": True, "auto_delete": True}]
)
def test_server_named_quorum_queue_is_refused(conn, kwargs):
    err = _declare_error(conn, "", arguments=QUORUM, **kwargs)
    assert err.reply_text == (
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue"
    )


def test_queue_type_is_part_of_equivalence(ch, conn, names):
    q, classic = names.queue(), names.queue()
    _declare(ch, q)
    err = _declare_error(conn, q, durable=True)
    assert err.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
        "received none but current is the value 'quorum' of type 'longstr'"
    )
    err = _declare_error(conn, q, durable=True, arguments={"x-queue-type": "classic"})
    assert err.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{q}' in vhost '/': "
        "received 'classic' but current is 'quorum'"
    )
    conn.channel().queue_declare(classic, durable=True)
    err = _declare_error(conn, classic, durable=True, arguments=QUORUM)
    assert err.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{classic}' in vhost "
        "'/': received the value 'quorum' of type 'longstr' but current is none"
    )


def test_fifo_and_counts(ch, conn, names):
    q = names.queue()
    _declare(ch, q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    assert counts(conn, q) == (3, 0)
    method, _props, body = get_one(ch, q)
    assert (body, method.message_count) == (b"m0", 2)
    assert get_all(ch, q) == [b"m1", b"m2"]


# -- delivery limit and x-delivery-count -----------------------------------------------------------


def test_delivery_limit_with_basic_get(ch, conn, names):
    q = names.queue()
    _declare(ch, q, **{"x-delivery-limit": 2})
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"a": "b"}))
    seen = []
    for _ in range(3):
        method, props, _body = get_one(ch, q, auto_ack=False)
        seen.append((method.redelivered, props.headers))
        ch.basic_reject(method.delivery_tag, requeue=True)
    # (the first get's x-delivery-count 0 is test_first_basic_get_has_a_zero_count)
    seen[0][1].pop("x-delivery-count", None)
    assert seen == [
        (False, {"a": "b"}),
        (True, {"a": "b", "x-delivery-count": 1}),
        (True, {"a": "b", "x-delivery-count": 2}),
    ]
    # three deliveries for a limit of 2: the third return drops it
    wait_until(lambda: ready(conn, q) == 0, 3, what="the message to be dropped")
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_delivery_count_is_a_long(ch, raw, names):
    q = names.queue()
    _declare(ch, q)
    ch.basic_publish("", q, b"m")
    method, _props, _body = get_one(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=True)
    r = raw()
    r.open_channel(1)
    headers, _payload, body = raw_get_headers(r, 1, q)
    assert body == b"m"
    assert types_of(headers) == {"x-delivery-count": "l"}
    assert values_of(headers) == {"x-delivery-count": 1}


def test_first_basic_get_has_a_zero_count(ch, raw, names):
    q = names.queue()
    _declare(ch, q)
    ch.basic_publish("", q, b"m")
    r = raw()
    r.open_channel(1)
    headers, _payload, _body = raw_get_headers(r, 1, q)
    assert headers == {"x-delivery-count": ("l", 0)}


def test_consumer_sees_the_count_only_on_redelivery(ch, conn, names):
    q = names.queue()
    _declare(ch, q, **{"x-delivery-limit": 1})
    consumer_ch = conn.channel()
    c = Collector(conn, consumer_ch, q)
    ch.basic_publish("", q, b"m")
    c.wait(1)
    first = c.deliveries[0]
    assert first[0].redelivered is False
    assert first[1].headers is None  # no x-delivery-count on a first delivery
    consumer_ch.basic_nack(first[0].delivery_tag, requeue=True)
    c.wait(2)
    second = c.deliveries[1]
    assert second[0].redelivered is True
    assert second[1].headers == {"x-delivery-count": 1}
    consumer_ch.basic_nack(second[0].delivery_tag, requeue=True)
    settle(conn, 0.2)
    assert len(c.deliveries) == 2  # limit 1: two deliveries, then gone
    assert counts(conn, q) == (0, 1)


def test_a_closed_channel_counts_as_a_delivery_attempt(conn, ch, names):
    q = names.queue()
    _declare(ch, q, **{"x-delivery-limit": 1})
    ch.basic_publish("", q, b"m")
    seen = []
    for _ in range(2):
        other = conn.channel()
        # the requeue of a closed channel is asynchronous: poll for the message
        _method, props, _body = wait_until(
            lambda other=other: (m := other.basic_get(q, auto_ack=False))[0] and m,
            3, what="the requeued message")
        seen.append((props.headers or {}).get("x-delivery-count"))
        other.close()
    assert seen[1:] == [1]  # the close of the first channel counted
    settle(conn, 0.2)
    assert ch.basic_get(q, auto_ack=True)[0] is None  # two deliveries for a limit of 1


def test_delivery_limit_zero_allows_one_delivery(ch, names):
    q = names.queue()
    _declare(ch, q, **{"x-delivery-limit": 0})
    ch.basic_publish("", q, b"once")
    method, _props, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=True)
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_without_a_limit_redeliveries_go_on(ch, names):
    q = names.queue()
    _declare(ch, q)
    ch.basic_publish("", q, b"m")
    for expected in range(6):
        method, props, _ = get_one(ch, q, auto_ack=False)
        if expected:
            assert props.headers["x-delivery-count"] == expected
        ch.basic_reject(method.delivery_tag, requeue=True)


def test_delivery_limit_dead_letters(ch, names):
    dlx, dlq, q = names.exchange(), names.queue(), names.queue()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    _declare(ch, q, **{"x-delivery-limit": 1, "x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"mine": "v"}))
    for _ in range(2):
        method, _props, _ = get_one(ch, q, auto_ack=False)
        ch.basic_nack(method.delivery_tag, requeue=True)
    method, props, body = get_eventually(ch, dlq)
    assert body == b"m"
    assert (method.exchange, method.routing_key) == (dlx, q)
    assert "x-delivery-count" not in props.headers
    assert props.headers["mine"] == "v"
    (death,) = props.headers["x-death"]
    assert (death["reason"], death["queue"], death["count"]) == ("delivery_limit", q, 1)
    assert (death["exchange"], death["routing-keys"]) == ("", [q])
    assert props.headers["x-first-death-reason"] == "delivery_limit"


def test_reject_without_requeue_dead_letters_as_rejected(ch, names):
    dlx, dlq, q = names.exchange(), names.queue(), names.queue()
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dlq)
    ch.queue_bind(dlq, dlx)
    _declare(ch, q, **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"m")
    method, _props, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    _m, props, _ = get_eventually(ch, dlq)
    assert props.headers["x-death"][0]["reason"] == "rejected"


def test_delete_if_empty_is_not_implemented(ch, connect, names):
    """RabbitMQ's quorum queues refuse queue.delete with if-empty: 540 NOT_IMPLEMENTED, a
    connection error; the queue stays."""
    q = names.queue()
    _declare(ch, q)
    other = connect()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        other.channel().queue_delete(q, if_empty=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        540, f"NOT_IMPLEMENTED - cannot delete queue '{q}' in vhost '/'. queue.delete "
             "operations with if-empty flag set are not supported by quorum queues")
    assert ch.queue_declare(q, passive=True).method.queue == q


# -- where returned messages go --------------------------------------------------------------------


def _two_unacked(ch, conn, q):
    """m0..m4 in the quorum queue ``q``; m0 and m1 taken, unacknowledged, on a new channel."""
    _declare(ch, q)
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i)
    other = conn.channel()
    tags = [get_one(other, q, auto_ack=False)[0].delivery_tag for _ in range(2)]
    return other, tags


def _bodies_and_flags(ch, q):
    out = []
    while (m := ch.basic_get(q, auto_ack=True))[0] is not None:
        out.append(m[2].decode() + ("*" if m[0].redelivered else ""))
    return out


@pytest.mark.parametrize(("settle_two", "order"), [
    (lambda o, t: o.basic_nack(t[0], requeue=True), ["m2", "m3", "m4", "m0*"]),
    (lambda o, t: (o.basic_reject(t[1], requeue=True), o.basic_reject(t[0], requeue=True)),
     ["m2", "m3", "m4", "m1*", "m0*"]),
    (lambda o, t: o.basic_nack(t[1], multiple=True, requeue=True),
     ["m2", "m3", "m4", "m0*", "m1*"]),
    (lambda o, t: o.basic_recover(requeue=True), ["m2", "m3", "m4", "m0*", "m1*"]),
], ids=["nack", "reject-in-reverse", "nack-multiple", "recover"])
def test_a_returned_message_goes_after_those_waiting(ch, conn, names, settle_two, order):
    q = names.queue()
    other, tags = _two_unacked(ch, conn, q)
    settle_two(other, tags)
    wait_until(lambda: ready(conn, q) == len(order), 3, what="the returned messages")
    assert _bodies_and_flags(ch, q) == order


def test_a_closed_channel_returns_messages_to_their_places(ch, conn, names):
    q = names.queue()
    other, _tags = _two_unacked(ch, conn, q)
    other.close()
    wait_until(lambda: ready(conn, q) == 5, 3, what="the returned messages")
    assert _bodies_and_flags(ch, q) == ["m0*", "m1*", "m2", "m3", "m4"]


def test_a_closed_connection_returns_messages_to_their_places(ch, conn, connect, names):
    q = names.queue()
    _declare(ch, q)
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i)
    consumer = connect()
    other = consumer.channel()
    for _ in range(2):
        get_one(other, q, auto_ack=False)
    consumer.close()
    wait_until(lambda: ready(conn, q) == 5, 3, what="the returned messages")
    assert _bodies_and_flags(ch, q) == ["m0*", "m1*", "m2", "m3", "m4"]


def test_a_consumers_nack_goes_after_those_waiting(ch, conn, names):
    q = names.queue()
    _declare(ch, q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    other = conn.channel()
    other.basic_qos(prefetch_count=1)
    seen = []

    def on_message(channel, method, _props, body):
        seen.append(body.decode() + ("*" if method.redelivered else ""))
        if body == b"m0" and not method.redelivered:
            channel.basic_nack(method.delivery_tag, requeue=True)
        else:
            channel.basic_ack(method.delivery_tag)

    other.basic_consume(q, on_message)
    wait_until(lambda: conn.process_data_events(0.05) or len(seen) == 4, 5,
               what="four deliveries")
    assert seen == ["m0", "m1", "m2", "m0*"]
