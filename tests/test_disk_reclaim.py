"""Disk space comes back without a restart: a large persistent message, consumed and
acked, leaves the newest segment file of its queue at the next flush or two (the newest
segment rolls once nothing in it is live; docs/storage.md, "Reclaim"). A stream, whose
entries are acked by retention only, keeps its entries and files when read."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aio_pika
import pytest

import leveret

MiB = 1 << 20


def queue_dir_bytes(data: Path) -> dict[str, int]:
    """The bytes of each queue's segment files, by the queue's directory name."""
    return {d.name: sum(p.stat().st_size for p in d.glob("*.seg"))
            for d in (data / "queues").iterdir() if d.is_dir()}


async def until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("size", [120 * MiB])
async def test_an_acked_large_message_frees_its_disk_space_without_a_restart(
        tmp_path: Path, size: int) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("uploads", durable=True)
        await ch.default_exchange.publish(aio_pika.Message(
            b"u" * size, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="uploads")
        [before] = queue_dir_bytes(tmp_path).values()
        assert before > size
        msg = await q.get(no_ack=False)
        assert len(msg.body) == size
        await msg.ack()
        await until(lambda: sum(queue_dir_bytes(tmp_path).values()) < 1 * MiB)
        # the queue works on: a small message, published and read back after a restart
        await ch.default_exchange.publish(aio_pika.Message(
            b"next", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="uploads")
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("uploads", durable=True)
        msg = await q.get(no_ack=True)
        assert msg.body == b"next" and await q.get(fail=False) is None
        await conn.close()


async def test_a_read_stream_keeps_its_entries_and_files(tmp_path: Path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("events", durable=True, arguments={"x-queue-type": "stream"})
        await ch.default_exchange.publish(aio_pika.Message(b"e" * (12 * MiB)),
                                          routing_key="events")
        [before] = queue_dir_bytes(tmp_path).values()
        reader = await conn.channel()
        await reader.set_qos(prefetch_count=10)
        q = await reader.get_queue("events", ensure=False)
        got: list[int] = []
        done = asyncio.Event()

        async def on_message(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.append(len(m.body))
            await m.ack()
            done.set()

        await q.consume(on_message, arguments={"x-stream-offset": "first"})
        await asyncio.wait_for(done.wait(), 10)
        assert got == [12 * MiB]
        for _ in range(3):  # commits come and go: nothing is reclaimed
            await ch.default_exchange.publish(aio_pika.Message(b"small"), routing_key="events")
        assert sum(queue_dir_bytes(tmp_path).values()) >= before
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        stream = broker.node.vhosts["/"].queues["events"]
        assert stream.message_count == 4 and stream.first == 0
