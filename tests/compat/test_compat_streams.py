"""Differential: stream queues (``x-queue-type: stream``) over AMQP 0-9-1, part 1:
declaring them, publishing to them, and what a consumer gets back.

Part 2 (``test_compat_streams_consume.py``) has the consume rules, ``x-stream-offset``,
prefetch as credit, acks and the refused operations.

Every scenario is deterministic on RabbitMQ 3.10.8 (run it against itself, see conftest.py):

* a stream's chunking is RabbitMQ's choice: every message here is published on a channel in
  confirm mode and its confirm is waited for before the next publish, so each message is a
  chunk of its own (credit, ``last`` and timestamps then act per message);
* nothing depends on segment rolls or retention (default segment size: offsets of a fresh
  stream are 0, 1, 2, ...);
* declare-ok's ``message_count`` of a stream is a metric RabbitMQ refreshes about every 5 s:
  it is recorded only for streams nothing was ever published to;
* streams are durable: every one is deleted at the end of its scenario (``Session.cleanup``).

What RabbitMQ 3.10 answers with 541 INTERNAL_ERROR (a decimal header, ``basic.recover``,
``x-stream-offset`` strings without digits, ``x-max-age ""``) is not differential: leveret
answers 406 there, see tests/integration/test_stream_differences.py.
"""

from __future__ import annotations

import struct
import time
from typing import Any

import pytest
from amqp_driver import Session, collect_scenarios, raw_headers, raw_table
from stream_helpers import STREAM, confirming, declare_stream, long_, publish_one, qos

from leveret.amqp import spec
from leveret.amqp.fields import (
    Byte,
    Long,
    Short,
    SignedInt,
    UnsignedByte,
    UnsignedInt,
    UnsignedShort,
)

pytestmark = pytest.mark.compat


# ------------------------------------------------------------------ declare: flags

def scenario_declare_flags(s: Session) -> None:
    """A stream is durable, not exclusive, not auto-delete and client-named; the checks run
    auto-delete, exclusive, durable (the first failing one names the property)."""
    c = s.connect()
    q = s.q("s")
    c.channel().qd(q, durable=False, arguments=STREAM)
    c.channel().qd(q, durable=True, exclusive=True, arguments=STREAM)
    c.channel().qd(q, durable=True, auto_delete=True, arguments=STREAM)
    c.channel().qd(q, durable=False, exclusive=True, auto_delete=True, arguments=STREAM)
    c.channel().qd(q, durable=False, exclusive=True, arguments=STREAM)
    c.channel().qd(q, durable=False, auto_delete=True, arguments=STREAM)
    c.channel().qd("", durable=True, arguments=STREAM)
    # nothing of the above made the queue
    c.channel().qd(q, passive=True)
    # the good declaration, twice; an empty new stream has message_count 0
    declare_stream(c.channel(), q)
    declare_stream(c.channel(), q)
    c.channel().qd(q, passive=True)


def scenario_declare_queue_type_value(s: Session) -> None:
    """x-queue-type is exact: "stream" only (a wrong case is an unknown type)."""
    c = s.connect()
    for i, value in enumerate(["Stream", "STREAM", "streams"]):
        c.channel().qd(s.q(f"t{i}"), durable=True, arguments={"x-queue-type": value})
    # as a binary (x) rather than a longstr
    c.channel().call_with_raw_arguments(
        spec.QueueDeclare(queue=s.q("bin"), durable=True),
        raw_table(("x-queue-type", b"x\x00\x00\x00\x06stream")))


# ------------------------------------------------------------------ declare: stream arguments

def _declare_each(s: Session, label: str, values: list[Any], key: str) -> None:
    c = s.connect()
    for i, v in enumerate(values):
        q = s.q(f"{label}{i}")
        s.note(f"{key} = {v!r} ({type(v).__name__})", None)
        declare_stream(c.channel(), q, {key: v})


def scenario_max_length_bytes_values(s: Session) -> None:
    _declare_each(s, "mlb", [
        0, 1, 1_000_000, Byte(5), UnsignedByte(5), Short(5), UnsignedShort(5), SignedInt(5),
        UnsignedInt(5), Long(20_000_000_000), -1, Long(-1), "1000", 1.5, True,
    ], "x-max-length-bytes")


