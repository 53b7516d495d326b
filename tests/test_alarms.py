"""Resource alarms: when memory passes the watermark or free disk drops below the limit,
connections that publish get connection.blocked (RabbitMQ's reason text) and are no longer
read from; consumers on other connections keep draining; connection.unblocked follows."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

import aio_pika
import pika
import pytest

from leveret.runtime.threaded import BrokerThread
from leveret.server.alarms import resolve_threshold, total_memory


class Reading:
    """A settable measurement injected into the broker in place of RSS / free disk."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


def wait_for(condition: Callable[[], bool], conn: pika.BlockingConnection | None = None,
             timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        if conn is not None:
            conn.process_data_events(time_limit=0.05)
        else:
            time.sleep(0.02)


def count(broker: BrokerThread, queue: str) -> int:
    return broker.call(lambda: broker.node.vhosts["/"].queues[queue].message_count)


class Publisher:
    """A pika connection that records blocked/unblocked notifications."""

    def __init__(self, broker: BrokerThread) -> None:
        self.events: list[str] = []
        self.conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        self.conn.add_on_connection_blocked_callback(
            lambda _c, frame: self.events.append(f"blocked: {frame.method.reason}"))
        self.conn.add_on_connection_unblocked_callback(
            lambda _c, _f: self.events.append("unblocked"))
        self.channel = self.conn.channel()

    def publish(self, queue: str, body: bytes = b"m") -> None:
        self.channel.basic_publish("", queue, body)


@pytest.fixture
def disk() -> Reading:
    return Reading(10**12)


@pytest.fixture
def memory() -> Reading:
    return Reading(10 << 20)


@pytest.fixture
def broker(disk: Reading, memory: Reading) -> Iterator[BrokerThread]:
    with BrokerThread(disk_free=disk, memory_used=memory) as b:
        b.broker.resources.disk_check_interval = 0.02
        yield b


@pytest.mark.parametrize("alarm", ["disk", "memory"])
def test_alarm_blocks_publishers_while_consumers_drain(
        broker: BrokerThread, disk: Reading, memory: Reading, alarm: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "leveret")
    publisher = Publisher(broker)
    publisher.channel.queue_declare("work")
    for i in range(20):
        publisher.publish("work", b"%d" % i)
    wait_for(lambda: count(broker, "work") == 20)
    consumer = pika.BlockingConnection(pika.URLParameters(broker.url))  # never publishes

    if alarm == "disk":
        disk.value = 1000  # below the 50 MB default limit
    else:
        memory.value = resolve_threshold(0.4, "") + 1  # above the default watermark
    reason = "low on disk" if alarm == "disk" else "low on memory"
    wait_for(lambda: bool(publisher.events), publisher.conn)
    assert publisher.events == [f"blocked: {reason}"]
    assert broker.alarms == [alarm]

    publisher.publish("work", b"held")  # not read while blocked
    received = []
    channel = consumer.channel()
    channel.basic_consume("work", lambda ch, method, _props, body: (
        received.append(body), ch.basic_ack(method.delivery_tag)))
    wait_for(lambda: len(received) == 20, consumer)
    assert received == [b"%d" % i for i in range(20)]
    consumer.process_data_events(time_limit=0.3)
    assert len(received) == 20  # "held" did not get through

    disk.value, memory.value = 10**12, 10 << 20
    wait_for(lambda: "unblocked" in publisher.events, publisher.conn)
    assert publisher.events == [f"blocked: {reason}", "unblocked"]
    assert broker.alarms == []
    wait_for(lambda: len(received) == 21, consumer)
    assert received[-1] == b"held"
    publisher.conn.close()
    consumer.close()

    logged = [(r.alarm, r.alarm_state) for r in caplog.records  # type: ignore[attr-defined]
              if hasattr(r, "alarm")]
    assert logged == [(alarm, "set"), (alarm, "cleared")]
    assert all(r.levelname == "WARNING" for r in caplog.records if hasattr(r, "alarm"))


def test_a_connection_is_blocked_by_its_first_publish(broker: BrokerThread,
                                                      disk: Reading) -> None:
    disk.value = 0
    wait_for(lambda: broker.alarms == ["disk"])
    publisher = Publisher(broker)
    publisher.channel.queue_declare("late")  # not a publish: not blocked
    publisher.conn.process_data_events(time_limit=0.2)
    assert publisher.events == []
    publisher.publish("late")
    wait_for(lambda: bool(publisher.events), publisher.conn)
    assert publisher.events == ["blocked: low on disk"]
    disk.value = 10**12
    wait_for(lambda: "unblocked" in publisher.events, publisher.conn)
    wait_for(lambda: count(broker, "late") == 1)
    publisher.conn.close()


def test_both_alarms_keep_publishers_blocked_until_both_clear(
        broker: BrokerThread, disk: Reading, memory: Reading) -> None:
    publisher = Publisher(broker)
    publisher.channel.queue_declare("both")
    publisher.publish("both")
    memory.value = 1 << 50
    wait_for(lambda: bool(publisher.events), publisher.conn)
    disk.value = 0
    wait_for(lambda: broker.alarms == ["memory", "disk"])
    memory.value = 0
    wait_for(lambda: broker.alarms == ["disk"])
    publisher.conn.process_data_events(time_limit=0.2)
    assert publisher.events == ["blocked: low on memory"]
    disk.value = 10**12
    wait_for(lambda: "unblocked" in publisher.events, publisher.conn)
    publisher.conn.close()


def test_blocked_connection_is_not_dropped_for_missed_heartbeats(
        broker: BrokerThread, memory: Reading) -> None:
    """While blocked the broker reads nothing, heartbeats included: it must not count
    them as missed (RabbitMQ pauses its heartbeat monitor too)."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", broker.port, heartbeat=1))
    events: list[str] = []
    conn.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
    conn.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
    ch = conn.channel()
    ch.queue_declare("hb")
    ch.basic_publish("", "hb", b"x")
    memory.value = 1 << 50
    wait_for(lambda: events == ["blocked"], conn)
    conn.process_data_events(time_limit=2.5)  # > 2 heartbeat intervals
    memory.value = 0
    wait_for(lambda: events == ["blocked", "unblocked"], conn)
    assert conn.is_open
    ch.basic_publish("", "hb", b"y")
    assert ch.queue_declare("hb", passive=True).method.message_count == 2
    conn.close()


async def test_aio_pika_publish_waits_for_unblocked(
        broker: BrokerThread, disk: Reading, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "aiormq")
    connection = await aio_pika.connect(broker.url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("aio-alarm", auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"before"), "aio-alarm")
        disk.value = 0
        for _ in range(100):
            if any("blocked by" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        assert any("low on disk" in r.getMessage() for r in caplog.records)
        # aiormq holds publishes until connection.unblocked
        pending = asyncio.ensure_future(
            channel.default_exchange.publish(aio_pika.Message(b"after"), "aio-alarm"))
        await asyncio.sleep(0.3)
        assert not pending.done()
        disk.value = 10**12
        await asyncio.wait_for(pending, 5)
        bodies = []
        for _ in range(2):
            message = await queue.get(timeout=5)
            bodies.append(message.body)
            await message.ack()
        assert bodies == [b"before", b"after"]


def test_real_memory_watermark(leveret_broker: BrokerThread) -> None:
    """The default reading is this process's RSS: a watermark of 1 byte trips it, the
    RabbitMQ default (0.4 of RAM) clears it."""
    monitor = leveret_broker.broker.resources
    publisher = Publisher(leveret_broker)
    publisher.channel.queue_declare("rss")
    publisher.publish("rss")
    leveret_broker.call(monitor.set_memory_high_watermark, 1)
    wait_for(lambda: bool(publisher.events), publisher.conn)
    assert publisher.events == ["blocked: low on memory"]
    assert monitor.memory_used > 1 << 20  # a real RSS
    leveret_broker.call(monitor.set_memory_high_watermark, 0.4)
    assert monitor.memory_limit == int(0.4 * total_memory())
    wait_for(lambda: "unblocked" in publisher.events, publisher.conn)
    publisher.conn.close()


def test_real_disk_limit(tmp_path) -> None:
    """With a data directory the reading is its file system's free space."""
    with BrokerThread(data_dir=tmp_path / "data") as broker:
        monitor = broker.broker.resources
        publisher = Publisher(broker)
        publisher.channel.queue_declare("disk")
        publisher.publish("disk")
        wait_for(lambda: monitor.disk_free is not None)
        assert monitor.disk_free is not None and monitor.disk_free > 0
        broker.call(monitor.set_disk_free_limit, monitor.disk_free + (1 << 50))
        wait_for(lambda: bool(publisher.events), publisher.conn)
        assert publisher.events == ["blocked: low on disk"]
        assert broker.alarms == ["disk"]
        broker.call(monitor.set_disk_free_limit, 50_000_000)
        wait_for(lambda: "unblocked" in publisher.events, publisher.conn)
        assert broker.alarms == []
        publisher.conn.close()


def test_thresholds_relative_or_absolute() -> None:
    assert resolve_threshold(1000, "x") == 1000
    assert resolve_threshold(0.5, "x") == total_memory() // 2
    with pytest.raises(ValueError, match="disk_free_limit"):
        resolve_threshold(-1, "disk_free_limit")
