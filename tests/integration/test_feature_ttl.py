"""Message TTL (x-message-ttl, the expiration property) and queue expiry (x-expires), as
RabbitMQ 3.10 does them.

Pinned behaviour (checked against RabbitMQ 3.10.8):

* expiration is a decimal string of milliseconds parsed like Erlang's string:to_integer:
  a leading '+', leading zeros and '-0' are fine; anything else closes the channel with
  406 "invalid expiration '<value>': <reason>" (no_integer, {leftover_string,"..."},
  {value_negative,N}, {value_too_large,N}); the maximum is 315360000000 (ten years);
* the smaller of x-message-ttl and expiration applies;
* an expired message is never delivered (consumer or basic.get). Expired messages are
  removed at the head of the queue: one that expires behind a live message stays counted
  in declare-ok until it reaches the head, and is then dropped (get-ok's message_count
  already leaves it out). A queue with no consumers still drops its expired head on time;
* expiration "0": delivered if a consumer can take it at once, else dropped at once;
* a requeued message keeps its original expiry: if that passed while it was unacked, it is
  dropped when it comes back;
* x-expires: the queue is deleted once unused for that long, messages and all. "Use" is
  having consumers, basic.get (even get-empty), queue.declare (passive too) and
  basic.consume/cancel; publishing and purging are not use.
"""

from __future__ import annotations

import time

import pika
import pytest

from ._features import Collector, get_all, get_one, ready, settle, still_exists, wait_until


@pytest.fixture
def ch(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def _pub(ch, q: str, body: bytes, expiration: str | None = None, **props) -> None:
    ch.basic_publish("", q, body, pika.BasicProperties(expiration=expiration, **props))


# -- expiration property values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "no_integer"),
        ("", "no_integer"),
        (" 5", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("1.5", '{leftover_string,".5"}'),
        ("5 ", '{leftover_string," "}'),
        ("1e3", '{leftover_string,"e3"}'),
        ("0x10", '{leftover_string,"x10"}'),
        ("315360000001", "{value_too_large,315360000001}"),
        ("1000000000000000", "{value_too_large,1000000000000000}"),
    ],
)
def test_invalid_expiration_closes_the_channel(conn, names, value, reason):
    q = names.queue()
    conn.channel().queue_declare(q)
    ch = conn.channel()
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        _pub(ch, q, b"x", expiration=value)
    assert info.value.reply_code == 406
    assert info.value.reply_text == f"PRECONDITION_FAILED - invalid expiration '{value}': {reason}"
    assert ready(conn, q) == 0


@pytest.mark.parametrize("value", ["+5000", "007000", "-0", "315360000000", "4294967296"])
def test_unusual_but_valid_expirations(ch, conn, names, value):
    q = names.queue()
    ch.queue_declare(q)
    _pub(ch, q, b"x", expiration=value)
    assert ch.is_open
    if value != "-0":
        _method, props, _ = get_one(ch, q)
        assert props.expiration == value  # delivered as it was published


@pytest.mark.parametrize(
    ("value", "reason"),
    [(-1, "{value_negative,-1}"), ("100", '"expected integer, got longstr"')],
)
def test_invalid_x_message_ttl(conn, names, value, reason):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-message-ttl": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '{q}' in vhost '/': "
        f"{reason}"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [(0, "{value_zero,0}"), (-5, "{value_negative,-5}"), ("1", '"expected integer, got longstr"')],
)
def test_invalid_x_expires(conn, names, value, reason):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-expires": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-expires' for queue '{q}' in vhost '/': {reason}"
    )


# -- message TTL ----------------------------------------------------------------------------------


def test_x_message_ttl_expires_messages(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 60})
    for i in range(3):
        _pub(ch, q, b"m%d" % i)
    wait_until(lambda: ready(conn, q) == 0, 3, what="the messages to expire")
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_per_message_expiration_expires(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    _pub(ch, q, b"short", expiration="40")
    _pub(ch, q, b"keeps")
    wait_until(lambda: ready(conn, q) == 1, 3, what="the head to expire")
    assert get_all(ch, q) == [b"keeps"]


def test_live_messages_keep_their_expiration_property(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 60000})
    _pub(ch, q, b"with", expiration="60000")
    _pub(ch, q, b"without")
    assert get_one(ch, q)[1].expiration == "60000"
    assert get_one(ch, q)[1].expiration is None  # x-message-ttl does not add one


