"""Super streams: an exchange whose bindings to streams carry x-stream-partition-order, as
RabbitMQ's plugin has them. Route and Partitions on leveret and on RabbitMQ 3.10.8 with
rabbitmq_stream (declared over AMQP 0-9-1, the way 3.10 clients make them), then rstream's
SuperStreamProducer and SuperStreamConsumer end to end, and CreateSuperStream /
DeleteSuperStream (RabbitMQ 3.13's commands, which 3.10 does not know)."""

from __future__ import annotations

import asyncio
from typing import Any

import mmh3
import pika
import pytest
from raw_client import RawClient
from rstream import (
    AMQPMessage,
    ConsumerOffsetSpecification,
    OffsetType,
    RouteType,
    SuperStreamConsumer,
    SuperStreamProducer,
    amqp_decoder,
    exceptions,
)
from rstream.superstream import SuperStreamCreationOption
from streamproto_helpers import unique, wait_for

from leveret.streamproto import frames as f

RABBIT_310_CANNOT_ROUTE = (
    "RabbitMQ 3.10.8 answers Route and Partitions without the response bit in the key "
    "(fixed in 3.11), so rstream's super stream clients cannot read them there")


def _declare(url: str, name: str) -> None:
    """A super stream as 3.10's clients declare one, and more bindings than a plain one has:
    orders out of sequence, one as a string, one missing, a stream bound twice, a classic
    queue bound with an order, and a topic and a fanout exchange over the same streams."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.exchange_declare(name, "direct", durable=True, arguments={"x-super-stream": True})
        for suffix, order in (("b", 1), ("a", 0), ("c", None), ("d", 5), ("e", "2")):
            stream = f"{name}-{suffix}"
            ch.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
            ch.queue_bind(stream, name, routing_key="k" + suffix,
                          arguments={} if order is None else {"x-stream-partition-order": order})
        ch.queue_declare(f"{name}-classic", durable=True)
        ch.queue_bind(f"{name}-classic", name, routing_key="ka",
                      arguments={"x-stream-partition-order": 3})
        ch.queue_bind(f"{name}-b", name, routing_key="ka",
                      arguments={"x-stream-partition-order": 7})
        ch.exchange_declare(f"{name}-topic", "topic", durable=True)
        ch.queue_bind(f"{name}-a", f"{name}-topic", routing_key="a.*")
        ch.queue_bind(f"{name}-b", f"{name}-topic", routing_key="*.b")
        ch.exchange_declare(f"{name}-fan", "fanout", durable=True)
        ch.queue_bind(f"{name}-a", f"{name}-fan")
    finally:
        conn.close()


def _delete(url: str, name: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        for suffix in ("a", "b", "c", "d", "e", "classic"):
            ch.queue_delete(f"{name}-{suffix}")
        for exchange in (name, f"{name}-topic", f"{name}-fan"):
            ch.exchange_delete(exchange)
    finally:
        conn.close()


async def test_route_and_partitions(target) -> None:
    name = unique("ss")
    await asyncio.to_thread(_declare, target.amqp_url, name)
    client = await RawClient.connect(target.stream_port)
    try:
        async def route(key: str, exchange: str) -> tuple[int, list[str]]:
            answer = await client.request(f.ROUTE, f.string(key) + f.string(exchange))
            # RabbitMQ 3.10 leaves the response bit out of this answer; leveret sets it.
            assert answer.response == (target.kind == "leveret")
            return answer.code, answer.strings()

        async def partitions(exchange: str) -> tuple[int, list[str]]:
            answer = await client.request(f.PARTITIONS, f.string(exchange))
            assert answer.response == (target.kind == "leveret")
            return answer.code, answer.strings()

        n = name
        # Route: the exchange's routing; only streams; names sorted.
        assert await route("ka", n) == (f.OK, [f"{n}-a", f"{n}-b"])
        assert await route("kb", n) == (f.OK, [f"{n}-b"])
        assert await route("kc", n) == (f.OK, [f"{n}-c"])
        assert await route("zz", n) == (f.OK, [])
        assert await route("a.b", f"{n}-topic") == (f.OK, [f"{n}-a", f"{n}-b"])
        assert await route("anything", f"{n}-fan") == (f.OK, [f"{n}-a"])
        assert await route(f"{n}-a", "") == (f.OK, [f"{n}-a"])  # the default exchange
        assert await route(f"{n}-classic", "") == (f.OK, [])
        assert await route("ka", f"{n}-missing") == (f.STREAM_DOES_NOT_EXIST, [])
        # Partitions: bound streams by partition order ("2" counts as 2), unordered last.
        assert await partitions(n) == (f.OK, [f"{n}-a", f"{n}-b", f"{n}-e", f"{n}-d",
                                              f"{n}-b", f"{n}-c"])
        assert await partitions(f"{n}-topic") == (f.OK, [f"{n}-b", f"{n}-a"])
        assert await partitions(f"{n}-fan") == (f.OK, [f"{n}-a"])
        assert await partitions(f"{n}-missing") == (f.STREAM_DOES_NOT_EXIST, [])
        assert await partitions(f"{n}-a") == (f.STREAM_DOES_NOT_EXIST, [])  # a stream
    finally:
        await client.close()
        await asyncio.to_thread(_delete, target.amqp_url, name)


def _hash_partition(key: str, partitions: int) -> int:
    """rstream's hash routing (the Java client's): murmur3 of the key's UTF-16 bytes."""
    digest = mmh3.hash_bytes(bytes(key, "UTF-16"), 104729)
    return int.from_bytes(digest, "little", signed=False) % partitions


