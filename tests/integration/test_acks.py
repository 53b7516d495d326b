"""Acknowledgements: ack, nack, reject (multiple, requeue), redelivered flag, requeue position,
basic.recover, and unacked messages coming back when a channel or connection closes."""

from __future__ import annotations

import time

import pika
import pytest

from ._util import declare_temp_queue, drain


def _pump(conn, until, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        conn.process_data_events(time_limit=0.05)


def _fill(ch, q: str, n: int) -> None:
    for i in range(n):
        ch.basic_publish("", q, str(i).encode())


def _get_all(ch, q: str, n: int) -> list:
    out = []
    for _ in range(n):
        method, _props, body = ch.basic_get(q, auto_ack=False)
        assert method is not None
        out.append((method.delivery_tag, body))
    return out


def _ready_with_flags(ch, q: str) -> list[tuple[bytes, bool]]:
    out = []
    while True:
        method, _props, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.redelivered))


def _message_count(conn, q: str) -> int:
    return conn.channel().queue_declare(q, passive=True).method.message_count


# -- ack -------------------------------------------------------------------------------------------


def test_ack_single(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    q = declare_temp_queue(ch)
    _fill(ch, q, 3)
    got = _get_all(ch, q, 3)
    ch.basic_ack(got[1][0])
    ch.close()  # the two unacked come back
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"0", True), (b"2", True)]


def test_ack_multiple(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 5)
    got = _get_all(ch, q, 5)
    ch.basic_ack(got[2][0], multiple=True)  # 1, 2, 3
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"3", True), (b"4", True)]


def test_ack_multiple_zero_acks_everything(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 4)
    _get_all(ch, q, 4)
    ch.basic_ack(0, multiple=True)
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == []


def test_ack_multiple_skips_already_acked(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 4)
    _get_all(ch, q, 4)
    ch.basic_ack(2)
    ch.basic_ack(3, multiple=True)  # acks 1 and 3; 2 is gone already
    ch.basic_ack(4)
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == []


def test_ack_consumer_deliveries(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag))
    _fill(ch, q, 3)
    _pump(conn, lambda: len(got) == 3)
    for tag in got:
        ch.basic_ack(tag)
    ch.close()
    assert _message_count(conn, q) == 0


# -- reject / nack ---------------------------------------------------------------------------------


def test_reject_requeue_sets_redelivered(channel):
    q = declare_temp_queue(channel)
    _fill(channel, q, 1)
    method, _p, body = channel.basic_get(q)
    assert method.redelivered is False
    channel.basic_reject(method.delivery_tag, requeue=True)
    method, _p, body2 = channel.basic_get(q)
    assert (body2, method.redelivered) == (body, True)
    channel.basic_ack(method.delivery_tag)


def test_reject_without_requeue_drops(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 2)
    method, _p, _b = ch.basic_get(q)
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"1", False)]


def test_nack_multiple_requeue(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 5)
    got = _get_all(ch, q, 5)
    ch.basic_nack(got[2][0], multiple=True, requeue=True)  # 0, 1, 2 back
    assert _ready_with_flags(ch, q) == [(b"0", True), (b"1", True), (b"2", True)]
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"3", True), (b"4", True)]


def test_nack_multiple_without_requeue(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 4)
    got = _get_all(ch, q, 4)
    ch.basic_nack(got[1][0], multiple=True, requeue=False)  # 0, 1 dropped
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"2", True), (b"3", True)]


def test_nack_single(channel):
    q = declare_temp_queue(channel)
    _fill(channel, q, 3)
    got = _get_all(channel, q, 3)
    channel.basic_nack(got[1][0], multiple=False, requeue=True)
    assert _ready_with_flags(channel, q) == [(b"1", True)]
    channel.basic_ack(0, multiple=True)


def test_nack_multiple_zero_requeues_everything(channel):
    q = declare_temp_queue(channel)
    _fill(channel, q, 3)
    _get_all(channel, q, 3)
    channel.basic_nack(0, multiple=True, requeue=True)
    assert _ready_with_flags(channel, q) == [(b"0", True), (b"1", True), (b"2", True)]


