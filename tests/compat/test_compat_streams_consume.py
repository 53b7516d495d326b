"""Differential: stream queues over AMQP 0-9-1, part 2: consuming.

The consume rules (prefetch, no-ack, global qos, consumer arguments), ``x-stream-offset``
in all its forms, prefetch as credit, acks, and the operations a stream refuses
(basic.get, queue.purge, nack/reject) or bends (queue.delete).

As in part 1 (test_compat_streams.py): every message is published on a confirming channel
and its confirm waited for, so each is a chunk of its own and offsets run 0, 1, 2, ...;
deliveries are recorded as (consumer tag, delivery tag, redelivered, body, x-stream-offset,
its type) by ``stream_helpers.deliveries``.

The few scenarios about time (timestamp and interval offsets) keep a margin of a second or
more on both sides of every boundary.
"""

from __future__ import annotations

import time

import pytest
from amqp_driver import Session, collect_scenarios
from stream_helpers import (
    confirming,
    declare_stream,
    deliveries,
    publish_many,
    publish_one,
    qos,
)

from leveret.amqp import spec
from leveret.amqp.fields import (
    Byte,
    Long,
    Short,
    SignedInt,
    Timestamp,
    UnsignedByte,
    UnsignedInt,
    UnsignedShort,
)

pytestmark = pytest.mark.compat

FIRST = {"x-stream-offset": "first"}


def _stream_with(s: Session, n: int, base: str = "s") -> str:
    """A new stream holding m0..m<n-1> at offsets 0..n-1 (on a connection of its own)."""
    c = s.connect()
    q = s.q(base)
    declare_stream(c.channel(), q)
    publish_many(confirming(c.channel()), q, [b"m%d" % i for i in range(n)])
    return q


# ------------------------------------------------------------------ consume rules

def scenario_consume_needs_prefetch(s: Session) -> None:
    q = _stream_with(s, 1)
    c = s.connect()
    c.channel().consume(q, "no-qos")
    ch = c.channel()
    qos(ch, 0)
    ch.consume(q, "qos-0")
    ch = c.channel()
    qos(ch, 5, global_=True)
    ch.consume(q, "global-only")
    # no-ack without a prefetch: the prefetch check answers first
    c.channel().consume(q, "no-ack-no-qos", no_ack=True)
    # prefetch_size is not a prefetch count
    ch = c.channel()
    ch.call(spec.BasicQos(prefetch_size=1000, prefetch_count=0))
    ch.consume(q, "size-only")


def scenario_consume_no_ack_with_prefetch(s: Session) -> None:
    q = _stream_with(s, 1)
    c = s.connect()
    ch = c.channel()
    qos(ch, 5)
    ch.consume(q, "no-ack", no_ack=True)
    c.wait_close()


def scenario_consume_per_consumer_then_global_qos(s: Session) -> None:
    q = _stream_with(s, 1)
    c = s.connect()
    ch = c.channel()
    qos(ch, 5)
    qos(ch, 5, global_=True)
    ch.consume(q, "both", arguments=FIRST)
    c.wait_close()


def scenario_consume_global_then_per_consumer_qos(s: Session) -> None:
    """The other order is accepted, and the global prefetch (1) limits nothing."""
    q = _stream_with(s, 4)
    c = s.connect()
    ch = c.channel()
    qos(ch, 1, global_=True)
    qos(ch, 5)
    ch.consume(q, "both", arguments=FIRST)
    ch.collect(4, summary=deliveries)


def scenario_consumer_arguments(s: Session) -> None:
    q = _stream_with(s, 1)
    c = s.connect()
    for i, args in enumerate([
        {"x-priority": 5},
        {"x-cancel-on-ha-failover": True},
        {"x-priority": 5, "x-stream-offset": "first"},
    ]):
        ch = c.channel()
        qos(ch, 5)
        ch.consume(q, f"c{i}", arguments=args)
    # the argument checks come before the prefetch check
    c.channel().consume(q, "x-priority-no-qos", arguments={"x-priority": 5})
    # unknown arguments are ignored
    ch = c.channel()
    qos(ch, 5)
    ch.consume(q, "unknown", arguments={"x-whatever": 1, "x-stream-offset": "first",
                                        "not-x": "y"})
    ch.collect(1, summary=deliveries)