def scenario_max_age_values(s: Session) -> None:
    _declare_each(s, "age", [
        "7D", "1Y", "1M", "1D", "1h", "1m", "1s", "30s", "1000000s",
        "01s", "99999999999999999999s",
        "1d", "1y", "1H", "1S", "10ms", "0s", "0D", "100", "1.5h", "1h30m", "1s ", "1e3s",
        "0x10s", 100, SignedInt(100), Long(100), 1.5,
        # strings not starting with a digit ("", "s", "-1s", "+1s", " 1s") close the
        # connection with 541 in RabbitMQ 3.10: test_stream_differences.py
    ], "x-max-age")


def scenario_max_segment_size_values(s: Session) -> None:
    _declare_each(s, "seg", [
        1_000_000, Long(3_000_000_000), Long(3_000_000_001), Long(10_000_000_000), -1,
        "1000", Short(1000),
    ], "x-stream-max-segment-size-bytes")


def scenario_initial_cluster_size_values(s: Session) -> None:
    _declare_each(s, "ics", [1, 3, 100, 0, -1, "1", Long(2)], "x-initial-cluster-size")


def scenario_leader_locator_values(s: Session) -> None:
    _declare_each(s, "loc", [
        "client-local", "balanced", "random", "least-leaders", "Balanced", "nowhere", "", 1,
    ], "x-queue-leader-locator")


OTHER_TYPES_ARGUMENTS: dict[str, Any] = {
    "x-message-ttl": 1000,
    "x-expires": 1000,
    "x-max-length": 10,
    "x-max-priority": 5,
    "x-dead-letter-exchange": "dlx",
    "x-dead-letter-routing-key": "dlk",
    "x-dead-letter-strategy": "at-most-once",
    "x-overflow": "reject-publish",
    "x-single-active-consumer": True,
    "x-queue-mode": "lazy",
    "x-queue-version": 2,
    "x-delivery-limit": 5,
    "x-quorum-initial-group-size": 1,
    "x-max-in-memory-length": 10,
    "x-max-in-memory-bytes": 1000,
    "x-queue-master-locator": "client-local",
}


def scenario_arguments_of_other_queue_types(s: Session) -> None:
    c = s.connect()
    for i, (key, value) in enumerate(OTHER_TYPES_ARGUMENTS.items()):
        declare_stream(c.channel(), s.q(f"other{i}"), {key: value})
    # an invalid value of such an argument gets the same answer
    declare_stream(c.channel(), s.q("other-bad"), {"x-max-length": -1})


def scenario_unknown_arguments_ignored(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q, {"x-whatever": "yes", "x-stream-filter-size-bytes": 1000,
                                    "not-x": 5, "x-credit": {"credit": 1}})
    # ...and on redeclare, with or without them
    declare_stream(c.channel(), q)
    declare_stream(c.channel(), q, {"x-whatever": "other"})


