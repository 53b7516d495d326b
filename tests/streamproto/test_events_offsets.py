"""leveret.events replay readers keeping their offsets in the broker, over the stream
protocol (BrokerOffsetStore): on leveret with --stream-port and on RabbitMQ 3.10.8 with
rabbitmq_stream; the fallback when the stream port is not there (or is another broker's);
a reconnection after the stream connection is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from streamproto_helpers import Target, consumer, rabbit_target

from leveret.events import BrokerOffsetStore, Delivery, EventBus, StreamRetention
from leveret.events.stream_offsets import stream_url_for
from leveret.events.testing import eventually
from leveret.runtime.embedded import Broker


@pytest.fixture(params=["leveret", "rabbitmq"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "leveret":
        broker = Broker(port=0, stream_port=0, data_dir=tmp_path / "data")
        await broker.start()
        try:
            yield Target("leveret", "127.0.0.1", broker.stream_port or 0, broker.url, broker)
        finally:
            await broker.stop()
    else:
        yield rabbit_target(request.getfixturevalue("stream_rabbit"))


class Buses:
    """Buses on one exchange: a producer, and readers as separate processes would make
    them (each its own BrokerOffsetStore)."""

    def __init__(self, t: Target) -> None:
        self.t = t
        self.exchange = f"offsets-{uuid.uuid4().hex[:8]}"
        self.buses: list[EventBus] = []

    def bus(self, **kw: Any) -> EventBus:
        bus = EventBus(self.t.amqp_url, exchange=self.exchange, reconnect_interval=0.1, **kw)
        self.buses.append(bus)
        return bus

    def reader(self, name: str, seen: list[int], store: Any,
               offsets: list[int] | None = None) -> EventBus:
        bus = self.bus(offsets=store)

        @bus.replay("orders.*", name=name)
        async def handle(e: dict, d: Delivery) -> None:
            seen.append(e["n"])
            if offsets is not None:
                assert d.offset is not None
                offsets.append(d.offset)
        return bus

    async def close(self) -> None:
        for bus in self.buses:
            await bus.close(1.0)
        with contextlib.suppress(Exception):
            await self.buses[0].delete_topology(self.t.amqp_url)


@pytest.fixture
async def buses(target: Target) -> AsyncIterator[Buses]:
    made = Buses(target)
    try:
        yield made
    finally:
        await made.close()


async def publish(bus: EventBus, *numbers: int) -> None:
    for n in numbers:
        await bus.publish({"n": n}, routing_key="orders.placed")


async def stored_offset(t: Target, stream: str, name: str) -> int | None:
    """What the broker answers QueryOffset with, asked by rstream."""
    from rstream.exceptions import OffsetNotFound

    async with consumer(t) as c:
        try:
            return int(await c.query_offset(stream, name))
        except OffsetNotFound:
            return None


async def test_the_broker_keeps_the_offsets(buses: Buses) -> None:
    t = buses.t
    producer = buses.bus(keep=StreamRetention())
    await producer.connect()
    await publish(producer, 0, 1, 2, 3, 4)
    stream = f"{buses.exchange}.stream"
    name, seen, offsets = f"mailer-{uuid.uuid4().hex[:6]}", [], []
    first = buses.reader(name, seen, BrokerOffsetStore(port=t.stream_port), offsets)
    await first.start()
    await eventually(lambda: seen == [0, 1, 2, 3, 4])
    await first.close()
    await eventually_async(lambda: stored_offset(t, stream, name), offsets[-1])

    await publish(producer, 5, 6)
    second = buses.reader(name, seen, BrokerOffsetStore(port=t.stream_port), offsets)
    await second.start()  # (a new process: the broker is all it needs)
    await eventually(lambda: len(seen) == 7)
    await asyncio.sleep(0.3)
    assert seen == [0, 1, 2, 3, 4, 5, 6]
    await second.close()
    # (RabbitMQ writes stored offsets into the stream, where they take offsets too: the
    # events after them are further on than on leveret, whose offsets stay dense)
    await eventually_async(lambda: stored_offset(t, stream, name), offsets[-1])
    if t.kind == "leveret":
        assert offsets == [0, 1, 2, 3, 4, 5, 6]


async def eventually_async(read: Any, wanted: Any, timeout: float = 20.0) -> None:
    """``await read()`` == wanted within ``timeout`` (RabbitMQ stores offsets after a
    moment: StoreOffset has no answer)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (got := await read()) != wanted:
        if loop.time() > deadline:
            raise AssertionError(f"{got!r} != {wanted!r}")
        await asyncio.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_stream_port_falls_back_with_a_log_line(
        buses: Buses, caplog: pytest.LogCaptureFixture) -> None:
    producer = buses.bus(keep=StreamRetention())
    await producer.connect()
    await publish(producer, 0, 1)
    store = BrokerOffsetStore(port=free_port())
    seen: list[int] = []
    reader = buses.reader("fallback", seen, store)
    with caplog.at_level(logging.WARNING, "leveret.events"):
        await reader.start()
        await eventually(lambda: seen == [0, 1])
    assert store.using_fallback
    assert await store.fallback.load("fallback") == 1
    assert "not usable" in caplog.text and "MemoryOffsetStore" in caplog.text


