"""Stream queues where leveret deliberately differs from RabbitMQ 3.10 (not differential).

1. Inputs on which RabbitMQ 3.10.8 crashes the channel process and closes the whole
   connection with ``541 INTERNAL_ERROR`` (reply text just "INTERNAL_ERROR", class/method
   0/0), checked on the reference broker; leveret answers a clear 406 PRECONDITION_FAILED
   channel error instead:

   * a message with a decimal (``D``) header value routed to a stream (RabbitMQ cannot
     convert it to AMQP 1.0); a classic queue takes the same message;
   * ``basic.recover`` (requeue=true) on a channel with unacknowledged stream deliveries
     (with nothing unacknowledged RabbitMQ answers recover-ok, and requeue=false is its
     usual 540 "NOT_IMPLEMENTED - requeue=false": both differential, in
     tests/compat/test_compat_streams_consume.py);
   * an ``x-stream-offset`` longstr that does not start with a digit ("bogus", "FIRST",
     " first", "Next", "", "-1", "+5"); strings that start with digits but are not an
     interval ("10x") are RabbitMQ's own 406
     ``{invalid_stream_offset_arg,{longstr,<<"10x">>}}``, and leveret uses that text for both;
   * an ``x-max-age`` longstr that does not start with a digit ("", "s", "-1s", "+1s",
     " 1s"); other bad ages ("1d", "10ms", "0s", "100", "1.5h") are RabbitMQ's 406
     ``invalid arg 'x-max-age' for queue 'Q' in vhost 'V': invalid_max_age``, and leveret
     uses that text for both.

   ``test_rabbitmq_answers_541`` checks these claims when the suite runs against RabbitMQ
   (LEVERET_TEST_URL at the reference); the 406 tests run against leveret only.

2. Stream filtering over AMQP 0-9-1 (RabbitMQ 3.13+; 3.10 ignores all three names):
   publish with header ``x-stream-filter-value`` (a string), consume with ``x-stream-filter``
   (a string or an array of strings) and ``x-stream-match-unfiltered`` (bool). RabbitMQ
   filters per chunk with a Bloom filter, so its 0-9-1 consumers must filter again
   client-side; leveret filters exactly: a consumer gets the messages whose filter value
   is one of its filters, plus the messages without a filter value when
   match-unfiltered is true, each with its original ``x-stream-offset``.
"""

from __future__ import annotations

import decimal
import time
from typing import Any

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

from ._features import server_product

STREAM = {"x-queue-type": "stream"}


@pytest.fixture(scope="module")
def product(amqp_url: str) -> str:
    return server_product(amqp_url)


@pytest.fixture
def leveret_only(product: str) -> None:
    if product != "leveret":
        pytest.skip(f"leveret's own behaviour; the broker under test is {product!r}")


@pytest.fixture
def vhost(amqp_params) -> str:
    return amqp_params.vhost


# -- helpers ---------------------------------------------------------------------------------


def declare_stream(ch, queue: str, **arguments: Any) -> None:
    ch.queue_declare(queue, durable=True, arguments={**STREAM, **arguments})


def publish_confirmed(ch, queue: str, body: bytes, headers: dict[str, Any] | None = None) -> None:
    """On a channel in confirm mode: basic_publish waits for the confirm."""
    ch.basic_publish("", queue, body, pika.BasicProperties(headers=headers))


def consume(conn: pika.BlockingConnection, queue: str, arguments: dict[str, Any],
            expect: int, prefetch: int = 100, quiet: float = 0.3,
            timeout: float = 5.0) -> list[tuple[bytes, int, dict[str, Any]]]:
    """Subscribe on a new channel; (body, x-stream-offset, headers) of each delivery until
    ``expect`` arrived and nothing more came for ``quiet`` seconds (or ``timeout``)."""
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    got: list[tuple[bytes, int, dict[str, Any]]] = []

    def on_message(channel, method, props, body) -> None:
        headers = dict(props.headers or {})
        got.append((body, headers.get("x-stream-offset"), headers))
        channel.basic_ack(method.delivery_tag)

    tag = ch.basic_consume(queue, on_message, arguments=arguments)
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    quiet_until = time.monotonic() + quiet
    while time.monotonic() < quiet_until:
        conn.process_data_events(time_limit=0.05)
    ch.basic_cancel(tag)
    ch.close()
    return got


def invalid_arg(key: str, queue: str, vhost: str, what: str) -> str:
    return (f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{queue}' in vhost "
            f"'{vhost}': {what}")


# -- 1. RabbitMQ's 541s, leveret's 406s --------------------------------------------------------


