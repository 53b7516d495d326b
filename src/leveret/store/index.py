"""The in-memory index of one segment file: 9 bytes per message, no object per message.

Slot ``i`` of a segment is offset ``first + i``: ``pos[i]`` (u32) is where its record starts
in the file, ``size[i]`` (u32) the length of its message bytes, ``flags[i]`` one byte
(LIVE, DELIVERED, TRANSIENT; 0 for an acked offset or a record lost to corruption).
Delivery counts, rare, live in a dict on the log.
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Final

LIVE: Final = 1
DELIVERED: Final = 2
TRANSIENT: Final = 4


def _table(fn: Callable[[int], int]) -> bytes:
    return bytes(fn(b) for b in range(256))


IS_LIVE: Final = _table(lambda b: 1 if b & LIVE else 0)
# Persistent, live, delivered: what a DELIVERED snapshot record must carry.
IS_MARKED: Final = _table(
    lambda b: 1 if b & (LIVE | DELIVERED | TRANSIENT) == LIVE | DELIVERED else 0)
SET_DELIVERED: Final = _table(lambda b: b | DELIVERED if b & LIVE else b)
IS_DELIVERED: Final = _table(lambda b: 1 if b & DELIVERED else 0)
# Live and written for recovery: the messages whose acks must be recorded.
IS_PERSISTENT: Final = _table(lambda b: 1 if b & (LIVE | TRANSIENT) == LIVE else 0)
_RUN: Final = re.compile(rb"\x01+")
_GAP: Final = re.compile(rb"\x00+")


class Segment:
    __slots__ = ("end", "first", "flags", "live", "live_bytes", "path", "pos", "refs", "size")

    def __init__(self, first: int, path: Path) -> None:
        self.first = first
        self.path = path
        self.pos = array("I")
        self.size = array("I")
        self.flags = bytearray()
        self.live = 0
        self.live_bytes = 0
        self.end = 0  # bytes of the file written to the OS
        # First offsets of other segments holding ACK/DELIVERED/COUNT records about this
        # one: deleting such a segment first rewrites this segment's state (see reclaim).
        self.refs: set[int] | None = None

    @property
    def stop(self) -> int:
        return self.first + len(self.flags)

    def add_ref(self, first: int) -> None:
        if first != self.first:
            if self.refs is None:
                self.refs = {first}
            else:
                self.refs.add(first)

    def recount(self) -> None:
        """Live count and bytes from the flags (after recovery replayed every record)."""
        mask = self.flags.translate(IS_LIVE)
        self.live = mask.count(1)
        self.live_bytes = sum(itertools.compress(self.size, mask))

    def runs(self, table: bytes, start: int = 0) -> list[tuple[int, int]]:
        """(first offset, count) runs of the slots ``table`` maps to 1."""
        mask = self.flags.translate(table)
        return [(self.first + m.start(), m.end() - m.start())
                for m in _RUN.finditer(mask, start)]

    @staticmethod
    def mask_runs(mask: bytes | bytearray, first: int) -> list[tuple[int, int]]:
        """(first offset, count) runs of the 1s of ``mask``, slot 0 being ``first``."""
        return [(first + m.start(), m.end() - m.start()) for m in _RUN.finditer(mask)]

    def acked_runs(self) -> list[tuple[int, int]]:
        mask = self.flags.translate(IS_LIVE)
        return [(self.first + m.start(), m.end() - m.start()) for m in _GAP.finditer(mask)]

    def live_slots(self, start: int = 0) -> list[int]:
        mask = self.flags.translate(IS_LIVE)
        out = []
        find = mask.find
        i = find(1, start)
        while i >= 0:
            out.append(i)
            i = find(1, i + 1)
        return out

    def set_range(self, first: int, count: int, table: bytes | None) -> None:
        """Apply a replayed range to this segment's slots: ack (``table`` None) or
        translate the flags through ``table``."""
        a = max(first - self.first, 0)
        b = min(first + count - self.first, len(self.flags))
        if a < b:
            if table is None:
                self.flags[a:b] = bytes(b - a)
            else:
                self.flags[a:b] = self.flags[a:b].translate(table)


def subtract(runs: list[tuple[int, int]], keep: list[int]) -> list[tuple[int, int]]:
    """``runs`` minus the offsets in ``keep`` (sorted)."""
    if not keep:
        return runs
    out = []
    ks = iter(keep)
    k = next(ks, None)
    for first, count in runs:
        end = first + count
        while k is not None and k < end:
            if k >= first:
                if k > first:
                    out.append((first, k - first))
                first = k + 1
            k = next(ks, None)
        if first < end:
            out.append((first, end - first))
    return out
