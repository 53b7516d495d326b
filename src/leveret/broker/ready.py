"""The ready messages of a queue: FIFO, or by priority (``x-max-priority``).

Both keep entries in publication order within a priority and put requeued entries back at
their original positions (by the queue-local sequence number), as RabbitMQ does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leveret.broker.queue import Entry


def _merge(target: deque[Entry], back: list[Entry]) -> None:
    """Insert ``back`` (sorted by seq) into ``target`` (sorted by seq)."""
    if not target or back[-1].seq < target[0].seq:
        target.extendleft(reversed(back))
        return
    merged = sorted([*target, *back], key=lambda e: e.seq)
    target.clear()
    target.extend(merged)


class FifoReady:
    __slots__ = ("_q",)

    def __init__(self) -> None:
        self._q: deque[Entry] = deque()

    def __len__(self) -> int:
        return len(self._q)

    def __bool__(self) -> bool:
        return bool(self._q)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._q)

    def append(self, entry: Entry) -> None:
        self._q.append(entry)

    def peek(self) -> Entry:
        return self._q[0]

    def popleft(self) -> Entry:
        return self._q.popleft()

    def requeue(self, entries: list[Entry]) -> None:
        _merge(self._q, sorted(entries, key=lambda e: e.seq))

    def clear(self) -> None:
        self._q.clear()

    def __getitem__(self, i: int) -> Entry:
        return self._q[i]


class PriorityReady:
    """One FIFO per priority level, highest served first."""

    __slots__ = ("_levels", "_size")

    def __init__(self, max_priority: int) -> None:
        self._levels: list[deque[Entry]] = [deque() for _ in range(max_priority + 1)]
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Entry]:
        for level in reversed(self._levels):
            yield from level

    def append(self, entry: Entry) -> None:
        self._levels[entry.priority].append(entry)
        self._size += 1

    def _top(self) -> deque[Entry]:
        for level in reversed(self._levels):
            if level:
                return level
        raise IndexError("no ready messages")

    def peek(self) -> Entry:
        return self._top()[0]

    def popleft(self) -> Entry:
        entry = self._top().popleft()
        self._size -= 1
        return entry

    def requeue(self, entries: Iterable[Entry]) -> None:
        by_level: dict[int, list[Entry]] = {}
        for e in entries:
            by_level.setdefault(e.priority, []).append(e)
            self._size += 1
        for level, back in by_level.items():
            _merge(self._levels[level], sorted(back, key=lambda e: e.seq))

    def clear(self) -> None:
        for level in self._levels:
            level.clear()
        self._size = 0

    def __getitem__(self, i: int) -> Entry:
        for n, entry in enumerate(self):
            if n == i:
                return entry
        raise IndexError(i)
