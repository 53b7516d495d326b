"""Osiris chunks as the stream protocol carries them: the entries of a Publish going in,
the Deliver frames coming out (osiris_log.erl's chunk format).

A Deliver carries one chunk: a 48-byte header (magic and version 0x50, chunk type 0 =
user, entry and record counts, timestamp in ms, epoch, the chunk's first offset, the CRC-32
and length of the data, trailer length, Bloom filter size), then the entries. A simple
entry is ``<<0:1, Size:31, Data>>``; a sub-batch entry (sub-entry batching) is
``<<1:1, Compression:3, 0:4, Records:16, UncompressedSize:32, Size:32, Data>>`` whose data
holds ``<<Size:32, Message>>`` records, compressed as the top bits say (0 none, 1 gzip,
2 snappy, 3 lz4, 4 zstd).

A sub-batch is kept and delivered as the client sent it, never decompressed (RabbitMQ's
broker does not decompress either: the consuming client does), so every compression works;
its records take one offset each. Only an AMQP 0-9-1 reader of a stream needs the records
themselves (``sub_batch_messages``), which leveret can give for none and gzip.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from leveret.errors import FrameError
from leveret.streamproto import frames
from leveret.streamproto.frames import Fields

CHUNK_HEADER = struct.Struct(">BBHIqQQIIII")  # 48 bytes
MAGIC_VERSION = 0x50
USER_CHUNK = 0
EPOCH = 1
_DELIVER_V1 = struct.Struct(">IHHB")  # size, key, version, subscription id
_DELIVER_V2 = struct.Struct(">IHHBQ")  # ... and the committed chunk id
_ENTRY = struct.Struct(">I")
_ID_AND_HEAD = struct.Struct(">QI")  # a publishing id, then an entry's first 4 bytes
_SUB_BATCH = struct.Struct(">BHII")
COMPRESSIONS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
MAX_UNCOMPRESSED = 64 << 20  # a gzip sub-batch may not inflate beyond this


class Published(NamedTuple):
    """One publishing id's entry: a message (``records`` 0) or a sub-batch as received,
    header included (``records``: how many it holds); and its filter value (Publish v2)."""

    publishing_id: int
    data: bytes
    filter_value: str | None
    records: int = 0


class UnreadableBatch(Exception):
    """A sub-batch whose records leveret cannot take out (a codec it does not read, or
    malformed data): stream-protocol readers still get it whole."""


def parse_publish(f: Fields, version: int) -> tuple[int, list[Published]]:
    """Publish's publisher id and its entries (v2 adds a filter value per entry)."""
    publisher_id = f.u8()
    count = f.count(12)
    if version < 2:
        return publisher_id, _parse_v1(f, count)
    items = []
    for _ in range(count):
        publishing_id = f.u64()
        filter_value = f.string()
        head = f.u32()
        if head & 0x80000000 == 0:
            start = f._take(head)
            items.append(Published(publishing_id, bytes(f.buf[start:start + head]),
                                   filter_value))
            continue
        f.pos -= 4  # the sub-batch header starts with that byte
        items.append(_sub_batch(f, publishing_id, filter_value))
    return publisher_id, items


def _parse_v1(f: Fields, count: int) -> list[Published]:
    """Publish v1's entries: the publishing hot path, so a message is cut out with one
    unpack and one slice, no Fields calls; a sub-batch goes through ``Fields``."""
    buf, end, pos = f.buf, f.end, f.pos
    unpack = _ID_AND_HEAD.unpack_from
    items = []
    for _ in range(count):
        if pos + 12 > end:
            raise FrameError("frame too short for its fields")
        publishing_id, head = unpack(buf, pos)
        pos += 12
        if head & 0x80000000 == 0:
            stop = pos + head
            if stop > end:
                raise FrameError("frame too short for its fields")
            items.append(Published(publishing_id, bytes(buf[pos:stop]), None))
            pos = stop
            continue
        f.pos = pos - 4  # the sub-batch header starts with that byte
        items.append(_sub_batch(f, publishing_id, None))
        pos = f.pos
    f.pos = pos
    return items