def test_decimal_header_is_refused(leveret_only, connect, names) -> None:
    conn = connect()
    q, classic = names.queue(), names.queue()
    ch = conn.channel()
    declare_stream(ch, q)
    ch.queue_declare(classic)
    # a classic queue takes it
    ch.basic_publish("", classic, b"to classic",
                     pika.BasicProperties(headers={"price": decimal.Decimal("1.50")}))
    _, _, body = ch.basic_get(classic, auto_ack=True)
    assert body == b"to classic"
    ch.basic_publish("", q, b"to stream",
                     pika.BasicProperties(headers={"ok": 1, "price": decimal.Decimal("1.50")}))
    with pytest.raises(ChannelClosedByBroker) as err:
        ch.queue_declare(q, passive=True)
    assert err.value.reply_code == 406
    assert err.value.reply_text == ("PRECONDITION_FAILED - stream queues cannot store decimal "
                                    "header values (header 'price')")
    # the connection goes on, and the stream holds only what was accepted
    pub = conn.channel()
    pub.confirm_delivery()
    publish_confirmed(pub, q, b"after", {"plain": "yes"})
    got = consume(conn, q, {"x-stream-offset": "first"}, expect=1)
    assert [body for body, _, _ in got] == [b"after"]


def test_recover_with_unacked_stream_deliveries_is_refused(leveret_only, connect, names) -> None:
    conn = connect()
    q = names.queue()
    ch = conn.channel()
    declare_stream(ch, q)
    ch.confirm_delivery()
    publish_confirmed(ch, q, b"m0")
    publish_confirmed(ch, q, b"m1")
    cons = conn.channel()
    cons.basic_qos(prefetch_count=10)
    got: list[bytes] = []
    cons.basic_consume(q, lambda c, m, p, b: got.append(b),
                       arguments={"x-stream-offset": "first"})
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert got == [b"m0", b"m1"]
    with pytest.raises(ChannelClosedByBroker) as err:
        cons.basic_recover(requeue=True)
    assert err.value.reply_code == 406
    assert err.value.reply_text == ("PRECONDITION_FAILED - basic.recover is not supported by "
                                    "stream queues")
    # a channel error only: the connection goes on
    assert conn.channel().queue_declare(q, passive=True)


OFFSETS_WITHOUT_DIGITS = ["bogus", "FIRST", " first", "Next", "", "-1", "+5"]


@pytest.mark.parametrize("offset", OFFSETS_WITHOUT_DIGITS)
def test_offset_string_without_digits_is_refused(leveret_only, connect, names, vhost,
                                                 offset: str) -> None:
    conn = connect()
    q = names.queue()
    declare_stream(conn.channel(), q)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    with pytest.raises(ChannelClosedByBroker) as err:
        ch.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": offset})
    assert err.value.reply_code == 406
    assert err.value.reply_text == invalid_arg(
        "x-stream-offset", q, vhost, f'{{invalid_stream_offset_arg,{{longstr,<<"{offset}">>}}}}')
    assert conn.channel().queue_declare(q, passive=True)


def test_offset_string_text_is_rabbitmqs(leveret_only, connect, names, vhost) -> None:
    """The format above is RabbitMQ's own for "10x" (differential in the compat suite)."""
    conn = connect()
    q = names.queue()
    declare_stream(conn.channel(), q)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    with pytest.raises(ChannelClosedByBroker) as err:
        ch.basic_consume(q, lambda *a: None, arguments={"x-stream-offset": "10x"})
    assert err.value.reply_text == invalid_arg(
        "x-stream-offset", q, vhost, '{invalid_stream_offset_arg,{longstr,<<"10x">>}}')


AGES_WITHOUT_DIGITS = ["", "s", "-1s", "+1s", " 1s"]


@pytest.mark.parametrize("age", [*AGES_WITHOUT_DIGITS, "1d"])
def test_max_age_without_digits_is_refused(leveret_only, connect, names, vhost,
                                           age: str) -> None:
    """"1d" is RabbitMQ's own 406 (differential in the compat suite): the same text."""
    conn = connect()
    q = names.queue()
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as err:
        declare_stream(ch, q, **{"x-max-age": age})
    assert err.value.reply_code == 406
    assert err.value.reply_text == invalid_arg("x-max-age", q, vhost, "invalid_max_age")
    with pytest.raises(ChannelClosedByBroker) as err:
        conn.channel().queue_declare(q, passive=True)
    assert err.value.reply_code == 404


# -- RabbitMQ's side of the same inputs (runs only against RabbitMQ) ----------------------------


def _rabbitmq_541(conn: pika.BlockingConnection, action) -> None:
    with pytest.raises(ConnectionClosedByBroker) as err:
        action()
    assert (err.value.reply_code, err.value.reply_text) == (541, "INTERNAL_ERROR")


@pytest.mark.parametrize("case", ["decimal header", "recover", "offset bogus", "offset FIRST",
                                  "offset empty", "max-age empty", "max-age -1s"])
