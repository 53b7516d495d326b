"""Deduplication windows, keyed on the ``x-deduplication-header`` of each message.

Opt-in per queue (``x-message-deduplication: true``) or per exchange (the same argument on
exchange.declare), with the argument names of RabbitMQ's community deduplication plugin:
``x-cache-size`` (entries kept, oldest forgotten first) and ``x-cache-ttl`` (ms an entry
is remembered). A message whose key was seen within the window is dropped (and still
confirmed to its publisher, as the plugin does).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from leveret.broker.clock import Clock
from leveret.broker.message import Message

HEADER = "x-deduplication-header"
DEFAULT_SIZE = 100_000


class DedupWindow:
    def __init__(self, clock: Clock, size: int | None = None, ttl_ms: int | None = None) -> None:
        self.clock = clock
        self.size = size if size else DEFAULT_SIZE
        self.ttl = ttl_ms / 1000 if ttl_ms else None
        self._seen: OrderedDict[Any, float] = OrderedDict()

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any], clock: Clock) -> DedupWindow | None:
        if arguments.get("x-message-deduplication") is not True:
            return None
        size = arguments.get("x-cache-size")
        ttl = arguments.get("x-cache-ttl")
        return cls(clock, size if isinstance(size, int) else None,
                   ttl if isinstance(ttl, int) else None)

    def is_duplicate(self, message: Message) -> bool:
        """True if the message's key is in the window; otherwise remember it."""
        key = message.headers.get(HEADER) if message.flags & 0x2000 else None
        if key is None or isinstance(key, dict | list):
            return False
        now = self.clock.now()
        seen = self._seen
        if self.ttl is not None:
            while seen:
                oldest_key, at = next(iter(seen.items()))
                if now - at < self.ttl:
                    break
                del seen[oldest_key]
        if key in seen:
            return True
        seen[key] = now
        if len(seen) > self.size:
            seen.popitem(last=False)
        return False
