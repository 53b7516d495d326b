"""The record format of segment files and the definitions log, and a scanner that survives
corruption.

A record is a 12-byte header and a payload::

    u16 magic 0x564C ("LV")  u8 type  u8 flags  u32 length  u32 crc32(header[0:8] + payload)

little-endian. A file starts with a 16-byte file header: 8 magic bytes and a u64 (the first
offset of a segment, 0 for the definitions log). The scanner yields every record whose
checksum holds; a bad record followed by a good one is skipped (``skipped``), bad bytes up
to the end of the file are a torn tail (``good_end`` tells where to truncate).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from mmap import mmap
from typing import Final

from leveret.store.base import Payload

# What records are read from: a whole file's bytes, or a segment mapped by recovery.
Readable = bytes | bytearray | mmap

MAGIC: Final = 0x564C
MAGIC_BYTES: Final = MAGIC.to_bytes(2, "little")
HEADER: Final = struct.Struct("<HBBII")  # magic, type, flags, length, crc
HEAD8: Final = struct.Struct("<HBBI")
CRC: Final = struct.Struct("<I")
MSG_HEAD: Final = struct.Struct("<HBBIIQ")  # header + u64 offset, the start of a message record
U64: Final = struct.Struct("<Q")
RANGE: Final = struct.Struct("<QI")  # first offset, count
FILE_HEADER: Final = struct.Struct("<8sQ")
HEADER_SIZE: Final = HEADER.size  # 12
MSG_OVERHEAD: Final = MSG_HEAD.size  # 20: header and offset before the message bytes

SEGMENT_MAGIC: Final = b"LVSEG\x00\x00\x01"
DEFINITIONS_MAGIC: Final = b"LVDEF\x00\x00\x01"

# Record types.
MSG: Final = 1  # u64 offset, message bytes; flags bit 0: transient (not recovered)
ACK: Final = 2  # (u64 first, u32 count) ranges of acked offsets
DELIVERED: Final = 3  # ranges of offsets delivered at least once
COUNT: Final = 4  # (u64 offset, u32 delivery count) pairs; the last one written wins
SEGMENTS: Final = 5  # u64 next offset, then the u64 first offsets of the live segments
SEALED: Final = 6  # u64 first offset of the segment that follows: the last record of a sealed one
DEF_PUT: Final = 16  # JSON [kind, key, value]
DEF_DELETE: Final = 17  # JSON [kind, key]
TYPES: Final = frozenset((MSG, ACK, DELIVERED, COUNT, SEGMENTS, SEALED, DEF_PUT, DEF_DELETE))

# Final: a constant to mypyc (leveret/build.py), not an attribute lookup on each record
_crc32: Final = zlib.crc32

F_TRANSIENT: Final = 1
MAX_RANGES: Final = 4096  # per ACK / DELIVERED / COUNT record


def record(rtype: int, payload: bytes, flags: int = 0) -> bytes:
    head = HEAD8.pack(MAGIC, rtype, flags, len(payload))
    return head + CRC.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def message_head(offset: int, data: Payload, size: int, flags: int = 0) -> bytes:
    """The 20 bytes before a message's data (``data`` is a buffer or a list of parts)."""
    head = HEAD8.pack(MAGIC, MSG, flags, size + 8)
    off = U64.pack(offset)
    crc = _crc32(off, _crc32(head))
    if isinstance(data, (bytes, bytearray, memoryview)):  # (a tuple: mypyc tests each type)
        crc = _crc32(data, crc)
    else:
        for part in data:
            crc = _crc32(part, crc)
    return head + CRC.pack(crc) + off


def check_message(raw: bytes | memoryview, offset: int, size: int) -> bool:
    """Whether ``raw`` is the intact message record of ``offset`` with ``size`` bytes."""
    if len(raw) != MSG_OVERHEAD + size:
        return False
    magic: int
    rtype: int
    length: int
    crc: int
    off: int
    magic, rtype, _flags, length, crc, off = MSG_HEAD.unpack_from(raw)
    mv = memoryview(raw)
    return (magic == MAGIC and rtype == MSG and length == size + 8 and off == offset and
            zlib.crc32(mv[HEADER_SIZE:], zlib.crc32(mv[:8])) == crc)


def ranges(offsets: list[int]) -> list[tuple[int, int]]:
    """Sorted, merged (first, count) runs of a list of offsets."""
    out: list[tuple[int, int]] = []
    if not offsets:
        return out
    ordered = sorted(set(offsets))
    first = prev = ordered[0]
    for o in ordered:  # consumers ack in order: long runs, one tuple each
        if o > prev + 1:
            out.append((first, prev - first + 1))
            first = o
        prev = o
    out.append((first, prev - first + 1))
    return out