def scenario_stream_offset_on_other_queue_types(s: Session) -> None:
    c = s.connect()
    classic, quorum = s.q("classic"), s.q("quorum")
    c.channel().qd(classic)
    c.channel().qd(quorum, durable=True, arguments={"x-queue-type": "quorum"})
    for q in (classic, quorum):
        for offset in ("first", 0):
            ch = c.channel()
            qos(ch, 5)
            ch.consume(q, "c", arguments={"x-stream-offset": offset})


def scenario_exclusive_consume_accepted(s: Session) -> None:
    """exclusive=true is accepted and not enforced: other consumers still attach."""
    q = _stream_with(s, 2)
    c = s.connect()
    ch = c.channel()
    qos(ch, 5)
    ch.consume(q, "excl", exclusive=True, arguments=FIRST)
    ch.collect(2, summary=deliveries)
    other = s.connect().channel()
    qos(other, 5)
    other.consume(q, "other", arguments=FIRST)
    other.collect(2, summary=deliveries)
    again = s.connect().channel()
    qos(again, 5)
    again.consume(q, "excl2", exclusive=True, arguments=FIRST)
    again.collect(2, summary=deliveries)


def scenario_consumer_tags(s: Session) -> None:
    """A server-named consumer tag; a duplicate tag on the channel is 530."""
    q = _stream_with(s, 1)
    c = s.connect()
    ch = c.channel()
    qos(ch, 5)
    ch.consume(q, "", arguments=FIRST)
    ch.collect(1, summary=deliveries)
    ch.consume(q, "dup")
    ch.consume(q, "dup")
    c.wait_close()


# ------------------------------------------------------------------ x-stream-offset

def scenario_offset_next_and_absent(s: Session) -> None:
    """Absent or "next": only messages appended after the subscription."""
    q = _stream_with(s, 3)
    c = s.connect()
    absent = c.channel()
    qos(absent, 10)
    absent.consume(q, "absent")
    nxt = c.channel()
    qos(nxt, 10)
    nxt.consume(q, "next", arguments={"x-stream-offset": "next"})
    absent.collect(label="absent: nothing yet", summary=deliveries)
    nxt.collect(label="next: nothing yet", summary=deliveries)
    pub = confirming(c.channel())
    publish_one(pub, q, b"new")
    absent.collect(1, label="absent", summary=deliveries)
    nxt.collect(1, label="next", summary=deliveries)


def scenario_offset_first(s: Session) -> None:
    q = _stream_with(s, 3)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "first", arguments=FIRST)
    ch.collect(3, summary=deliveries)
    publish_one(confirming(c.channel()), q, b"new")
    ch.collect(1, label="appended", summary=deliveries)


def scenario_offset_first_on_empty_stream(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "first", arguments=FIRST)
    ch.collect(label="nothing", summary=deliveries)
    publish_many(confirming(c.channel()), q, [b"a", b"b"])
    ch.collect(2, summary=deliveries)


def scenario_offset_last(s: Session) -> None:
    """"last" is the start of the last chunk: with one-message chunks, the last message."""
    q = _stream_with(s, 4)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "last", arguments={"x-stream-offset": "last"})
    ch.collect(1, summary=deliveries)
    publish_one(confirming(c.channel()), q, b"new")
    ch.collect(1, label="appended", summary=deliveries)


def scenario_offset_last_on_empty_stream(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "last", arguments={"x-stream-offset": "last"})
    ch.collect(label="nothing", summary=deliveries)
    publish_many(confirming(c.channel()), q, [b"a", b"b"])
    ch.collect(2, summary=deliveries)


def scenario_offset_keywords_as_binary(s: Session) -> None:
    """first / last / next are taken by value, a binary (x) as well as a longstr."""
    q = _stream_with(s, 3)
    c = s.connect()
    for word in (b"first", b"last", b"next"):
        ch = c.channel()
        qos(ch, 10)
        ch.consume(q, word.decode(), arguments={"x-stream-offset": word})
        ch.collect(summary=deliveries, quiet=0.3)


