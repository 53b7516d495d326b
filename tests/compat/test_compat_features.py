"""Differential: RabbitMQ's queue features, frame by frame. Priorities with requeue, prefetch
and get; message TTL at the head of the queue, expiration texts; dead-lettering (x-death
and x-first-death-* with their wire types, routing keys, repeats, cycles); length limits
with publisher confirms; queue expiry; single active consumer failover; consumer
priorities; quorum queue declare rules and delivery limits.

(Scenarios of the same features that were here before, in test_compat_delivery.py and
test_compat_lifetimes.py, are not repeated.) Timing: TTLs are tens of milliseconds and every
wait has a margin of at least 100 ms either way; asynchronous outcomes (dead letters) are
waited for with unrecorded passive declares, then recorded.

Not covered, because RabbitMQ 3.10.8 misbehaves there: cancelling the active consumer of a
single-active-consumer queue while it holds unacked messages crashes the queue process (the
queue restarts empty and the other consumers get basic.cancel).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from amqp_driver import Session, collect_scenarios

from leveret.amqp import spec

pytestmark = pytest.mark.compat

QUORUM = {"x-queue-type": "quorum"}


def fill(ch: Any, q: str, bodies: list[bytes], exchange: str = "", **props: Any) -> None:
    for body in bodies:
        ch.publish(exchange, q, body, spec.Properties(**props) if props else None)
    ch.sync("published")


def wait_ready(ch: Any, q: str, n: int, timeout: float = 3.0) -> None:
    """Until ``q`` has ``n`` ready messages (unrecorded passive declares: dead-lettering is
    asynchronous in any broker), then record the count."""
    deadline = time.monotonic() + timeout
    count = None
    while True:
        got = ch.call(spec.QueueDeclare(queue=q, passive=True), record=False)
        count = got[2]["message_count"] if got[1] == "queue.declare-ok" else got
        if count == n or got[1] != "queue.declare-ok" or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    ch.conn.record(f"ready ({n} expected)", count)


def deliveries(observations: list[Any]) -> list[Any]:
    """(body, redelivered, consumer tag) of each delivery; other frames as they are."""
    return [(o[4], o[2]["redelivered"], o[2]["consumer_tag"]) if o[1] == "basic.deliver" else o
            for o in observations]


# ------------------------------------------------------------------ priorities

def scenario_priority_declare_arguments(s: Session) -> None:
    c = s.connect()
    for value in (0, 1, 255, 256, -1, "5"):
        c.channel().qd(s.q(f"p{value}"), arguments={"x-max-priority": value})
    ch = c.channel()
    q = s.q("eq")
    ch.qd(q, arguments={"x-max-priority": 1})
    c.channel().qd(q, arguments={"x-max-priority": 2})
    c.channel().qd(q)


def scenario_priority_requeue_and_get(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q, arguments={"x-max-priority": 3})
    for i, p in enumerate([None, 1, 3, 7, 0, 2, 3, 255, 1]):
        ch.publish("", q, b"%d:%s" % (i, str(p).encode()), spec.Properties(priority=p))
    ch.sync()
    ch.qd(q, passive=True)
    for _ in range(3):
        ch.get(q, no_ack=False)
    ch.nack(3, multiple=True, requeue=True)
    ch.drain_queue(q)
    # requeued low priority stays behind higher ones published meanwhile
    ch.publish("", q, b"low", spec.Properties(priority=1))
    ch.sync()
    got = ch.get(q, no_ack=False)
    ch.publish("", q, b"high", spec.Properties(priority=3))
    ch.publish("", q, b"low2", spec.Properties(priority=1))
    ch.reject(got[2]["delivery_tag"], requeue=True)
    ch.drain_queue(q)


def scenario_priority_with_prefetch(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q, arguments={"x-max-priority": 10})
    cons = c.channel()
    cons.call(spec.BasicQos(prefetch_count=1))
    cons.consume(q, "c")
    fill(ch, q, [b"first"], priority=1)
    first = cons.collect(1, label="the only one goes at once")
    for body, p in [(b"low", 1), (b"mid", 5), (b"high", 9), (b"mid2", 5)]:
        ch.publish("", q, body, spec.Properties(priority=p))
    ch.sync()
    cons.collect(label="nothing while the slot is taken")
    tag = first[0][2]["delivery_tag"]
    for _ in range(4):
        cons.ack(tag)
        got = cons.collect(1, label="after an ack")
        tag = got[0][2]["delivery_tag"] if got and got[0][1] == "basic.deliver" else tag
    cons.ack(tag)
    cons.sync()
    ch.qd(q, passive=True)


# ------------------------------------------------------------------ message TTL

def scenario_expiration_values(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    for value in ("+5000", "007000", "-0", "315360000000", "4294967296"):
        ch.publish("", q, value.encode(), spec.Properties(expiration=value))
    ch.sync()
    ch.drain_queue(q)
    for value in ("abc", "", " 5", "-1", "1.5", "5 ", "1e3", "0x10", "315360000001",
                  "1000000000000000"):
        bad = c.channel()
        bad.publish("", q, value.encode(), spec.Properties(expiration=value))
        bad.sync()
    ch.qd(q, passive=True)
    for args in ({"x-message-ttl": -1}, {"x-message-ttl": "100"}, {"x-expires": 0},
                 {"x-expires": -5}, {"x-expires": "1"}):
        c.channel().qd(s.q("args"), arguments=args)


def scenario_expiry_at_the_head(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.publish("", q, b"m1", spec.Properties(expiration="60000"))
    ch.publish("", q, b"m2", spec.Properties(expiration="20"))
    ch.publish("", q, b"m3")
    ch.sync()
    time.sleep(0.2)
    ch.qd(q, passive=True)  # m2 has expired behind m1: still counted
    ch.get(q)  # m1; m2 is dropped on the way, get-ok's message_count leaves it out
    ch.qd(q, passive=True)
    ch.drain_queue(q)
    # expiration 0: dropped at once on an empty queue, waits behind a live message
    ch.publish("", q, b"zero", spec.Properties(expiration="0"))
    ch.sync()
    ch.qd(q, passive=True)
    ch.publish("", q, b"k", spec.Properties(expiration="60000"))
    ch.publish("", q, b"zero behind", spec.Properties(expiration="0"))
    ch.sync()
    ch.qd(q, passive=True)
    ch.get(q)
    ch.get(q)
    # an expired head goes without anyone asking
    ch.publish("", q, b"h1", spec.Properties(expiration="30"))
    ch.publish("", q, b"h2", spec.Properties(expiration="60000"))
    ch.sync()
    time.sleep(0.2)
    ch.qd(q, passive=True)


def scenario_expired_never_delivered(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q, ttl = s.q("q"), s.q("ttl")
    ch.qd(q)
    cons = c.channel()
    cons.call(spec.BasicQos(prefetch_count=1))
    cons.consume(q, "c")
    ch.publish("", q, b"p1")
    ch.publish("", q, b"p2", spec.Properties(expiration="50"))
    ch.publish("", q, b"p3")
    ch.sync()
    got = cons.collect(1)
    time.sleep(0.2)
    cons.ack(got[0][2]["delivery_tag"])
    cons.collect(1, label="after the ack: p3, not p2")
    # expiration 0 to a consumer that can take it
    ch.publish("", q, b"zero", spec.Properties(expiration="0"))
    ch.sync()
    cons.collect(label="full: zero is dropped")
    # requeue after the TTL passed while unacked
    ch.qd(ttl, arguments={"x-message-ttl": 100})
    fill(ch, ttl, [b"r1"])
    taken = ch.get(ttl, no_ack=False)
    time.sleep(0.25)
    ch.reject(taken[2]["delivery_tag"], requeue=True)
    ch.sync()
    ch.get(ttl)


# ------------------------------------------------------------------ dead-lettering

def _dlx(s: Session, ch: Any, kind: str = "fanout") -> tuple[str, str]:
    dlx, dlq = s.x("dlx"), s.q("dlq")
    ch.ed(dlx, kind)
    ch.qd(dlq)
    ch.bind(dlq, dlx, "#" if kind == "topic" else "")
    return dlx, dlq


def scenario_x_death_headers(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, dlq = _dlx(s, ch)
    src = s.x("src")
    ch.ed(src, "direct")
    q = s.q("q")
    ch.qd(q, arguments={"x-dead-letter-exchange": dlx})
    ch.bind(q, src, "rk1")
    ch.bind(q, src, "other")
    ch.publish(src, "rk1", b"m", spec.Properties(
        expiration="60000", content_type="text/plain", priority=3, message_id="id",
        headers={"CC": ["cc1"], "BCC": ["bcc1"], "z": 1, "a": "s"}))
    ch.sync()
    got = ch.get(q, no_ack=False)
    ch.reject(got[2]["delivery_tag"], requeue=False)
    wait_ready(ch, dlq, 1)
    first = ch.get(dlq)
    # the same message dies again in the same queue, having come another way
    headers = first[3].get("headers", {}) if first[1] == "basic.get-ok" else {}
    ch.publish(src, "other", b"m", spec.Properties(headers=headers))
    ch.sync()
    got = ch.get(q, no_ack=False)
    ch.nack(got[2]["delivery_tag"], requeue=False)
    wait_ready(ch, dlq, 1)
    ch.get(dlq)


def scenario_dead_letter_routing_keys(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, dlq = _dlx(s, ch)
    src = s.x("src")
    ch.ed(src, "direct")
    with_rk, by_key = s.q("with-rk"), s.q("by-key")
    ch.qd(with_rk, arguments={"x-dead-letter-exchange": dlx,
                              "x-dead-letter-routing-key": "newrk"})
    ch.bind(with_rk, src, "rk2")
    ch.publish(src, "rk2", b"dlrk", spec.Properties(headers={"CC": ["cc2"], "keep": "v"}))
    ch.sync()
    got = ch.get(with_rk, no_ack=False)
    ch.reject(got[2]["delivery_tag"], requeue=False)
    wait_ready(ch, dlq, 1)
    ch.get(dlq)
    # without a dead-letter routing key, the DLX routes by routing key and CC
    dlx2 = s.x("dlx2")
    ch.ed(dlx2, "direct")
    only_cc, only_rk = s.q("only-cc"), s.q("only-rk")
    ch.qd(only_cc)
    ch.qd(only_rk)
    ch.bind(only_cc, dlx2, "cc-key")
    ch.bind(only_rk, dlx2, "main-key")
    ch.qd(by_key, arguments={"x-dead-letter-exchange": dlx2})
    ch.bind(by_key, src, "main-key")
    ch.publish(src, "main-key", b"by keys", spec.Properties(headers={"CC": ["cc-key"]}))
    ch.sync()
    got = ch.get(by_key, no_ack=False)
    ch.reject(got[2]["delivery_tag"], requeue=False)
    wait_ready(ch, only_cc, 1)
    wait_ready(ch, only_rk, 1)
    ch.get(only_cc)
    ch.get(only_rk)
    # argument errors
    c.channel().qd(s.q("bad1"), arguments={"x-dead-letter-routing-key": "k"})
    c.channel().qd(s.q("bad2"), arguments={"x-dead-letter-exchange": dlx,
                                           "x-dead-letter-routing-key": 1})
    c.channel().qd(s.q("bad3"), arguments={"x-dead-letter-exchange": 5})
    # a DLX that does not exist: dropped
    gone = s.q("gone")
    ch.qd(gone, arguments={"x-dead-letter-exchange": s.name("missing")})
    fill(ch, gone, [b"lost"])
    got = ch.get(gone, no_ack=False)
    ch.reject(got[2]["delivery_tag"], requeue=False)
    ch.sync()
    ch.qd(gone, passive=True)


def scenario_ttl_dead_letter_requeue_order(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, dlq = _dlx(s, ch)
    q = s.q("q")
    ch.qd(q, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": dlx})
    fill(ch, q, [b"m1", b"m2", b"m3"])
    taken = ch.get(q, no_ack=False)
    wait_ready(ch, dlq, 2)
    ch.qd(q, passive=True)
    ch.reject(taken[2]["delivery_tag"], requeue=True)
    wait_ready(ch, dlq, 3)
    ch.drain_queue(dlq)
    # per-message expiration: a requeued message dies after the others, with its original
    # expiration in x-death; an expired one behind a live one dies when it reaches the head
    q2 = s.q("q2")
    ch.qd(q2, arguments={"x-dead-letter-exchange": dlx})
    ch.publish("", q2, b"a", spec.Properties(expiration="100"))
    ch.publish("", q2, b"b", spec.Properties(expiration="60000"))
    ch.publish("", q2, b"c", spec.Properties(expiration="20"))
    ch.publish("", q2, b"d")
    ch.sync()
    taken = ch.get(q2, no_ack=False)
    time.sleep(0.2)
    ch.qd(dlq, passive=True)
    ch.nack(taken[2]["delivery_tag"], requeue=True)
    wait_ready(ch, dlq, 1)
    ch.get(dlq)
    ch.get(q2)  # b; c goes to the DLX on the way
    wait_ready(ch, dlq, 1)
    ch.get(dlq)
    ch.drain_queue(q2)


def scenario_dead_letter_cycles(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    loop = s.q("loop")
    ch.qd(loop, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                           "x-dead-letter-routing-key": loop})
    q1, q2 = s.q("q1"), s.q("q2")
    ch.qd(q1, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                         "x-dead-letter-routing-key": q2})
    ch.qd(q2, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                         "x-dead-letter-routing-key": q1})
    fill(ch, loop, [b"self"])
    fill(ch, q1, [b"pair"])
    time.sleep(0.3)
    for q in (loop, q1, q2):
        ch.qd(q, passive=True)
    # a cycle with a rejection in it goes on
    q3, q4 = s.q("q3"), s.q("q4")
    ch.qd(q3, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                         "x-dead-letter-routing-key": q4})
    ch.qd(q4, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q3})
    fill(ch, q3, [b"cycling"], headers={"z": 1, "a": 2})
    wait_ready(ch, q4, 1)
    got = ch.get(q4, no_ack=False)
    ch.reject(got[2]["delivery_tag"], requeue=False)
    wait_ready(ch, q4, 1)
    got = ch.get(q4, no_ack=False)
    ch.reject(got[2]["delivery_tag"], requeue=False)
    wait_ready(ch, q4, 1)
    ch.get(q4)


# ------------------------------------------------------------------ length limits

def scenario_overflow_with_confirms(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, dlq = _dlx(s, ch)
    for mode in ("drop-head", "reject-publish", "reject-publish-dlx"):
        q = s.q(mode)
        pub = c.channel()
        pub.call(spec.ConfirmSelect())
        pub.qd(q, arguments={"x-max-length": 2, "x-overflow": mode,
                             "x-dead-letter-exchange": dlx})
        for i in range(1, 5):
            pub.publish("", q, b"%s-%d" % (mode.encode(), i), mandatory=True)
        pub.confirms(4, label=f"confirms ({mode})")
        pub.drain_queue(q)
        wait_ready(ch, dlq, 0 if mode == "reject-publish" else 2)
        ch.drain_queue(dlq)
    zero = s.q("zero")
    pub = c.channel()
    pub.call(spec.ConfirmSelect())
    pub.qd(zero, arguments={"x-max-length": 0})
    pub.publish("", zero, b"z1")
    pub.publish("", zero, b"z2")
    pub.confirms(2, label="confirms (max-length 0, drop-head)")
    pub.qd(zero, passive=True)
    for args in ({"x-overflow": "drop-tail"}, {"x-overflow": 1}, {"x-max-length": -1},
                 {"x-max-length-bytes": "10"}):
        c.channel().qd(s.q("bad"), arguments=args)


def scenario_max_length_bytes(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    head = s.q("head")
    ch.qd(head, arguments={"x-max-length-bytes": 10})
    for body in (b"12345", b"67890", b"abc", b"0123456789A", b"z"):
        ch.publish("", head, body, spec.Properties(headers={"big": "x" * 100}))
    ch.sync()
    ch.drain_queue(head)
    rp = s.q("rp")
    pub = c.channel()
    pub.call(spec.ConfirmSelect())
    pub.qd(rp, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    for body in (b"12345", b"67890", b"a", b"", b"0123456789A"):
        pub.publish("", rp, body)
    pub.confirms(5)
    pub.drain_queue(rp)


def scenario_max_length_requeue_and_priority(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, dlq = _dlx(s, ch)
    head = s.q("head")
    ch.qd(head, arguments={"x-max-length": 1, "x-dead-letter-exchange": dlx})
    fill(ch, head, [b"f1"])
    taken = ch.get(head, no_ack=False)
    fill(ch, head, [b"f2"])
    ch.nack(taken[2]["delivery_tag"], requeue=True)  # back at the head, over the limit
    wait_ready(ch, dlq, 1)
    ch.drain_queue(dlq)
    ch.drain_queue(head)
    rp = s.q("rp")
    ch.qd(rp, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    fill(ch, rp, [b"e1"])
    taken = ch.get(rp, no_ack=False)
    fill(ch, rp, [b"e2"])  # the unacked one takes no room
    ch.nack(taken[2]["delivery_tag"], requeue=True)  # a requeue may go over
    ch.sync()
    ch.qd(rp, passive=True)
    ch.drain_queue(rp)
    prio = s.q("prio")
    ch.qd(prio, arguments={"x-max-length": 2, "x-max-priority": 5})
    for body, p in [(b"lo", 0), (b"hi", 5), (b"mid", 3)]:
        ch.publish("", prio, body, spec.Properties(priority=p))
    ch.sync()
    ch.drain_queue(prio)


# ------------------------------------------------------------------ queue expiry

def scenario_queue_expiry_use(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    probe = c.channel()
    probe.call(spec.ConfirmSelect())
    tags = 0

    def exists(label: str, *queues: str) -> None:
        """Mandatory publishes (not "use" of a queue): returned if the queue is gone."""
        nonlocal tags
        for q in queues:
            probe.publish("", q, b"probe", mandatory=True)
        tags += len(queues)
        probe.confirms(tags, label=label)

    touched = {name: s.q(name) for name in ("get", "passive", "redeclare", "consume",
                                           "publish", "purge", "idle")}
    for q in touched.values():
        ch.qd(q, arguments={"x-expires": 500})
    kept = s.q("kept")
    ch.qd(kept, arguments={"x-expires": 200})
    cons = c.channel()
    cons.consume(kept, "keeper")
    time.sleep(0.35)  # the touches, at ~0.35 s, renew the expiry to ~0.85 s
    c.channel().get(touched["get"])
    c.channel().qd(touched["passive"], passive=True)
    c.channel().qd(touched["redeclare"], arguments={"x-expires": 500})
    other = c.channel()
    other.consume(touched["consume"], "tmp")
    other.call(spec.BasicCancel(consumer_tag="tmp"))
    other.publish("", touched["publish"], b"x")
    other.call(spec.QueuePurge(queue=touched["purge"]))
    time.sleep(0.3)  # ~0.67 s: past the first expiry (0.5), before the renewed ones (~0.85)
    exists("at ~0.67 s", *touched.values(), kept)
    cons.collect(1, label="the keeper gets its probe")
    cons.call(spec.BasicCancel(consumer_tag="keeper"))
    time.sleep(0.5)
    exists("at ~1.2 s", *touched.values(), kept)


# ------------------------------------------------------------------ consumers

def scenario_single_active_consumer_failover(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    sac = {"x-single-active-consumer": True}
    ch.qd(q, arguments=sac)
    chans = [c.channel() for _ in range(4)]
    for i, x in enumerate(chans):
        x.consume(q, f"C{i}", no_ack=True)
    ch.qd(q, passive=True)
    ch.qd(q, arguments=sac)
    fill(ch, q, [b"1"])
    chans[0].call(spec.BasicCancel(consumer_tag="C0"))
    fill(ch, q, [b"2"])
    chans[1].collect(1, label="C1")
    chans[1].close()
    fill(ch, q, [b"3"])
    chans[0].consume(q, "C0-again", no_ack=True)
    chans[2].call(spec.BasicCancel(consumer_tag="C2"))
    fill(ch, q, [b"4"])
    for x in (chans[0], chans[2], chans[3]):
        x.collect(1, label=f"channel {x.number}")
    ch.qd(q, passive=True)
    # the unacked messages of a closed channel go to the next consumer first
    q2 = s.q("q2")
    ch.qd(q2, arguments=sac)
    first = c.channel()
    first.call(spec.BasicQos(prefetch_count=2))
    first.consume(q2, "first")
    second = c.channel()
    second.consume(q2, "second")
    third = c.channel()
    third.consume(q2, "third", arguments={"x-priority": 5})
    fill(ch, q2, [b"m0", b"m1", b"m2", b"m3"])
    first.collect(2, label="first, up to its prefetch")
    ch.qd(q2, passive=True)
    ch.get(q2)  # basic.get still works
    first.close()
    third.collect(3, label="third (highest x-priority) takes over", summary=deliveries)
    second.collect(label="second gets nothing")
    # argument errors
    c.channel().qd(s.q("bad"), arguments={"x-single-active-consumer": "yes"})
    c.channel().qd(q, arguments={"x-single-active-consumer": False})
    c.channel().consume(q, "exclusive", exclusive=True)


def scenario_consumer_priorities(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    lo, hi, mid = c.channel(), c.channel(), c.channel()
    hi.call(spec.BasicQos(prefetch_count=2))
    lo.consume(q, "lo", no_ack=True)
    hi.consume(q, "hi", arguments={"x-priority": 10})
    mid.consume(q, "mid", no_ack=True, arguments={"x-priority": 5})
    fill(ch, q, [b"p%d" % i for i in range(5)])
    got = hi.collect(2, label="hi")
    mid.collect(3, label="mid")
    lo.collect(label="lo")
    hi.ack(got[1][2]["delivery_tag"], multiple=True)
    fill(ch, q, [b"p5"])
    hi.collect(1, label="hi again")
    rr = s.q("rr")
    ch.qd(rr)
    x1, x2, neg = c.channel(), c.channel(), c.channel()
    x1.consume(rr, "x1", no_ack=True, arguments={"x-priority": 3})
    x2.consume(rr, "x2", no_ack=True, arguments={"x-priority": 3})
    neg.consume(rr, "neg", no_ack=True, arguments={"x-priority": -1})
    fill(ch, rr, [b"r0", b"r1", b"r2", b"r3"])
    for x, n in ((x1, 2), (x2, 2), (neg, 0)):
        x.collect(n or None, label=f"channel {x.number}")
    for bad in ("high", 1.5, True, 2**40):
        c.channel().consume(q, "bad", arguments={"x-priority": bad})


# ------------------------------------------------------------------ quorum queues

def scenario_quorum_declare_rules(s: Session) -> None:
    c = s.connect()
    for kw in ({}, {"durable": True, "exclusive": True}, {"durable": True, "auto_delete": True},
               {"exclusive": True}, {"auto_delete": True},
               {"durable": True, "auto_delete": True, "exclusive": True}):
        c.channel().qd(s.q("props"), arguments=QUORUM, **kw)
    for key, value in (("x-max-priority", 5), ("x-queue-mode", "lazy")):
        c.channel().qd(s.q("args"), durable=True, arguments={**QUORUM, key: value})
    c.channel().qd(s.q("args-first"), arguments={**QUORUM, "x-max-priority": 5})
    c.channel().qd("", durable=True, arguments=QUORUM)
    c.channel().qd("", exclusive=True, arguments=QUORUM)
    ch = c.channel()
    q, classic = s.q("qq"), s.q("classic")
    ch.qd(q, durable=True, arguments=QUORUM)
    ch.qd(q, durable=True, arguments=QUORUM)
    ch.qd(q, passive=True)
    c.channel().qd(q, durable=True)
    c.channel().qd(q, durable=True, arguments={"x-queue-type": "classic"})
    ch.qd(classic, durable=True)
    c.channel().qd(classic, durable=True, arguments=QUORUM)


def scenario_quorum_delivery_limit(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, dlq = _dlx(s, ch)
    q = s.q("qq")
    ch.qd(q, durable=True, arguments={**QUORUM, "x-delivery-limit": 2,
                                      "x-dead-letter-exchange": dlx})
    fill(ch, q, [b"m"], headers={"a": 1})
    for _ in range(4):
        got = ch.get(q, no_ack=False)
        if got[1] != "basic.get-ok":
            break
        ch.reject(got[2]["delivery_tag"], requeue=True)
        ch.sync()
    wait_ready(ch, dlq, 1)
    ch.get(dlq)
    # consumers: no x-delivery-count on a first delivery
    q2 = s.q("qq2")
    ch.qd(q2, durable=True, arguments={**QUORUM, "x-delivery-limit": 1})
    cons = c.channel()
    cons.consume(q2, "c")
    fill(ch, q2, [b"m2"])
    got = cons.collect(1, label="first delivery")
    cons.nack(got[0][2]["delivery_tag"], requeue=True)
    got = cons.collect(1, label="redelivery")
    cons.nack(got[0][2]["delivery_tag"], requeue=True)
    cons.collect(label="over the limit: nothing more")
    ch.qd(q2, passive=True)
    # a closed channel counts as a delivery attempt
    q3 = s.q("qq3")
    ch.qd(q3, durable=True, arguments={**QUORUM, "x-delivery-limit": 1})
    fill(ch, q3, [b"m3"])
    for left in (1, 0):  # limit 1: two deliveries, then it is gone
        other = c.channel()
        other.get(q3, no_ack=False)
        other.close()
        wait_ready(ch, q3, left)


SCENARIOS = collect_scenarios(globals())


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matches_rabbitmq(scenario, differential):
    differential(scenario)
