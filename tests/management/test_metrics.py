"""GET /metrics: scrape a real broker after publishing, fetching, consuming and acking over
AMQP, parse the exposition with prometheus_client's parser and check the values."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from leveret import __version__
from leveret.runtime.embedded import Broker


@dataclass
class Scraped:
    """Samples by name and labels, e.g. scraped["rabbitmq_queue_messages_ready",
    {"vhost": "/", "queue": "work"}]."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]
    content_type: str

    def __getitem__(self, key: tuple[str, dict[str, str]]) -> float:
        name, labels = key
        return self.samples[name, frozenset(labels.items())]

    def value(self, name: str) -> float:
        return self[name, {}]

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for sample, labels in self.samples if sample == name]


@dataclass
class Running:
    broker: Broker
    metrics_url: str

    async def scrape(self, accept: str | None = None) -> Scraped:
        headers = {"Accept": accept} if accept else {}
        async with aiohttp.ClientSession() as session, \
                session.get(self.metrics_url, headers=headers) as response:
            assert response.status == 200
            text = await response.text()
            content_type = response.headers["Content-Type"]
        if content_type.startswith("application/openmetrics-text"):
            from prometheus_client.openmetrics.parser import (
                text_string_to_metric_families as openmetrics_families,
            )
            families = list(openmetrics_families(text))
        else:
            families = list(text_string_to_metric_families(text))
        samples = {(s.name, frozenset(s.labels.items())): s.value
                   for family in families for s in family.samples}
        return Scraped(samples, {f.name: f.type for f in families}, content_type)


@pytest.fixture
def start_broker(tmp_path: Path) -> Any:
    """``await start_broker(**kwargs)``: a broker with its management server (which mounts
    /metrics), stopped at the end of the test."""
    started: list[Broker] = []

    async def start(**kwargs: Any) -> Running:
        broker = Broker(port=0, management_port=0, data_dir=tmp_path, **kwargs)
        await broker.start()
        started.append(broker)
        assert broker.management_url is not None
        return Running(broker, f"{broker.management_url.rstrip('/')}/metrics")

    async def stop_all() -> None:
        while started:
            await started.pop().stop()

    start.stop_all = stop_all  # type: ignore[attr-defined]
    return start


@pytest.fixture
async def running(start_broker: Any) -> AsyncIterator[Running]:
    try:
        yield await start_broker()
    finally:
        await start_broker.stop_all()


async def test_queue_depths_and_counters(running: Running) -> None:
    connection = await aio_pika.connect(running.broker.url)
    async with connection:
        channel = await connection.channel()  # publisher confirms are on by default
        work = await channel.declare_queue("work")
        idle = await channel.declare_queue("idle")
        for i in range(5):
            await channel.default_exchange.publish(aio_pika.Message(f"message-{i}".encode()),
                                                   routing_key="work")
        first = await work.get(no_ack=False)
        second = await work.get(no_ack=False)
        await first.ack()
        await second.nack(requeue=True)              # back at the head, redelivered
        again = await work.get(no_ack=False)         # the same message, redelivered
        assert again.redelivered and again.body == second.body
        await work.get(no_ack=True)
        await work.get(no_ack=True)
        await work.declare()  # a round trip: the broker has handled the ack and nack

        consumer_channel = await connection.channel()
        received: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await idle.bind("amq.fanout")
        await (await consumer_channel.get_queue("idle")).consume(received.put)
        await (await channel.get_exchange("amq.fanout")).publish(
            aio_pika.Message(b"to-idle"), routing_key="")
        delivered = await asyncio.wait_for(received.get(), 5)
        assert delivered.body == b"to-idle"

        m = await running.scrape()
        work_labels = {"vhost": "/", "queue": "work"}
        idle_labels = {"vhost": "/", "queue": "idle"}
        # 5 published, 1 acked, 2 fetched without ack: 1 ready and 1 awaiting its ack
        assert m["rabbitmq_queue_messages_ready", work_labels] == 1
        assert m["rabbitmq_queue_messages_unacked", work_labels] == 1
        assert m["rabbitmq_queue_messages", work_labels] == 2
        assert m["rabbitmq_queue_messages_ready_bytes", work_labels] == len(b"message-0")
        assert m["rabbitmq_queue_messages_unacked_bytes", work_labels] == len(b"message-0")
        assert m["rabbitmq_queue_messages_bytes", work_labels] == 2 * len(b"message-0")
        assert m["rabbitmq_queue_consumers", work_labels] == 0
        assert m["rabbitmq_queue_consumers", idle_labels] == 1
        assert m["rabbitmq_queue_messages_unacked", idle_labels] == 1

        assert m["rabbitmq_queue_messages_published_total", work_labels] == 5
        assert m["rabbitmq_channel_get_ack_total", work_labels] == 3
        assert m["rabbitmq_channel_get_total", work_labels] == 2
        assert m["rabbitmq_channel_messages_redelivered_total", work_labels] == 1
        assert m["rabbitmq_channel_messages_acked_total", work_labels] == 1
        assert m["rabbitmq_channel_messages_delivered_ack_total", idle_labels] == 1
        assert m["rabbitmq_channel_messages_delivered_total", idle_labels] == 0

        assert m["rabbitmq_channel_messages_published_total", {"vhost": "/"}] == 6
        assert m["rabbitmq_channel_messages_confirmed_total", {"vhost": "/"}] == 6
        amqp = {"protocol": "amqp091"}
        assert m["rabbitmq_global_messages_received_total", amqp] == 6
        assert m["rabbitmq_global_messages_delivered_total", amqp] == 6
        assert m["rabbitmq_global_messages_acknowledged_total", amqp] == 1

        assert m.value("rabbitmq_connections") == 1
        assert m.value("rabbitmq_channels") == 2
        assert m.value("rabbitmq_consumers") == 1
        assert m.value("rabbitmq_queues") == 2
        assert m.value("leveret_messages_resident_bytes") == (
            2 * len(b"message-0") + len(b"to-idle"))

        assert m.types["rabbitmq_queue_messages_ready"] == "gauge"
        assert m.types["rabbitmq_queue_messages_published"] == "counter"

        await delivered.ack()
        await consumer_channel.get_queue("idle")  # round trip after the ack

    m = await running.scrape()
    assert m["rabbitmq_channel_messages_acked_total", {"vhost": "/", "queue": "idle"}] == 1
    assert m["rabbitmq_queue_messages_unacked", {"vhost": "/", "queue": "work"}] == 0
    # the unacked message came back when its connection closed
    assert m["rabbitmq_queue_messages_ready", {"vhost": "/", "queue": "work"}] == 2
    assert m.value("rabbitmq_connections") == 0
    assert m.value("rabbitmq_channels") == 0


