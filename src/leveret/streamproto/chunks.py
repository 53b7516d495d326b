"""Osiris chunks as the stream protocol carries them: the entries of a Publish going in,
the Deliver frames coming out (osiris_log.erl's chunk format).

A Deliver carries one chunk: a 48-byte header (magic and version 0x50, chunk type 0 =
user, entry and record counts, timestamp in ms, epoch, the chunk's first offset, the CRC-32
and length of the data, trailer length, Bloom filter size), then the entries. A simple
entry is ``<<0:1, Size:31, Data>>``; a sub-batch entry (sub-entry batching) is
``<<1:1, Compression:3, 0:4, Records:16, UncompressedSize:32, Size:32, Data>>`` whose data
holds ``<<Size:32, Message>>`` records, compressed as the top bits say (0 none, 1 gzip,
2 snappy, 3 lz4, 4 zstd).

leveret's streams keep entries one per offset, so a published sub-batch is split into its
records (each gets its own offset, as in RabbitMQ where a sub-batch's records take one
offset each) and a consumer gets simple entries.
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
    """One publishing id's messages (several for a sub-batch) and its filter value."""

    publishing_id: int
    messages: list[bytes]
    filter_value: str | None


class UnsupportedCompression(FrameError):
    """A sub-batch compressed with a codec leveret does not read."""


def parse_publish(f: Fields, version: int) -> tuple[int, list[Published]]:
    """Publish's publisher id and its messages (v2 adds a filter value per message)."""
    publisher_id = f.u8()
    count = f.count(12)
    if version < 2:
        return publisher_id, _parse_v1(f, count)
    items = []
    for _ in range(count):
        publishing_id = f.u64()
        filter_value = f.string() if version >= 2 else None
        head = f.u32()
        if head & 0x80000000 == 0:
            start = f._take(head)
            items.append(Published(publishing_id, [bytes(f.buf[start:start + head])],
                                   filter_value))
            continue
        f.pos -= 4  # the sub-batch header starts with that byte
        entry_type, records, uncompressed, size = _SUB_BATCH.unpack_from(
            f.buf, f._take(_SUB_BATCH.size))
        start = f._take(size)
        data = bytes(f.buf[start:start + size])
        items.append(Published(publishing_id, _sub_batch(entry_type, records, uncompressed,
                                                         data), filter_value))
    return publisher_id, items


def _parse_v1(f: Fields, count: int) -> list[Published]:
    """Publish v1's entries: the publishing hot path, so simple entries are cut out with
    one unpack each and no Fields calls; a sub-batch goes through ``Fields``."""
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
            items.append(Published(publishing_id, [bytes(buf[pos:stop])], None))
            pos = stop
            continue
        f.pos = pos - 4  # the sub-batch header starts with that byte
        entry_type, records, uncompressed, size = _SUB_BATCH.unpack_from(
            f.buf, f._take(_SUB_BATCH.size))
        start = f._take(size)
        items.append(Published(publishing_id, _sub_batch(
            entry_type, records, uncompressed, bytes(f.buf[start:start + size])), None))
        pos = f.pos
    f.pos = pos
    return items


def _sub_batch(entry_type: int, records: int, uncompressed: int, data: bytes) -> list[bytes]:
    compression = (entry_type >> 4) & 0x07
    if compression == 1:
        if uncompressed > MAX_UNCOMPRESSED:
            raise FrameError(f"sub-batch of {uncompressed} bytes uncompressed is too large")
        try:
            inflater = zlib.decompressobj(31)
            data = inflater.decompress(data, uncompressed + 1)
        except zlib.error as exc:
            raise FrameError(f"sub-batch does not inflate: {exc}") from None
    elif compression != 0:
        raise UnsupportedCompression(
            f"sub-batch compression {COMPRESSIONS.get(compression, compression)} is not "
            "supported (none and gzip are)")
    out = []
    pos = 0
    for _ in range(records):
        if pos + 4 > len(data):
            raise FrameError("sub-batch shorter than its record count")
        (size,) = _ENTRY.unpack_from(data, pos)
        pos += 4
        if pos + size > len(data):
            raise FrameError("sub-batch record runs past its end")
        out.append(data[pos:pos + size])
        pos += size
    return out


def deliver(subscription_id: int, first_offset: int, timestamp_ms: int,
            messages: list[bytes], committed: int | None = None) -> list[bytes]:
    """A Deliver frame (v2 when ``committed``, the committed chunk id, is given) of one
    chunk holding ``messages`` from ``first_offset`` on, as three parts to write back to
    back (the lead, the chunk header, the entries)."""
    pack = _ENTRY.pack
    data = b"".join([part for m in messages for part in (pack(len(m)), m)])
    size = len(data)
    crc = zlib.crc32(data)  # one pass over the chunk, not two calls per entry
    header = CHUNK_HEADER.pack(MAGIC_VERSION, USER_CHUNK, len(messages), len(messages),
                               timestamp_ms, EPOCH, first_offset, crc, size, 0, 0)
    if committed is None:
        lead = _DELIVER_V1.pack(4 + 1 + CHUNK_HEADER.size + size, frames.DELIVER, 1,
                                subscription_id)
    else:
        lead = _DELIVER_V2.pack(4 + 9 + CHUNK_HEADER.size + size, frames.DELIVER, 2,
                                subscription_id, committed)
    return [lead, header, data]
