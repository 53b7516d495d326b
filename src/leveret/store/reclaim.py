"""Space: purge, and the reclaim of segments whose messages are all acked.

A segment other than the newest whose messages are all acked is deleted at the next
flush (the newest is rolled first by that flush when nothing in it is live and it holds
half a segment: ``SegmentLog.flush``). Its records may hold acks, delivered marks or
counts about messages of an older, still live segment (a consumer acked them while it was
the newest); those are first written again, as a snapshot of that older segment's state,
into the newest segment, so a slow message never pins the segments after it. The segment
list (SEGMENTS record) is written after every change, so recovery tells a reclaimed segment
from a missing one.

These functions work on a ``SegmentLog`` (segments.py) through ``ReclaimLog``, the part of
it they touch, so this module does not import segments.py back. They never call the store:
the log retires what ``reclaim`` returns and commits what ``purge`` changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Protocol

from leveret.store import records as rec
from leveret.store.index import IS_LIVE, IS_MARKED, Segment, subtract


class ReclaimLog(Protocol):
    """The state of a ``SegmentLog`` that reclaim and purge read and rewrite."""

    segments: list[Segment]
    firsts: list[int]
    buf: bytearray  # records for the newest segment, not yet written
    counts: dict[int, int]
    count_marks: dict[int, int]
    live_count: int
    live_bytes: int
    reclaim_due: bool
    closed: bool

    @property
    def tail(self) -> Segment: ...
    def locate(self, offset: int) -> tuple[Segment, int]: ...
    def write_manifest(self) -> None: ...
    def encode_marks(self) -> None: ...


def reclaim(log: ReclaimLog) -> list[Segment]:
    """Drop the fully acked segments but the newest from the log; returns them, for the
    log to retire (close) and the next sync to unlink."""
    log.reclaim_due = False
    tail = log.tail
    dead = [s for s in log.segments if s.live == 0 and s is not tail]
    if not dead:
        return []
    gone = {s.first for s in dead}
    for seg in log.segments:
        if seg.live and seg.refs and seg.refs & gone:
            snapshot(log, seg)
    log.segments = [s for s in log.segments if s.live or s is tail]
    log.firsts = [s.first for s in log.segments]
    log.write_manifest()
    return dead


def snapshot(log: ReclaimLog, seg: Segment) -> None:
    """Re-record a live segment's acks, delivered marks and counts in the newest
    segment: the segments that held them may then be deleted."""
    log.buf += rec.range_records(rec.ACK, seg.acked_runs())
    log.buf += rec.range_records(rec.DELIVERED, seg.runs(IS_MARKED))
    pairs = sorted((o, c) for o, c in log.counts.items() if seg.first <= o < seg.stop)
    log.buf += rec.range_records(rec.COUNT, pairs)
    seg.refs = {log.tail.first}


def purge(log: ReclaimLog, keep: Iterable[int] = ()) -> int:
    """Ack every live message but ``keep`` (the ones delivered and awaiting an ack):
    one ACK record per run of offsets. The log then rolls to a new segment so the old ones
    go (``SegmentLog.purge``)."""
    kept = {}
    for o in keep:
        with contextlib.suppress(KeyError):  # acked meanwhile: nothing to keep
            kept[o] = log.locate(o)
    saved = {o: seg.flags[i] for o, (seg, i) in kept.items()}
    purged = log.live_count - len(kept)
    runs = []
    for seg in log.segments:
        if seg.live:
            runs += seg.runs(IS_LIVE)
            seg.flags[:] = bytes(len(seg.flags))
            seg.live = seg.live_bytes = 0
    log.counts = {o: c for o, c in log.counts.items() if o in kept}
    log.count_marks = {}
    log.live_count = log.live_bytes = 0
    for o, (seg, i) in kept.items():
        seg.add_ref(log.tail.first)  # the ACK records below mention its neighbours
        seg.flags[i] = saved[o]
        seg.live += 1
        seg.live_bytes += seg.size[i]
        log.live_count += 1
        log.live_bytes += seg.size[i]
    log.encode_marks()
    log.buf += rec.range_records(rec.ACK, subtract(runs, sorted(kept)))
    return purged
