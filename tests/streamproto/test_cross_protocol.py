"""A message published on one protocol and read on the other, on leveret and on RabbitMQ
3.10 with rabbitmq_stream: the same offsets, and what the reader gets must be what
RabbitMQ gives (its rabbit_msg_record conversion between AMQP 0-9-1 and AMQP 1.0)."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pika
from rstream import AMQPMessage, OffsetType, RawMessage
from rstream._pyamqp.message import Properties as Amqp10Properties
from streamproto_helpers import producer, read, sections, unique

HEADERS: dict[str, Any] = {
    "text": "hello", "number": 7, "big": 1 << 40, "negative": -5, "flag": True,
    "raw": b"\x00\x01", "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
    "nothing": None, "table": {"a": 1}, "array": [1, 2],
}


def _publish_amqp(url: str, stream: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
        ch.confirm_delivery()
        ch.basic_publish("", stream, b"plain")
        ch.basic_publish("", stream, b"full", pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8", headers=HEADERS,
            delivery_mode=2, priority=3, correlation_id="corr-1", reply_to="replies",
            expiration="60000", message_id="msg-1", timestamp=1_700_000_000,
            type="order.created", user_id="guest", app_id="shop"))
        ch.queue_bind(stream, "amq.direct", "rk")
        ch.basic_publish("amq.direct", "rk", b"routed")
    finally:
        conn.close()


def _consume_amqp(url: str, stream: str, count: int) -> list[tuple[Any, ...]]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    got: list[tuple[Any, ...]] = []
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=100)
        for method, props, body in ch.consume(stream, arguments={"x-stream-offset": "first"},
                                              inactivity_timeout=10):
            if method is None:
                break
            got.append((method.exchange, method.routing_key, _props(props), body))
            ch.basic_ack(method.delivery_tag)
            if len(got) == count:
                break
        ch.cancel()
    finally:
        conn.close()
    return got


def _props(p: pika.BasicProperties) -> dict[str, Any]:
    return {k: v for k, v in vars(p).items() if v is not None}


async def test_amqp091_publish_read_over_the_stream_protocol(leveret, stream_rabbit) -> None:
    stream = unique("cross")
    rabbit_url = stream_rabbit.url
    seen = {}
    for name, url, port in (("leveret", leveret.amqp_url, leveret.stream_port),
                            ("rabbitmq", rabbit_url, stream_rabbit.stream_port)):
        await asyncio.to_thread(_publish_amqp, url, stream)
        t = type("T", (), {"host": "127.0.0.1", "stream_port": port})()
        got = await read(t, stream, OffsetType.FIRST, count=3, settle=0.2)
        seen[name] = [(offset, sections(raw)) for offset, raw in got]
    assert [o for o, _ in seen["leveret"]] == [0, 1, 2]
    assert seen["leveret"] == seen["rabbitmq"]


async def test_stream_publish_read_over_amqp091(leveret, stream_rabbit) -> None:
    stream = unique("cross")
    messages = [
        AMQPMessage(body=b"plain"),
        AMQPMessage(body=b"typed", properties=Amqp10Properties(
            message_id="m-1", user_id=b"guest", reply_to="replies", correlation_id=99,
            content_type="text/plain", content_encoding="gzip",
            creation_time=1_700_000_000_123, subject="ignored"),
            application_properties={"s": "text", "i": 5, "big": 1 << 40, "b": False,
                                    "x": b"bin", "d": 1.5}),
    ]
    seen = {}
    for name, t, url in (("leveret", leveret, leveret.amqp_url),
                         ("rabbitmq", type("T", (), {"host": "127.0.0.1", "stream_port":
                                                     stream_rabbit.stream_port})(),
                          stream_rabbit.url)):
        async with producer(t) as p:
            await p.create_stream(stream)
            for m in messages:
                await p.send_wait(stream, m)
        seen[name] = await asyncio.to_thread(_consume_amqp, url, stream, len(messages))
    assert seen["leveret"][1][2]["headers"]["x-stream-offset"] == 1
    assert seen["leveret"] == seen["rabbitmq"]


async def test_an_entry_that_is_not_amqp10_reads_as_its_bytes(leveret) -> None:
    """RabbitMQ 3.10 closes the AMQP connection (541) when a stream entry is not an AMQP
    1.0 message (a client may publish any bytes); leveret hands its bytes over as the
    body."""
    stream = unique("cross")
    async with producer(leveret) as p:
        await p.create_stream(stream)
        await p.send_wait(stream, RawMessage(b"not AMQP 1.0"))
    got = await asyncio.to_thread(_consume_amqp, leveret.amqp_url, stream, 1)
    assert got == [("", stream, {"headers": {"x-stream-offset": 0}}, b"not AMQP 1.0")]