def scenario_all_stream_arguments_together(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    args = {"x-max-length-bytes": 20_000_000, "x-max-age": "7D",
            "x-stream-max-segment-size-bytes": 1_000_000, "x-initial-cluster-size": 1,
            "x-queue-leader-locator": "client-local"}
    declare_stream(c.channel(), q, args)
    declare_stream(c.channel(), q, args)
    c.channel().qd(q, passive=True)


# ------------------------------------------------------------------ redeclare equivalence

def scenario_redeclare_equivalence(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    base = {"x-max-length-bytes": 1_000_000, "x-max-age": "1D"}
    declare_stream(c.channel(), q, base)
    # the same
    declare_stream(c.channel(), q, base)
    # the same value in other integer widths
    for value in (long_(1_000_000), b"I" + struct.pack(">i", 1_000_000),
                  b"i" + struct.pack(">I", 1_000_000)):
        c.channel().call_with_raw_arguments(
            spec.QueueDeclare(queue=q, durable=True),
            raw_table(("x-queue-type", b"S\x00\x00\x00\x06stream"),
                      ("x-max-length-bytes", value), ("x-max-age", b"S\x00\x00\x00\x021D")))
    # different values
    declare_stream(c.channel(), q, {**base, "x-max-length-bytes": 2_000_000})
    declare_stream(c.channel(), q, {**base, "x-max-age": "24h"})
    # the value as another type
    declare_stream(c.channel(), q, {**base, "x-max-length-bytes": "1000000"})
    # a stream argument missing
    declare_stream(c.channel(), q, {"x-max-age": "1D"})
    declare_stream(c.channel(), q)
    # an extra stream argument
    declare_stream(c.channel(), q, {**base, "x-stream-max-segment-size-bytes": 1_000_000})
    declare_stream(c.channel(), q, {**base, "x-initial-cluster-size": 1})
    declare_stream(c.channel(), q, {**base, "x-queue-leader-locator": "client-local"})
    # extra arguments of other queue types or unknown ones: accepted on redeclare
    declare_stream(c.channel(), q, {**base, "x-message-ttl": 1000})
    declare_stream(c.channel(), q, {**base, "x-max-length": 10, "x-expires": 1000})
    declare_stream(c.channel(), q, {**base, "x-whatever": 1})
    # x-queue-type dropped, or another type
    c.channel().qd(q, durable=True, arguments=base)
    c.channel().qd(q, durable=True, arguments={**base, "x-queue-type": "classic"})
    c.channel().qd(q, durable=True, arguments={**base, "x-queue-type": "quorum"})
    # flags
    declare_stream(c.channel(), q, base, exclusive=True)
    declare_stream(c.channel(), q, base, auto_delete=True)
    c.channel().qd(q, durable=False, arguments={**STREAM, **base})
    # still there, unchanged
    declare_stream(c.channel(), q, base)


def scenario_redeclare_flags_precedence(s: Session) -> None:
    """Which check answers first on redeclare: exclusive (405) or the arguments (406)."""
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    declare_stream(c.channel(), q, {"x-max-age": "1D"}, exclusive=True)
    c.channel().qd(q, exclusive=True, arguments={"x-max-age": "1D"})
    c.channel().qd(q, durable=False, auto_delete=True, arguments={"x-max-age": "1D"})


def scenario_other_types_redeclared_as_stream(s: Session) -> None:
    c = s.connect()
    classic, durable_classic, quorum = s.q("classic"), s.q("dclassic"), s.q("quorum")
    c.channel().qd(classic)
    c.channel().qd(durable_classic, durable=True)
    c.channel().qd(quorum, durable=True, arguments={"x-queue-type": "quorum"})
    declare_stream(c.channel(), classic)
    declare_stream(c.channel(), durable_classic)
    declare_stream(c.channel(), quorum)
    # and a stream redeclared as a quorum queue
    st = s.q("stream")
    declare_stream(c.channel(), st)
    c.channel().qd(st, durable=True, arguments={"x-queue-type": "quorum"})


def scenario_declare_ok_counts(s: Session) -> None:
    """consumer_count of a stream is always 0, even with consumers attached."""
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    cons = c.channel()
    qos(cons, 5)
    cons.consume(q, "c1")
    cons.consume(q, "c2", arguments={"x-stream-offset": "first"})
    other = s.connect().channel()
    qos(other, 1)
    other.consume(q, "c3")
    c.channel().qd(q, passive=True)
    declare_stream(c.channel(), q)
    cons.collect(label="nothing to deliver")


# ------------------------------------------------------------------ publish

def scenario_publish_routes(s: Session) -> None:
    """The default exchange, a direct and a fanout exchange (to a stream and a classic
    queue: one confirm), mandatory satisfied by a stream."""
    c = s.connect()
    st, classic = s.q("s"), s.q("classic")
    direct, fanout = s.x("direct"), s.x("fanout")
    ch = c.channel()
    declare_stream(ch, st)
    ch.qd(classic)
    ch.ed(direct, "direct")
    ch.ed(fanout, "fanout")
    ch.bind(st, direct, "rk")
    ch.bind(st, fanout)
    ch.bind(classic, fanout)
    pub = confirming(c.channel())
    publish_one(pub, st, b"default")
    publish_one(pub, "rk", b"direct", exchange=direct)
    publish_one(pub, "anything", b"fanout", exchange=fanout)
    publish_one(pub, st, b"mandatory", mandatory=True)
    publish_one(pub, "rk", b"mandatory direct", exchange=direct, mandatory=True)
    publish_one(pub, "nope", b"unroutable", exchange=direct, mandatory=True)
    cons = c.channel()
    qos(cons, 10)
    cons.consume(st, "c", arguments={"x-stream-offset": "first"})
    cons.collect(5, label="deliveries from the stream")
    cons.get(classic)
    cons.get(classic)


def scenario_publish_in_transaction(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q, "c")
    tx = c.channel()
    tx.call(spec.TxSelect())
    tx.publish("", q, b"rolled back")
    tx.call(spec.TxRollback())
    cons.collect(label="after rollback")
    tx.publish("", q, b"committed")
    tx.call(spec.TxCommit())
    cons.collect(1, label="after commit")
    tx.publish("", q, b"committed 2")
    tx.call(spec.TxCommit())
    cons.collect(1, label="after commit 2")


def scenario_publish_fanout_stream_and_classic_confirms(s: Session) -> None:
    """Several messages through a fanout to a stream and a classic queue: one confirm each."""
    c = s.connect()
    st, classic, fanout = s.q("s"), s.q("classic"), s.x("fanout")
    ch = c.channel()
    declare_stream(ch, st)
    ch.qd(classic)
    ch.ed(fanout, "fanout")
    ch.bind(st, fanout)
    ch.bind(classic, fanout)
    pub = c.channel()
    pub.call(spec.ConfirmSelect())
    for i in range(5):
        pub.publish(fanout, "", b"m%d" % i)
    pub.confirms(5)
    pub.collect(label="nothing else")


# ------------------------------------------------------------------ what a consumer gets

# every basic property; cluster-id is dropped by RabbitMQ's AMQP 1.0 conversion
ALL_PROPERTIES = spec.Properties(
    content_type="text/plain", content_encoding="utf-8",
    headers={"str": "value", "int": 42, "bool": True, "void": None},
    delivery_mode=2, priority=7, correlation_id="corr", reply_to="reply.here",
    expiration="60000", message_id="id-1", timestamp=1_000_000_000, type="kind",
    user_id="guest", app_id="compat", cluster_id="cluster-x",
)

# header values of every scalar type, the wire tag chosen here
SCALAR_HEADERS = (
    ("b", b"b\xfe"),  # -2
    ("B", b"B\xff"),
    ("s", b"s\xff\xfe"),  # -2
    ("u", b"u\xff\xff"),
    ("I", b"I\xff\xff\xff\xfe"),  # -2
    ("i", b"i\xff\xff\xff\xff"),
    ("l", long_(-(2**40))),
    ("L", b"L" + b"\xff" * 8),  # RabbitMQ reads 'L' as signed: it comes back as l -1
    ("L-small", b"L" + struct.pack(">Q", 5)),
    ("f", b"f" + struct.pack(">f", 1.5)),
    ("d", b"d" + struct.pack(">d", -2.25)),
    ("t", b"t\x01"),
    ("t0", b"t\x00"),
    ("S", b"S\x00\x00\x00\x06h\xc3\xa9llo"),
    ("S-not-utf8", b"S\x00\x00\x00\x02\xff\xfe"),
    ("S-empty", b"S\x00\x00\x00\x00"),
    ("x", b"x\x00\x00\x00\x03\x00\xff\x01"),
    ("T", b"T" + struct.pack(">Q", 1_000_000_000)),
    ("V", b"V"),
)


def scenario_properties_round_trip(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    pub = confirming(c.channel())
    publish_one(pub, q, b"all properties", ALL_PROPERTIES)
    publish_one(pub, q, b"no properties", spec.Properties())
    publish_one(pub, q, b"empty strings", spec.Properties(content_type="", headers={},
                                                          message_id=""))
    publish_one(pub, q, b"", spec.Properties(delivery_mode=1, priority=0))
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q, "c", arguments={"x-stream-offset": "first"})
    cons.collect(4)


def scenario_header_types_round_trip(s: Session) -> None:
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    pub = confirming(c.channel())
    publish_one(pub, q, b"scalars", raw_headers(*SCALAR_HEADERS))
    # arrays and tables are dropped, whatever they hold; the scalars beside them stay
    publish_one(pub, q, b"containers", raw_headers(
        ("keep", b"S\x00\x00\x00\x01k"),
        ("A", b"A" + struct.pack(">I", 2) + b"b\x01"),
        ("A-empty", b"A\x00\x00\x00\x00"),
        ("F", b"F" + raw_table(("n", b"b\x01"))),
        ("F-empty", b"F\x00\x00\x00\x00"),
        ("CC", b"A" + struct.pack(">I", 6) + b"S\x00\x00\x00\x01k")))
    # a header table of only containers
    publish_one(pub, q, b"only containers", raw_headers(
        ("A", b"A" + struct.pack(">I", 2) + b"b\x01")))
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q, "c", arguments={"x-stream-offset": "first"})
    cons.collect(3)


def scenario_delivery_fields_and_offset_header(s: Session) -> None:
    """Exchange and routing key of the publish, redelivered false, header x-stream-offset
    (type l) with the offset; a publisher-supplied x-stream-offset is replaced."""
    c = s.connect()
    q, x = s.q("s"), s.x("topic")
    ch = c.channel()
    declare_stream(ch, q)
    ch.ed(x, "topic")
    ch.bind(q, x, "a.#")
    pub = confirming(c.channel())
    publish_one(pub, q, b"default exchange")
    publish_one(pub, "a.b.c", b"topic", exchange=x)
    publish_one(pub, q, b"own offset string",
                raw_headers(("x-stream-offset", b"S\x00\x00\x00\x03abc")))
    publish_one(pub, q, b"own offset int", raw_headers(("x-stream-offset", long_(1000)),
                                                       ("other", b"b\x07")))
    publish_one(pub, q, b"own offset byte", raw_headers(("x-stream-offset", b"b\x05")))
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q, "c", arguments={"x-stream-offset": "first"})
    cons.collect(5)


