"""Routing: direct, fanout, topic (every edge case) and headers (x-match all/any and the
-with-x variants, with value types compared as RabbitMQ compares them).

The expected tables were produced by RabbitMQ 3.10 (the oracle) and are the specification.
"""

from __future__ import annotations

import decimal

import pytest
from pamqp import commands as C

from ._raw import Typed, publish_with_headers_frames, queue_bind_payload, raw_frame
from ._util import declare_temp_queue, drain

# -- direct and fanout ---------------------------------------------------------------------------


def test_direct(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q1, q2, q3 = (declare_temp_queue(channel) for _ in range(3))
    channel.queue_bind(q1, x, "red")
    channel.queue_bind(q2, x, "red")
    channel.queue_bind(q2, x, "green")
    channel.queue_bind(q3, x, "")
    for key in ("red", "green", "blue", "", "RED"):
        channel.basic_publish(x, key, key.encode() or b"<empty>")
    assert drain(channel, q1) == [b"red"]
    assert drain(channel, q2) == [b"red", b"green"]
    assert drain(channel, q3) == [b"<empty>"]


def test_direct_same_binding_twice_is_one_binding(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q = declare_temp_queue(channel)
    channel.queue_bind(q, x, "k")
    channel.queue_bind(q, x, "k")
    channel.basic_publish(x, "k", b"once")
    assert drain(channel, q) == [b"once"]
    channel.queue_unbind(q, x, "k")
    channel.basic_publish(x, "k", b"unbound")
    assert drain(channel, q) == []


def test_unbind_missing_binding_is_ok(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    q = declare_temp_queue(channel)
    assert channel.queue_unbind(q, x, "never-bound").method.NAME == "Queue.UnbindOk"


def test_fanout_ignores_routing_key(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "fanout")
    q1, q2 = declare_temp_queue(channel), declare_temp_queue(channel)
    channel.queue_bind(q1, x, "ignored")
    channel.queue_bind(q2, x)
    channel.queue_bind(q2, x, "another")  # a second binding: still one copy
    channel.basic_publish(x, "whatever", b"1")
    channel.basic_publish(x, "", b"2")
    assert drain(channel, q1) == [b"1", b"2"]
    assert drain(channel, q2) == [b"1", b"2"]


def test_amq_direct_and_topic(channel):
    q = declare_temp_queue(channel)
    channel.queue_bind(q, "amq.direct", q)
    channel.queue_bind(q, "amq.topic", q + ".#")
    channel.basic_publish("amq.direct", q, b"direct")
    channel.basic_publish("amq.topic", q + ".x.y", b"topic")
    assert drain(channel, q) == [b"direct", b"topic"]
    channel.queue_unbind(q, "amq.direct", q)
    channel.queue_unbind(q, "amq.topic", q + ".#")


# -- topic -----------------------------------------------------------------------------------------

TOPIC_KEYS = [
    "",
    "a",
    "b",
    "a.b",
    "a.c",
    "a.b.c",
    "a.x.b",
    "a.x.y.b",
    "b.a",
    "a..b",
    "a.",
    ".",
    ".a",
    "..",
    "c.a.d",
    "a.b.b",
    "x.a",
    "a#",
    "a*",
    "#",
    "*",
    "a.#",
]
ALL_KEYS = set(TOPIC_KEYS)

# binding pattern -> the routing keys (of TOPIC_KEYS) it matches. Note: the empty routing key
# has no words at all, so '*' does not match it while '#' does; 'a..b' has an empty middle word.
TOPIC_MATCHES = {
    "#": ALL_KEYS,
    "*": {"a", "b", "a#", "a*", "#", "*"},
    "": {""},
    "a": {"a"},
    "a.b": {"a.b"},
    "a.*": {"a.b", "a.c", "a.", "a.#"},
    "*.b": {"a.b"},
    "a.#": {"a", "a.b", "a.c", "a.b.c", "a.x.b", "a.x.y.b", "a..b", "a.", "a.b.b", "a.#"},
    "#.b": {"b", "a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"},
    "#.a.#": {
        "a",
        "a.b",
        "a.c",
        "a.b.c",
        "a.x.b",
        "a.x.y.b",
        "b.a",
        "a..b",
        "a.",
        ".a",
        "c.a.d",
        "a.b.b",
        "x.a",
        "a.#",
    },
    "a.#.b": {"a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"},
    "a.*.b": {"a.x.b", "a..b", "a.b.b"},
    "*.*": {"a.b", "a.c", "b.a", "a.", ".", ".a", "x.a", "a.#"},
    "#.#": ALL_KEYS,
    "*.#": ALL_KEYS - {""},
    "#.*": ALL_KEYS - {""},
    "a.#.#.b": {"a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"},
    "a..b": {"a..b"},
    "a.*.*": {"a.b.c", "a.x.b", "a..b", "a.b.b"},
    "*.a": {"b.a", ".a", "x.a"},
    "a.b.#": {"a.b", "a.b.c", "a.b.b"},
    ".": {"."},
    "a.": {"a."},
    ".a": {".a"},
    "#.": {"a.", ".", ".."},
    ".#": {".", ".a", ".."},
    "*.": {"a.", "."},
    ".*": {".", ".a"},
    "a.#.*.b": {"a.x.b", "a.x.y.b", "a..b", "a.b.b"},
    "#.*.#": ALL_KEYS - {""},
    "a#": {"a#"},
    "a*": {"a*"},
    "#a": set(),
    "*a": set(),
}


@pytest.fixture
def topic_exchange(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    x = names.exchange()
    ch.exchange_declare(x, "topic")
    return ch, x


@pytest.mark.parametrize("pattern", list(TOPIC_MATCHES), ids=lambda p: repr(p))
def test_topic(topic_exchange, pattern):
    ch, x = topic_exchange
    q = declare_temp_queue(ch)
    ch.queue_bind(q, x, pattern)
    for key in TOPIC_KEYS:
        ch.basic_publish(x, key, key.encode())
    got = drain(ch, q)
    assert sorted(b.decode() for b in got) == sorted(TOPIC_MATCHES[pattern])
    # and in publishing order
    assert [b.decode() for b in got] == [k for k in TOPIC_KEYS if k in TOPIC_MATCHES[pattern]]


def test_topic_overlapping_bindings_deliver_once(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "topic")
    q = declare_temp_queue(channel)
    for pattern in ("#", "a.*", "a.b", "*.b", "a.#"):
        channel.queue_bind(q, x, pattern)
    channel.basic_publish(x, "a.b", b"once")
    assert drain(channel, q) == [b"once"]


def test_topic_unbind(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "topic")
    q = declare_temp_queue(channel)
    channel.queue_bind(q, x, "a.*")
    channel.queue_bind(q, x, "*.b")
    channel.queue_unbind(q, x, "a.*")
    channel.basic_publish(x, "a.c", b"no")
    channel.basic_publish(x, "c.b", b"yes")
    assert drain(channel, q) == [b"yes"]


def test_topic_long_keys(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "topic")
    q = declare_temp_queue(channel)
    words = ".".join(f"w{i}" for i in range(60))
    channel.queue_bind(q, x, "w0.#.w59")
    channel.basic_publish(x, words, b"long")
    channel.basic_publish(x, words + ".tail", b"no")
    assert drain(channel, q) == [b"long"]


# -- headers -------------------------------------------------------------------------------------
#
# Exact wire types matter, so bindings and messages are sent over a raw socket with
# hand-encoded field tables (Typed(tag, value) forces a type; plain ints are 'I').

T = Typed
D1 = decimal.Decimal(1)

HEADER_MESSAGES = {
    "noheaders": {},
    "a=1": {"a": 1},
    "a=1,b=2": {"a": 1, "b": 2},
    "a=1,b=3": {"a": 1, "b": 3},
    "b=2": {"b": 2},
    "a=str1": {"a": "1"},
    "a=true": {"a": True},
    "a=1.0d": {"a": 1.0},
    "a=1.0f": {"a": T("f", 1.0)},
    "a=b1": {"a": T("b", 1)},
    "a=l1": {"a": T("l", 1)},
    "a=dec1": {"a": T("D", D1)},
    "a=ts1": {"a": T("T", 1)},
    "a=void": {"a": None},
    "a=bytes": {"a": b"1"},
    "x-a=1": {"x-a": 1},
    "x-a=1,a=1": {"x-a": 1, "a": 1},
    "x-a=2,b=2": {"x-a": 2, "b": 2},
    "x-match=any,b=2": {"x-match": "any", "b": 2},
    "x-match=all-with-x": {"x-match": "all-with-x"},
    "a=nested": {"a": {"b": 1}},
    "a=list": {"a": [1, 2]},
}
ALL_MESSAGES = set(HEADER_MESSAGES)

HEADER_BINDINGS = {
    "none": {},
    "empty-any": {"x-match": "any"},
    "all a=1": {"a": 1},
    "all a=1 b=2": {"x-match": "all", "a": 1, "b": 2},
    "any a=1 b=2": {"x-match": "any", "a": 1, "b": 2},
    "all a=str1": {"a": "1"},
    "all a=void": {"a": None},
    "any a=void b=2": {"x-match": "any", "a": None, "b": 2},
    "all a=true": {"a": True},
    "all a=1.0d": {"a": 1.0},
    "all a=1.0f": {"a": T("f", 1.0)},
    "all a=b1": {"a": T("b", 1)},
    "all a=l1": {"a": T("l", 1)},
    "all a=u1": {"a": T("u", 1)},
    "all a=dec1": {"a": T("D", D1)},
    "all a=ts1": {"a": T("T", 1)},
    "all x-a=1": {"x-match": "all", "x-a": 1},
    "any x-a=1": {"x-match": "any", "x-a": 1},
    "all-with-x x-a=1": {"x-match": "all-with-x", "x-a": 1},
    "any-with-x x-a=1 b=2": {"x-match": "any-with-x", "x-a": 1, "b": 2},
    "all a=1 x-a=1": {"x-match": "all", "a": 1, "x-a": 1},
    "all-with-x empty": {"x-match": "all-with-x"},
    "any-with-x empty": {"x-match": "any-with-x"},
    "all a=bytes": {"a": b"1"},
    "all a=S-bytes1": {"a": T("S", b"1")},
    "all a=nested": {"a": {"b": 1}},
    "all a=list": {"a": [1, 2]},
}

# What RabbitMQ routes. Values compare like Erlang's ==: numbers of any width, floats and
# timestamps are equal when numerically equal; a decimal only equals a decimal; a bool only
# a bool; longstr and byte array compare as binaries; void in a binding only asks for presence.
# Binding keys starting with 'x-' are ignored by all/any, used by all-with-x/any-with-x.
HEADER_MATCHES = {
    "none": ALL_MESSAGES,
    "empty-any": set(),
    "all a=1": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all a=1 b=2": {"a=1,b=2"},
    "any a=1 b=2": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "b=2",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
        "x-a=2,b=2",
        "x-match=any,b=2",
    },
    "all a=str1": {"a=str1", "a=bytes"},
    "all a=void": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=str1",
        "a=true",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=dec1",
        "a=ts1",
        "a=void",
        "a=bytes",
        "x-a=1,a=1",
        "a=nested",
        "a=list",
    },
    "any a=void b=2": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "b=2",
        "a=str1",
        "a=true",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=dec1",
        "a=ts1",
        "a=void",
        "a=bytes",
        "x-a=1,a=1",
        "x-a=2,b=2",
        "x-match=any,b=2",
        "a=nested",
        "a=list",
    },
    "all a=true": {"a=true"},
    "all a=1.0d": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all a=1.0f": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all a=b1": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all a=l1": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all a=u1": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all a=dec1": {"a=dec1"},
    "all a=ts1": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all x-a=1": ALL_MESSAGES,
    "any x-a=1": set(),
    "all-with-x x-a=1": {"x-a=1", "x-a=1,a=1"},
    "any-with-x x-a=1 b=2": {
        "a=1,b=2",
        "b=2",
        "x-a=1",
        "x-a=1,a=1",
        "x-a=2,b=2",
        "x-match=any,b=2",
    },
    "all a=1 x-a=1": {
        "a=1",
        "a=1,b=2",
        "a=1,b=3",
        "a=1.0d",
        "a=1.0f",
        "a=b1",
        "a=l1",
        "a=ts1",
        "x-a=1,a=1",
    },
    "all-with-x empty": ALL_MESSAGES,
    "any-with-x empty": set(),
    "all a=bytes": {"a=str1", "a=bytes"},
    "all a=S-bytes1": {"a=str1", "a=bytes"},
    "all a=nested": {"a=nested"},
    "all a=list": {"a=list"},
}
assert set(HEADER_MATCHES) == set(HEADER_BINDINGS)


@pytest.fixture
def headers_exchange(raw, names):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    x = names.exchange()
    r.rpc(C.Exchange.Declare(exchange=x, exchange_type="headers"), C.Exchange.DeclareOk, 1)
    return r, x


@pytest.mark.parametrize("binding", list(HEADER_BINDINGS))
def test_headers(headers_exchange, binding):
    r, x = headers_exchange
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.send_bytes(raw_frame(1, 1, queue_bind_payload(q, x, "", HEADER_BINDINGS[binding])))
    r.expect(C.Queue.BindOk, 1)
    for name, headers in HEADER_MESSAGES.items():
        r.send_bytes(publish_with_headers_frames(1, x, "", headers, name.encode()))
        r.expect(C.Basic.Ack, 1)
    got = [b.decode() for b in r.drain(1, q)]
    assert set(got) == HEADER_MATCHES[binding]
    assert got == [m for m in HEADER_MESSAGES if m in HEADER_MATCHES[binding]]


def test_headers_ignores_routing_key(channel, names):
    x = names.exchange()
    channel.exchange_declare(x, "headers")
    q = declare_temp_queue(channel)
    channel.queue_bind(q, x, "some-key", arguments={"x-match": "any", "color": "red"})
    import pika

    channel.basic_publish(x, "other-key", b"red", pika.BasicProperties(headers={"color": "red"}))
    channel.basic_publish(x, "some-key", b"blue", pika.BasicProperties(headers={"color": "blue"}))
    assert drain(channel, q) == [b"red"]


def test_headers_with_pika_all_and_any(channel, names):
    import pika

    x = names.exchange()
    channel.exchange_declare(x, "headers")
    q_all, q_any = declare_temp_queue(channel), declare_temp_queue(channel)
    channel.queue_bind(q_all, x, arguments={"x-match": "all", "format": "pdf", "type": "report"})
    channel.queue_bind(q_any, x, arguments={"x-match": "any", "format": "pdf", "type": "report"})
    for body, headers in [
        (b"both", {"format": "pdf", "type": "report"}),
        (b"format", {"format": "pdf"}),
        (b"other", {"format": "zip", "type": "log"}),
        (b"none", None),
    ]:
        channel.basic_publish(x, "", body, pika.BasicProperties(headers=headers))
    assert drain(channel, q_all) == [b"both"]
    assert drain(channel, q_any) == [b"both", b"format"]


def test_headers_unbind_needs_the_same_arguments(channel, names):
    import pika

    x = names.exchange()
    channel.exchange_declare(x, "headers")
    q = declare_temp_queue(channel)
    args1 = {"x-match": "all", "a": "1"}
    args2 = {"x-match": "all", "b": "2"}
    channel.queue_bind(q, x, arguments=args1)
    channel.queue_bind(q, x, arguments=args2)
    channel.queue_unbind(q, x, arguments={"x-match": "all", "a": "other"})  # no such binding
    channel.basic_publish(x, "", b"a", pika.BasicProperties(headers={"a": "1"}))
    channel.queue_unbind(q, x, arguments=args1)
    channel.basic_publish(x, "", b"a-after", pika.BasicProperties(headers={"a": "1"}))
    channel.basic_publish(x, "", b"b", pika.BasicProperties(headers={"b": "2", "a": "1"}))
    assert drain(channel, q) == [b"a", b"b"]


def test_headers_bad_x_match(channel):
    import pika

    q = declare_temp_queue(channel)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.queue_bind(q, "amq.headers", arguments={"x-match": "some"})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        'PRECONDITION_FAILED - Invalid x-match field value <<"some">>; '
        "expected all, any, all-with-x, or any-with-x"
    )