def scenario_offset_integers(s: Session) -> None:
    """An integer of any type is an offset: 0, the middle, the last."""
    q = _stream_with(s, 5)
    c = s.connect()
    for i, offset in enumerate([0, 2, 4, Byte(3), UnsignedByte(3), Short(3), UnsignedShort(3),
                                SignedInt(3), UnsignedInt(3), Long(3)]):
        ch = c.channel()
        qos(ch, 10)
        s.note(f"offset {offset!r} ({type(offset).__name__})", None)
        ch.consume(q, f"c{i}", arguments={"x-stream-offset": offset})
        ch.collect(5 - int(offset), summary=deliveries)


def scenario_offset_negative(s: Session) -> None:
    """A negative offset is the start of the log."""
    q = _stream_with(s, 3)
    c = s.connect()
    for i, offset in enumerate([-1, Long(-100), Byte(-5)]):
        ch = c.channel()
        qos(ch, 10)
        ch.consume(q, f"c{i}", arguments={"x-stream-offset": offset})
        ch.collect(3, summary=deliveries)


def scenario_offset_beyond_end(s: Session) -> None:
    """An offset past the end waits for that offset; the messages between the end and it are
    never delivered to that consumer."""
    q = _stream_with(s, 3)  # offsets 0..2
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "at-5", arguments={"x-stream-offset": 5})
    ch.collect(label="nothing yet", summary=deliveries)
    pub = confirming(c.channel())
    publish_many(pub, q, [b"m3", b"m4"])
    ch.collect(label="3 and 4: not for it", summary=deliveries)
    publish_many(pub, q, [b"m5", b"m6"])
    ch.collect(2, label="from 5 on", summary=deliveries)
    # a consumer from the end offset exactly (3 messages more: now 7)
    ch2 = c.channel()
    qos(ch2, 10)
    ch2.consume(q, "at-7", arguments={"x-stream-offset": 7})
    ch2.collect(label="nothing yet", summary=deliveries)
    publish_one(pub, q, b"m7")
    ch2.collect(1, summary=deliveries)
    ch.collect(1, label="at-5 goes on", summary=deliveries)


def scenario_offset_timestamps(s: Session) -> None:
    """A timestamp (T, seconds): the first chunk at or after it. 0 or the past: all."""
    q = _stream_with(s, 2)
    c = s.connect()
    for i, ts in enumerate([Timestamp(0), Timestamp(int(time.time()) - 3600)]):
        ch = c.channel()
        qos(ch, 10)
        ch.consume(q, f"c{i}", arguments={"x-stream-offset": ts})
        ch.collect(2, summary=deliveries)


def scenario_offset_timestamp_boundary(s: Session) -> None:
    """Messages published before second t, then after it: a consumer from t gets the later
    ones only."""
    q = _stream_with(s, 2)
    t = int(time.time()) + 2
    while time.time() < t + 0.2:
        time.sleep(0.05)
    c = s.connect()
    publish_many(confirming(c.channel()), q, [b"after-1", b"after-2"])
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "from-t", arguments={"x-stream-offset": Timestamp(t)})
    ch.collect(2, summary=deliveries)


def scenario_offset_timestamp_in_the_future(s: Session) -> None:
    """A timestamp in the future behaves like next."""
    q = _stream_with(s, 2)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "future", arguments={"x-stream-offset": Timestamp(int(time.time()) + 3600)})
    ch.collect(label="nothing yet", summary=deliveries)
    publish_one(confirming(c.channel()), q, b"new")
    ch.collect(1, summary=deliveries)


def scenario_offset_intervals(s: Session) -> None:
    """A longstr interval (x-max-age grammar): now minus the interval."""
    q = _stream_with(s, 2)
    c = s.connect()
    for i, interval in enumerate(["1h", "1D", "1Y", "600s", "01h"]):
        ch = c.channel()
        qos(ch, 10)
        ch.consume(q, f"c{i}", arguments={"x-stream-offset": interval})
        ch.collect(2, summary=deliveries)


def scenario_offset_interval_boundary(s: Session) -> None:
    """ "2s" after 4 s: the old message is out, the new one in."""
    q = _stream_with(s, 1)
    time.sleep(4)
    c = s.connect()
    publish_one(confirming(c.channel()), q, b"recent")
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "2s", arguments={"x-stream-offset": "2s"})
    ch.collect(1, summary=deliveries)


