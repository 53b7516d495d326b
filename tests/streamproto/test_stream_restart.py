"""Stored offsets and producers' publishing ids survive a SIGKILL of ``leveret serve``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from rstream import OffsetType, RawMessage
from served import kill, serve
from streamproto_helpers import consumer, producer, read, unique


async def publish(t: SimpleNamespace, stream: str, ids: range) -> None:
    async with producer(t) as p:
        for i in ids:
            await p.send_wait(stream, RawMessage(f"m{i}".encode(), publishing_id=i),
                              publisher_name="writer")


async def test_offsets_and_sequences_survive_sigkill(tmp_path: Path) -> None:
    stream = unique()
    proc, port = serve(tmp_path, "--stream-port", "0", until="rabbitmq-stream://")
    try:
        t = SimpleNamespace(host="127.0.0.1", stream_port=port)
        async with producer(t) as p:
            await p.create_stream(stream)
        await publish(t, stream, range(1, 6))
        async with consumer(t) as c:
            await c.store_offset(stream, "reader", 3)
            assert await c.query_offset(stream, "reader") == 3  # (the store came first)
        await publish(t, stream, range(6, 9))  # after the tracking snapshot: from the log
    finally:
        kill(proc)
    proc, port = serve(tmp_path, "--stream-port", "0", until="rabbitmq-stream://")
    try:
        t = SimpleNamespace(host="127.0.0.1", stream_port=port)
        async with consumer(t) as c:
            assert await c.query_offset(stream, "reader") == 3
        async with producer(t) as p:
            client = await p.default_client
            assert await client.query_publisher_sequence(stream, "writer") == 8
        await publish(t, stream, range(1, 11))  # 1..8 are duplicates
        got = await read(t, stream, OffsetType.FIRST, count=10, settle=0.3)
        assert [(o, m) for o, m in got] == [(i - 1, f"m{i}".encode()) for i in range(1, 11)]
    finally:
        kill(proc)
