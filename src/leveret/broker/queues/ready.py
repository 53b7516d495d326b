"""The ready messages of a queue: FIFO, or by priority (``x-max-priority``).

Both keep entries in publication order within a priority and put requeued entries back at
their original positions (by the queue-local sequence number), as RabbitMQ does.

Each level is a window of ``Entry`` objects in memory followed by a ``PagedIndex`` of
messages whose bodies are only in the queue's log (paging.py). Every paged message comes
after every entry of the window of its level; when a window runs dry, ``page_in`` (the
queue's) moves the next batch from the index into it, reading the bodies from the log.
Iterating or indexing a ready list sees the in-memory entries only; ``len`` counts all.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator

from leveret.broker.entry import Entry
from leveret.broker.queues.paging import PagedIndex

# page_in(index, window, priority): move a batch from the index to the end of the window.
PageIn = Callable[[PagedIndex, deque[Entry], int], None]


def _merge(target: deque[Entry], back: list[Entry]) -> None:
    """Insert ``back`` (sorted by seq) into ``target`` (sorted by seq)."""
    if not target or back[-1].seq < target[0].seq:
        target.extendleft(reversed(back))
        return
    merged = sorted([*target, *back], key=lambda e: e.seq)
    target.clear()
    target.extend(merged)


def _no_pager(index: PagedIndex, window: deque[Entry], priority: int) -> None:
    raise RuntimeError("messages were paged out with no way to page them in")


class FifoReady:
    __slots__ = ("append", "page_in", "paged", "window")

    def __init__(self, page_in: PageIn = _no_pager) -> None:
        # The in-memory entries, oldest first. Public for the queue's hot path (queue.py
        # ``push`` and ``dispatch``), which tests and pops it directly, in C.
        self.window: deque[Entry] = deque()
        # append(entry): the deque's own method, no Python frame on each push.
        self.append: Callable[[Entry], None] = self.window.append
        self.paged = PagedIndex()
        self.page_in = page_in

    def __len__(self) -> int:
        return len(self.window) + self.paged.count

    def __bool__(self) -> bool:
        # True means popleft() will return an entry: a dry window is refilled here.
        return bool(self.window) or (self.paged.count > 0 and self._fill())

    def _fill(self) -> bool:
        q, paged = self.window, self.paged
        while not q and paged.count:
            self.page_in(paged, q, 0)
        return bool(q)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.window)

    @property
    def in_memory(self) -> int:
        return len(self.window)

    @property
    def paged_count(self) -> int:
        return self.paged.count

    @property
    def paged_bytes(self) -> int:
        return self.paged.bytes

    def should_page(self, priority: int, max_count: int, max_bytes: int,
                    ready_bytes: int) -> bool:
        """Whether a new message must go to the paged index: some already are (order),
        or the window is full (``ready_bytes`` counts the window and the index)."""
        paged = self.paged
        return (paged.count > 0 or len(self.window) >= max_count or
                ready_bytes - paged.bytes >= max_bytes)

    def page_out(self, priority: int, offset: int, size: int, mark: int = 0) -> None:
        self.paged.append(offset, size, mark)

    def indexes(self) -> list[tuple[int, PagedIndex]]:
        return [(0, self.paged)]

    def peek(self) -> Entry:
        q = self.window
        if not q:
            self._fill()
        return q[0]

    def popleft(self) -> Entry:
        try:
            return self.window.popleft()
        except IndexError:
            self._fill()
            return self.window.popleft()

    def requeue(self, entries: list[Entry]) -> None:
        _merge(self.window, sorted(entries, key=lambda e: e.seq))

    def clear(self) -> None:
        self.window.clear()
        self.paged.clear()

    def __getitem__(self, i: int) -> Entry:
        return self.window[i]


class PriorityReady:
    """One FIFO per priority level, highest served first."""

    __slots__ = ("_levels", "_paged", "_size", "page_in", "paged_bytes", "paged_count")

    def __init__(self, max_priority: int, page_in: PageIn = _no_pager) -> None:
        self._levels: list[deque[Entry]] = [deque() for _ in range(max_priority + 1)]
        self._paged = [PagedIndex() for _ in range(max_priority + 1)]
        self._size = 0  # entries in the windows
        self.paged_count = 0
        self.paged_bytes = 0
        self.page_in = page_in

    def __len__(self) -> int:
        return self._size + self.paged_count

    def __bool__(self) -> bool:
        if not self.paged_count:
            return self._size > 0
        try:
            self._top()
        except IndexError:
            return False
        return True

    def __iter__(self) -> Iterator[Entry]:
        for level in reversed(self._levels):
            yield from level

    @property
    def in_memory(self) -> int:
        return self._size

    def should_page(self, priority: int, max_count: int, max_bytes: int,
                    ready_bytes: int) -> bool:
        return (self._paged[priority].count > 0 or self._size >= max_count or
                ready_bytes - self.paged_bytes >= max_bytes)

    def append(self, entry: Entry) -> None:
        self._levels[entry.priority].append(entry)
        self._size += 1

    def page_out(self, priority: int, offset: int, size: int, mark: int = 0) -> None:
        self._paged[priority].append(offset, size, mark)
        self.paged_count += 1
        self.paged_bytes += size

    def indexes(self) -> list[tuple[int, PagedIndex]]:
        return list(enumerate(self._paged))

    def _fill(self, priority: int) -> None:
        level, paged = self._levels[priority], self._paged[priority]
        while not level and paged.count:
            count, size = paged.count, paged.bytes
            self.page_in(paged, level, priority)
            self._size += len(level)
            self.paged_count -= count - paged.count
            self.paged_bytes -= size - paged.bytes

    def _top(self) -> deque[Entry]:
        paged = self._paged
        for p in range(len(self._levels) - 1, -1, -1):
            level = self._levels[p]
            if level:
                return level
            if paged[p].count:
                self._fill(p)
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
        for paged in self._paged:
            paged.clear()
        self._size = self.paged_count = self.paged_bytes = 0

    def __getitem__(self, i: int) -> Entry:
        for n, entry in enumerate(self):
            if n == i:
                return entry
        raise IndexError(i)