def scenario_offset_malformed(s: Session) -> None:
    """Strings that start with digits but are not an interval: 406. (Strings without
    leading digits are 541 in RabbitMQ 3.10: test_stream_differences.py.)"""
    q = _stream_with(s, 1)
    c = s.connect()
    for value in ("10x", "1d", "1.5h", "10ms", "100", "1s "):
        ch = c.channel()
        qos(ch, 10)
        ch.consume(q, "c", arguments={"x-stream-offset": value})


# ------------------------------------------------------------------ prefetch as credit, acks

def scenario_prefetch_credit(s: Session) -> None:
    q = _stream_with(s, 6)
    c = s.connect()
    ch = c.channel()
    qos(ch, 2)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, label="prefetch 2", summary=deliveries)
    ch.ack(1)
    ch.collect(1, label="after ack 1", summary=deliveries)
    ch.ack(3, multiple=True)  # 2 and 3: two credits
    ch.collect(2, label="after ack multiple 3", summary=deliveries)
    ch.ack(5)
    ch.collect(1, label="after ack 5", summary=deliveries)
    ch.ack(4)
    ch.collect(label="after ack 4: nothing left", summary=deliveries)
    publish_one(confirming(c.channel()), q, b"m6")
    ch.collect(1, label="appended", summary=deliveries)


def scenario_prefetch_one(s: Session) -> None:
    q = _stream_with(s, 3)
    c = s.connect()
    ch = c.channel()
    qos(ch, 1)
    ch.consume(q, "c", arguments=FIRST)
    for tag in (1, 2, 3):
        ch.collect(1, label=f"delivery {tag}", summary=deliveries)
        ch.ack(tag)
    ch.collect(label="nothing left", summary=deliveries)


def scenario_acks_remove_nothing(s: Session) -> None:
    q = _stream_with(s, 3)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "one", arguments=FIRST)
    ch.collect(3, summary=deliveries)
    ch.ack(3, multiple=True)
    ch.sync()
    second = c.channel()
    qos(second, 10)
    second.consume(q, "two", arguments=FIRST)
    second.collect(3, summary=deliveries)


def scenario_tags_shared_by_consumers_of_a_channel(s: Session) -> None:
    q = _stream_with(s, 2)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "a", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    ch.consume(q, "b", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    ch.ack(4, multiple=True)
    ch.sync()


def scenario_cancel_requeues_nothing(s: Session) -> None:
    q = _stream_with(s, 4)
    c = s.connect()
    ch = c.channel()
    qos(ch, 2)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    ch.call(spec.BasicCancel(consumer_tag="c"))
    ch.collect(label="after cancel", summary=deliveries)
    # acking after basic.cancel is fine
    ch.ack(1)
    ch.sync()
    # re-subscribing re-reads, not redelivered; the channel's tags go on
    ch.consume(q, "c2", arguments=FIRST)
    ch.collect(2, label="re-subscribed", summary=deliveries)
    # the cancelled consumer's last tag: accepted, no credit for the new consumer
    ch.ack(2)
    ch.sync()
    ch.collect(label="after ack of the old tag 2", quiet=0.5, summary=deliveries)
    ch.ack(3)
    ch.collect(1, label="after ack 3", summary=deliveries)


def scenario_channel_close_requeues_nothing(s: Session) -> None:
    q = _stream_with(s, 3)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(3, summary=deliveries)
    ch.close()
    other = c.channel()
    qos(other, 10)
    other.consume(q, "other")  # next: nothing was requeued
    other.collect(label="next after close", summary=deliveries)
    again = c.channel()
    qos(again, 10)
    again.consume(q, "again", arguments=FIRST)
    again.collect(3, summary=deliveries)


def scenario_connection_close_requeues_nothing(s: Session) -> None:
    q = _stream_with(s, 2)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    c.close()
    ch2 = s.connect().channel()
    qos(ch2, 10)
    ch2.consume(q, "again", arguments=FIRST)
    ch2.collect(2, summary=deliveries)


def scenario_ack_errors(s: Session) -> None:
    q = _stream_with(s, 2)
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    ch.ack(0, multiple=True)  # everything so far
    ch.sync()
    ch.ack(1)  # already acked
    ch.sync()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    ch.ack(7)  # unknown
    ch.sync()


def scenario_nack_refused(s: Session) -> None:
    q = _stream_with(s, 2)
    for requeue in (True, False):
        c = s.connect()
        ch = c.channel()
        qos(ch, 10)
        ch.consume(q, "c", arguments=FIRST)
        ch.collect(2, summary=deliveries)
        ch.nack(1, requeue=requeue)
        c.wait_close(label=f"nack requeue={requeue}")
    c = s.connect()
    ch = c.channel()
    qos(ch, 10)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    ch.nack(2, multiple=True)
    c.wait_close(label="nack multiple")


def scenario_reject_refused(s: Session) -> None:
    q = _stream_with(s, 1)
    for requeue in (True, False):
        c = s.connect()
        ch = c.channel()
        qos(ch, 10)
        ch.consume(q, "c", arguments=FIRST)
        ch.collect(1, summary=deliveries)
        ch.reject(1, requeue=requeue)
        c.wait_close(label=f"reject requeue={requeue}")


def scenario_recover_without_unacked_deliveries(s: Session) -> None:
    """basic.recover on a stream consumer's channel with nothing unacknowledged is fine.
    (With unacknowledged stream deliveries RabbitMQ 3.10 closes the connection with 541:
    test_stream_differences.py.)"""
    q = _stream_with(s, 2)
    c = s.connect()
    ch = c.channel()
    qos(ch, 5)
    ch.consume(q, "c")  # next: nothing delivered
    ch.call(spec.BasicRecover(requeue=True))
    ch = c.channel()
    qos(ch, 5)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, summary=deliveries)
    ch.ack(2, multiple=True)
    ch.call(spec.BasicRecover(requeue=True))
    ch.collect(label="nothing redelivered", summary=deliveries)