async def test_super_stream_producer_and_consumer(target) -> None:
    if target.kind == "rabbitmq":
        pytest.skip(RABBIT_310_CANNOT_ROUTE)
    name = unique("orders")
    kw: dict[str, Any] = {"port": target.stream_port, "username": "guest",
                          "password": "guest", "super_stream": name}

    async def key(message: AMQPMessage) -> str:
        return str(message.application_properties["id"])

    async with SuperStreamProducer(
            target.host, routing=RouteType.Hash, routing_extractor=key,
            super_stream_creation_option=SuperStreamCreationOption(n_partitions=3),
            **kw) as producer:
        for i in range(60):
            await producer.send(AMQPMessage(body=f"m{i}".encode(),
                                            application_properties={"id": str(i)}))
    got: list[tuple[str, int, bytes]] = []

    async def on_message(message: AMQPMessage, ctx: Any) -> None:
        got.append((ctx.stream, ctx.offset, bytes(amqp_decoder(message).body)))

    consumer = SuperStreamConsumer(target.host, **kw)
    await consumer.start()
    try:
        await consumer.subscribe(on_message, offset_specification=ConsumerOffsetSpecification(
            OffsetType.FIRST))
        await wait_for(lambda: len(got) >= 60)
    finally:
        await consumer.close()
    by_stream: dict[str, list[bytes]] = {}
    for stream, _offset, body in sorted(got):
        by_stream.setdefault(stream, []).append(body)
    expected: dict[str, list[bytes]] = {}
    for i in range(60):
        expected.setdefault(f"{name}-{_hash_partition(str(i), 3)}", []).append(f"m{i}".encode())
    assert by_stream == expected  # each message in the partition its key hashes to, in order


