"""Priority queues (x-max-priority), as RabbitMQ 3.10 does them.

Pinned behaviour (checked against RabbitMQ 3.10.8):

* x-max-priority takes 0..255; 0 is accepted and gives a plain FIFO queue; 256, negative
  values and non-integers are refused with RabbitMQ's 406 texts;
* a message without a priority counts as 0, one above the maximum counts as the maximum;
* higher priorities first, FIFO within one priority (above-max ones keep their arrival order
  among the max-priority ones);
* a requeued message goes back to the head of *its* priority, ahead of the messages of that
  priority that were never delivered;
* with prefetch, the next message handed out when a slot frees is the highest priority one
  ready at that moment; basic.get takes the highest priority too;
* priorities are ignored by a queue declared without x-max-priority.
"""

from __future__ import annotations

import pika
import pytest

from ._features import Collector, get_all, get_one, ready, settle


def _publish(ch, q: str, items) -> None:
    for body, priority in items:
        ch.basic_publish("", q, body, pika.BasicProperties(priority=priority))


@pytest.fixture
def confirm_channel(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


# -- declaring --------------------------------------------------------------------------------


@pytest.mark.parametrize("max_priority", [0, 1, 10, 255])
def test_max_priority_range_is_accepted(channel, names, max_priority):
    q = names.queue()
    ok = channel.queue_declare(q, arguments={"x-max-priority": max_priority}).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    # the same value again is equivalent
    channel.queue_declare(q, arguments={"x-max-priority": max_priority})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (256, "{max_value_exceeded,256}"),
        (1000, "{max_value_exceeded,1000}"),
        (-1, "{value_negative,-1}"),
        ("5", '"expected integer, got longstr"'),
    ],
)
def test_max_priority_out_of_range_is_refused(conn, names, value, reason):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-max-priority": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{q}' in vhost '/': "
        f"{reason}"
    )


def test_max_priority_is_part_of_equivalence(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-max-priority": 1})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-max-priority": 2})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{q}' in vhost "
        "'/': received '2' but current is '1'"
    )
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q)
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue '{q}' in vhost "
        "'/': received none but current is the value '1' of type 'signedint'"
    )


# -- ordering ---------------------------------------------------------------------------------


def test_higher_priority_first_fifo_within_a_priority(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    _publish(ch, q, [(b"a2", 2), (b"b5", 5), (b"c2", 2), (b"d9", 9), (b"e5", 5), (b"f0", 0)])
    assert get_all(ch, q) == [b"d9", b"b5", b"e5", b"a2", b"c2", b"f0"]


def test_above_max_counts_as_max_and_missing_counts_as_zero(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 3})
    _publish(
        ch,
        q,
        [(b"0:none", None), (b"1:1", 1), (b"2:3", 3), (b"3:7", 7), (b"4:0", 0), (b"5:2", 2),
         (b"6:3", 3), (b"7:255", 255), (b"8:1", 1)],
    )
    assert get_all(ch, q) == [
        b"2:3", b"3:7", b"6:3", b"7:255",  # 3 and above, in arrival order
        b"5:2",
        b"1:1", b"8:1",
        b"0:none", b"4:0",  # no priority is priority 0
    ]


def test_max_priority_one(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 1})
    _publish(ch, q, [(b"0:0", 0), (b"1:5", 5), (b"2:1", 1), (b"3:none", None), (b"4:0", 0)])
    assert get_all(ch, q) == [b"1:5", b"2:1", b"0:0", b"3:none", b"4:0"]


def test_max_priority_zero_is_fifo(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 0})
    _publish(ch, q, [(b"0:0", 0), (b"1:5", 5), (b"2:1", 1)])
    assert get_all(ch, q) == [b"0:0", b"1:5", b"2:1"]


def test_plain_queue_ignores_priorities(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q)
    _publish(ch, q, [(b"0:1", 1), (b"1:9", 9), (b"2:0", 0)])
    assert get_all(ch, q) == [b"0:1", b"1:9", b"2:0"]


def test_priority_property_is_delivered_unchanged(confirm_channel, names):
    # a priority above the maximum orders as the maximum but is not rewritten
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 2})
    _publish(ch, q, [(b"m", 200)])
    _method, props, _body = get_one(ch, q)
    assert props.priority == 200


def test_declare_ok_and_get_ok_count_every_priority(confirm_channel, conn, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    _publish(ch, q, [(b"a", 1), (b"b", 5), (b"c", None), (b"d", 3)])
    assert ready(conn, q) == 4
    method, _props, body = get_one(ch, q)
    assert (body, method.message_count) == (b"b", 3)


# -- requeue, prefetch, get -------------------------------------------------------------------


def test_requeue_returns_to_the_head_of_its_priority(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    _publish(ch, q, [(b"0:1", 1), (b"1:2", 2), (b"2:2", 2), (b"3:1", 1)])
    taken = [get_one(ch, q, auto_ack=False) for _ in range(3)]
    assert [b for _, _, b in taken] == [b"1:2", b"2:2", b"0:1"]
    ch.basic_nack(taken[-1][0].delivery_tag, multiple=True, requeue=True)
    got = []
    while True:
        method, _props, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            break
        got.append((body, method.redelivered))
    assert got == [(b"1:2", True), (b"2:2", True), (b"0:1", True), (b"3:1", False)]


def test_requeued_low_priority_stays_behind_higher_ones(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    _publish(ch, q, [(b"low", 1)])
    method, _props, _body = get_one(ch, q, auto_ack=False)
    _publish(ch, q, [(b"high", 4), (b"low2", 1)])
    ch.basic_reject(method.delivery_tag, requeue=True)
    assert get_all(ch, q) == [b"high", b"low", b"low2"]


def test_prefetch_hands_out_the_highest_ready_priority(conn, confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    consumer_ch = conn.channel()
    consumer_ch.basic_qos(prefetch_count=1)
    c = Collector(conn, consumer_ch, q)
    _publish(ch, q, [(b"first", 1)])
    assert c.wait(1) == [b"first"]  # nothing else was ready: the low one goes at once
    _publish(ch, q, [(b"low", 1), (b"mid", 5), (b"high", 9), (b"mid2", 5)])
    settle(conn)
    assert c.bodies == [b"first"]  # prefetch 1: the rest waits
    for expected in (b"high", b"mid", b"mid2", b"low"):
        c.ack_last()
        c.wait(len(c.deliveries) + 1)
        assert c.bodies[-1] == expected
    c.ack_last()
    settle(conn)
    assert len(c.deliveries) == 5


def test_prefetch_two_takes_the_two_highest(conn, confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 10})
    _publish(ch, q, [(b"p1", 1), (b"p7", 7), (b"p3", 3), (b"p9", 9)])
    consumer_ch = conn.channel()
    consumer_ch.basic_qos(prefetch_count=2)
    c = Collector(conn, consumer_ch, q)
    assert c.wait(2) == [b"p9", b"p7"]
    settle(conn)
    assert len(c.deliveries) == 2
    assert ready(conn, q) == 2


def test_basic_get_takes_the_highest_priority(confirm_channel, names):
    ch, q = confirm_channel, names.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    _publish(ch, q, [(b"a", 0), (b"b", 2)])
    method, _props, body = get_one(ch, q)
    assert (body, method.message_count) == (b"b", 1)
    _publish(ch, q, [(b"c", 5), (b"d", 1)])
    assert get_all(ch, q) == [b"c", b"d", b"a"]
