"""Hostile or broken stream-protocol clients get a protocol answer and lose only their own
connection; the broker goes on serving others."""

from __future__ import annotations

import asyncio
import struct

from rstream import AMQPMessage, OffsetType
from streamproto_helpers import producer, read, unique

from leveret.streamproto import frames as f


async def _frames(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    """What the server sends until it hangs up: (key, rest of the frame)."""
    out = []
    while True:
        try:
            head = await asyncio.wait_for(reader.readexactly(4), 10)
        except (asyncio.IncompleteReadError, ConnectionError):
            return out
        (size,) = struct.unpack(">I", head)
        body = await reader.readexactly(size)
        out.append((int.from_bytes(body[:2], "big"), body[4:]))


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f.request(f.PEER_PROPERTIES, 1, f.properties({})))
    writer.write(f.request(f.SASL_HANDSHAKE, 2))
    writer.write(f.request(f.SASL_AUTHENTICATE, 3, f.string("PLAIN") +
                           f.bytes_field(b"\x00guest\x00guest")))
    writer.write(f.command(f.TUNE, 1, f.u32(1 << 20) + f.u32(0)))
    writer.write(f.request(f.OPEN, 4, f.string("/")))
    for key in (f.PEER_PROPERTIES, f.SASL_HANDSHAKE, f.SASL_AUTHENTICATE, f.TUNE, f.OPEN):
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        body = await reader.readexactly(size)
        assert int.from_bytes(body[:2], "big") & 0x7FFF == key
    return reader, writer


def _close_code(frames: list[tuple[int, bytes]]) -> int | None:
    for key, rest in frames:
        if key == f.CLOSE:
            return int.from_bytes(rest[4:6], "big")  # after the correlation id
    return None


async def test_a_frame_above_the_limit_is_refused_before_it_is_read(leveret) -> None:
    reader, writer = await _open(leveret.stream_port)
    writer.write(struct.pack(">IHH", 1 << 31, f.PUBLISH, 1))
    got = await _frames(reader)
    writer.close()
    assert _close_code(got) == f.FRAME_TOO_LARGE


async def test_unknown_and_malformed_commands_close_the_connection(leveret) -> None:
    for payload in (f.command(0x7777, 1, b"xx"),  # no such command
                    f.command(f.CREATE, 1, b"\x00\x00\x00\x01\xff"),  # truncated fields
                    f.request(f.OPEN, 9, f.string("/"))):  # the handshake again
        reader, writer = await _open(leveret.stream_port)
        writer.write(payload)
        got = await _frames(reader)
        writer.close()
        assert _close_code(got) == f.UNKNOWN_FRAME, payload


async def test_commands_before_login_are_not_served(leveret) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", leveret.stream_port)
    writer.write(f.request(f.CREATE, 1, f.string("sneaky") + f.properties({})))
    got = await _frames(reader)
    writer.close()
    assert not any(key == f.CREATE | f.RESPONSE for key, _ in got)
    assert "sneaky" not in leveret.broker.node.vhosts["/"].queues


async def test_the_broker_serves_others_after_hostile_clients(leveret) -> None:
    for _ in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", leveret.stream_port)
        writer.write(b"\x00\x00\x00\x08garbage!" * 10)
        await _frames(reader)
        writer.close()
    stream = unique()
    async with producer(leveret) as p:
        await p.create_stream(stream)
        await p.send_wait(stream, AMQPMessage(body=b"still here"))
    assert len(await read(leveret, stream, OffsetType.FIRST)) == 1