def _sub_batch(f: Fields, publishing_id: int, filter_value: str | None) -> Published:
    """A sub-batch entry at ``f.pos``, kept as received, header included."""
    start = f.pos
    _type, records, uncompressed, size = _SUB_BATCH.unpack_from(
        f.buf, f._take(_SUB_BATCH.size))
    if records == 0 or 4 * records > uncompressed:  # (each record has a u32 size)
        raise FrameError(f"sub-batch of {records} records in {uncompressed} bytes")
    f._take(size)
    return Published(publishing_id, bytes(f.buf[start:f.pos]), filter_value, records)


def sub_batch_records(entry: bytes) -> int:
    return int(_SUB_BATCH.unpack_from(entry, 0)[1])


def sub_batch_messages(entry: bytes) -> list[bytes]:
    """The records of a sub-batch (as ``parse_publish`` keeps it): uncompressed or gzip."""
    entry_type, records, uncompressed, size = _SUB_BATCH.unpack_from(entry, 0)
    data = entry[_SUB_BATCH.size:_SUB_BATCH.size + size]
    compression = (entry_type >> 4) & 0x07
    if compression == 1:
        if uncompressed > MAX_UNCOMPRESSED:
            raise UnreadableBatch(f"sub-batch of {uncompressed} bytes uncompressed")
        try:
            data = zlib.decompressobj(31).decompress(data, uncompressed + 1)
        except zlib.error as exc:
            raise UnreadableBatch(f"sub-batch does not inflate: {exc}") from None
    elif compression != 0:
        raise UnreadableBatch(f"sub-batch compressed with "
                              f"{COMPRESSIONS.get(compression, compression)}")
    out = []
    pos = 0
    for _ in range(records):
        if pos + 4 > len(data):
            raise UnreadableBatch("sub-batch shorter than its record count")
        (length,) = _ENTRY.unpack_from(data, pos)
        pos += 4
        if pos + length > len(data):
            raise UnreadableBatch("sub-batch record runs past its end")
        out.append(data[pos:pos + length])
        pos += length
    return out


def frame_entries(entries: list[tuple[bytes, int]]) -> tuple[list[bytes], int, int]:
    """``entries``, each (message, 0) or (a sub-batch as received, its record count), as
    ``deliver`` takes them: the parts of the chunk's data, how many entries, how many
    records. (The broker's reader frames them itself: broker/queues/stream.py's Chunk.)"""
    parts: list[bytes] = []
    records = 0
    for data, count in entries:
        if not count:
            parts.append(_ENTRY.pack(len(data)))
        parts.append(data)
        records += count or 1
    return parts, len(entries), records


def deliver(subscription_id: int, first_offset: int, timestamp_ms: int, parts: list[bytes],
            entries: int, records: int, committed: int | None = None) -> list[bytes]:
    """A Deliver frame (v2 when ``committed``, the committed chunk id, is given) of one
    chunk from ``first_offset`` on: ``entries`` entries holding ``records`` records,
    framed in ``parts`` (a message: its u32 size, then it; a sub-batch as received). Three
    parts to write back to back: the lead, the chunk header, the data, joined once and
    checked with one CRC pass."""
    data = b"".join(parts)
    size = len(data)
    header = CHUNK_HEADER.pack(MAGIC_VERSION, USER_CHUNK, entries, records, timestamp_ms,
                               EPOCH, first_offset, zlib.crc32(data), size, 0, 0)
    if committed is None:
        lead = _DELIVER_V1.pack(4 + 1 + CHUNK_HEADER.size + size, frames.DELIVER, 1,
                                subscription_id)
    else:
        lead = _DELIVER_V2.pack(4 + 9 + CHUNK_HEADER.size + size, frames.DELIVER, 2,
                                subscription_id, committed)
    return [lead, header, data]
