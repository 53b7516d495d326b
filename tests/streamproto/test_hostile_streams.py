"""Hostile or broken stream-protocol clients get a protocol answer and lose only their own
connection; the broker goes on serving others."""

from __future__ import annotations

import asyncio
import struct

from rstream import AMQPMessage, OffsetType
from streamproto_helpers import open_raw, producer, raw_frames, read, unique

from leveret.streamproto import frames as f


def _close_code(frames: list[tuple[int, bytes]]) -> int | None:
    for key, rest in frames:
        if key == f.CLOSE:
            return int.from_bytes(rest[4:6], "big")  # after the correlation id
    return None


async def test_a_frame_above_the_limit_is_refused_before_it_is_read(leveret) -> None:
    reader, writer = await open_raw(leveret.stream_port)
    writer.write(struct.pack(">IHH", 1 << 31, f.PUBLISH, 1))
    got = await raw_frames(reader)
    writer.close()
    assert _close_code(got) == f.FRAME_TOO_LARGE


async def test_unknown_and_malformed_commands_close_the_connection(leveret) -> None:
    for payload in (f.command(0x7777, 1, b"xx"),  # no such command
                    f.command(f.CREATE, 1, b"\x00\x00\x00\x01\xff"),  # truncated fields
                    f.request(f.OPEN, 9, f.string("/"))):  # the handshake again
        reader, writer = await open_raw(leveret.stream_port)
        writer.write(payload)
        got = await raw_frames(reader)
        writer.close()
        assert _close_code(got) == f.UNKNOWN_FRAME, payload


async def test_commands_before_login_are_not_served(leveret) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", leveret.stream_port)
    writer.write(f.request(f.CREATE, 1, f.string("sneaky") + f.properties({})))
    got = await raw_frames(reader)
    writer.close()
    assert not any(key == f.CREATE | f.RESPONSE for key, _ in got)
    assert "sneaky" not in leveret.broker.node.vhosts["/"].queues


async def test_the_broker_serves_others_after_hostile_clients(leveret) -> None:
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", leveret.stream_port)
        writer.write(b"\x00\x00\x00\x08garbage!" * 10)
        await raw_frames(reader)
        writer.close()
    stream = unique()
    async with producer(leveret) as p:
        await p.create_stream(stream)
        await p.send_wait(stream, AMQPMessage(body=b"still here"))
    assert len(await read(leveret, stream, OffsetType.FIRST)) == 1


async def test_deleting_a_stream_tells_its_subscribers(leveret) -> None:
    """MetadataUpdate (stream not available) goes to a connection subscribed to a stream
    that is deleted, here from AMQP 0-9-1 (pika)."""
    stream = unique()
    async with producer(leveret) as p:
        await p.create_stream(stream)
    reader, writer = await open_raw(leveret.stream_port)
    writer.write(f.request(f.SUBSCRIBE, 5, bytes((1,)) + f.string(stream) + f.u16(1)
                           + f.u16(10) + f.properties({})))
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    body = await reader.readexactly(size)
    assert int.from_bytes(body[:2], "big") == f.SUBSCRIBE | f.RESPONSE
    assert int.from_bytes(body[8:10], "big") == f.OK

    def delete() -> None:
        import pika
        conn = pika.BlockingConnection(pika.URLParameters(leveret.amqp_url))
        conn.channel().queue_delete(stream)
        conn.close()

    await asyncio.to_thread(delete)
    (size,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 10))
    body = await reader.readexactly(size)
    writer.close()
    assert int.from_bytes(body[:2], "big") == f.METADATA_UPDATE
    assert body[4:] == f.u16(f.STREAM_NOT_AVAILABLE) + f.string(stream)