def scenario_recover_requeue_false(s: Session) -> None:
    q = _stream_with(s, 1)
    c = s.connect()
    ch = c.channel()
    qos(ch, 5)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(1, summary=deliveries)
    ch.call(spec.BasicRecover(requeue=False))
    c.wait_close()


# ------------------------------------------------------------------ refused / bent operations

def scenario_basic_get_refused(s: Session) -> None:
    q = _stream_with(s, 1)
    for no_ack in (True, False):
        c = s.connect()
        c.channel().get(q, no_ack=no_ack)
        c.wait_close()


def scenario_purge_refused(s: Session) -> None:
    q = _stream_with(s, 2)
    c = s.connect()
    c.channel().call(spec.QueuePurge(queue=q))
    c.wait_close()
    # the data stays
    ch = s.connect().channel()
    qos(ch, 10)
    ch.consume(q, "c", arguments=FIRST)
    ch.collect(2, summary=deliveries)


def scenario_delete_ignores_if_unused_if_empty(s: Session) -> None:
    q1 = _stream_with(s, 2, "s1")
    q2 = _stream_with(s, 2, "s2")
    c = s.connect()
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q1, "c", arguments=FIRST)
    cons.collect(2, summary=deliveries)
    # if-unused with a consumer, if-empty with messages: deleted all the same, count 0
    c.channel().call(spec.QueueDelete(queue=q1, if_unused=True, if_empty=True))
    cons.collect(1, label="consumer cancelled")
    c.channel().call(spec.QueueDelete(queue=q2, if_empty=True))
    c.channel().qd(q1, passive=True)
    c.channel().qd(q2, passive=True)


def scenario_delete_plain(s: Session) -> None:
    q = _stream_with(s, 3)
    c = s.connect()
    a, b = c.channel(), s.connect().channel()
    for ch, tag in ((a, "a"), (b, "b")):
        qos(ch, 1)
        ch.consume(q, tag, arguments=FIRST)
        ch.collect(1, summary=deliveries)
    c.channel().call(spec.QueueDelete(queue=q))
    a.collect(1, label="a cancelled")
    b.collect(1, label="b cancelled")
    # acking what the deleted stream delivered is fine
    a.ack(1)
    a.sync()


SCENARIOS = collect_scenarios(globals())


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matches_rabbitmq(scenario, differential):
    differential(scenario)
