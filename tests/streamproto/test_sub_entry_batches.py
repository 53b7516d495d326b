"""Sub-entry batching, on leveret and on RabbitMQ 3.10.8 with rabbitmq_stream: a batch of N
records takes N offsets and is kept and delivered whole, as the client sent it, whatever its
compression (the broker never decompresses: RabbitMQ's does not either); a reader starting
inside a batch gets the whole batch."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path
from typing import Any

import pika
from raw_client import Frame, RawClient, amqp_message, publish, subscribe_body
from rstream import AMQPMessage, CompressionType, OffsetType
from streamproto_helpers import producer, read, unique

from leveret.runtime.embedded import Broker
from leveret.streamproto import frames as f


def sub_batch(texts: list[str], compression: int) -> bytes:
    """A sub-entry as a client sends it; "snappy", "lz4" and "zstd" batches hold opaque
    bytes here (a broker must not try to read them)."""
    plain = b"".join(len(m).to_bytes(4, "big") + m for m in map(amqp_message, texts))
    if compression == 1:
        c = zlib.compressobj(wbits=31)
        data = c.compress(plain) + c.flush()
    elif compression == 0:
        data = plain
    else:
        data = b"opaque:" + plain
    return struct.pack(">BHII", 0x80 | compression << 4, len(texts), len(plain), len(data)) \
        + data


# What is published, in order: (publishing id, simple message or sub-entry).
ENTRIES: list[tuple[int, bytes, int]] = [
    (1, amqp_message("m0"), 0),
    (2, sub_batch([f"m{i}" for i in range(1, 11)], 0), 10),
    (3, sub_batch(["m11", "m12", "m13"], 1), 3),
    (4, sub_batch(["m14", "m15"], 4), 2),
    (5, amqp_message("m16"), 0),
]


def _publish_frame(publishing_id: int, data: bytes, records: int) -> bytes:
    entry = data if records else f.u32(len(data)) + data
    return f.command(f.PUBLISH, 1, bytes((1,)) + f.u32(1) + f.u64(publishing_id) + entry)


def entries_of(deliver: Frame) -> list[tuple[int, int, bytes]]:
    """(offset, records, bytes) of each entry of a Deliver's chunk (records 0: simple)."""
    body = deliver.body
    (_magic, _type, n_entries, _n_records, _ts, _epoch, first, _crc, size, _trailer,
     _reserved) = struct.unpack(">BBHIqQQIIII", body[1:49])
    data = body[49:49 + size]
    out = []
    pos, offset = 0, first
    for _ in range(n_entries):
        if data[pos] & 0x80:
            records, length = struct.unpack_from(">HxxxxI", data, pos + 1)
            out.append((offset, records, data[pos:pos + 11 + length]))
            pos += 11 + length
            offset += records
        else:
            (length,) = struct.unpack_from(">I", data, pos)
            out.append((offset, 0, data[pos + 4:pos + 4 + length]))
            pos += 4 + length
            offset += 1
    return out


async def _publish_all(port: int, stream: str) -> None:
    client = await RawClient.connect(port)
    try:
        assert (await client.request(f.CREATE, f.string(stream) + f.properties({}))).code \
            == f.OK
        declare = bytes((1,)) + f.string("") + f.string(stream)
        assert (await client.request(f.DECLARE_PUBLISHER, declare)).code == f.OK
        for publishing_id, data, records in ENTRIES:
            client.send(_publish_frame(publishing_id, data, records))
            await client.wait_for(lambda fr, i=publishing_id: fr.key == f.PUBLISH_CONFIRM
                                  and fr.body.endswith(f.u64(i)))
    finally:
        await client.close()