def test_requeued_messages_return_to_their_original_position(channel):
    q = declare_temp_queue(channel)
    _fill(channel, q, 6)
    got = _get_all(channel, q, 4)  # 0..3 unacked, 4 and 5 still ready
    channel.basic_reject(got[3][0], requeue=True)  # "3"
    channel.basic_reject(got[1][0], requeue=True)  # "1"
    assert _ready_with_flags(channel, q) == [
        (b"1", True),
        (b"3", True),
        (b"4", False),
        (b"5", False),
    ]
    channel.basic_ack(0, multiple=True)


def test_requeue_before_new_publishes(channel):
    q = declare_temp_queue(channel)
    _fill(channel, q, 2)
    got = _get_all(channel, q, 2)
    channel.basic_publish("", q, b"later")
    channel.basic_nack(got[1][0], multiple=True, requeue=True)
    assert _ready_with_flags(channel, q) == [(b"0", True), (b"1", True), (b"later", False)]


def test_requeued_message_goes_to_another_consumer(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    ch.basic_qos(prefetch_count=1)
    first, second = [], []

    def reject_all(c, m, p, b):
        first.append(b)
        c.basic_reject(m.delivery_tag, requeue=True)

    tag = ch.basic_consume(q, reject_all)
    _fill(ch, q, 1)
    _pump(conn, lambda: first)
    ch.basic_cancel(tag)
    ch.basic_consume(q, lambda c, m, p, b: second.append((b, m.redelivered)), auto_ack=True)
    _pump(conn, lambda: second)
    assert second[0] == (b"0", True)


# -- recover ---------------------------------------------------------------------------------------


def test_recover_requeue(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((b, m.redelivered, m.delivery_tag)))
    _fill(ch, q, 2)
    _pump(conn, lambda: len(got) == 2)
    ch.basic_recover(requeue=True)
    _pump(conn, lambda: len(got) == 4)
    assert [(b, r) for b, r, _t in got] == [
        (b"0", False),
        (b"1", False),
        (b"0", True),
        (b"1", True),
    ]
    # redelivered with new delivery tags; the old ones are gone
    assert [t for _b, _r, t in got] == [1, 2, 3, 4]
    ch.basic_ack(4, multiple=True)


def test_recover_of_basic_get_messages(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 2)
    _get_all(ch, q, 2)
    ch.basic_recover(requeue=True)
    assert _ready_with_flags(ch, q) == [(b"0", True), (b"1", True)]


def test_old_delivery_tags_are_unknown_after_recover(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 1)
    tag = ch.basic_get(q)[0].delivery_tag
    ch.basic_recover(requeue=True)
    ch.basic_ack(tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {tag}"


# -- unacked messages come back --------------------------------------------------------------------


def test_unacked_return_when_channel_closes(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 3)
    _get_all(ch, q, 2)
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"0", True), (b"1", True), (b"2", False)]


def test_unacked_consumer_deliveries_return_when_channel_closes(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b))
    _fill(ch, q, 3)
    _pump(conn, lambda: len(got) == 3)
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"0", True), (b"1", True), (b"2", True)]


def test_unacked_return_when_connection_closes(connect, names):
    q = names.queue()
    observer = connect().channel()
    observer.queue_declare(q)
    consumer = connect()
    ch = consumer.channel()
    _fill(ch, q, 3)
    _get_all(ch, q, 3)
    consumer.close()
    deadline = time.monotonic() + 5
    while observer.queue_declare(q, passive=True).method.message_count < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert _ready_with_flags(observer, q) == [(b"0", True), (b"1", True), (b"2", True)]


def test_unacked_return_when_channel_closed_by_error(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 2)
    _get_all(ch, q, 2)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare("it.acks.no-such-queue", passive=True)
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == [(b"0", True), (b"1", True)]


def test_no_ack_deliveries_do_not_come_back(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    _fill(ch, q, 2)
    assert drain(ch, q, auto_ack=True) == [b"0", b"1"]
    ch.close()
    ch = conn.channel()
    assert _ready_with_flags(ch, q) == []


def test_delivery_tags_are_per_channel(conn):
    ch1, ch2 = conn.channel(), conn.channel()
    q = declare_temp_queue(ch1)
    _fill(ch1, q, 4)
    assert ch1.basic_get(q)[0].delivery_tag == 1
    assert ch2.basic_get(q)[0].delivery_tag == 1
    assert ch1.basic_get(q)[0].delivery_tag == 2
    assert ch2.basic_get(q)[0].delivery_tag == 2
    ch1.basic_ack(2, multiple=True)
    ch2.basic_ack(2, multiple=True)
