"""Stream queues as leveret keeps them (broker/queues/stream.py): offsets and entries survive
restarts, retention deletes whole segments (and their files) by size and by age, timestamp
and interval offsets, many readers, and the all-or-nothing refusals. RabbitMQ's wire rules
are pinned by the differential tests in tests/compat/test_compat_streams.py."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
from pathlib import Path
from typing import Any

import aio_pika
import pytest

import leveret
from leveret.broker.clock import ManualClock

STREAM = {"x-queue-type": "stream"}


async def read(ch: aio_pika.abc.AbstractChannel, name: str, count: int, start: Any = "first",
               prefetch: int = 100, timeout: float = 5.0, **extra: Any
               ) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """The first ``count`` deliveries from ``start`` (fewer if none come for a while)."""
    await ch.set_qos(prefetch_count=prefetch)
    q = await ch.get_queue(name, ensure=False)
    got: list[aio_pika.abc.AbstractIncomingMessage] = []
    done = asyncio.Event()

    async def on_message(m: aio_pika.abc.AbstractIncomingMessage) -> None:
        got.append(m)
        await m.ack()
        if len(got) >= count:
            done.set()

    tag = await q.consume(on_message, arguments={"x-stream-offset": start, **extra})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    await q.cancel(tag)
    return got


def offsets(msgs: list[aio_pika.abc.AbstractIncomingMessage]) -> list[int]:
    return [int(m.headers["x-stream-offset"]) for m in msgs]  # type: ignore[arg-type]


async def publish(ch: aio_pika.abc.AbstractChannel, name: str, bodies: list[bytes],
                  **props: Any) -> None:
    for body in bodies:
        await ch.default_exchange.publish(aio_pika.Message(body, **props), routing_key=name)


async def test_entries_and_offsets_survive_a_restart(tmp_path: Path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("events", durable=True, arguments=STREAM)
        await publish(ch, "events", [f"e{i}".encode() for i in range(20)],
                      headers={"kind": "created"}, content_type="text/plain")
        first = await read(await conn.channel(), "events", 20)
        assert offsets(first) == list(range(20))
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("events", durable=True, arguments=STREAM)
        assert q.declaration_result.message_count == 20
        await publish(ch, "events", [b"after"])
        got = await read(await conn.channel(), "events", 21)
        assert offsets(got) == list(range(21))
        assert [m.body for m in got[:20]] == [f"e{i}".encode() for i in range(20)]
        assert got[20].body == b"after"
        assert got[3].headers["kind"] == "created" and got[3].content_type == "text/plain"
        assert not any(m.redelivered for m in got)
        # reads and acks removed nothing
        again = await read(await conn.channel(), "events", 21)
        assert offsets(again) == list(range(21))
        await conn.close()


async def test_retention_by_bytes_deletes_whole_segments_and_their_files(tmp_path: Path) -> None:
    args = {**STREAM, "x-stream-max-segment-size-bytes": 1000, "x-max-length-bytes": 3000}
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("capped", durable=True, arguments=args)
        await publish(ch, "capped", [b"x" * 100 for _ in range(120)])
        stream = broker.node.vhosts["/"].queues["capped"]
        segs = [(s.first, s.count) for s in stream.segments]
        assert 1 < len(segs) <= 4 and stream.ready_bytes <= 3000 + 1000
        first = segs[0][0]
        assert first > 0 and stream.message_count == 120 - first
        got = await read(await conn.channel(), "capped", 120 - first)
        assert offsets(got) == list(range(first, 120))  # a suffix, offsets unchanged
        await conn.close()
    files = sorted(p.name for p in tmp_path.glob("queues/*/*.seg"))
    assert all(int(name.split(".")[0]) >= first for name in files), files
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        stream = broker.node.vhosts["/"].queues["capped"]
        # (retention runs again at start: the newest segment filled up since the last roll)
        assert stream.first >= first and stream.next_offset == 120
        assert stream.ready_bytes <= 3000 + 1000
        conn = await aio_pika.connect(broker.url)
        got = await read(await conn.channel(), "capped", 120 - stream.first)
        assert offsets(got) == list(range(stream.first, 120))
        await conn.close()


async def test_retention_by_age_and_timestamp_offsets() -> None:
    clock = ManualClock(start=1_700_000_000.0)
    args = {**STREAM, "x-stream-max-segment-size-bytes": 500}
    async with leveret.Broker(port=0, clock=clock) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("aged", durable=True, arguments=args)
        await publish(ch, "aged", [b"old" * 30 for _ in range(10)])
        clock.advance(3600)
        await publish(ch, "aged", [b"new" * 30 for _ in range(10)])
        # a timestamp between the two batches, and an interval reaching back 30 minutes
        middle = datetime.datetime.fromtimestamp(1_700_000_000 + 1800, datetime.UTC)
        got = await read(await conn.channel(), "aged", 10, start=middle)
        assert offsets(got) == list(range(10, 20))
        got = await read(await conn.channel(), "aged", 10, start="30m")
        assert offsets(got) == list(range(10, 20))
        got = await read(await conn.channel(), "aged", 20, start="2h")
        assert offsets(got) == list(range(20))
        past = datetime.datetime.fromtimestamp(0, datetime.UTC)
        assert offsets(await read(await conn.channel(), "aged", 20, start=past)) == \
            list(range(20))
        # a policy sets an age limit: the old segments go, the newest never does
        await asyncio.to_thread(broker.node.vhosts["/"].set_policy, "age", "^aged$",
                                {"max-age": "20m"}, 0, "queues")
        stream = broker.node.vhosts["/"].queues["aged"]
        assert stream.first >= 10 and stream.next_offset == 20
        got = await read(await conn.channel(), "aged", 20 - stream.first)
        assert offsets(got) == list(range(stream.first, 20))
        await conn.close()


async def test_ten_readers_each_read_everything_from_first() -> None:
    async with leveret.Broker(port=0) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("shared", durable=True, arguments=STREAM)
        await publish(ch, "shared", [str(i).encode() for i in range(500)])
        channels = [await conn.channel() for _ in range(10)]
        results = await asyncio.gather(*(read(c, "shared", 500, prefetch=7) for c in channels))
        for got in results:
            assert offsets(got) == list(range(500))
            assert [m.body for m in got] == [str(i).encode() for i in range(500)]
        await conn.close()


async def test_an_offset_beyond_the_end_waits_for_that_offset() -> None:
    async with leveret.Broker(port=0) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("later", durable=True, arguments=STREAM)
        await publish(ch, "later", [b"a", b"b"])
        reader = asyncio.create_task(read(await conn.channel(), "later", 1, start=4))
        await asyncio.sleep(0.2)
        await publish(ch, "later", [b"c", b"d", b"e"])  # offsets 2, 3, 4
        got = await reader
        assert offsets(got) == [4] and got[0].body == b"e"
        await conn.close()


async def test_a_stream_and_a_queue_behind_one_exchange() -> None:
    """The classic queue gets the message as published (no x-stream-offset), one confirm
    covers both, and a refused decimal header reaches neither."""
    async with leveret.Broker(port=0) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        ex = await ch.declare_exchange("fan", aio_pika.ExchangeType.FANOUT)
        s = await ch.declare_queue("fan-stream", durable=True, arguments=STREAM)
        q = await ch.declare_queue("fan-queue")
        await s.bind(ex)
        await q.bind(ex)
        await ex.publish(aio_pika.Message(b"both", headers={"n": 1}), routing_key="")
        m = await q.get(no_ack=True)
        assert m.body == b"both" and m.headers == {"n": 1}
        got = await read(await conn.channel(), "fan-stream", 1)
        assert got[0].headers == {"n": 1, "x-stream-offset": 0}
        bad = await conn.channel(publisher_confirms=True)
        fan = await bad.get_exchange("fan", ensure=False)
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed,
                           match="cannot store decimal header values"):
            await fan.publish(aio_pika.Message(b"dec", headers={"price": decimal.Decimal("1.5")}),
                              routing_key="")
        assert await q.get(no_ack=True, fail=False) is None
        assert broker.node.vhosts["/"].queues["fan-stream"].message_count == 1
        await conn.close()


async def test_closing_the_channel_requeues_nothing_and_recover_is_refused() -> None:
    async with leveret.Broker(port=0) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("norequeue", durable=True, arguments=STREAM)
        await ch.declare_queue("plain")
        await publish(ch, "norequeue", [b"1", b"2", b"3"])
        await publish(ch, "plain", [b"p"])
        sub = await conn.channel()
        await sub.set_qos(prefetch_count=10)
        seen: list[int] = []
        stream_q = await sub.get_queue("norequeue", ensure=False)

        async def hold(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(int(m.headers["x-stream-offset"]))  # type: ignore[arg-type]

        await stream_q.consume(hold, arguments={"x-stream-offset": "first"})
        plain = await sub.get_queue("plain", ensure=False)
        held = await plain.get(no_ack=False)
        assert held.body == b"p"
        for _ in range(50):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.02)
        assert seen == [0, 1, 2]
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed,
                           match=r"basic\.recover is not supported by stream queues"):
            await (await sub.get_underlay_channel()).basic_recover(requeue=True)
        stream = broker.node.vhosts["/"].queues["norequeue"]
        assert stream.unacked == 0 and stream.message_count == 3
        # the classic queue's unacked message came back when the channel closed
        m = await (await conn.channel()).get_queue("plain", ensure=False)
        assert (await m.get(no_ack=True)).redelivered
        await conn.close()
