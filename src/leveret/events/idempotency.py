"""Skipping duplicates: an event id handled successfully by a group is remembered for a
window, and a second delivery of it within the window is acknowledged without handling.

The store is an interface so workers on several hosts can share one (Redis ``SET NX EX``,
a database table); ``MemoryIdempotencyStore`` covers one process, and survives reconnects
(which is when brokers redeliver work whose ack was lost).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class IdempotencyStore(Protocol):
    async def seen(self, key: str) -> bool:
        """Whether ``key`` was remembered and has not expired."""
        ...

    async def remember(self, key: str, ttl: float) -> None:
        """Remember ``key`` for ``ttl`` seconds."""
        ...


class MemoryIdempotencyStore:
    """In-process store, bounded to ``max_keys`` (oldest forgotten first)."""

    def __init__(self, max_keys: int = 100_000,
                 clock: Callable[[], float] | None = None) -> None:
        self.max_keys = max_keys
        self._clock = clock or time.monotonic
        self._expiry: OrderedDict[str, float] = OrderedDict()

    async def seen(self, key: str) -> bool:
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[key]
            return False
        return True

    async def remember(self, key: str, ttl: float) -> None:
        self._expiry[key] = self._clock() + ttl
        self._expiry.move_to_end(key)
        while len(self._expiry) > self.max_keys:
            self._expiry.popitem(last=False)

    def __len__(self) -> int:
        return len(self._expiry)