async def _read_entries(port: int, stream: str, kind: int, offset: int | None = None
                        ) -> list[tuple[int, int, bytes]]:
    client = await RawClient.connect(port)
    try:
        answer = await client.request(f.SUBSCRIBE, subscribe_body(1, stream, {}, kind=kind,
                                                                   offset=offset))
        assert answer.code == f.OK
        got: list[tuple[int, int, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not got or got[-1][0] < 16:
            assert loop.time() < deadline, got
            got = [e for fr in client.frames if fr.key == f.DELIVER for e in entries_of(fr)]
            await asyncio.sleep(0.02)
        return got
    finally:
        await client.close()


async def test_batches_take_an_offset_per_record_and_come_back_whole(target) -> None:
    stream = unique()
    await _publish_all(target.stream_port, stream)
    expected = []
    offset = 0
    for _publishing_id, data, records in ENTRIES:
        expected.append((offset, records, data))
        offset += records or 1
    assert await _read_entries(target.stream_port, stream, 1) == expected
    # From an offset inside a batch: the whole batch (RabbitMQ sends its whole chunk).
    assert await _read_entries(target.stream_port, stream, 4, 5) == expected[1:]
    assert await _read_entries(target.stream_port, stream, 4, 12) == expected[2:]
    assert await _read_entries(target.stream_port, stream, 4, 16) == expected[4:]


async def test_rstream_sub_entries_read_back_at_their_offsets(target) -> None:
    stream = unique()
    async with producer(target) as p:
        await p.create_stream(stream)
        await p.send_wait(stream, AMQPMessage(body=b"first"))
        for compression in (CompressionType.No, CompressionType.Gzip):
            await p.send_sub_entry(stream, [AMQPMessage(body=f"{compression.name}{i}".encode())
                                            for i in range(3)], compression_type=compression)
    got = await read(target, stream, OffsetType.FIRST, count=7, settle=0.3)
    bodies = [b"first", b"No0", b"No1", b"No2", b"Gzip0", b"Gzip1", b"Gzip2"]
    assert [o for o, _ in got] == list(range(7))
    assert [raw.endswith(body) for (_, raw), body in zip(got, bodies, strict=True)] == [True] * 7
    got = await read(target, stream, OffsetType.OFFSET, 5, count=2, settle=0.3)
    assert [o for o, _ in got] == [5, 6]  # (rstream drops the batch's records before 5)


def _consume_amqp(url: str, stream: str, count: int) -> list[tuple[int, bytes]]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    got: list[tuple[int, bytes]] = []
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=100)
        for method, props, body in ch.consume(stream, arguments={"x-stream-offset": "first"},
                                              inactivity_timeout=5):
            if method is None:
                break
            got.append((props.headers["x-stream-offset"], body))
            ch.basic_ack(method.delivery_tag)
            if len(got) == count:
                break
        ch.cancel()
    finally:
        conn.close()
    return got


async def test_amqp_091_readers_get_the_records_of_uncompressed_batches(target) -> None:
    stream = unique()
    client = await RawClient.connect(target.stream_port)
    try:
        await client.request(f.CREATE, f.string(stream) + f.properties({}))
        await client.request(f.DECLARE_PUBLISHER, bytes((1,)) + f.string("") + f.string(stream))
        client.send(publish(1, [(1, amqp_message("m0"))]))
        client.send(_publish_frame(2, sub_batch(["m1", "m2", "m3"], 0), 3))
        client.send(publish(1, [(3, amqp_message("m4"))]))
        await client.wait_for(lambda fr: fr.key == f.PUBLISH_CONFIRM and
                              fr.body.endswith(f.u64(3)))
    finally:
        await client.close()
    got = await asyncio.to_thread(_consume_amqp, target.amqp_url, stream, 5)
    assert got == [(i, f"m{i}".encode()) for i in range(5)]


async def test_amqp_091_readers_of_compressed_batches(leveret) -> None:
    """gzip batches are read for AMQP 0-9-1 consumers too; one compressed with a codec
    leveret does not read cancels the consumer there (basic.cancel). RabbitMQ 3.10 closes
    the consumer's connection (541) at any compressed batch."""
    stream = unique()
    await _publish_all(leveret.stream_port, stream)
    got = await asyncio.to_thread(_consume_amqp, leveret.amqp_url, stream, 20)
    assert got == [(i, f"m{i}".encode()) for i in range(14)]  # stops before the zstd batch


async def test_batches_survive_a_restart(tmp_path: Path) -> None:
    stream = unique()
    data = tmp_path / "data"
    broker = Broker(port=0, stream_port=0, data_dir=data)
    await broker.start()
    try:
        await _publish_all(broker.stream_port or 0, stream)
    finally:
        await broker.stop()
    broker = Broker(port=0, stream_port=0, data_dir=data)
    await broker.start()
    try:
        port = broker.stream_port or 0
        got = await _read_entries(port, stream, 4, 12)
        assert [(o, n) for o, n, _ in got] == [(11, 3), (14, 2), (16, 0)]
        t: Any = type("T", (), {"host": "127.0.0.1", "stream_port": port})
        async with producer(t) as p:
            await p.send_wait(stream, AMQPMessage(body=b"after"))
        tail = await read(t, stream, OffsetType.OFFSET, 17, count=1)
        assert tail[0][0] == 17
    finally:
        await broker.stop()