async def test_create_and_delete_super_stream_commands(target) -> None:
    """CreateSuperStream and DeleteSuperStream came with RabbitMQ 3.13: 3.10 closes the
    connection ("unknown frame"); leveret serves them as 3.13 does."""
    name = unique("ss")
    client = await RawClient.connect(target.stream_port)
    create = (f.string(name) + f.array([f.string(f"{name}-0"), f.string(f"{name}-1")])
              + f.array([f.string("0"), f.string("1")]) + f.properties({"max-age": "1h"}))
    try:
        if target.kind == "rabbitmq":
            client.send(f.request(f.CREATE_SUPER_STREAM, 7, create))
            close = await client.wait_for(lambda fr: fr.key == f.CLOSE)
            assert close.code == f.UNKNOWN_FRAME
            return
        answer = await client.request(f.CREATE_SUPER_STREAM, create)
        assert answer.code == f.OK
        assert (await client.request(f.CREATE_SUPER_STREAM, create)).code == \
            f.STREAM_ALREADY_EXISTS
        partitions = await client.request(f.PARTITIONS, f.string(name))
        assert partitions.strings() == [f"{name}-0", f"{name}-1"]
        route = await client.request(f.ROUTE, f.string("1") + f.string(name))
        assert route.strings() == [f"{name}-1"]
        broker = target.broker
        vhost = broker.node.vhosts["/"]
        exchange = vhost.exchanges[name]
        assert (exchange.type, exchange.durable, exchange.arguments) == \
            ("direct", True, {"x-super-stream": True})
        assert vhost.queues[f"{name}-0"].arguments["x-max-age"] == "1h"
        mismatched = (f.string(unique("ss")) + f.array([f.string("a")]) + f.array([]) +
                      f.properties({}))
        assert (await client.request(f.CREATE_SUPER_STREAM, mismatched)).code == \
            f.PRECONDITION_FAILED
        assert (await client.request(f.DELETE_SUPER_STREAM, f.string(name))).code == f.OK
        assert name not in vhost.exchanges and f"{name}-0" not in vhost.queues
        assert (await client.request(f.DELETE_SUPER_STREAM, f.string(name))).code == \
            f.STREAM_DOES_NOT_EXIST
    finally:
        await client.close()


async def test_rstream_creates_and_deletes_a_super_stream(leveret) -> None:
    name = unique("ss")
    kw: dict[str, Any] = {"port": leveret.stream_port, "username": "guest",
                          "password": "guest", "super_stream": name}

    async def key(message: AMQPMessage) -> str:
        return "k"

    producer = SuperStreamProducer(leveret.host, routing_extractor=key, **kw)
    await producer.start()
    try:
        await producer.create_super_stream(name, binding_keys=["eu", "us"])
        with pytest.raises(exceptions.StreamAlreadyExists):
            await producer.create_super_stream(name, binding_keys=["eu", "us"])
        queues = leveret.broker.node.vhosts["/"].queues
        assert f"{name}-eu" in queues and f"{name}-us" in queues
        await producer.delete_super_stream(name)
        assert f"{name}-eu" not in queues
        with pytest.raises(exceptions.StreamDoesNotExist):
            await producer.delete_super_stream(name)
    finally:
        await producer.close()


async def test_super_stream_management_needs_permissions(leveret) -> None:
    """Configure on the exchange and the streams, read on the exchange, write on the
    streams (RabbitMQ's check_super_stream_management_permitted)."""
    node = leveret.broker.node
    node.add_user("limited", "pw")
    node.set_permissions("/", "limited", configure="^ss-", write="^nothing$", read=".*")
    name = unique("ss")
    create = (f.string(name) + f.array([f.string(f"{name}-0")]) + f.array([f.string("0")])
              + f.properties({}))
    client = await RawClient.connect(leveret.stream_port, user="limited", password="pw")
    try:
        assert (await client.request(f.CREATE_SUPER_STREAM, create)).code == f.ACCESS_REFUSED
        assert name not in node.vhosts["/"].exchanges
        node.set_permissions("/", "limited", configure="^ss-", write="^ss-", read=".*")
        assert (await client.request(f.CREATE_SUPER_STREAM, create)).code == f.OK
        node.set_permissions("/", "limited", configure="^nothing$", write=".*", read=".*")
        assert (await client.request(f.DELETE_SUPER_STREAM, f.string(name))).code == \
            f.ACCESS_REFUSED
    finally:
        await client.close()