def range_records(rtype: int, runs: list[tuple[int, int]]) -> bytes:
    return b"".join(record(rtype, b"".join(RANGE.pack(f, n) for f, n in runs[i:i + MAX_RANGES]))
                    for i in range(0, len(runs), MAX_RANGES))


def decode_ranges(buf: Readable, start: int, length: int) -> Iterator[tuple[int, int]]:
    return RANGE.iter_unpack(buf[start:start + length - length % RANGE.size])


class Scanner:
    """Walk the records of ``buf[start:end]``, checking every checksum.

    After iteration: ``good_end`` is where the last good record ends (truncate a torn tail
    there) and ``problems`` lists what was wrong, one readable line each."""

    def __init__(self, buf: Readable, start: int, end: int) -> None:
        self.buf = buf
        self.mv = memoryview(buf)
        self.pos = start
        self.end = end
        self.good_end = start
        self.problems: list[str] = []
        self.skipped = 0  # bad records skipped (good records follow them)
        self.torn = False

    def close(self) -> None:
        self.mv.release()  # so an mmap under it can close

    def _valid(self, pos: int) -> int:
        """The length of a good record at ``pos``, or -1."""
        if self.end - pos < HEADER_SIZE:
            return -1
        length: int  # annotations only: struct fields are Any to mypy
        magic, rtype, _flags, length, crc = HEADER.unpack_from(self.buf, pos)
        if magic != MAGIC or rtype not in TYPES or length > self.end - pos - HEADER_SIZE:
            return -1
        mv = self.mv
        if zlib.crc32(mv[pos + HEADER_SIZE:pos + HEADER_SIZE + length],
                      zlib.crc32(mv[pos:pos + 8])) != crc:
            return -1
        return length

    def _resync(self, pos: int) -> int:
        """Where the next good record after a bad one at ``pos`` starts, or -1.

        Two guesses: past the bad record by its length (right when the payload rotted,
        and immune to records embedded in a message body), and the first good record
        after ``pos`` (right when the length itself is bad). The second wins only when a
        chain of good records leads from it to the first, i.e. there were real records in
        between."""
        by_length = -1
        if self.end - pos >= HEADER_SIZE:
            length: int
            magic, _t, _f, length, _c = HEADER.unpack_from(self.buf, pos)
            after = pos + HEADER_SIZE + length
            if magic == MAGIC and after < self.end and self._valid(after) >= 0:
                by_length = after
        first = self._next_valid(pos + 1, by_length if by_length >= 0 else self.end)
        if by_length < 0:
            return first
        if first < 0 or not self._chain(first, by_length):
            return by_length
        return first

    def _next_valid(self, start: int, stop: int) -> int:
        find = self.buf.find
        q = find(MAGIC_BYTES, start, self.end)
        while 0 <= q < stop:
            if self._valid(q) >= 0:
                return q
            q = find(MAGIC_BYTES, q + 1, self.end)
        return -1

    def _chain(self, pos: int, target: int) -> bool:
        """Whether good records lead from ``pos`` exactly to ``target``."""
        while pos < target:
            length = self._valid(pos)
            if length < 0:
                return False
            pos += HEADER_SIZE + length
        return pos == target

    def __iter__(self) -> Iterator[tuple[int, int, int, int]]:
        """Yield (position, type, flags, payload length); the payload is at pos + 12."""
        buf, end, unpack = self.buf, self.end, HEADER.unpack_from
        crc32, mv = zlib.crc32, self.mv
        pos = self.pos
        while pos < end:
            if end - pos >= HEADER_SIZE:
                magic, rtype, flags, length, crc = unpack(buf, pos)
                stop = pos + HEADER_SIZE + length
                if (magic == MAGIC and stop <= end and rtype in TYPES and
                        crc32(mv[pos + HEADER_SIZE:stop], crc32(mv[pos:pos + 8])) == crc):
                    yield pos, rtype, flags, length
                    pos = self.good_end = stop
                    continue
            nxt = self._resync(pos)
            if nxt < 0:
                self.torn = True
                self.problems.append(f"torn or corrupt tail: {end - pos} bytes at position "
                                     f"{pos} dropped")
                break
            self.skipped += 1
            self.problems.append(f"bad record at position {pos} ({nxt - pos} bytes) skipped")
            pos = nxt
        self.pos = pos
