"""Differential: what consumers and publishers observe. Counts in declare-ok/get-ok/purge-ok,
redelivered flags and requeue order, prefetch, mandatory returns, publisher confirms,
transactions, dead-lettering, TTL, length limits, priorities, properties and body frames.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from amqp_driver import Session, collect_scenarios, raw_body, raw_header, raw_headers

from leveret.amqp import spec

pytestmark = pytest.mark.compat


def per_consumer(observations: list[Any]) -> dict[str, list[Any]]:
    """Deliveries grouped by consumer tag, without delivery tags: when two queues deliver to
    one channel, their interleaving (and so the channel's tag numbering) is a race."""
    out: dict[str, list[Any]] = {}
    for obs in observations:
        if obs[1] == "basic.deliver":
            out.setdefault(obs[2]["consumer_tag"], []).append(
                (obs[4], obs[2]["redelivered"], obs[2]["routing_key"]))
        else:
            out.setdefault("<other>", []).append(obs)
    return out


def tags_by_body(observations: list[Any]) -> dict[bytes, int]:
    return {obs[4]: obs[2]["delivery_tag"] for obs in observations if obs[1] == "basic.deliver"}


def fill(ch: Any, q: str, n: int, prefix: str = "m") -> None:
    for i in range(1, n + 1):
        ch.publish("", q, f"{prefix}{i}".encode())
    ch.sync("published")


# ------------------------------------------------------------------ counts

def scenario_message_and_consumer_counts(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 5)
    ch.qd(q, passive=True)
    ch.qd(q)  # an active redeclare reports the same counts
    ch.get(q, no_ack=False)  # get-ok message_count: what is left after this one
    ch.qd(q, passive=True)  # unacknowledged messages are not counted
    cons = c.channel()
    cons.call(spec.BasicQos(prefetch_count=1))
    cons.consume(q, "c1")
    cons.collect(1)
    ch.qd(q, passive=True)
    c.channel().consume(q, "c2", no_ack=False)  # another channel; takes everything left
    c.channels[3].collect(3, label="c2 deliveries")
    ch.qd(q, passive=True)
    cons.call(spec.BasicCancel(consumer_tag="c1"))
    ch.qd(q, passive=True)
    ch.call(spec.QueuePurge(queue=q))  # nothing ready: everything is unacked
    cons.close()  # c1's unacked message goes back, c2 (prefetch unlimited) takes it
    c.channels[3].collect(1, label="c2 gets c1's message")
    ch.close()  # so does the message basic.get took on channel 1
    c.channels[3].collect(1, label="c2 gets the get's message")
    c.channels[3].close()
    ch = c.channel()
    ch.qd(q, passive=True)
    ch.call(spec.QueuePurge(queue=q))
    fill(ch, q, 2)
    ch.call(spec.QueueDelete(queue=q))


def scenario_get_counts_and_tags(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q1, q2 = s.q("q1"), s.q("q2")
    ch.qd(q1)
    ch.qd(q2)
    fill(ch, q1, 3, "a")
    fill(ch, q2, 2, "b")
    # delivery tags are per channel, shared by every queue and every get/consume on it
    for q in (q1, q2, q1, q2, q1, q2):
        ch.get(q, no_ack=False)
    ch.ack(2, multiple=True)
    ch.nack(5, multiple=True, requeue=True)
    ch.sync()
    for q in (q1, q2, q1, q2):
        ch.get(q, no_ack=True)


# ------------------------------------------------------------------ redelivery and requeue order

def scenario_requeue_order_after_nack_and_reject(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 6)
    for _ in range(6):
        ch.get(q, no_ack=False)
    ch.nack(4, requeue=True)
    ch.reject(2, requeue=True)
    ch.nack(5, requeue=False)  # dropped
    ch.ack(1)
    ch.reject(6, requeue=False)  # dropped
    ch.sync()
    ch.drain_queue(q)  # m2 and m4 come back in queue order, redelivered
    ch.ack(3)
    ch.sync()


def scenario_requeue_order_multiple(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 5)
    fill(ch, q, 0)
    for _ in range(3):
        ch.get(q, no_ack=False)
    ch.nack(0, multiple=True, requeue=True)  # tag 0 + multiple: everything outstanding
    ch.sync()
    ch.drain_queue(q)


def scenario_recover_redelivers(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 3)
    ch.consume(q, "c")
    ch.collect(3, label="first deliveries")
    ch.ack(2)
    ch.call(spec.BasicRecover(requeue=True))
    ch.collect(2, label="redeliveries")
    ch.ack(0, multiple=True)
    ch.call(spec.BasicRecover(requeue=True))
    ch.collect(label="nothing left to recover")


def scenario_requeue_on_channel_and_connection_close(s: Session) -> None:
    c1 = s.connect()
    ch = c1.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 4)
    cons = c1.channel()
    cons.consume(q, "c", no_ack=False)
    cons.collect(4)
    cons.ack(2)
    cons.close()  # m1, m3, m4 requeued, in queue order, redelivered
    g = c1.channel()
    g.get(q, no_ack=False)
    g.get(q, no_ack=False)
    c1.close()  # closing the connection requeues the gets' messages too
    c2 = s.connect()
    c2.channel().drain_queue(q)


def scenario_cancel_keeps_unacked(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 3)
    ch.call(spec.BasicQos(prefetch_count=2))
    ch.consume(q, "c")
    ch.collect(2)
    ch.call(spec.BasicCancel(consumer_tag="c"))
    ch.ack(1)  # still acknowledgeable after the cancel
    ch.nack(2, requeue=True)
    ch.sync()
    ch.collect(label="no delivery after cancel")
    ch.qd(q, passive=True)


def scenario_no_ack_consumer(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 3)
    ch.call(spec.BasicQos(prefetch_count=1))  # ignored for no-ack consumers
    ch.consume(q, "c", no_ack=True)
    ch.collect(3)
    ch.qd(q, passive=True)
    ch.ack(3)
    ch.sync()


# ------------------------------------------------------------------ prefetch

def _two_queues(s: Session, ch: Any, n: int = 5) -> tuple[str, str]:
    q1, q2 = s.q("q1"), s.q("q2")
    ch.qd(q1)
    ch.qd(q2)
    fill(ch, q1, n, "a")
    fill(ch, q2, n, "b")
    return q1, q2


def scenario_prefetch_per_consumer(s: Session) -> None:
    c = s.connect()
    setup = c.channel()
    q1, q2 = _two_queues(s, setup)
    ch = c.channel()
    ch.call(spec.BasicQos(prefetch_count=2, global_=False))
    ch.consume(q1, "c1")
    ch.consume(q2, "c2")
    got = ch.collect(4, label="deliveries", summary=per_consumer)
    ch.ack(tags_by_body(got)[b"a1"])
    ch.collect(1, label="after one ack", summary=per_consumer)
    setup.qd(q1, passive=True)
    setup.qd(q2, passive=True)


def scenario_prefetch_global(s: Session) -> None:
    c = s.connect()
    setup = c.channel()
    q1, q2 = _two_queues(s, setup)
    ch = c.channel()
    ch.call(spec.BasicQos(prefetch_count=3, global_=True))
    ch.consume(q1, "c1")
    got = ch.collect(3, label="c1 deliveries")
    ch.consume(q2, "c2")
    ch.collect(label="c2 gets nothing: the channel's budget is spent")
    ch.ack(tags_by_body(got)[b"a2"], multiple=True)  # frees two, for either consumer
    ch.collect(2, label="after acking two: how many", summary=len)
    left = [setup.call(spec.QueueDeclare(queue=q, passive=True), record=False)[2]
            for q in (q1, q2)]
    s.note("ready messages left in both queues", sum(d["message_count"] for d in left))


def scenario_prefetch_per_consumer_and_global(s: Session) -> None:
    c = s.connect()
    setup = c.channel()
    q1, q2 = _two_queues(s, setup)
    ch = c.channel()
    ch.call(spec.BasicQos(prefetch_count=2, global_=False))
    ch.call(spec.BasicQos(prefetch_count=3, global_=True))
    ch.consume(q1, "c1")
    ch.collect(2, label="c1 deliveries (per-consumer limit)")
    ch.consume(q2, "c2")
    ch.collect(1, label="c2 deliveries (channel limit)")


def scenario_prefetch_changed_between_consumers(s: Session) -> None:
    c = s.connect()
    setup = c.channel()
    q1, q2 = _two_queues(s, setup)
    ch = c.channel()
    ch.call(spec.BasicQos(prefetch_count=1))
    ch.consume(q1, "c1")
    got = ch.collect(1, label="c1")
    ch.call(spec.BasicQos(prefetch_count=3))  # applies to consumers created after it
    ch.consume(q2, "c2")
    ch.collect(3, label="c2")
    ch.call(spec.BasicQos(prefetch_count=0))  # unlimited, for new consumers
    ch.ack(tags_by_body(got)[b"a1"])
    ch.collect(1, label="c1 still limited to one")


def scenario_prefetch_with_get(s: Session) -> None:
    """basic.get ignores prefetch; its unacked messages do not count against consumers."""
    c = s.connect()
    setup = c.channel()
    q1, _ = _two_queues(s, setup)
    ch = c.channel()
    ch.call(spec.BasicQos(prefetch_count=1))
    ch.get(q1, no_ack=False)
    ch.get(q1, no_ack=False)
    ch.consume(q1, "c1")
    ch.collect(1)


# ------------------------------------------------------------------ returns

def scenario_mandatory_returns(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x, q = s.x("x"), s.q("q")
    ch.ed(x, "direct")
    ch.qd(q)
    ch.bind(q, x, "k")
    props = spec.Properties(content_type="text/plain", headers={"h": 1}, message_id="m-1",
                            delivery_mode=2, priority=3)
    ch.publish(x, "k", b"routed", props, mandatory=True)
    ch.publish(x, "nope", b"unroutable", props, mandatory=True)
    ch.publish(x, "nope", b"unroutable, not mandatory", props)
    ch.publish("amq.fanout", "", b"fanout, no queues", mandatory=True)
    ch.publish("", s.name("no-such-queue"), b"default exchange, no queue", mandatory=True)
    ch.publish(x, "nope", b"", mandatory=True)
    ch.sync()
    ch.collect(label="returns")
    ch.get(q)


# ------------------------------------------------------------------ publisher confirms

def scenario_confirms(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.call(spec.ConfirmSelect())
    for i in range(10):
        ch.publish("", q, b"%d" % i)
    ch.confirms(10, label="ten routed")
    ch.publish("", s.name("nowhere"), b"unroutable")
    ch.publish("", s.name("nowhere"), b"unroutable mandatory", mandatory=True)
    ch.publish("", q, b"routed")
    ch.confirms(13, label="unroutable ones are acked too")
    ch.call(spec.QueuePurge(queue=q))
    # confirm.select with nowait: no confirm.select-ok, confirms still work
    ch2 = c.channel()
    ch2.send(spec.ConfirmSelect(nowait=True))
    ch2.publish("", q, b"x")
    ch2.confirms(1, label="nowait")
    # publishing to a missing exchange closes the channel; there is no nack
    ch2.publish(s.name("no-x"), "k", b"x")
    ch2.confirms(2, label="missing exchange")


def scenario_confirms_nack_on_reject_publish(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    ch.call(spec.ConfirmSelect())
    for i in range(4):
        ch.publish("", q, b"%d" % i)
    ch.confirms(4)
    ch.drain_queue(q)
    ch.publish("", q, b"room again")
    ch.confirms(5)


def scenario_confirms_in_tx_channel_and_counts(s: Session) -> None:
    """Confirm tags count publishes on the channel, including the ones that were returned."""
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.publish("", q, b"before confirm.select")  # not counted
    ch.call(spec.ConfirmSelect())
    ch.publish("", s.name("nowhere"), b"r", mandatory=True)
    ch.publish("", q, b"a")
    ch.confirms(2)
    ch.get(q, no_ack=False)  # get delivery tags are independent of publish sequence numbers
    ch.publish("", q, b"b")
    ch.confirms(3)


# ------------------------------------------------------------------ transactions

def scenario_tx_publish_commit_rollback(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    look = c.channel()
    ch.call(spec.TxSelect())
    ch.publish("", q, b"one")
    ch.publish("", q, b"two")
    ch.sync()
    look.qd(q, passive=True)
    ch.call(spec.TxCommit())
    look.qd(q, passive=True)
    ch.publish("", q, b"three")
    ch.call(spec.TxRollback())
    look.qd(q, passive=True)
    ch.call(spec.TxCommit())  # nothing pending: still fine
    ch.publish("", s.name("nowhere"), b"returned at commit", mandatory=True)
    ch.sync()
    ch.collect(label="a return before the commit?")
    ch.call(spec.TxCommit())
    ch.collect(label="a return after the commit?")
    look.drain_queue(q)


def scenario_tx_acks(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    fill(ch, q, 3)
    ch.call(spec.TxSelect())
    ch.get(q, no_ack=False)
    ch.get(q, no_ack=False)
    ch.ack(1)
    ch.call(spec.TxRollback())  # the ack is forgotten, the message stays unacked
    look = c.channel()
    look.qd(q, passive=True)
    ch.ack(1)
    ch.reject(2, requeue=True)
    ch.sync()
    look.qd(q, passive=True)  # nothing happens before the commit
    ch.call(spec.TxCommit())
    look.qd(q, passive=True)
    ch.ack(1)  # already acknowledged in the committed transaction
    ch.call(spec.TxCommit())  # the unknown tag is reported at commit, or at the ack?
    c.collect(label="after")


def scenario_tx_publish_to_missing_exchange(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    ch.call(spec.TxSelect())
    ch.publish(s.name("no-x"), "k", b"x")
    ch.call(spec.TxCommit())


# ------------------------------------------------------------------ consumer cancel notify

def scenario_consumer_cancel_notification(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.consume(q, "watcher")
    ch.consume(q, "")  # server-named tag
    other = c.channel()
    other.call(spec.QueueDelete(queue=q))
    ch.collect(2, label="cancel notifications", summary=lambda obs: sorted(obs, key=repr))
    ch.call(spec.BasicCancel(consumer_tag="watcher"))  # already gone: cancel-ok anyway


# ------------------------------------------------------------------ content

ALL_PROPERTIES = spec.Properties(
    content_type="application/json", content_encoding="gzip",
    headers={
        "str": "text", "utf8": "żółw", "int8": -5, "int16": 1000, "int32": -100000,
        "int64": 2**40, "bool": True, "false": False, "double": 2.5, "bytes": b"\x00\xff",
        "void": None, "table": {"nested": {"deeper": [1, "two", None]}},
        "array": [1, 2.5, "s", [True], {"k": "v"}],
        "decimal": __import__("decimal").Decimal("3.14"),
        "time": datetime.datetime(2001, 9, 9, 1, 46, 40, tzinfo=datetime.UTC),
    },
    delivery_mode=2, priority=7, correlation_id="corr", reply_to="reply.here",
    expiration="60000", message_id="id-1", timestamp=1_000_000_000, type="kind",
    user_id="guest", app_id="compat", cluster_id="cluster-x",
)


def scenario_properties_round_trip(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.publish("", q, b"all properties", ALL_PROPERTIES)
    ch.publish("", q, b"no properties", spec.Properties())
    ch.publish("", q, b"empty strings", spec.Properties(content_type="", headers={},
                                                          message_id=""))
    # every integer width and tag: the broker forwards the wire types it was given
    ch.publish("", q, b"wire types", raw_headers(
        ("B", b"B\xff"), ("u", b"u\xff\xff"), ("i", b"i\xff\xff\xff\xff"),
        ("L", b"L" + b"\xff" * 8), ("l", b"l" + b"\x00" * 7 + b"\x01"), ("f", b"f?\x80\x00\x00"),
        ("s", b"s\x00\x01"), ("I", b"I\x00\x00\x00\x01"), ("S", b"S\x00\x00\x00\x01\xff"),
        ("T", b"T" + b"\x00" * 8), ("t", b"t\x05")))
    ch.get(q)
    ch.get(q)
    ch.get(q)
    ch.consume(q, "c", no_ack=True)
    ch.collect(1)


def scenario_body_frames(s: Session) -> None:
    """Bodies split by frame_max: 4096 here, so at most 4088 body bytes per frame."""
    c = s.connect(frame_max=4096)
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    sizes = [0, 1, 4087, 4088, 4089, 8176, 8177, 20000]
    for n in sizes:
        ch.publish("", q, bytes(i % 251 for i in range(n)))
    # the same content sent in many small body frames is re-split by the server
    ch.send(spec.BasicPublish(exchange="", routing_key=q))
    data = bytes(range(256)) * 20
    c.send_raw(raw_header(ch.number, len(data))
               + b"".join(raw_body(ch.number, data[i:i + 100]) for i in range(0, len(data), 100)))
    ch.sync()
    for _ in range(len(sizes) + 1):
        ch.get(q)
    # a larger frame_max: the server splits at its own limit (131072 - 8)
    c2 = s.connect()
    ch2 = c2.channel()
    ch2.publish("", q, b"z" * 300_000)
    ch2.get(q)


def scenario_empty_body_with_zero_size_frames(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.send(spec.BasicPublish(exchange="", routing_key=q))
    c.send_raw(raw_header(ch.number, 3) + raw_body(ch.number, b"") + raw_body(ch.number, b"abc"))
    ch.sync()
    ch.get(q)


# ------------------------------------------------------------------ dead-lettering, TTL, limits

def scenario_dead_letter_on_reject(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, q, dlq = s.x("dlx"), s.q("q"), s.q("dlq")
    ch.ed(dlx, "fanout")
    ch.qd(dlq)
    ch.bind(dlq, dlx)
    ch.qd(q, arguments={"x-dead-letter-exchange": dlx})
    ch.publish("", q, b"rejected", spec.Properties(headers={"mine": 1}))
    ch.publish("", q, b"nacked")
    ch.publish("", q, b"requeued then rejected")
    ch.sync()
    ch.get(q, no_ack=False)
    ch.get(q, no_ack=False)
    ch.get(q, no_ack=False)
    ch.reject(1, requeue=False)
    ch.nack(2, requeue=False)
    ch.reject(3, requeue=True)
    ch.sync()
    ch.get(q, no_ack=False)
    ch.reject(4, requeue=False)
    ch.sync()
    ch.drain_queue(dlq)


def scenario_dead_letter_routing_key_and_cycle(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q1, q2 = s.q("q1"), s.q("q2")
    # q1 dead-letters through the default exchange to q2, which dead-letters back to q1
    ch.qd(q2, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q1})
    ch.qd(q1, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": q2})
    ch.publish("", q1, b"bounce")
    ch.sync()
    for q in (q1, q2, q1):
        got = ch.get(q, no_ack=False)
        if got[1] == "basic.get-ok":
            ch.reject(got[2]["delivery_tag"], requeue=False)
        ch.sync()
    ch.get(q2)


def scenario_message_ttl(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, q0, qd, dlq = s.x("dlx"), s.q("ttl0"), s.q("ttl-dl"), s.q("dlq")
    ch.ed(dlx, "fanout")
    ch.qd(dlq)
    ch.bind(dlq, dlx)
    ch.qd(q0, arguments={"x-message-ttl": 0})
    ch.qd(qd, arguments={"x-message-ttl": 0, "x-dead-letter-exchange": dlx})
    ch.publish("", q0, b"expires at once")
    ch.publish("", qd, b"expires into dlq")
    q = s.q("plain")
    ch.qd(q)
    ch.publish("", q, b"expiration 0", spec.Properties(expiration="0"))
    ch.publish("", q, b"expiration 60000", spec.Properties(expiration="60000"))
    ch.sync()
    ch.qd(q0, passive=True)
    ch.get(q0)
    ch.get(q)
    ch.get(q)
    ch.drain_queue(dlq)
    for bad in ("abc", "-1", "1.5", ""):
        ch = c.channel()
        ch.publish("", q, b"bad expiration", spec.Properties(expiration=bad))
        ch.sync()


def scenario_max_length(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    dlx, head, dlq, nbytes = s.x("dlx"), s.q("drop-head"), s.q("dlq"), s.q("bytes")
    ch.ed(dlx, "fanout")
    ch.qd(dlq)
    ch.bind(dlq, dlx)
    ch.qd(head, arguments={"x-max-length": 2, "x-dead-letter-exchange": dlx})
    fill(ch, head, 5)
    ch.qd(head, passive=True)
    ch.drain_queue(head)
    ch.drain_queue(dlq)
    ch.qd(nbytes, arguments={"x-max-length-bytes": 10})
    for body in (b"12345", b"67890", b"abc", b"0123456789A", b"z"):
        ch.publish("", nbytes, body)
    ch.sync()
    ch.drain_queue(nbytes)
    zero = s.q("zero")
    ch.qd(zero, arguments={"x-max-length": 0})
    fill(ch, zero, 2)
    ch.qd(zero, passive=True)


def scenario_priority_queue(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q, arguments={"x-max-priority": 5})
    for i, p in enumerate([None, 1, 5, 9, 0, 3, 5, None, 255]):
        ch.publish("", q, b"%d:%s" % (i, str(p).encode()), spec.Properties(priority=p))
    ch.sync()
    ch.drain_queue(q)
    plain = s.q("plain")
    ch.qd(plain)
    for i, p in enumerate([1, 9, 0]):
        ch.publish("", plain, b"%d" % i, spec.Properties(priority=p))
    ch.sync()
    ch.drain_queue(plain)


def scenario_single_active_consumer(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q, arguments={"x-single-active-consumer": True})
    ch.consume(q, "first")
    ch.consume(q, "second")
    fill(ch, q, 2)
    ch.collect(label="only the first consumes")
    ch.qd(q, passive=True)
    ch.call(spec.BasicCancel(consumer_tag="first"))
    fill(ch, q, 1, "after")
    ch.collect(label="now the second")


def scenario_nowait_methods(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q, x = s.q("q"), s.x("x")
    ch.send(spec.QueueDeclare(queue=q, nowait=True))
    ch.send(spec.ExchangeDeclare(exchange=x, type="fanout", nowait=True))
    ch.send(spec.QueueBind(queue=q, exchange=x, nowait=True))
    ch.send(spec.BasicConsume(queue=q, consumer_tag="c", nowait=True))
    ch.publish(x, "", b"through nowait bindings")
    ch.collect(1, label="delivery, and no -ok methods")
    ch.send(spec.BasicCancel(consumer_tag="c", nowait=True))
    ch.send(spec.QueuePurge(queue=q, nowait=True))
    ch.send(spec.ExchangeDelete(exchange=x, nowait=True))
    ch.send(spec.QueueDelete(queue=q, nowait=True))
    ch.sync()
    ch.qd(q, passive=True)
    # a nowait method that fails still closes the channel
    ch = c.channel()
    ch.send(spec.QueueDeclare(queue=s.name("missing"), passive=True, nowait=True))
    ch.sync()


SCENARIOS = collect_scenarios(globals())


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matches_rabbitmq(scenario, differential):
    differential(scenario)