async def test_node_resources_and_identity(running: Running) -> None:
    m = await running.scrape()
    assert m.value("rabbitmq_process_resident_memory_bytes") > 10 << 20
    assert m.value("rabbitmq_resident_memory_limit_bytes") > 0
    assert m.value("rabbitmq_disk_space_available_bytes") > 0
    assert m.value("rabbitmq_disk_space_available_limit_bytes") == 50_000_000
    assert m.value("rabbitmq_alarms_memory_limit") == 0
    assert m.value("rabbitmq_alarms_disk_limit") == 0
    assert m.value("rabbitmq_process_open_fds") > 0
    assert m.value("leveret_uptime_seconds") >= 0
    [build] = m.labels_of("rabbitmq_build_info")
    assert build["product_name"] == "leveret" and build["product_version"] == __version__
    [identity] = m.labels_of("rabbitmq_identity_info")
    assert identity["rabbitmq_cluster"] == running.broker.node.cluster_name
    assert identity["rabbitmq_cluster"].startswith("leveret-")
    assert identity["rabbitmq_node"].startswith("leveret@")
    # what any Python exporter has
    assert m.value("process_cpu_seconds_total") >= 0
    assert m.content_type.startswith("text/plain")


async def test_alarms_are_gauges_per_alarm(start_broker: Any) -> None:
    try:
        running = await start_broker(memory_used=lambda: 1 << 60, disk_free=lambda: 1000)
        m = await running.scrape()
        for _ in range(50):  # the alarms are checked a few times a second
            if m.value("rabbitmq_alarms_memory_limit") and m.value("rabbitmq_alarms_disk_limit"):
                break
            await asyncio.sleep(0.05)
            m = await running.scrape()
        assert m.value("rabbitmq_alarms_memory_limit") == 1
        assert m.value("rabbitmq_alarms_disk_limit") == 1
        assert m.value("rabbitmq_disk_space_available_bytes") == 1000
        assert m.value("rabbitmq_process_resident_memory_bytes") > 0
    finally:
        await start_broker.stop_all()


async def test_openmetrics_when_asked(running: Running) -> None:
    m = await running.scrape(accept="application/openmetrics-text; version=1.0.0")
    assert m.content_type.startswith("application/openmetrics-text")
    assert m.value("rabbitmq_queues") == 0


async def test_vhosts_and_names_are_labels(running: Running) -> None:
    node = running.broker.node
    node.add_vhost("tenant-a")
    node.set_permissions("tenant-a", "guest", ".*", ".*", ".*")
    connection = await aio_pika.connect(running.broker.url.rstrip("/") + "/tenant-a")
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("orders.eu:1")
        m = await running.scrape()
    labels = {"vhost": "tenant-a", "queue": "orders.eu:1"}
    assert m["rabbitmq_queue_messages_ready", labels] == 0
    assert m["rabbitmq_channel_messages_published_total", {"vhost": "tenant-a"}] == 0


