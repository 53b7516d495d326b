"""One queue's log on disk: append-only segment files and their compact in-memory index.

Every record of a queue (messages, acks, delivered marks, delivery counts, the segment
list) is appended to its newest segment, so one fsync per queue makes a commit durable.
A segment rolls at ``segment_bytes``, or at a flush once it has nothing live and holds half
of that; a segment other than the newest whose messages are all acked is deleted at the
next flush (after re-recording, in the newest segment, any state about older live
segments it held: see reclaim.py). Bodies stay on disk and are
read back with one pread on demand. docs/storage.md has the format and the rules.

A log reports to its owner (the ``DiskStore``, disk.py) through ``LogOwner``, declared here
so that this module never imports disk.py back: the store package has no import circle.
"""

from __future__ import annotations

import os
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from leveret.store import reclaim
from leveret.store import records as rec
from leveret.store.base import CorruptRecord, Live, LiveBatch, Payload, QueueLog, StoreClosed
from leveret.store.files import Buffer
from leveret.store.index import (
    DELIVERED,
    IS_DELIVERED,
    IS_LIVE,
    IS_PERSISTENT,
    LIVE,
    TRANSIENT,
    Segment,
)

BUFFER_MAX: Final = 1 << 20  # write the tail's buffer once it holds this much
DIRECT: Final = 256 << 10  # messages this large skip the buffer (written with writev, no copy)
# a newest segment whose messages are all acked rolls at a flush once it holds
# segment_bytes // EMPTY_TAIL_ROLL bytes, so that reclaim deletes it (a drained queue keeps
# under half a segment on disk; one drained at every flush rolls twice as often)
EMPTY_TAIL_ROLL: Final = 2
READ_SPAN: Final = 1 << 20  # read_many: records this close together in a file share one pread


def segment_path(directory: Path, first: int) -> Path:
    return directory / f"{first:020d}.seg"


class LogOwner(Protocol):
    """What a log needs from the store that owns it: shared file handles, buffered writes
    and group commit (``DiskStore`` in disk.py)."""

    @property
    def segment_bytes(self) -> int: ...
    def changed(self, qlog: SegmentLog, durable: bool) -> None: ...  # dirty; durable: seq+1
    def created(self, qlog: SegmentLog) -> None: ...  # a new segment file, to fsync its dir
    def write_all(self, qlog: SegmentLog, parts: list[Buffer]) -> None: ...  # to the tail
    def sealed(self, seg: Segment, fd: int) -> None: ...  # no longer written to
    def retired(self, key: Segment, fd: int = -1) -> None: ...  # deleted or closing
    def fd_for(self, seg: Segment) -> int: ...  # a descriptor to read a sealed segment
    def delete_queue(self, vhost: str, name: str) -> None: ...
    def close_log(self, qlog: SegmentLog) -> None: ...


