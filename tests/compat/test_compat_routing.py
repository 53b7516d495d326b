"""Differential: where messages go. Topic patterns x keys, headers matching, direct and
fanout, exchange-to-exchange bindings, alternate exchanges, the default exchange.

A routing scenario binds queues, publishes a set of messages (body = a label), then drains
every queue with basic.get and records ``queue -> sorted bodies``; the individual get
frames are recorded too, so exchange/routing-key fields of the deliveries are compared.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from amqp_driver import Session, collect_scenarios, raw_headers, raw_table

from leveret.amqp import spec

pytestmark = pytest.mark.compat


def drain_all(s: Session, ch: Any, queues: dict[str, str]) -> None:
    """Record, for each queue (by label), the sorted bodies it holds."""
    result = {}
    for label, q in queues.items():
        result[label] = sorted(ch.drain_queue(q))
    s.note("routed", result)


# ------------------------------------------------------------------ topic

TOPIC_KEYS = [
    "", "a", "b", "a.b", "a.c", "b.a", "a.b.c", "a.a.b", "a.b.b", "x.a.b", "a.x.y.b",
    "a..b", ".", "..", "a.", ".a", "a.b.c.d", "aa.b", "a.bb", "ab", "A.B", "#", "*",
    "a.#", "a.*", "c.a.c", "a.b.a.b", "b.b", "é.ü", "a b.c",
]

TOPIC_PATTERNS = [
    "#", "*", "", "a", "a.b", "a.*", "*.b", "a.#", "#.b", "a.#.b", "#.a.#", "*.*",
    "a.*.#", "#.#", "a.#.#", "*.#", "#.*", "a..b", "a.b.#", "#.b.#", "*.a.*", "a.*.b",
    "a.#.*", "*.*.*", "#.a", "a*", "*a", "a#", "**", ".", "..", "*.", ".#", "a.#.b.#",
    "#.#.b", "é.*", "a b.#", "A.*",
]


def make_topic_scenario(pattern: str) -> Any:
    def scenario(s: Session) -> None:
        c = s.connect()
        ch = c.channel()
        x, q = s.x("topic"), s.q("q")
        ch.ed(x, "topic")
        ch.qd(q)
        ch.bind(q, x, pattern)
        for key in TOPIC_KEYS:
            ch.publish(x, key, key.encode() or b"<empty>")
        ch.sync()
        s.note(f"pattern {pattern!r} matches", sorted(ch.drain_queue(q)))
    return scenario


def scenario_topic_overlapping_bindings(s: Session) -> None:
    """A queue bound by several matching patterns gets one copy; unbinding one keeps the rest."""
    c = s.connect()
    ch = c.channel()
    x, q1, q2 = s.x("topic"), s.q("q1"), s.q("q2")
    ch.ed(x, "topic")
    ch.qd(q1)
    ch.qd(q2)
    for p in ("a.*", "#", "a.b", "*.b"):
        ch.bind(q1, x, p)
    ch.bind(q2, x, "#.b")
    ch.bind(q2, x, "#.b")  # the same binding twice is one binding
    ch.publish(x, "a.b", b"1")
    ch.call(spec.QueueUnbind(queue=q1, exchange=x, routing_key="#"))
    ch.call(spec.QueueUnbind(queue=q2, exchange=x, routing_key="#.b"))
    ch.publish(x, "a.b", b"2")
    ch.publish(x, "z.z", b"3")
    ch.sync()
    drain_all(s, ch, {"q1": q1, "q2": q2})


# ------------------------------------------------------------------ direct / fanout / default

def scenario_direct_and_fanout(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    d, f = s.x("direct"), s.x("fanout")
    q1, q2, q3 = s.q("q1"), s.q("q2"), s.q("q3")
    ch.ed(d, "direct")
    ch.ed(f, "fanout")
    for q in (q1, q2, q3):
        ch.qd(q)
    ch.bind(q1, d, "k")
    ch.bind(q2, d, "k")
    ch.bind(q2, d, "j")
    ch.bind(q3, d, "")
    ch.bind(q1, f, "ignored")
    ch.bind(q3, f, "")
    for key in ("k", "j", "", "K", "k ", "other"):
        ch.publish(d, key, b"direct:" + key.encode())
        ch.publish(f, key, b"fanout:" + key.encode())
    # direct bindings with arguments: the arguments are part of the binding's identity
    ch.bind(q3, d, "args", {"a": 1})
    ch.bind(q3, d, "args", {"a": 2})
    ch.publish(d, "args", b"direct:args")
    ch.call(spec.QueueUnbind(queue=q3, exchange=d, routing_key="args", arguments={"a": 1}))
    ch.publish(d, "args", b"direct:args-after-one-unbind")
    ch.call(spec.QueueUnbind(queue=q3, exchange=d, routing_key="args", arguments={"a": 3}))
    ch.call(spec.QueueUnbind(queue=q3, exchange=d, routing_key="args", arguments={"a": 2}))
    ch.publish(d, "args", b"direct:args-after-both")
    ch.sync()
    drain_all(s, ch, {"q1": q1, "q2": q2, "q3": q3})


def scenario_default_exchange(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    q = s.q("q")
    ch.qd(q)
    ch.publish("", q, b"by name")
    ch.publish("", q.upper(), b"wrong case")
    ch.publish("", s.name("nobody"), b"nowhere")
    ch.publish("", "", b"empty key")
    ch.publish("", s.name("nobody"), b"returned", mandatory=True)
    ch.collect(1, label="return")
    ch.sync()
    drain_all(s, ch, {"q": q})


# ------------------------------------------------------------------ headers

HEADER_BINDINGS: dict[str, dict[str, Any]] = {
    "all a=1 b=x": {"x-match": "all", "a": 1, "b": "x"},
    "any a=1 b=x": {"x-match": "any", "a": 1, "b": "x"},
    "implicit all a=1": {"a": 1},
    "no arguments": {},
    "any with nothing": {"x-match": "any"},
    "all with nothing": {"x-match": "all"},
    "all a=void": {"x-match": "all", "a": None},
    "all a=1 x-k=1": {"x-match": "all", "a": 1, "x-k": 1},
    "any x-k=1": {"x-match": "any", "x-k": 1},
    "all-with-x x-k=1": {"x-match": "all-with-x", "x-k": 1},
    "any-with-x x-k=1 a=2": {"x-match": "any-with-x", "x-k": 1, "a": 2},
    "all a=true": {"x-match": "all", "a": True},
    "all a='1'": {"x-match": "all", "a": "1"},
    "all a=1.0": {"x-match": "all", "a": 1.0},
    "all t={n:1}": {"x-match": "all", "t": {"n": 1}},
    "all l=[1,2]": {"x-match": "all", "l": [1, 2]},
}


def _long(v: int) -> bytes:
    return b"l" + struct.pack(">q", v)


HEADER_MESSAGES: dict[str, Any] = {
    "none": None,
    "empty": {},
    "a=1": {"a": 1},
    "a=1 b=x": {"a": 1, "b": "x"},
    "a=1 b=y": {"a": 1, "b": "y"},
    "b=x": {"b": "x"},
    "a=2": {"a": 2},
    "a='1'": {"a": "1"},
    "a=1(long)": raw_headers(("a", _long(1))),
    "a=1(unsigned short)": raw_headers(("a", b"u" + struct.pack(">H", 1))),
    "a=1(short)": raw_headers(("a", b"s" + struct.pack(">h", 1))),
    "a=1.0": {"a": 1.0},
    "a=true": {"a": True},
    "a=void": {"a": None},
    "a='1'(bytes)": {"a": b"1"},
    "x-k=1": {"x-k": 1},
    "x-k=1 a=1": {"x-k": 1, "a": 1},
    "x-k=2 a=2": {"x-k": 2, "a": 2},
    "x-match=any a=1": {"x-match": "any", "a": 1},
    "t={n:1}": {"t": {"n": 1}},
    "t={n:1(long)}": raw_headers(("t", b"F" + raw_table(("n", _long(1))))),
    "l=[1,2]": {"l": [1, 2]},
    "l=[2,1]": {"l": [2, 1]},
}


def scenario_headers_exchange(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x = s.x("headers")
    ch.ed(x, "headers")
    queues = {}
    for i, (label, args) in enumerate(HEADER_BINDINGS.items()):
        q = s.q(f"h{i}")
        queues[label] = q
        ch.qd(q)
        ch.bind(q, x, "routing key is ignored", args)
    for label, headers in HEADER_MESSAGES.items():
        props = headers if isinstance(headers, bytes) else spec.Properties(headers=headers)
        ch.publish(x, "anything", label.encode(), props)
    ch.sync()
    drain_all(s, ch, queues)


def scenario_headers_unbind(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x, q = s.x("headers"), s.q("q")
    ch.ed(x, "headers")
    ch.qd(q)
    ch.bind(q, x, "", {"a": 1})
    ch.bind(q, x, "", {"b": 1})
    ch.publish(x, "", b"1", spec.Properties(headers={"a": 1, "b": 1}))
    ch.call(spec.QueueUnbind(queue=q, exchange=x, arguments={"a": 1}))
    ch.publish(x, "", b"2", spec.Properties(headers={"a": 1}))
    ch.publish(x, "", b"3", spec.Properties(headers={"b": 1}))
    ch.sync()
    drain_all(s, ch, {"q": q})


# ------------------------------------------------------------------ exchange-to-exchange

def scenario_exchange_to_exchange(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x1, x2, x3 = s.x("x1"), s.x("x2"), s.x("x3")
    q1, q2, q3 = s.q("q1"), s.q("q2"), s.q("q3")
    ch.ed(x1, "direct")
    ch.ed(x2, "fanout")
    ch.ed(x3, "topic")
    for q in (q1, q2, q3):
        ch.qd(q)
    ch.call(spec.ExchangeBind(destination=x2, source=x1, routing_key="k"))
    ch.call(spec.ExchangeBind(destination=x3, source=x2, routing_key="ignored"))
    ch.call(spec.ExchangeBind(destination=x1, source=x3, routing_key="#"))  # a cycle
    ch.bind(q1, x2)
    ch.bind(q2, x3, "k")
    ch.bind(q3, x1, "k")
    ch.bind(q3, x3, "#")  # reachable twice: still one copy
    ch.publish(x1, "k", b"into x1 with k")
    ch.publish(x1, "j", b"into x1 with j")
    ch.publish(x2, "j", b"into x2 with j")
    ch.publish(x3, "k", b"into x3 with k")
    ch.sync()
    drain_all(s, ch, {"q1": q1, "q2": q2, "q3": q3})
    ch.publish(x1, "k", b"seen by q1")
    ch.get(q1)  # exchange/routing key of a message that travelled x1 -> x2
    ch.call(spec.ExchangeUnbind(destination=x2, source=x1, routing_key="k"))
    ch.call(spec.ExchangeUnbind(destination=x2, source=x1, routing_key="never bound"))
    ch.publish(x1, "k", b"after unbind")
    ch.sync()
    drain_all(s, ch, {"q1": q1, "q2": q2, "q3": q3})
    # deleting an exchange removes the bindings where it is the source or the destination
    ch.call(spec.ExchangeDelete(exchange=x3))
    ch.publish(x2, "", b"after x3 deleted")
    ch.sync()
    drain_all(s, ch, {"q1": q1, "q2": q2, "q3": q3})


def scenario_exchange_bind_to_self(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x, q = s.x("self"), s.q("q")
    ch.ed(x, "fanout")
    ch.qd(q)
    ch.call(spec.ExchangeBind(destination=x, source=x))
    ch.bind(q, x)
    ch.publish(x, "", b"once")
    ch.sync()
    drain_all(s, ch, {"q": q})


# ------------------------------------------------------------------ alternate exchange

def scenario_alternate_exchange(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x, ae, ae2 = s.x("x"), s.x("ae"), s.x("ae2")
    q, qa, qa2 = s.q("q"), s.q("qa"), s.q("qa2")
    ch.ed(ae2, "fanout")
    ch.ed(ae, "direct", arguments={"alternate-exchange": ae2})
    ch.ed(x, "direct", arguments={"alternate-exchange": ae})
    for name in (q, qa, qa2):
        ch.qd(name)
    ch.bind(q, x, "k")
    ch.bind(qa, ae, "z")
    ch.bind(qa2, ae2)
    ch.call(spec.ConfirmSelect())
    ch.publish(x, "k", b"routed", mandatory=True)
    ch.publish(x, "z", b"to ae", mandatory=True)
    ch.publish(x, "y", b"to ae2 via ae", mandatory=True)
    ch.publish(ae, "y", b"straight to ae", mandatory=True)
    ch.confirms(4, label="confirms (no returns)")
    drain_all(s, ch, {"q": q, "qa": qa, "qa2": qa2})
    ch.publish(x, "y", b"look at me")
    ch.confirms(5)
    ch.get(qa2)  # exchange and routing key are the original ones


def scenario_alternate_exchange_missing_or_cyclic(s: Session) -> None:
    c = s.connect()
    ch = c.channel()
    x1, x2, x3 = s.x("x1"), s.x("x2"), s.x("x3")
    ch.ed(x1, "direct", arguments={"alternate-exchange": s.name("does-not-exist")})
    ch.ed(x2, "direct", arguments={"alternate-exchange": x3})
    ch.ed(x3, "direct", arguments={"alternate-exchange": x2})
    ch.publish(x1, "k", b"missing ae", mandatory=True)
    ch.publish(x2, "k", b"cyclic ae", mandatory=True)
    ch.publish(x1, "k", b"missing ae, not mandatory")
    ch.sync()
    c.channels[1].collect(label="returns")


def scenario_alternate_exchange_argument_types(s: Session) -> None:
    """alternate-exchange given as bytes ('x') or a number: which ones take effect."""
    c = s.connect()
    ch = c.channel()
    ae, qa = s.x("ae"), s.q("qa")
    ch.ed(ae, "fanout")
    ch.qd(qa)
    ch.bind(qa, ae)
    xb, xn = s.x("xb"), s.x("xn")
    ch.ed(xb, "direct", arguments={"alternate-exchange": ae.encode()})
    c.channel().ed(xn, "direct", arguments={"alternate-exchange": 5})
    ch = c.channel()
    ch.publish(xb, "k", b"via bytes ae", mandatory=True)
    ch.publish(xn, "k", b"via numeric ae", mandatory=True)
    ch.sync()
    drain_all(s, ch, {"qa": qa})


SCENARIOS = collect_scenarios(globals())
SCENARIOS.update({f"topic[{p}]": make_topic_scenario(p) for p in TOPIC_PATTERNS})


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matches_rabbitmq(scenario, differential):
    differential(scenario)