async def test_stream_metrics(running: Running) -> None:
    """A stream's offsets and segments, and its consumers' offsets and lag."""
    connection = await aio_pika.connect(running.broker.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("events", durable=True,
                                    arguments={"x-queue-type": "stream"})
        for i in range(8):
            await channel.default_exchange.publish(aio_pika.Message(f"event-{i}".encode()),
                                                   routing_key="events")
        reader = await connection.channel()
        await reader.set_qos(prefetch_count=3)
        received: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        stream = await reader.get_queue("events", ensure=False)
        await stream.consume(received.put, arguments={"x-stream-offset": 2},
                             consumer_tag="tail")
        for _ in range(3):
            await asyncio.wait_for(received.get(), 5)  # unacked: the credit is spent
        await channel.declare_queue("events", durable=True,
                                    arguments={"x-queue-type": "stream"})  # a round trip

        m = await running.scrape()
        labels = {"vhost": "/", "queue": "events"}
        assert m["rabbitmq_queue_messages", labels] == 8
        assert m["rabbitmq_queue_messages_ready", labels] == 8
        assert m["rabbitmq_queue_messages_unacked", labels] == 0
        assert m["rabbitmq_queue_messages_bytes", labels] > 8 * len(b"event-0")
        assert m["leveret_stream_segments", labels] == 1
        assert m["leveret_stream_first_offset", labels] == 0
        assert m["leveret_stream_next_offset", labels] == 8
        assert m["rabbitmq_stream_consumer_max_offset_lag", labels] == 3
        [consumer] = m.labels_of("leveret_stream_consumer_offset")
        assert consumer["consumer_tag"] == "tail" and consumer["queue"] == "events"
        assert consumer["channel"].endswith(" (2)") and " -> " in consumer["channel"]
        assert m["leveret_stream_consumer_offset", consumer] == 5
        assert m["leveret_stream_consumer_offset_lag", consumer] == 3
        assert m.types["leveret_stream_consumer_offset_lag"] == "gauge"
        # a classic queue has no stream series
        await channel.declare_queue("plain")
        m = await running.scrape()
        assert {"vhost": "/", "queue": "plain"} not in m.labels_of("leveret_stream_segments")


async def test_shovel_metrics(running: Running) -> None:
    """Per dynamic shovel: its state (1 for the current one) and the messages it moved;
    RabbitMQ's rabbitmq_shovel_dynamic counts the shovels by status."""
    node = running.broker.node
    m = await running.scrape()
    assert m.labels_of("rabbitmq_shovel_dynamic") == []
    assert m.types["rabbitmq_shovel_dynamic"] == "gauge"
    node.set_parameter("shovel", "/", "move", {
        "src-uri": "amqp://", "src-queue": "from", "dest-uri": "amqp://", "dest-queue": "to"})
    node.set_parameter("shovel", "/", "down", {
        "src-uri": "amqp://", "src-queue": "from2", "dest-uri": "amqp://127.0.0.1:1",
        "dest-queue": "to", "reconnect-delay": 0})
    connection = await aio_pika.connect(running.broker.url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue("from", durable=True)
        for i in range(5):
            await channel.default_exchange.publish(aio_pika.Message(f"m{i}".encode()),
                                                   routing_key="from")
        move = {"vhost": "/", "shovel": "move"}
        for _ in range(200):
            m = await running.scrape()
            if (m.samples.get(("leveret_shovel_messages_transferred_total",
                               frozenset(move.items()))) == 5
                    and m["leveret_shovel_state", {**move, "state": "running"}] == 1
                    and m["leveret_shovel_state", {"vhost": "/", "shovel": "down",
                                                   "state": "terminated"}] == 1):
                break
            await asyncio.sleep(0.05)
        assert m["leveret_shovel_messages_transferred_total", move] == 5
        assert m["leveret_shovel_messages_published_total", move] == 5
        assert m["leveret_shovel_state", {**move, "state": "running"}] == 1
        assert m["leveret_shovel_state", {**move, "state": "starting"}] == 0
        assert m["leveret_shovel_state", {**move, "state": "terminated"}] == 0
        down = {"vhost": "/", "shovel": "down"}
        assert m["leveret_shovel_state", {**down, "state": "terminated"}] == 1
        assert m["leveret_shovel_state", {**down, "state": "running"}] == 0
        assert m["leveret_shovel_messages_transferred_total", down] == 0
        assert m["rabbitmq_shovel_dynamic", {"status": "running"}] == 1
        assert m["rabbitmq_shovel_dynamic", {"status": "terminated"}] == 1
        assert m.types["leveret_shovel_messages_transferred"] == "counter"
        assert m.types["leveret_shovel_state"] == "gauge"
        to = await channel.declare_queue("to", durable=True)
        assert to.declaration_result.message_count == 5
    node.clear_parameter("shovel", "/", "move")
    node.clear_parameter("shovel", "/", "down")
    m = await running.scrape()
    assert m.labels_of("leveret_shovel_state") == []