async def test_another_brokers_stream_port_is_not_used(
        tmp_path: Path, stream_rabbit: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A bus on leveret told RabbitMQ's stream port (a wrong URL): the cluster names
    differ, so its offsets stay out of the other broker."""
    broker = Broker(port=0, stream_port=0, data_dir=tmp_path / "data")
    await broker.start()
    made = Buses(Target("leveret", "127.0.0.1", broker.stream_port or 0, broker.url, broker))
    try:
        producer = made.bus(keep=StreamRetention())
        await producer.connect()
        await publish(producer, 0)
        url = stream_url_for(stream_rabbit.url, stream_rabbit.stream_port)
        store = BrokerOffsetStore(url)
        seen: list[int] = []
        with caplog.at_level(logging.WARNING, "leveret.events"):
            await made.reader("elsewhere", seen, store).start()
            await eventually(lambda: seen == [0])
        assert store.using_fallback
        assert "not of the bus's" in caplog.text
    finally:
        await made.close()
        await broker.stop()


async def test_a_lost_stream_connection_is_reconnected(tmp_path: Path) -> None:
    broker = Broker(port=0, stream_port=0, data_dir=tmp_path / "data")
    await broker.start()
    made = Buses(Target("leveret", "127.0.0.1", broker.stream_port or 0, broker.url, broker))
    try:
        producer = made.bus(keep=StreamRetention())
        await producer.connect()
        await publish(producer, 0, 1)
        store = BrokerOffsetStore(port=broker.stream_port or 0)
        seen: list[int] = []
        reader = made.reader("reconnecting", seen, store)
        await reader.start()
        await eventually(lambda: seen == [0, 1])
        for conn in broker.stream_connections():
            conn.shut_down("test")  # as the management API's DELETE does
        await eventually(lambda: not broker.stream_connections())
        await publish(producer, 2, 3)
        await eventually(lambda: seen == [0, 1, 2, 3])
        assert not reader.readers[0].error
        stream = f"{made.exchange}.stream"
        queue = broker.node.vhosts["/"].queues[stream]
        await eventually(lambda: queue.tracking.offsets.get("reconnecting") == 3)
    finally:
        await made.close()
        await broker.stop()


def test_stream_urls_and_the_default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stream_url_for("amqp://u:p%40ss@host:5673/v%2Fh") == \
        "rabbitmq-stream://u:p%40ss@host:5552/v%2Fh"
    assert stream_url_for("amqps://h/", 5551) == "rabbitmq-stream+tls://h:5551/"
    assert stream_url_for("amqp://[::1]:5672") == "rabbitmq-stream://[::1]:5552/"
    from leveret.events.bus import OFFSETS_ENV, default_offsets
    from leveret.events.offsets import MemoryOffsetStore
    from leveret.events.stream_offsets import StreamClient

    client = StreamClient("rabbitmq-stream://u:p%40ss@host:5553/v%2Fh")
    assert (client.user, client.password, client.port, client.vhost) == \
        ("u", "p@ss", 5553, "v/h")
    with pytest.raises(ValueError, match="rabbitmq-stream://"):
        StreamClient("amqp://host/")
    monkeypatch.delenv(OFFSETS_ENV, raising=False)
    assert isinstance(default_offsets(), MemoryOffsetStore)
    monkeypatch.setenv(OFFSETS_ENV, "auto")
    auto = default_offsets()
    assert isinstance(auto, BrokerOffsetStore) and auto.url is None
    monkeypatch.setenv(OFFSETS_ENV, "rabbitmq-stream://h:5552/")
    assert getattr(default_offsets(), "url", None) == "rabbitmq-stream://h:5552/"
