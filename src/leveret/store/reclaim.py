"""Space: purge, and the reclaim of segments whose messages are all acked.

A segment other than the newest whose messages are all acked is deleted at the next
flush. Its records may hold acks, delivered marks or counts about messages of an older,
still live segment (a consumer acked them while it was the newest); those are first
written again, as a snapshot of that older segment's state, into the newest segment, so
a slow message never pins the segments after it. The segment list (SEGMENTS record) is
written after every change, so recovery tells a reclaimed segment from a missing one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from leveret.store import records as rec
from leveret.store.index import IS_LIVE, IS_MARKED, Segment, subtract

if TYPE_CHECKING:
    from leveret.store.segments import SegmentLog


def reclaim(log: SegmentLog) -> list[Path]:
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
    for seg in dead:
        log.store.retired(seg)
    return [s.path for s in dead]


def snapshot(log: SegmentLog, seg: Segment) -> None:
    """Re-record a live segment's acks, delivered marks and counts in the newest
    segment: the segments that held them may then be deleted."""
    log.buf += rec.range_records(rec.ACK, seg.acked_runs())
    log.buf += rec.range_records(rec.DELIVERED, seg.runs(IS_MARKED))
    pairs = sorted((o, c) for o, c in log.counts.items() if seg.first <= o < seg.stop)
    log.buf += rec.range_records(rec.COUNT, pairs)
    seg.refs = {log.tail.first}


def purge(log: SegmentLog, keep: Iterable[int] = ()) -> int:
    """Ack every live message but ``keep`` (the ones delivered and awaiting an ack):
    one ACK record per run of offsets, then a new segment so the old ones go."""
    if log.closed:
        return 0
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
    log.store.changed(log, not log.transient)
    log.roll()
    log.reclaim_due = True
    return purged
