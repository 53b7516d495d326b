"""The one clock that TTLs, expiries, delays and timeouts read, and the timers on it.

The broker is sans I/O, so it cannot sleep: it schedules callbacks on ``Timers`` and the
server runs the due ones (``run_due``) at the next deadline. Tests swap in a
``ManualClock`` and ``advance`` it, so a one-hour TTL is checked in milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable


class Clock:
    """Wall-clock time in seconds (message timestamps and x-death times are wall time)."""

    def now(self) -> float:
        return time.time()


class ManualClock(Clock):
    """A clock that moves only when told to; ``advance`` runs the timers that fall due."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self.timers: Timers | None = None

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        if self.timers is not None:
            self.timers.run_due(self._now)


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """A heap of callbacks by due time. ``on_schedule`` tells the server that the earliest
    deadline may have moved, so it can re-arm its own timer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self.on_schedule: Callable[[float], None] = lambda when: None
        if isinstance(clock, ManualClock):
            clock.timers = self

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(when, callback)
        first = not self._heap or when < self._heap[0][0]
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        if first:
            self.on_schedule(when)
        return timer

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return self.call_at(self.clock.now() + delay, callback)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_due(self, now: float | None = None) -> int:
        """Run every timer due at ``now``; returns how many ran."""
        now = self.clock.now() if now is None else now
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()
                ran += 1
        return ran

    def __len__(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)