def test_rabbitmq_answers_541(product: str, connect, names, case: str) -> None:
    if product != "RabbitMQ":
        pytest.skip("documents RabbitMQ 3.10's answer")
    conn = connect()
    q = names.queue()
    ch = conn.channel()
    if case.startswith("max-age"):
        age = "" if case.endswith("empty") else case.split()[-1]
        _rabbitmq_541(conn, lambda: declare_stream(ch, q, **{"x-max-age": age}))
        return
    declare_stream(ch, q)
    ch.confirm_delivery()
    if case == "decimal header":
        props = pika.BasicProperties(headers={"price": decimal.Decimal("1.50")})
        _rabbitmq_541(conn, lambda: ch.basic_publish("", q, b"x", props))
        return
    publish_confirmed(ch, q, b"m0")
    cons = conn.channel()
    cons.basic_qos(prefetch_count=10)
    if case == "recover":
        got: list[bytes] = []
        cons.basic_consume(q, lambda c, m, p, b: got.append(b),
                           arguments={"x-stream-offset": "first"})
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        _rabbitmq_541(conn, lambda: cons.basic_recover(requeue=True))
        return
    offset = {"offset bogus": "bogus", "offset FIRST": "FIRST", "offset empty": ""}[case]
    _rabbitmq_541(conn, lambda: cons.basic_consume(q, lambda *a: None,
                                                   arguments={"x-stream-offset": offset}))


# -- 2. filtering (RabbitMQ 3.13+), exact in leveret ----------------------------------------------

# (body, filter value or None); offsets 0..5 in this order
FILTERED = [(b"a0", "a"), (b"b1", "b"), (b"n2", None), (b"a3", "a"), (b"b4", "b"), (b"n5", None)]


@pytest.fixture
def filtered_stream(leveret_only, connect, names) -> tuple[pika.BlockingConnection, str]:
    conn = connect()
    q = names.queue()
    ch = conn.channel()
    declare_stream(ch, q)
    ch.confirm_delivery()
    for body, value in FILTERED:
        publish_confirmed(ch, q, body, None if value is None else {"x-stream-filter-value": value})
    return conn, q


@pytest.mark.parametrize(("arguments", "expected"), [
    ({"x-stream-filter": "a"}, [(b"a0", 0), (b"a3", 3)]),
    ({"x-stream-filter": "b"}, [(b"b1", 1), (b"b4", 4)]),
    ({"x-stream-filter": ["a"]}, [(b"a0", 0), (b"a3", 3)]),
    ({"x-stream-filter": ["a", "b"]}, [(b"a0", 0), (b"b1", 1), (b"a3", 3), (b"b4", 4)]),
    ({"x-stream-filter": "c"}, []),
    ({"x-stream-filter": "a", "x-stream-match-unfiltered": False}, [(b"a0", 0), (b"a3", 3)]),
    ({"x-stream-filter": "a", "x-stream-match-unfiltered": True},
     [(b"a0", 0), (b"n2", 2), (b"a3", 3), (b"n5", 5)]),
    ({"x-stream-filter": ["a", "b"], "x-stream-match-unfiltered": True},
     [(b"a0", 0), (b"b1", 1), (b"n2", 2), (b"a3", 3), (b"b4", 4), (b"n5", 5)]),
    ({"x-stream-filter": "c", "x-stream-match-unfiltered": True}, [(b"n2", 2), (b"n5", 5)]),
    # no filter: everything, whatever match-unfiltered says
    ({}, [(b, i) for i, (b, _) in enumerate(FILTERED)]),
], ids=lambda v: repr(v) if isinstance(v, dict) else None)
def test_filtering_is_exact(filtered_stream, arguments: dict[str, Any],
                            expected: list[tuple[bytes, int]]) -> None:
    conn, q = filtered_stream
    got = consume(conn, q, {"x-stream-offset": "first", **arguments}, expect=len(expected))
    assert [(body, offset) for body, offset, _ in got] == expected


def test_filtering_with_an_integer_offset(filtered_stream) -> None:
    conn, q = filtered_stream
    got = consume(conn, q, {"x-stream-offset": 2, "x-stream-filter": "b"}, expect=1)
    assert [(body, offset) for body, offset, _ in got] == [(b"b4", 4)]


def test_filtering_applies_to_new_messages(filtered_stream) -> None:
    """A consumer from next gets only the matching messages published after it subscribed,
    and the delivered message keeps its x-stream-filter-value header."""
    conn, q = filtered_stream
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    got: list[tuple[bytes, dict[str, Any]]] = []

    def on_message(channel, method, props, body) -> None:
        got.append((body, dict(props.headers or {})))
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume(q, on_message, arguments={"x-stream-filter": "a"})
    pub = conn.channel()
    pub.confirm_delivery()
    publish_confirmed(pub, q, b"b6", {"x-stream-filter-value": "b"})
    publish_confirmed(pub, q, b"a7", {"x-stream-filter-value": "a"})
    publish_confirmed(pub, q, b"n8")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    conn.process_data_events(time_limit=0.3)
    assert [body for body, _ in got] == [b"a7"]
    assert got[0][1]["x-stream-offset"] == 7
    assert got[0][1]["x-stream-filter-value"] == "a"


def test_filtering_with_prefetch_one(filtered_stream) -> None:
    """Credit counts delivered (matching) messages only."""
    conn, q = filtered_stream
    got = consume(conn, q, {"x-stream-offset": "first", "x-stream-filter": "b"}, expect=2,
                  prefetch=1)
    assert [(body, offset) for body, offset, _ in got] == [(b"b1", 1), (b"b4", 4)]
