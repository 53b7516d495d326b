"""Queue length limits (x-max-length, x-max-length-bytes, x-overflow), as RabbitMQ 3.10 does
them. Dead-lettering of what the limits drop is in test_feature_dead_letter.py.

Pinned behaviour (checked against RabbitMQ 3.10.8):

* only ready messages count: unacknowledged ones take no room;
* only body bytes count for x-max-length-bytes (not properties or headers);
* drop-head (the default): after an enqueue, messages are dropped from the head until the
  queue is within both limits again, so a message bigger than x-max-length-bytes drops
  everything, itself included; a message requeued over the limit is dropped too (it is at
  the head); in a priority queue the head is the highest-priority message;
* reject-publish / reject-publish-dlx: a message is refused when len + 1 > x-max-length or
  bytes + its size > x-max-length-bytes (so an empty body still fits a full byte limit);
  publisher confirms nack it, without confirms it vanishes silently, mandatory does not
  return it (it was routed); a requeue may take the queue over the limit;
* x-max-length 0 keeps nothing;
* 406 texts for bad values.
"""

from __future__ import annotations

import pika
import pytest

from ._features import Collector, get_all, get_one, ready, settle


@pytest.fixture
def ch(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def _pub(ch, q: str, body: bytes, **props) -> None:
    ch.basic_publish("", q, body, pika.BasicProperties(**props))


def _publish_all(ch, q: str, bodies, **props) -> list[str]:
    """Publish on a confirm channel; "ack" or "nack" for each."""
    out = []
    for body in bodies:
        try:
            _pub(ch, q, body, **props)
            out.append("ack")
        except pika.exceptions.NackError:
            out.append("nack")
    return out


# -- drop-head ------------------------------------------------------------------------------------


def test_drop_head_keeps_the_newest(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2})
    assert _publish_all(ch, q, [b"m1", b"m2", b"m3", b"m4", b"m5"]) == ["ack"] * 5
    assert ready(conn, q) == 2
    assert get_all(ch, q) == [b"m4", b"m5"]


def test_explicit_drop_head(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "drop-head"})
    _publish_all(ch, q, [b"a", b"b"])
    assert get_all(ch, q) == [b"b"]


def test_max_length_zero_keeps_nothing(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 0})
    assert _publish_all(ch, q, [b"a", b"b"]) == ["ack", "ack"]
    assert ready(conn, q) == 0