class SegmentLog:
    def __init__(self, store: LogOwner, vhost: str, name: str, directory: Path,
                 transient: bool, segments: list[Segment], next_offset: int,
                 counts: dict[int, int]) -> None:
        self.store = store
        self.vhost = vhost
        self.name = name
        self.dir = directory
        self.transient = transient
        self.segments = segments
        self.firsts = [s.first for s in segments]
        self.counts = counts  # offset -> delivery count, live messages with a count only
        self.buf = bytearray()  # bytes for the newest segment not yet written
        self.fd = -1  # the newest segment's, opened read-write
        self.closed = False
        self._next = next_offset
        self.live_count = sum(s.live for s in segments)
        self.live_bytes = sum(s.live_bytes for s in segments)
        self._acks: list[int] = []
        self._delivered: list[int] = []
        self.count_marks: dict[int, int] = {}
        self.reclaim_due = any(s.live == 0 for s in segments)
        last = segments[-1] if segments else None
        if last is not None and not last.flags and last.first == next_offset:
            # Rolled just before a crash: no message yet, maybe acks. Its name is the one a
            # new segment would take, so it stays the newest and is appended to.
            self.fd = os.open(last.path, os.O_RDWR)
            last.end = os.lseek(self.fd, 0, os.SEEK_END)
        else:
            self.roll()  # a fresh newest segment: recovered messages are never appended to
        self.store.changed(self, False)  # the next flush reclaims what recovery found acked

    # -- the newest segment ------------------------------------------------------------

    @property
    def tail(self) -> Segment:
        return self.segments[-1]

    def roll(self) -> None:
        seg = Segment(self._next, segment_path(self.dir, self._next))
        # The file exists before the old segment names it in SEALED: a crash in between
        # leaves an empty newest file (removed at recovery, nothing lost), never a SEALED
        # naming an absent file, which recovery must report as lost.
        fd = os.open(seg.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        if self.segments:
            if self.fd < 0:  # the newest recovered segment: reopened once, to seal it
                self.fd = os.open(self.tail.path, os.O_RDWR | os.O_APPEND)
            self.encode_marks()
            # Names the segment that follows, so recovery can tell when the newest is gone
            # (the SEGMENTS list naming it is inside it).
            self.buf += rec.record(rec.SEALED, rec.U64.pack(self._next))
            self._write()
            old = self.segments[-1]
            self.store.sealed(old, self.fd)
            if not old.live:
                self._reclaim_later()  # every message was acked while it was the newest
        self.fd = fd
        self.segments.append(seg)
        self.firsts.append(seg.first)
        self.buf += rec.FILE_HEADER.pack(rec.SEGMENT_MAGIC, seg.first)
        self.write_manifest()
        self.store.created(self)

    def new_segment(self) -> None:
        """Start a new segment file now, unless the newest has no message yet (a stream
        cuts its files where its retention segments begin, so retention frees whole
        files)."""
        if not self.closed and self.tail.flags:
            self.roll()

    def write_manifest(self) -> None:
        firsts = [s.first for s in self.segments]
        self.buf += rec.record(rec.SEGMENTS, rec.U64.pack(self._next) +
                               b"".join(rec.U64.pack(f) for f in firsts))

    def _write(self) -> None:
        if self.buf:
            self.store.write_all(self, [self.buf])
            self.tail.end += len(self.buf)
            self.buf = bytearray()

    # -- messages ----------------------------------------------------------------------

    def append(self, payload: Payload, persistent: bool = True) -> int:
        if self.closed:
            raise StoreClosed(f"the log of queue '{self.name}' is closed")
        parts = None if isinstance(payload, (bytes, bytearray, memoryview)) else list(payload)
        size = len(payload) if parts is None else sum(len(p) for p in parts)
        tail = self.tail
        if tail.flags and tail.end + len(self.buf) + size + rec.MSG_OVERHEAD > \
                self.store.segment_bytes:
            self.roll()
            tail = self.tail
        offset = self._next
        self._next = offset + 1
        durable = persistent and not self.transient
        head = rec.message_head(offset, payload if parts is None else parts, size,
                                0 if durable else rec.F_TRANSIENT)
        pos = tail.end + len(self.buf)
        if size >= DIRECT:
            self._write()
            self.store.write_all(self, [head, *(parts or (payload,))])
            tail.end += len(head) + size
        else:
            buf = self.buf
            buf += head
            if parts is None:
                buf += payload  # type: ignore[arg-type]
            else:
                for p in parts:
                    buf += p
        tail.pos.append(pos)
        tail.size.append(size)
        tail.flags.append(LIVE if durable else LIVE | TRANSIENT)
        tail.live += 1
        tail.live_bytes += size
        self.live_count += 1
        self.live_bytes += size
        self.store.changed(self, durable)
        if len(self.buf) >= BUFFER_MAX:
            self._write()
        return offset

    def append_many(self, payloads: Sequence[bytes]) -> int:
        """``append`` of many small persistent payloads (a sub-entry batch's further
        offsets: 65,535 of them at most), the per-record work only: one roll check, one
        report to the store; returns the first offset."""
        if self.closed:
            raise StoreClosed(f"the log of queue '{self.name}' is closed")
        count = len(payloads)
        total = 0
        for payload in payloads:
            total += len(payload)
        tail = self.tail
        if tail.flags and tail.end + len(self.buf) + total + count * rec.MSG_OVERHEAD > \
                self.store.segment_bytes:
            self.roll()
            tail = self.tail
        durable = not self.transient
        flags = 0 if durable else rec.F_TRANSIENT
        first = offset = self._next
        buf = self.buf
        pos = tail.end + len(buf)
        positions, sizes = tail.pos, tail.size
        pack, pack_offset, crc32 = rec.MSG_HEAD.pack, rec.U64.pack, zlib.crc32
        last_size = -1
        head_crc = 0
        for payload in payloads:  # (rec.message_head inlined, its head's CRC reused)
            size = len(payload)
            if size != last_size:
                last_size = size
                head_crc = crc32(rec.HEAD8.pack(rec.MAGIC, rec.MSG, flags, size + 8))
            buf += pack(rec.MAGIC, rec.MSG, flags, size + 8,
                        crc32(payload, crc32(pack_offset(offset), head_crc)), offset)
            buf += payload
            positions.append(pos)
            sizes.append(size)
            pos += rec.MSG_OVERHEAD + size
            offset += 1
        self._next = offset
        tail.flags += bytes((LIVE if durable else LIVE | TRANSIENT,)) * count
        tail.live += count
        tail.live_bytes += total
        self.live_count += count
        self.live_bytes += total
        self.store.changed(self, durable)
        if len(self.buf) >= BUFFER_MAX:
            self._write()
        return first

    def locate(self, offset: int) -> tuple[Segment, int]:
        segs = self.segments
        seg = segs[0]  # acks are mostly at the head, appends at the tail
        i = offset - seg.first
        if not 0 <= i < len(seg.flags):
            seg = segs[-1]
            i = offset - seg.first
            if not 0 <= i < len(seg.flags):
                k = bisect_right(self.firsts, offset) - 1
                if k < 0:
                    raise KeyError(offset)
                seg = segs[k]
                i = offset - seg.first
                if i >= len(seg.flags):
                    raise KeyError(offset)
        if not seg.flags[i] & LIVE:
            raise KeyError(offset)
        return seg, i

    def read(self, offset: int) -> bytes:
        if self.closed:
            raise StoreClosed(f"the log of queue '{self.name}' is closed")
        seg, i = self.locate(offset)
        pos, size = seg.pos[i], seg.size[i]
        n = rec.MSG_OVERHEAD + size
        if seg is self.tail and pos >= seg.end:
            raw = bytes(self.buf[pos - seg.end:pos - seg.end + n])
        else:
            raw = os.pread(self.fd if seg is self.tail else self.store.fd_for(seg), n, pos)
        if not rec.check_message(raw, offset, size):
            raise CorruptRecord(f"message {offset} of queue '{self.name}' in vhost "
                                f"'{self.vhost}' failed its checksum ({seg.path.name}:{pos})")
        return raw[rec.MSG_OVERHEAD:]

    # -- acks and marks ----------------------------------------------------------------

    def ack(self, offset: int) -> None:
        if self.closed:
            return
        seg, i = self.locate(offset)
        flags = seg.flags[i]
        seg.flags[i] = 0
        size = seg.size[i]
        seg.live -= 1
        seg.live_bytes -= size
        self.live_count -= 1
        self.live_bytes -= size
        if offset in self.counts:
            del self.counts[offset]
            self.count_marks.pop(offset, None)
        tail = self.segments[-1]
        if not flags & TRANSIENT:
            self._acks.append(offset)
            if seg is not tail:  # seg.add_ref, inlined: once per acked message
                if seg.refs is None:
                    seg.refs = {tail.first}
                else:
                    seg.refs.add(tail.first)
        if seg.live == 0 and seg is not tail:
            self._reclaim_later()
        else:
            self.store.changed(self, not flags & TRANSIENT)

    def _reclaim_later(self) -> None:
        """A sealed segment has no live message left: the next flush deletes it. Counted
        as a durable change even when only transient messages left (a paging queue), so
        the broker commits, which flushes, soon."""
        self.reclaim_due = True
        self.store.changed(self, True)

    def ack_runs(self, runs: Iterable[tuple[int, int]]) -> int:
        """Ack every live message in the (first, count) runs at once (a purge of a paged
        backlog): slices of the index, one ACK record per run. Returns how many."""
        if self.closed:
            return 0
        self.encode_marks()  # marks buffered for these offsets go before their acks
        tail = self.tail
        acked = 0
        durable: list[tuple[int, int]] = []
        reclaim = False
        for first, count in runs:
            end = first + count
            k = max(bisect_right(self.firsts, first) - 1, 0)
            for seg in self.segments[k:]:
                if seg.first >= end:
                    break
                a = max(first - seg.first, 0)
                b = min(end - seg.first, len(seg.flags))
                if a >= b or not seg.live:
                    continue
                flags = seg.flags[a:b]
                mask = flags.translate(IS_LIVE)
                n = mask.count(1)
                if not n:
                    continue
                size = sum(compress(seg.size[a:b], mask))
                runs_here = Segment.mask_runs(flags.translate(IS_PERSISTENT), seg.first + a)
                if runs_here:
                    durable += runs_here
                    seg.add_ref(tail.first)
                seg.flags[a:b] = bytes(b - a)
                seg.live -= n
                seg.live_bytes -= size
                self.live_count -= n
                self.live_bytes -= size
                acked += n
                if seg.live == 0 and seg is not tail:
                    reclaim = True
        if self.counts:
            for offset in [o for o in self.counts if not self._is_live(o)]:
                del self.counts[offset]
                self.count_marks.pop(offset, None)
        if durable:
            self.buf += rec.range_records(rec.ACK, durable)
        if reclaim:
            self._reclaim_later()
        elif acked:
            self.store.changed(self, bool(durable))
        return acked

    def _is_live(self, offset: int) -> bool:
        try:
            self.locate(offset)
        except KeyError:
            return False
        return True

    def mark_delivered(self, offset: int) -> None:
        if self.closed:
            return
        seg, i = self.locate(offset)
        flags = seg.flags[i]
        if flags & DELIVERED:
            return
        seg.flags[i] = flags | DELIVERED
        if not flags & TRANSIENT:
            self._delivered.append(offset)
            tail = self.segments[-1]
            if seg is not tail:  # seg.add_ref, inlined: once per delivered message
                if seg.refs is None:
                    seg.refs = {tail.first}
                else:
                    seg.refs.add(tail.first)
            self.store.changed(self, True)

    def set_delivery_count(self, offset: int, count: int) -> None:
        if self.closed:
            return
        seg, i = self.locate(offset)
        if count:
            self.counts[offset] = count
        else:
            self.counts.pop(offset, None)
        if not seg.flags[i] & TRANSIENT:
            self.count_marks[offset] = count
            seg.add_ref(self.tail.first)
            self.store.changed(self, True)

    def encode_marks(self) -> None:
        if self.count_marks:
            pairs = sorted(self.count_marks.items())
            self.count_marks = {}
            self.buf += rec.range_records(rec.COUNT, pairs)
        if self._delivered:
            self.buf += rec.range_records(rec.DELIVERED, rec.ranges(self._delivered))
            self._delivered = []
        if self._acks:
            self.buf += rec.range_records(rec.ACK, rec.ranges(self._acks))
            self._acks = []

    # -- reading the index ---------------------------------------------------------------

    def live(self, start: int = 0, limit: int | None = None) -> list[Live]:
        out: list[Live] = []
        counts = self.counts
        for seg in self.segments:
            if seg.stop <= start or not seg.live:
                continue
            mask = seg.flags.translate(IS_LIVE)
            find, flags, sizes, first = mask.find, seg.flags, seg.size, seg.first
            i = find(1, max(start - first, 0))
            while i >= 0:
                if limit is not None and len(out) >= limit:
                    return out
                offset = first + i
                count = counts.get(offset, 0)
                out.append(Live(offset, sizes[i], count, bool(flags[i] & DELIVERED or count)))
                i = find(1, i + 1)
        return out

    def live_batches(self, start: int = 0) -> Iterator[LiveBatch]:
        """The live messages from ``start``, one batch per segment, built with slices and
        ``compress`` over the index (no Python loop per message)."""
        for seg in list(self.segments):
            if seg.stop <= start or not seg.live:
                continue
            a = max(start - seg.first, 0)
            flags = seg.flags[a:] if a else seg.flags
            mask = flags.translate(IS_LIVE)
            base = seg.first + a
            offsets = array("q", compress(range(base, seg.stop), mask))
            if not offsets:
                continue
            sizes = array("I", compress(seg.size[a:] if a else seg.size, mask))
            redelivered = bytearray(compress(flags.translate(IS_DELIVERED), mask))
            counts = {o: c for o, c in self.counts.items() if base <= o < seg.stop}
            for o in counts:
                redelivered[bisect_left(offsets, o)] = 1
            yield LiveBatch(offsets, sizes, bytes(redelivered), counts)

    def read_many(self, offsets: Sequence[int]) -> list[bytes]:
        """``read`` of many offsets, in increasing order: the records of one segment
        within READ_SPAN bytes (a backlog's are back to back) are fetched with one pread.
        Raises CorruptRecord (or KeyError) at the first bad
        one; the caller may then read them one by one."""
        if self.closed:
            raise StoreClosed(f"the log of queue '{self.name}' is closed")
        out: list[bytes] = []
        n = len(offsets)
        i = 0
        overhead, header = rec.MSG_OVERHEAD, rec.HEADER_SIZE
        unpack, crc32 = rec.MSG_HEAD.unpack_from, zlib.crc32
        while i < n:
            seg, k = self.locate(offsets[i])
            pos, sizes, flags, first = seg.pos, seg.size, seg.flags, seg.first
            start = pos[k]
            # This pread's records: the next ones in this segment, all written or all still
            # in the buffer, starting within READ_SPAN (checked one by one below).
            j = bisect_left(offsets, seg.stop, i, n)
            written = seg.end if seg is self.tail else None
            if written is not None:
                cut = written if start < written else start + READ_SPAN
                j = bisect_left(offsets, cut, i + 1, j, key=lambda o: pos[o - first])
            limit = start + READ_SPAN
            j = max(i + 1, bisect_left(offsets, limit, i + 1, j, key=lambda o: pos[o - first]))
            last = offsets[j - 1] - first
            stop = pos[last] + overhead + sizes[last]
            if written is not None and start >= written:
                raw = bytes(self.buf[start - written:stop - written])
            else:
                fd = self.fd if seg is self.tail else self.store.fd_for(seg)
                raw = os.pread(fd, stop - start, start)
            mv = memoryview(raw)
            prev = offsets[i] - 1
            for x in range(i, j):  # check_message, inlined: this is the paging loop
                offset = offsets[x]
                s = offset - first
                if offset <= prev or not flags[s] & LIVE:
                    if offset <= prev:
                        raise ValueError("read_many needs offsets in increasing order")
                    raise KeyError(offset)
                prev = offset
                p = pos[s] - start
                size = sizes[s]
                end = p + overhead + size
                magic, rtype, _flags, length, crc, off = unpack(raw, p)
                if (magic != rec.MAGIC or rtype != rec.MSG or length != size + 8 or
                        off != offset or end > len(raw) or
                        crc32(mv[p + header:end], crc32(mv[p:p + 8])) != crc):
                    raise CorruptRecord(
                        f"message {offset} of queue '{self.name}' in vhost '{self.vhost}' "
                        f"failed its checksum ({seg.path.name}:{pos[s]})")
                out.append(raw[p + overhead:end])
            i = j
        return out

    def __len__(self) -> int:
        return self.live_count

    @property
    def bytes(self) -> int:
        return self.live_bytes

    @property
    def next_offset(self) -> int:
        return self._next

    def purge(self, keep: Iterable[int] = ()) -> int:
        """Ack every live message but ``keep`` (delivered, awaiting an ack), then roll so
        the old segments can go at the next flush."""
        if self.closed:
            return 0
        purged = reclaim.purge(self, keep)
        self.store.changed(self, not self.transient)
        self.roll()
        self.reclaim_due = True
        return purged

    # -- flush, reclaim, delete ----------------------------------------------------------

    def flush(self) -> list[Path]:
        """Write everything buffered; delete fully acked segments (their paths are returned
        to unlink once the newest segment is synced)."""
        if self.closed:
            return []
        self.encode_marks()
        tail = self.tail
        if tail.flags and not tail.live and \
                tail.end + len(self.buf) >= self.store.segment_bytes // EMPTY_TAIL_ROLL:
            # Every message of the newest segment is acked (a large one, consumed): seal
            # it so that the reclaim below deletes it now rather than at the next roll,
            # which may never come. It held a message, so the new one (no message yet)
            # does not roll again before an append.
            self.roll()
        gone = reclaim.reclaim(self) if self.reclaim_due else []
        for seg in gone:
            self.store.retired(seg)
        self._write()
        return [seg.path for seg in gone]

    def write_buffered(self) -> None:
        """Write the buffered records (and pending marks) to the OS; the log stays dirty
        for the next ``flush``."""
        if not self.closed:
            self.encode_marks()
            self._write()

    def delete(self) -> None:
        self.store.delete_queue(self.vhost, self.name)

    def close(self) -> None:
        self.store.close_log(self)

    def release(self) -> None:
        """Drop file handles (the store has written and synced what it had to)."""
        self.closed = True
        for seg in self.segments[:-1]:
            self.store.retired(seg)
        if self.fd >= 0:
            self.store.retired(self.tail, self.fd)
            self.fd = -1


if TYPE_CHECKING:  # mypy holds the class to its interface in base.py
    _LOG: type[QueueLog] = SegmentLog
