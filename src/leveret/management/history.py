"""Server-side history of the sampled values, for charts: what RabbitMQ keeps in its
management database and answers with ``samples`` when a request gives ``lengths_age`` /
``lengths_incr``, ``msg_rates_age`` / ``msg_rates_incr`` or ``data_rates_age`` /
``data_rates_incr``.

Each sampled object (the node, a vhost, queue, exchange, connection, channel) has a
``Series``: its values at every sample, kept in ring buffers at RabbitMQ's default
retention (``management.sample_retention_policies``):

    global (the node, vhosts): 605 s at 5 s, 3660 s at 60 s, 29400 s at 600 s, 86400 s at 1800 s
    basic (queues, exchanges, connections, channels): 605 s at 5 s, 3600 s at 60 s

A slot holds the last sample taken in its interval. The buffers are ``array`` rows of
unsigned 32-bit offsets from a per-field base (rebased when a value leaves the range), and
are only allocated once an object's values change: an object that stays the same (an
idle queue) is one small object with its last values, and one that has not changed for its
whole retention gives its buffers back. Per changing queue (10 values, 182 slots):
182 * (10 + 1) * 4 bytes = 8 KB; per idle queue about 0.3 KB.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass

# (interval seconds, slots): RabbitMQ's defaults, {605, 5}, {3660, 60}, ...
RETENTION: dict[str, tuple[tuple[int, int], ...]] = {
    "global": ((5, 121), (60, 61), (600, 49), (1800, 48)),
    "basic": ((5, 121), (60, 61)),
}
MAX_SAMPLES = 500  # RabbitMQ refuses a range of more than 500 increments
SPAN = 2 ** 32


@dataclass(frozen=True)
class Range:
    """``<family>_age`` and ``<family>_incr``, in seconds."""

    age: int
    incr: int

    def timestamps(self, now: float) -> list[int]:
        """The sample times (s), newest first, aligned to ``incr`` as RabbitMQ's."""
        last = int(now // self.incr) * self.incr
        return [last - k * self.incr for k in range(self.age // self.incr + 1)]


class _Tier:
    __slots__ = ("interval", "size", "slots", "values")

    def __init__(self, interval: int, size: int, width: int) -> None:
        self.interval = interval
        self.size = size
        self.slots = array("i", [-1]) * size  # the slot number held at each position
        self.values = array("I", bytes(4 * size * width))


class Series:
    """One object's sampled values over time."""

    __slots__ = (
        "base",
        "changed",
        "fields",
        "first_seen",
        "last",
        "last_time",
        "policy",
        "tiers",
    )

    def __init__(self, fields: tuple[str, ...], policy: str, now: float,
                 values: tuple[int, ...]) -> None:
        self.fields = fields
        self.policy = policy
        self.first_seen = now
        self.last = values
        self.last_time = now
        self.changed = now
        self.tiers: list[_Tier] | None = None
        self.base: list[int] = []

    def record(self, now: float, values: tuple[int, ...]) -> None:
        previous, previous_time = self.last, self.last_time
        self.last, self.last_time = values, now
        if values == previous:
            if self.tiers is not None and \
                    now - self.changed > max(i * n for i, n in RETENTION[self.policy]):
                self.tiers, self.base = None, []  # unchanged for its whole retention
            if self.tiers is None:
                return
        else:
            self.changed = now
            if self.tiers is None:
                width = len(self.fields)
                self.tiers = [_Tier(i, n, width) for i, n in RETENTION[self.policy]]
                self.base = [min(a, b) for a, b in zip(previous, values, strict=True)]
                self._store(previous_time, previous)
        self._store(now, values)

    def _store(self, now: float, values: tuple[int, ...]) -> None:
        assert self.tiers is not None
        base = self.base
        for f, v in enumerate(values):
            if not 0 <= v - base[f] < SPAN:
                self._rebase(f, v)
        width = len(values)
        offsets = [v - b for v, b in zip(values, base, strict=True)]
        for tier in self.tiers:
            slot = int(now // tier.interval)
            pos = slot % tier.size
            tier.slots[pos] = slot
            tier.values[pos * width:(pos + 1) * width] = array("I", offsets)

    def _rebase(self, f: int, value: int) -> None:
        """Field ``f`` left its 32-bit window: move the base to the lowest value kept
        (dropping slots that still cannot be held, the oldest values far from today's)."""
        assert self.tiers is not None
        width = len(self.fields)
        kept = [value]
        for tier in self.tiers:
            for pos in range(tier.size):
                if tier.slots[pos] >= 0:
                    kept.append(self.base[f] + tier.values[pos * width + f])
        new_base = max(min(kept), value - SPAN + 1)
        for tier in self.tiers:
            for pos in range(tier.size):
                if tier.slots[pos] < 0:
                    continue
                absolute = self.base[f] + tier.values[pos * width + f]
                if 0 <= absolute - new_base < SPAN:
                    tier.values[pos * width + f] = absolute - new_base
                else:
                    tier.slots[pos] = -1
        self.base[f] = new_base

    def at(self, times: Sequence[int]) -> list[tuple[int, ...]]:
        """The values at each of ``times`` (s, newest first): the last sample taken in or
        before that time's slot; zeros before the object was first seen."""
        zeros = (0,) * len(self.fields)
        first_slot_time = self.first_seen
        if self.tiers is None:
            return [self.last if t + 5 > first_slot_time else zeros for t in times]
        oldest = min(times) if times else 0
        newest = max(times) if times else 0
        tier = self.tiers[-1]
        for candidate in self.tiers:
            if candidate.interval * candidate.size >= newest - oldest + candidate.interval:
                tier = candidate
                break
        width = len(self.fields)
        held = sorted((s, pos) for pos, s in enumerate(tier.slots) if s >= 0)
        rows = [tuple(b + tier.values[pos * width + f] for f, b in enumerate(self.base))
                for _, pos in held]
        slots = [s for s, _ in held]
        found: list[tuple[int, ...]] = []
        for t in times:
            if t + tier.interval <= first_slot_time:
                found.append(zeros)
                continue
            target = t // tier.interval
            # the last held slot at or before target (binary search)
            lo, hi = 0, len(slots)
            while lo < hi:
                mid = (lo + hi) // 2
                if slots[mid] <= target:
                    lo = mid + 1
                else:
                    hi = mid
            found.append(rows[lo - 1] if lo else rows[0] if rows else self.last)
        return found

    def nbytes(self) -> int:
        """The buffers' size (what the history costs for this object beyond its last
        values)."""
        if self.tiers is None:
            return 0
        return sum(t.slots.itemsize * len(t.slots) + t.values.itemsize * len(t.values)
                   for t in self.tiers)