@pytest.mark.parametrize(("queue_ttl", "message_ttl"), [(60000, "30"), (30, "60000")])
def test_the_lower_ttl_applies(ch, conn, names, queue_ttl, message_ttl):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": queue_ttl})
    _pub(ch, q, b"m", expiration=message_ttl)
    wait_until(lambda: ready(conn, q) == 0, 3, what="the message to expire")


def test_expiration_zero_without_a_consumer_is_dropped(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    _pub(ch, q, b"now or never", expiration="0")
    assert ready(conn, q) == 0
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_x_message_ttl_zero_without_a_consumer_is_dropped(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 0})
    _pub(ch, q, b"now or never")
    assert ready(conn, q) == 0


def test_expiration_zero_goes_to_a_waiting_consumer(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    c = Collector(conn, conn.channel(), q, auto_ack=True)
    _pub(ch, q, b"now", expiration="0")
    assert c.wait(1) == [b"now"]
    assert c.deliveries[0][1].expiration == "0"


def test_expired_message_behind_a_live_one_is_counted_until_the_head(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    _pub(ch, q, b"m1", expiration="60000")
    _pub(ch, q, b"m2", expiration="20")
    _pub(ch, q, b"m3")
    time.sleep(0.2)
    assert ready(conn, q) == 3  # m2 has expired but is not at the head
    method, _props, body = get_one(ch, q)
    assert (body, method.message_count) == (b"m1", 1)  # m2 went as it reached the head
    assert ready(conn, q) == 1
    assert get_all(ch, q) == [b"m3"]


def test_several_expired_messages_go_when_they_reach_the_head(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    _pub(ch, q, b"x1", expiration="60000")
    _pub(ch, q, b"x2", expiration="20")
    _pub(ch, q, b"x3", expiration="20")
    _pub(ch, q, b"x4")
    time.sleep(0.2)
    method, _props, body = get_one(ch, q)
    assert (body, method.message_count) == (b"x1", 1)
    assert get_all(ch, q) == [b"x4"]


def test_expiration_zero_behind_a_live_message_waits_for_the_head(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    _pub(ch, q, b"k", expiration="60000")
    _pub(ch, q, b"z", expiration="0")
    assert ready(conn, q) == 2
    method, _props, body = get_one(ch, q)
    assert (body, method.message_count) == (b"k", 0)
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_expired_head_is_removed_without_consumers(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    _pub(ch, q, b"h1", expiration="30")
    _pub(ch, q, b"h2", expiration="60000")
    wait_until(lambda: ready(conn, q) == 1, 3, what="the expired head to go")


def test_shorter_ttl_behind_does_not_overtake_the_queue_ttl(ch, conn, names):
    # x-message-ttl 150 for all; b3 has its own 10 ms but sits behind b1
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 150})
    _pub(ch, q, b"b1")
    _pub(ch, q, b"b2", expiration="60000")
    _pub(ch, q, b"b3", expiration="10")
    time.sleep(0.05)
    assert ready(conn, q) == 3
    wait_until(lambda: ready(conn, q) == 0, 3, what="everything to expire")


def test_expired_messages_are_never_delivered_to_consumers(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q)
    consumer_ch = conn.channel()
    consumer_ch.basic_qos(prefetch_count=1)
    c = Collector(conn, consumer_ch, q)
    _pub(ch, q, b"p1")
    _pub(ch, q, b"p2", expiration="50")
    _pub(ch, q, b"p3")
    assert c.wait(1) == [b"p1"]
    time.sleep(0.2)  # p2 expires while the consumer's only slot is taken
    c.ack_last()
    assert c.wait(2) == [b"p1", b"p3"]
    c.ack_last()
    settle(conn)
    assert c.bodies == [b"p1", b"p3"]


def test_expired_messages_are_not_delivered_to_a_new_consumer(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 40})
    for i in range(3):
        _pub(ch, q, b"old%d" % i)
    time.sleep(0.2)
    c = Collector(conn, conn.channel(), q, auto_ack=True)
    _pub(ch, q, b"new")
    assert c.wait(1) == [b"new"]
    settle(conn)
    assert c.bodies == [b"new"]


def test_requeue_keeps_the_original_expiry(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    _pub(ch, q, b"r1")
    method, _props, _body = get_one(ch, q, auto_ack=False)
    time.sleep(0.25)  # its TTL passes while it is unacked: nothing happens to it yet
    ch.basic_reject(method.delivery_tag, requeue=True)
    wait_until(lambda: ready(conn, q) == 0, 3, what="the requeued message to be dropped")
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_requeue_before_expiry_keeps_the_message_at_the_head(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 60000})
    _pub(ch, q, b"first")
    _pub(ch, q, b"second")
    method, _props, _body = get_one(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=True)
    got = get_one(ch, q)
    assert (got[2], got[0].redelivered) == (b"first", True)


def test_unacked_message_does_not_expire_while_delivered(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 50})
    _pub(ch, q, b"held")
    consumer_ch = conn.channel()
    c = Collector(conn, consumer_ch, q)
    c.wait(1)
    settle(conn, 0.15)
    consumer_ch.basic_ack(c.deliveries[0][0].delivery_tag)  # still a valid tag: no close
    settle(conn, 0.05)
    assert consumer_ch.is_open


# -- queue expiry (x-expires) -------------------------------------------------------------------


def test_unused_queue_is_deleted(ch, conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-expires": 100})
    wait_until(lambda: not still_exists(ch, q), 3, interval=0.02, what="the queue to expire")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, passive=True)
    assert info.value.reply_code == 404


def test_queue_with_messages_is_deleted_too(ch, conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-expires": 100})
    for i in range(3):
        _pub(ch, q, b"m%d" % i)
    wait_until(lambda: not still_exists(ch, q), 3, interval=0.02, what="the queue to expire")


def test_a_consumer_keeps_the_queue_alive(ch, conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-expires": 100})
    consumer_ch = conn.channel()
    c = Collector(conn, consumer_ch, q, auto_ack=True)
    settle(conn, 0.3)
    assert still_exists(ch, q)
    c.cancel()
    t0 = time.monotonic()
    wait_until(lambda: not still_exists(ch, q), 3, interval=0.02, what="the queue to expire")
    assert time.monotonic() - t0 >= 0.05  # counted from the cancel, not from the declare


def test_a_closed_consumer_channel_starts_the_countdown(ch, conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-expires": 100})
    consumer_ch = conn.channel()
    Collector(conn, consumer_ch, q, auto_ack=True)
    settle(conn, 0.25)
    assert still_exists(ch, q)
    consumer_ch.close()
    wait_until(lambda: not still_exists(ch, q), 3, interval=0.02, what="the queue to expire")


EXPIRES = 500  # ms
TOUCH_AT = 0.35  # s after the declare
CHECK_AT = 0.67  # s: past the original expiry (0.5), before a renewed one (>= 0.85)


def _consume_and_cancel(ch, q):
    tag = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(tag)


TOUCHES = {
    "basic.get": (lambda ch, q: ch.basic_get(q, auto_ack=True), True),
    "passive declare": (lambda ch, q: ch.queue_declare(q, passive=True), True),
    "redeclare": (lambda ch, q: ch.queue_declare(q, arguments={"x-expires": EXPIRES}), True),
    "consume and cancel": (_consume_and_cancel, True),
    "publish": (lambda ch, q: ch.basic_publish("", q, b"x"), False),
    "purge": (lambda ch, q: ch.queue_purge(q), False),
}


@pytest.mark.parametrize("touch", TOUCHES.keys())
def test_what_counts_as_use(ch, conn, names, touch):
    operation, resets = TOUCHES[touch]
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-expires": EXPIRES})
    t0 = time.monotonic()
    time.sleep(TOUCH_AT)
    operation(conn.channel(), q)
    touched = time.monotonic() - t0
    if resets:
        time.sleep(max(0.0, CHECK_AT - (time.monotonic() - t0)))
        # the expiry was renewed at `touched`: it cannot be gone before touched + 0.5
        assert still_exists(ch, q)
        assert time.monotonic() - t0 < touched + EXPIRES / 1000
        wait_until(lambda: not still_exists(ch, q), 3, interval=0.02, what="the queue to expire")
    else:
        wait_until(lambda: not still_exists(ch, q), 3, interval=0.02, what="the queue to expire")
        # gone on the original schedule, well before a renewed expiry would come
        assert time.monotonic() - t0 < touched + EXPIRES / 1000 - 0.05
