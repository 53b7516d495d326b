"""What a queue keeps in memory of a message whose body waits on disk: its log offset, its
size, and (rarely) its delivery count and redelivered flag, packed in arrays.

A queue past its in-memory limit (``x-max-in-memory-length`` / ``-bytes``, or the broker's
``Limits``) appends further messages to its log and records them here instead of holding
an ``Entry``; they are read back from the log in batches as the in-memory head (the
window) runs out. docs/storage.md ("Paging") has the design and the figures.

Per message: 8 bytes of offset and 4 of size in ``array``s, in chunks of up to 8192
messages; delivery counts and redelivered flags (only recovered messages have them) take 4
more bytes in the chunks that have any. Priority needs no field (one index per level) and
neither does the expiry time, which is in the log record and only matters once a message
reaches the head.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from itertools import accumulate

from leveret.broker.message import FLAG_DELIVERY_MODE, FLAG_HEADERS, FLAG_PRIORITY

CHUNK = 8192  # messages per chunk when appending one at a time


class _Chunk:
    __slots__ = ("head", "marks", "offsets", "sizes")

    def __init__(self, offsets: array[int], sizes: array[int],
                 marks: array[int] | None = None) -> None:
        self.offsets = offsets  # array('q')
        self.sizes = sizes  # array('I')
        # array('I') of delivery_count << 1 | redelivered, None while every one is 0
        self.marks = marks
        self.head = 0  # slots before this one were taken


class PagedIndex:
    """Paged messages of one priority level, oldest first."""

    __slots__ = ("_chunks", "bytes", "count")

    def __init__(self) -> None:
        self._chunks: deque[_Chunk] = deque()
        self.count = 0
        self.bytes = 0  # the sizes recorded (body bytes; record bytes after a restart)

    def __len__(self) -> int:
        return self.count

    def append(self, offset: int, size: int, mark: int = 0) -> None:
        chunks = self._chunks
        if chunks and len(chunks[-1].offsets) < CHUNK:
            chunk = chunks[-1]
        else:
            chunk = _Chunk(array("q"), array("I"))
            chunks.append(chunk)
        chunk.offsets.append(offset)
        chunk.sizes.append(size)
        if mark or chunk.marks is not None:
            if chunk.marks is None:
                chunk.marks = array("I", bytes(4 * (len(chunk.offsets) - 1)))
            chunk.marks.append(mark)
        self.count += 1
        self.bytes += size

    def extend(self, offsets: array[int], sizes: array[int],
               marks: array[int] | None = None) -> None:
        """Add a batch as one chunk (recovery: the arrays are kept as they are)."""
        if offsets:
            self._chunks.append(_Chunk(offsets, sizes, marks))
            self.count += len(offsets)
            self.bytes += sum(sizes)

    def take(self, max_count: int, max_bytes: int) -> tuple[list[int], list[int], list[int]]:
        """Remove up to ``max_count`` messages from the head, fewer if their sizes reach
        ``max_bytes`` (always at least one): their (offsets, sizes, marks)."""
        offsets: list[int] = []
        sizes: list[int] = []
        marks: list[int] = []
        chunks = self._chunks
        room = max_bytes
        while chunks and len(offsets) < max_count and room > 0:
            chunk = chunks[0]
            h = chunk.head
            end = min(len(chunk.offsets), h + max_count - len(offsets))
            part = chunk.sizes[h:end]
            sums = list(accumulate(part))
            k = min(len(part), bisect_left(sums, room) + 1)
            offsets += chunk.offsets[h:h + k]
            sizes += part[:k]
            marks += chunk.marks[h:h + k] if chunk.marks is not None else [0] * k
            room -= sums[k - 1]
            chunk.head = h + k
            if chunk.head == len(chunk.offsets):
                chunks.popleft()
        self.count -= len(offsets)
        self.bytes -= sum(sizes)
        return offsets, sizes, marks

    def runs(self) -> list[tuple[int, int]]:
        """(first offset, count) runs of consecutive offsets: a FIFO backlog is a handful
        of runs however long it is, so a purge acks it with a few slices of the log."""
        out: list[tuple[int, int]] = []
        for chunk in self._chunks:
            offs = chunk.offsets
            h = chunk.head
            n = len(offs) - h
            if offs[-1] - offs[h] == n - 1:  # one run (offsets only grow)
                pieces: Iterator[tuple[int, int]] = iter(((offs[h], n),))
            else:
                pieces = _runs(offs, h)
            for first, count in pieces:
                if out and out[-1][0] + out[-1][1] == first:
                    out[-1] = (out[-1][0], out[-1][1] + count)
                else:
                    out.append((first, count))
        return out

    def clear(self) -> None:
        self._chunks.clear()
        self.count = self.bytes = 0

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        """(offset, size, mark) of every paged message, oldest first."""
        for chunk in self._chunks:
            marks = chunk.marks
            for i in range(chunk.head, len(chunk.offsets)):
                yield chunk.offsets[i], chunk.sizes[i], marks[i] if marks is not None else 0

    def memory(self) -> int:
        """Bytes of the arrays' elements (a measure of the index, for benchmarks)."""
        total = 0
        for chunk in self._chunks:
            for a in (chunk.offsets, chunk.sizes, chunk.marks):
                if a is not None:
                    total += a.buffer_info()[1] * a.itemsize
        return total


def _runs(offsets: array[int], start: int) -> Iterator[tuple[int, int]]:
    first = prev = offsets[start]
    for o in offsets[start + 1:]:
        if o != prev + 1:
            yield first, prev - first + 1
            first = o
        prev = o
    yield first, prev - first + 1


def marks_of(redelivered: bytes, counts: dict[int, int],
             offsets: array[int]) -> array[int] | None:
    """The marks array of a recovered batch, or None when no message has a mark."""
    if not counts and 1 not in redelivered:
        return None
    marks = array("I", list(redelivered))
    for offset, count in counts.items():
        i = bisect_left(offsets, offset)
        marks[i] = count << 1 | 1
    return marks


def priority_of(properties_raw: bytes) -> int:
    """The priority property read straight from the wire encoding (recovery of a priority
    queue reads it for every message: no Properties object)."""
    raw = properties_raw
    if len(raw) < 2:
        return 0
    flags = raw[0] << 8 | raw[1]
    if not flags & FLAG_PRIORITY:
        return 0
    off = 2
    for bit in (0x8000, 0x4000):  # content-type, content-encoding: shortstr
        if flags & bit:
            off += 1 + raw[off]
    if flags & FLAG_HEADERS:
        off += 4 + int.from_bytes(raw[off:off + 4], "big")
    if flags & FLAG_DELIVERY_MODE:
        off += 1
    return raw[off]