def scenario_sender_selected_routing(s: Session) -> None:
    """A message routed to the stream by its CC / BCC header: the delivery reports the
    publish's own routing key, and CC (an array) is gone like BCC."""
    c = s.connect()
    q, x = s.q("s"), s.x("direct")
    ch = c.channel()
    declare_stream(ch, q)
    ch.ed(x, "direct")
    ch.bind(q, x, "k2")
    pub = confirming(c.channel())
    publish_one(pub, "k1", b"cc", spec.Properties(headers={"CC": ["k2"], "h": 1}), exchange=x)
    publish_one(pub, "k1", b"bcc", spec.Properties(headers={"BCC": ["k2"]}), exchange=x)
    publish_one(pub, "k2", b"both", spec.Properties(headers={"CC": ["k3"]}), exchange=x)
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q, "c", arguments={"x-stream-offset": "first"})
    cons.collect(3)


def scenario_expiration_not_enforced(s: Session) -> None:
    """expiration is kept on the message but a stream never expires it."""
    c = s.connect()
    q = s.q("s")
    declare_stream(c.channel(), q)
    pub = confirming(c.channel())
    publish_one(pub, q, b"short-lived", spec.Properties(expiration="1"))
    publish_one(pub, q, b"expired at once", spec.Properties(expiration="0"))
    time.sleep(0.3)
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q, "c", arguments={"x-stream-offset": "first"})
    cons.collect(2)


def scenario_large_body(s: Session) -> None:
    c = s.connect(frame_max=4096)
    q = s.q("s")
    declare_stream(c.channel(), q)
    pub = confirming(c.channel())
    publish_one(pub, q, bytes(i % 251 for i in range(20_000)))
    cons = c.channel()
    qos(cons, 10)
    cons.consume(q, "c", arguments={"x-stream-offset": "first"})
    cons.collect(1)


SCENARIOS = collect_scenarios(globals())


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matches_rabbitmq(scenario, differential):
    differential(scenario)
