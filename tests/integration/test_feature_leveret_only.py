"""Leveret features that RabbitMQ 3.10 does not have (out of the box): the x-delayed-message
exchange type (as the community rabbitmq-delayed-message-exchange plugin has it) and
injectable time (``clock=ManualClock()``).

The whole module is skipped when the broker under test is not leveret (the ``product`` of
connection.start), e.g. with LEVERET_TEST_URL pointing at the reference RabbitMQ, which has
no delayed-message plugin. The ManualClock tests start brokers of their own.

x-delayed-message
* exchange.declare type "x-delayed-message" with the argument x-delayed-type naming the
  exchange type that routes (direct, fanout, topic, headers); a missing x-delayed-type is
  406 PRECONDITION_FAILED "Invalid argument, 'x-delayed-type' must be an existing exchange
  type"; an unknown one is what declaring that type would be (503 COMMAND_INVALID
  "unknown exchange type '<type>'", a connection error), as the plugin checks it with
  rabbit_exchange:check_type; x-delayed-type "x-delayed-message" is 406 "Invalid argument,
  'x-delayed-message' can't be used for 'x-delayed-type'" (plugin source,
  rabbit_exchange_type_delayed_message:validate/1);
* a message with an x-delay header (milliseconds, > 0) is held until due, then routed
  by the x-delayed-type rules with the bindings of that moment; without x-delay, or with
  x-delay <= 0, it is routed at once; due messages go in due order;
* mandatory: a message that would not route is returned (312 NO_ROUTE) at publish time,
  not when it falls due; one that would route is not returned.

injectable time
* ``leveret.Broker(port=0, clock=ManualClock())`` / ``BrokerThread(clock=ManualClock())``
  (``leveret.broker.clock``): TTLs, x-expires and x-delay read that clock only, and
  ``BrokerThread.advance(seconds)`` (or ``ManualClock.advance`` in the broker's loop) moves
  it and runs what fell due; real time passing changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pika
import pytest

from ._features import (
    get_all,
    get_eventually,
    ready,
    server_product,
    settle,
    still_exists,
    wait_until,
)

DELAYED = "x-delayed-message"


@pytest.fixture(scope="module", autouse=True)
def _leveret_only(amqp_url: str) -> None:
    product = server_product(amqp_url)
    if product != "leveret":
        pytest.skip(f"leveret-only features; the broker under test is {product!r}")


@pytest.fixture
def ch(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    return ch


def _delayed_exchange(ch, x: str, routing_type: str = "direct") -> None:
    ch.exchange_declare(x, DELAYED, arguments={"x-delayed-type": routing_type})


def _pub(ch, x: str, rk: str, body: bytes, delay: int | None = None, headers=None,
         **kw) -> None:
    h = dict(headers or {})
    if delay is not None:
        h["x-delay"] = delay
    ch.basic_publish(x, rk, body, pika.BasicProperties(headers=h or None), **kw)


# -- x-delayed-message: declaring ---------------------------------------------------------------


@pytest.mark.parametrize("routing_type", ["direct", "fanout", "topic", "headers"])
def test_declare_delayed_exchange(ch, names, routing_type):
    x = names.exchange()
    _delayed_exchange(ch, x, routing_type)
    _delayed_exchange(ch, x, routing_type)  # equivalent
    ch.exchange_declare(x, DELAYED, passive=True)


def test_missing_delayed_type_is_refused(conn, names):
    x = names.exchange()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().exchange_declare(x, DELAYED)
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing "
        "exchange type"
    )
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().exchange_declare(x, passive=True)
    assert info.value.reply_code == 404  # nothing was declared


def test_unknown_delayed_type_is_an_unknown_exchange_type(connect, names):
    c = connect()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        c.channel().exchange_declare(names.exchange(), DELAYED,
                                     arguments={"x-delayed-type": "nope"})
    assert info.value.reply_code == 503
    assert info.value.reply_text == "COMMAND_INVALID - unknown exchange type 'nope'"


def test_delayed_type_cannot_be_delayed_message(conn, names):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        conn.channel().exchange_declare(names.exchange(), DELAYED,
                                        arguments={"x-delayed-type": DELAYED})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for "
        "'x-delayed-type'"
    )


# -- x-delayed-message: delivery ---------------------------------------------------------------


def test_message_is_held_until_due_then_routed(ch, conn, names):
    x, q = names.exchange(), names.queue()
    _delayed_exchange(ch, x)
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    t0 = time.monotonic()
    _pub(ch, x, "k", b"later", delay=300)
    assert ready(conn, q) == 0
    _method, props, body = get_eventually(ch, q, timeout=5)
    assert body == b"later"
    assert time.monotonic() - t0 >= 0.25
    assert "x-delay" in props.headers


@pytest.mark.parametrize("delay", [None, 0, -100])
def test_no_positive_delay_routes_at_once(ch, conn, names, delay):
    x, q = names.exchange(), names.queue()
    _delayed_exchange(ch, x)
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    _pub(ch, x, "k", b"now", delay=delay)
    assert ready(conn, q) == 1


def test_routing_follows_the_delayed_type(ch, conn, names):
    topic, fan, hdr = names.exchange(), names.exchange(), names.exchange()
    _delayed_exchange(ch, topic, "topic")
    _delayed_exchange(ch, fan, "fanout")
    _delayed_exchange(ch, hdr, "headers")
    q_topic, q_other, q_fan, q_hdr = (names.queue() for _ in range(4))
    for q in (q_topic, q_other, q_fan, q_hdr):
        ch.queue_declare(q)
    ch.queue_bind(q_topic, topic, "a.*")
    ch.queue_bind(q_other, topic, "b.#")
    ch.queue_bind(q_fan, fan, "ignored")
    ch.queue_bind(q_hdr, hdr, "", arguments={"x-match": "all", "kind": "x"})
    _pub(ch, topic, "a.b", b"t", delay=50)
    _pub(ch, fan, "whatever", b"f", delay=50)
    _pub(ch, hdr, "", b"h-yes", delay=50, headers={"kind": "x"})
    _pub(ch, hdr, "", b"h-no", delay=50, headers={"kind": "y"})
    assert get_eventually(ch, q_topic)[2] == b"t"
    assert get_eventually(ch, q_fan)[2] == b"f"
    assert get_eventually(ch, q_hdr)[2] == b"h-yes"
    settle(conn, 0.2)
    assert (ready(conn, q_other), ready(conn, q_hdr)) == (0, 0)


def test_due_order_not_publish_order(ch, conn, names):
    x, q = names.exchange(), names.queue()
    _delayed_exchange(ch, x)
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    _pub(ch, x, "k", b"slow", delay=400)
    _pub(ch, x, "k", b"fast", delay=100)
    _pub(ch, x, "k", b"now")
    wait_until(lambda: ready(conn, q) == 3, 5, what="all three messages")
    assert get_all(ch, q) == [b"now", b"fast", b"slow"]


def test_bindings_are_those_of_when_it_falls_due(ch, conn, names):
    x, q = names.exchange(), names.queue()
    _delayed_exchange(ch, x)
    ch.queue_declare(q)
    _pub(ch, x, "k", b"bound late", delay=200)
    ch.queue_bind(q, x, "k")
    assert get_eventually(ch, q)[2] == b"bound late"


def test_mandatory_unroutable_is_returned_at_once(conn, names):
    ch = conn.channel()
    x = names.exchange()
    _delayed_exchange(ch, x)
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append((method, body)))
    t0 = time.monotonic()
    _pub(ch, x, "nobody", b"lost", delay=5000, mandatory=True)
    deadline = time.monotonic() + 2
    while not returned and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.01)
    assert returned, "no basic.return"
    assert time.monotonic() - t0 < 2  # long before the message would be due
    method, body = returned[0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (
        312, "NO_ROUTE", x, "nobody")
    assert body == b"lost"


def test_mandatory_unroutable_with_confirms(ch, names):
    x = names.exchange()
    _delayed_exchange(ch, x)
    with pytest.raises(pika.exceptions.UnroutableError):
        _pub(ch, x, "nobody", b"lost", delay=5000, mandatory=True)


def test_mandatory_routable_is_not_returned(conn, ch, names):
    x, q = names.exchange(), names.queue()
    _delayed_exchange(ch, x)
    ch.queue_declare(q)
    ch.queue_bind(q, x, "k")
    _pub(ch, x, "k", b"fine", delay=100, mandatory=True)  # no UnroutableError
    assert get_eventually(ch, q)[2] == b"fine"


# -- injectable time ---------------------------------------------------------------------------


@pytest.fixture
def clocked() -> Iterator[tuple]:
    """A broker of its own on a ManualClock, and a pika connection to it."""
    from leveret.broker.clock import ManualClock
    from leveret.testing import BrokerThread

    with BrokerThread(clock=ManualClock(start=1_700_000_000.0)) as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            yield broker, conn, ch
        finally:
            with contextlib.suppress(Exception):
                conn.close()


HOUR = 3600


def test_one_hour_message_ttl_in_milliseconds(clocked):
    broker, conn, ch = clocked
    t0 = time.monotonic()
    ch.queue_declare("q", arguments={"x-message-ttl": HOUR * 1000})
    ch.basic_publish("", "q", b"m")
    broker.advance(HOUR - 1)
    assert ready(conn, "q") == 1
    broker.advance(2)
    assert ready(conn, "q") == 0
    assert ch.basic_get("q", auto_ack=True)[0] is None
    assert time.monotonic() - t0 < 5


def test_one_hour_expiration_property(clocked):
    broker, conn, ch = clocked
    ch.queue_declare("q")
    ch.basic_publish("", "q", b"m", pika.BasicProperties(expiration=str(HOUR * 1000)))
    ch.basic_publish("", "q", b"keeps")
    broker.advance(HOUR - 1)
    assert ready(conn, "q") == 2
    broker.advance(2)
    assert get_all(ch, "q") == [b"keeps"]


def test_real_time_does_not_expire_anything(clocked):
    broker, conn, ch = clocked
    ch.queue_declare("q", arguments={"x-message-ttl": 50})
    ch.basic_publish("", "q", b"m")
    time.sleep(0.2)  # four TTLs of real time: the manual clock has not moved
    assert ready(conn, "q") == 1
    broker.advance(0.06)
    assert ready(conn, "q") == 0


def test_expired_dead_letter_after_an_hour(clocked):
    broker, _conn, ch = clocked
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare("dlq")
    ch.queue_bind("dlq", "dlx")
    ch.queue_declare("q", arguments={"x-message-ttl": HOUR * 1000,
                                     "x-dead-letter-exchange": "dlx"})
    ch.basic_publish("", "q", b"m")
    broker.advance(HOUR + 0.5)
    _method, props, body = get_eventually(ch, "dlq", timeout=2)
    assert body == b"m"
    death = props.headers["x-death"][0]
    assert death["reason"] == "expired"
    # x-death time is wall time read from the broker's clock (a 'T' timestamp, seconds)
    assert abs(death["time"].timestamp() - (1_700_000_000 + HOUR)) <= 1


def test_one_hour_queue_expiry(clocked):
    broker, conn, ch = clocked
    conn.channel().queue_declare("q", arguments={"x-expires": HOUR * 1000})
    broker.advance(HOUR - 1)
    assert still_exists(ch, "q")
    broker.advance(2)
    assert not still_exists(ch, "q")


def test_queue_expiry_counts_from_the_last_use(clocked):
    broker, conn, ch = clocked
    conn.channel().queue_declare("q", arguments={"x-expires": HOUR * 1000})
    consumer_ch = conn.channel()
    tag = consumer_ch.basic_consume("q", lambda *a: None, auto_ack=True)
    broker.advance(2 * HOUR)  # a consumer keeps it
    assert still_exists(ch, "q")
    consumer_ch.basic_cancel(tag)
    broker.advance(HOUR - 1)
    assert still_exists(ch, "q")
    conn.channel().basic_get("q", auto_ack=True)  # use: starts the hour again
    broker.advance(HOUR - 1)
    assert still_exists(ch, "q")
    broker.advance(2)
    assert not still_exists(ch, "q")


def test_one_hour_delay(clocked):
    broker, conn, ch = clocked
    ch.exchange_declare("delayed", DELAYED, arguments={"x-delayed-type": "direct"})
    ch.queue_declare("q")
    ch.queue_bind("q", "delayed", "k")
    for body, delay in ((b"two hours", 2 * HOUR * 1000), (b"one hour", HOUR * 1000)):
        ch.basic_publish("delayed", "k", body, pika.BasicProperties(headers={"x-delay": delay}))
    broker.advance(HOUR - 1)
    assert ready(conn, "q") == 0
    broker.advance(2)
    assert get_all(ch, "q") == [b"one hour"]
    broker.advance(HOUR)
    assert get_all(ch, "q") == [b"two hours"]


def test_advance_needs_a_manual_clock():
    from leveret.testing import BrokerThread

    with BrokerThread() as broker, pytest.raises(TypeError):
        broker.advance(1)


async def test_embedded_broker_with_a_manual_clock():
    import aio_pika

    import leveret
    from leveret.broker.clock import ManualClock

    clock = ManualClock()
    async with leveret.Broker(port=0, clock=clock) as broker:
        connection = await aio_pika.connect(broker.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                "q", arguments={"x-message-ttl": HOUR * 1000})
            await channel.default_exchange.publish(aio_pika.Message(b"m"), "q")
            await channel.declare_queue("q", passive=True)  # a round trip: it is enqueued
            clock.advance(HOUR - 1)  # we are in the broker's loop: timers run right here
            await asyncio.sleep(0)
            assert (await channel.declare_queue("q", passive=True)).declaration_result \
                .message_count == 1
            clock.advance(2)
            await asyncio.sleep(0)
            assert (await channel.declare_queue("q", passive=True)).declaration_result \
                .message_count == 0
            assert await queue.get(fail=False) is None