def test_max_length_zero_with_reject_publish_refuses_everything(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    assert _publish_all(ch, q, [b"a"]) == ["nack"]


def test_unacked_messages_do_not_count(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert _publish_all(ch, q, [b"e1"]) == ["ack"]
    get_one(ch, q, auto_ack=False)
    assert _publish_all(ch, q, [b"e2", b"e3"]) == ["ack", "nack"]
    assert ready(conn, q) == 1


def test_a_consumer_keeps_the_queue_short(conn, ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    c = Collector(conn, conn.channel(), q, auto_ack=True)
    assert _publish_all(ch, q, [b"a", b"b", b"c"]) == ["ack"] * 3
    assert c.wait(3) == [b"a", b"b", b"c"]


def test_drop_head_on_requeue_over_the_limit(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1})
    _pub(ch, q, b"f1")
    method, _props, _ = get_one(ch, q, auto_ack=False)
    _pub(ch, q, b"f2")
    _pub(ch, q, b"f3")  # drops f2
    ch.basic_nack(method.delivery_tag, requeue=True)  # f1 back at the head: over, dropped
    assert ready(conn, q) == 1
    assert get_all(ch, q) == [b"f3"]


def test_reject_publish_allows_a_requeue_over_the_limit(ch, conn, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    _pub(ch, q, b"e1")
    method, _props, _ = get_one(ch, q, auto_ack=False)
    _pub(ch, q, b"e2")
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert ready(conn, q) == 2
    assert get_all(ch, q) == [b"e1", b"e2"]


def test_drop_head_in_a_priority_queue_drops_the_highest_priority(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-max-priority": 5})
    for body, priority in [(b"lo", 0), (b"hi", 5), (b"mid", 3)]:
        _pub(ch, q, body, priority=priority)
    assert get_all(ch, q) == [b"mid", b"lo"]


# -- reject-publish --------------------------------------------------------------------------------


@pytest.mark.parametrize("overflow", ["reject-publish", "reject-publish-dlx"])
def test_reject_publish_nacks_the_overflow(ch, conn, names, overflow):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": overflow})
    assert _publish_all(ch, q, [b"1", b"2", b"3", b"4"]) == ["ack", "ack", "nack", "nack"]
    assert get_all(ch, q) == [b"1", b"2"]
    # room again: accepted again
    assert _publish_all(ch, q, [b"5"]) == ["ack"]


def test_reject_publish_without_confirms_drops_silently(conn, names):
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    for body in (b"a", b"b", b"c"):
        ch.basic_publish("", q, body, mandatory=True)
    settle(conn, 0.1)
    assert ch.is_open
    assert returned == []  # refused by the queue, not unroutable: no basic.return
    assert get_all(ch, q) == [b"a"]


def test_reject_publish_mandatory_is_nacked_not_returned(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"x", mandatory=True)


def test_nack_only_for_the_full_queue(ch, conn, names):
    x, full, roomy = names.exchange(), names.queue(), names.queue()
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(full, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    ch.queue_declare(roomy)
    ch.queue_bind(full, x)
    ch.queue_bind(roomy, x)
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish(x, "", b"x")
    assert ready(conn, roomy) == 1  # the other queue has it


# -- bytes -----------------------------------------------------------------------------------------


def test_max_length_bytes_counts_bodies_only(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    big_headers = {"big": "x" * 1000}
    for body in (b"12345", b"67890"):
        _pub(ch, q, body, headers=big_headers)
    assert get_all(ch, q) == [b"12345", b"67890"]


def test_max_length_bytes_drop_head(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    _publish_all(ch, q, [b"12345", b"67890", b"abc"])
    assert get_all(ch, q) == [b"67890", b"abc"]


def test_a_message_over_max_length_bytes_drops_everything_itself_included(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    _publish_all(ch, q, [b"12345", b"67890", b"abc", b"0123456789A", b"z"])
    assert get_all(ch, q) == [b"z"]


def test_max_length_bytes_reject_publish(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    outcome = _publish_all(ch, q, [b"12345", b"67890", b"a", b"", b"0123456789A"])
    assert outcome == ["ack", "ack", "nack", "ack", "nack"]  # an empty body still fits
    assert get_all(ch, q) == [b"12345", b"67890", b""]


def test_both_limits_apply(ch, names):
    q = names.queue()
    ch.queue_declare(q, arguments={"x-max-length": 3, "x-max-length-bytes": 4,
                                   "x-overflow": "reject-publish"})
    assert _publish_all(ch, q, [b"aa", b"bb", b"c"]) == ["ack", "ack", "nack"]
    assert _publish_all(ch, q, [b"", b"", b""]) == ["ack", "nack", "nack"]


# -- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "key", "reason"),
    [
        ({"x-overflow": "drop-tail"}, "x-overflow", "invalid_overflow"),
        ({"x-max-length": -1}, "x-max-length", "{value_negative,-1}"),
        ({"x-max-length": "10"}, "x-max-length", '"expected integer, got longstr"'),
        ({"x-max-length-bytes": -2}, "x-max-length-bytes", "{value_negative,-2}"),
        ({"x-max-length-bytes": "10"}, "x-max-length-bytes", '"expected integer, got longstr"'),
    ],
)
def test_invalid_limits_are_refused(conn, names, arguments, key, reason):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments=arguments)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{q}' in vhost '/': {reason}"
    )


def test_overflow_of_the_wrong_type(conn, names):
    q = names.queue()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-overflow": 1})
    assert info.value.reply_code == 406
    # unlike x-dead-letter-exchange ("invalid type 'signedint' for arg ..."), x-overflow
    # reports a wrong type as the reason of an invalid arg
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-overflow' for queue '{q}' in vhost '/': "
        "{unacceptable_type,signedint}"
    )


def test_limits_are_part_of_equivalence(conn, names):
    q = names.queue()
    conn.channel().queue_declare(q, arguments={"x-max-length": 2})
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().queue_declare(q, arguments={"x-max-length": 3})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
        "received '3' but current is '2'"
    )
