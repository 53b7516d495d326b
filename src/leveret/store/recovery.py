"""Rebuild a queue's index from its segment files, surviving what a crash or a bad disk
leaves behind.

Segments are replayed in offset order, records in file order, so the last word wins:
MSG adds a live slot (transient ones are skipped), ACK clears slots, DELIVERED and COUNT
mark them, SEGMENTS says which segments should exist. A torn tail is truncated, a bad
record skipped, a missing segment reported; every problem is one log line, and every good
record is kept.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from leveret.store import records as rec
from leveret.store.index import LIVE, SET_DELIVERED, Segment

log = logging.getLogger("leveret.store")

PROGRESS_EVERY = 2.0  # seconds between progress lines while one queue recovers
MAX_GAP = 1 << 24  # a message this far past its segment's last one is not believed


@dataclass
class Recovered:
    segments: list[Segment] = field(default_factory=list)
    next_offset: int = 0
    counts: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0


class _Replay:
    def __init__(self, what: str) -> None:
        self.what = what
        self.out = Recovered()
        self.manifest: tuple[int, list[int]] | None = None
        self.sealed: tuple[int, int] | None = None  # (a sealed segment, the one after it)
        self.empty_newest: int | None = None  # an empty newest file, removed (a crash as
        # it was created: the sealed segment before it may name it)
        self.firsts: list[int] = []

    def problem(self, text: str) -> None:
        self.out.problems.append(text)
        log.warning("%s: %s", self.what, text)

    def _targets(self, first: int, count: int, current: Segment) -> list[Segment]:
        """The loaded segments a range touches (noting that ``current`` mentions them)."""
        found = []
        for seg in reversed(self.out.segments):
            if seg.stop <= first:
                break
            if seg.first < first + count:
                found.append(seg)
                seg.add_ref(current.first)
        return found

    def segment(self, path: Path, first: int, is_last: bool) -> None:
        size = path.stat().st_size
        if size < rec.FILE_HEADER.size:
            (log.debug if size == 0 and is_last else log.warning)(
                "%s: %s is empty (a crash as it was created): removed", self.what, path.name)
            path.unlink()
            if is_last:
                self.empty_newest = first
            return
        seg = Segment(first, path)
        with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            magic, hfirst = rec.FILE_HEADER.unpack_from(mm, 0)
            if magic != rec.SEGMENT_MAGIC or hfirst != first:
                self.problem(f"{path.name}: bad segment header, reading its records anyway")
            scanner = rec.Scanner(mm, rec.FILE_HEADER.size, size)
            self.out.segments.append(seg)
            self._records(seg, mm, scanner)
            scanner.close()
            for text in scanner.problems:
                self.problem(f"{path.name}: {text}")
            end = scanner.good_end
        if scanner.torn:
            os.truncate(path, end)
        seg.end = end

    def _records(self, seg: Segment, mm: mmap.mmap, scanner: rec.Scanner) -> None:
        first, pos_a, size_a, flags = seg.first, seg.pos, seg.size, seg.flags
        u64 = rec.U64.unpack_from
        counts = self.out.counts
        lowest = self.out.segments[-2].stop if len(self.out.segments) > 1 else first
        for pos, rtype, rflags, length in scanner:
            p = pos + rec.HEADER_SIZE
            if rtype == rec.MSG:
                offset = u64(mm, p)[0]
                slot = offset - first
                if slot < len(flags) or offset < lowest or slot - len(flags) > MAX_GAP:
                    self.problem(f"{seg.path.name}: message record at {pos} has offset "
                                 f"{offset}, out of place: skipped")
                    continue
                while len(flags) < slot:  # records lost to corruption before this one
                    pos_a.append(0)
                    size_a.append(0)
                    flags.append(0)
                pos_a.append(pos)
                size_a.append(length - 8)
                flags.append(0 if rflags & rec.F_TRANSIENT else LIVE)
            elif rtype == rec.ACK or rtype == rec.DELIVERED:
                table = None if rtype == rec.ACK else SET_DELIVERED
                for f, n in rec.decode_ranges(mm, p, length):
                    for target in self._targets(f, n, seg):
                        target.set_range(f, n, table)
            elif rtype == rec.COUNT:
                for o, c in rec.decode_ranges(mm, p, length):
                    if self._targets(o, 1, seg):
                        counts[o] = c
            elif rtype == rec.SEALED:
                self.sealed = (seg.first, u64(mm, p)[0])
            elif rtype == rec.SEGMENTS:
                n = length // 8
                values = [u64(mm, p + 8 * i)[0] for i in range(n)]
                if values:
                    self.manifest = (values[0], values[1:])

    def finish(self) -> Recovered:
        out = self.out
        stop = max((s.stop for s in out.segments), default=0)
        if self.manifest is not None:
            listed_next, listed = self.manifest
            present = {s.first for s in out.segments}
            for i, first in enumerate(listed):
                if first not in present:
                    upto = listed[i + 1] - 1 if i + 1 < len(listed) else "?"
                    self.problem(f"segment {first:020d}.seg is missing: messages at offsets "
                                 f"{first}..{upto} are lost")
            stop = max(stop, listed_next)
        newest = out.segments[-1].first if out.segments else None
        if self.sealed is not None and self.sealed[0] == newest:
            follower = self.sealed[1]
            if follower != self.empty_newest:
                self.problem(f"segment {follower:020d}.seg is missing (the newest): messages "
                             f"from offset {follower} on are lost")
            stop = max(stop, follower)  # offsets are never reused
        out.next_offset = stop
        counts = out.counts
        for seg in out.segments:
            seg.recount()
            out.messages += seg.live
            out.bytes += seg.live_bytes
        live = {o for o in counts if self._is_live(o)}
        out.counts = {o: c for o, c in counts.items() if o in live and c}
        return out

    def _is_live(self, offset: int) -> bool:
        for seg in self.out.segments:
            if seg.first <= offset < seg.stop:
                return bool(seg.flags[offset - seg.first] & LIVE)
        return False


def recover(directory: Path, what: str) -> Recovered:
    """Read every segment of ``directory`` (``what`` names the queue in log lines)."""
    started = time.monotonic()
    files = sorted((int(p.stem), p) for p in directory.glob("*.seg") if p.stem.isdigit())
    total = sum(p.stat().st_size for _, p in files) or 1
    replay = _Replay(what)
    done = 0
    last_line = started
    for n, (first, path) in enumerate(files):
        size = path.stat().st_size
        replay.segment(path, first, n == len(files) - 1)
        done += size
        now = time.monotonic()
        if now - last_line >= PROGRESS_EVERY:
            last_line = now
            log.info("%s: recovering, %d%% of %.1f MB read, %d segments", what,
                     done * 100 // total, total / 1e6, n + 1)
    out = replay.finish()
    took = time.monotonic() - started
    level = logging.INFO if took > 0.5 or out.messages >= 10_000 else logging.DEBUG
    log.log(level, "%s: recovered %d messages (%.1f MB) from %d segments in %.2f s%s", what,
            out.messages, out.bytes / 1e6, len(out.segments), took,
            f", {len(out.problems)} problems" if out.problems else "")
    return out
