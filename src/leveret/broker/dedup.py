"""Deduplication windows, keyed on the ``x-deduplication-header`` of each message.

Opt-in per queue (``x-message-deduplication: true``) or per exchange (the same argument on
exchange.declare), with the argument names of RabbitMQ's community deduplication plugin:
``x-cache-size`` (entries kept, oldest forgotten first) and ``x-cache-ttl`` (ms an entry
is remembered). A message whose key was seen within the window is dropped (and still
confirmed to its publisher, as the plugin does).

With a data directory, the window of a durable queue or exchange is durable too: each key is
logged (time + the key in its AMQP encoding) in ``amq.leveret.dedup:<kind>:<name>`` and
acknowledged there when it leaves the window, so a restart remembers what was seen.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

from leveret.amqp.fields import decode_value, encode_value
from leveret.broker.clock import Clock
from leveret.broker.message import Message

HEADER = "x-deduplication-header"
DEFAULT_SIZE = 100_000
LOG_PREFIX = "amq.leveret.dedup:"
_TIME = struct.Struct("<d")


class DedupWindow:
    def __init__(self, clock: Clock, size: int | None = None, ttl_ms: int | None = None) -> None:
        self.clock = clock
        self.size = size if size else DEFAULT_SIZE
        self.ttl = ttl_ms / 1000 if ttl_ms else None
        self._seen: OrderedDict[Any, tuple[float, int | None]] = OrderedDict()
        self.log: Any = None  # store/base.py QueueLog when the window is durable

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
                oldest_key, (at, _) = next(iter(seen.items()))
                if now - at < self.ttl:
                    break
                self._forget(oldest_key)
        if key in seen:
            return True
        offset = None
        if self.log is not None:
            offset = self.log.append(_TIME.pack(now) + encode_value(key))
        seen[key] = (now, offset)
        if len(seen) > self.size:
            self._forget(next(iter(seen)))
        return False

    def _forget(self, key: Any) -> None:
        _, offset = self._seen.pop(key)
        if offset is not None and self.log is not None:
            self.log.ack(offset)

    def recover(self) -> int:
        """At start: the keys recorded in the log that are still inside the window."""
        if self.log is None:
            return 0
        now = self.clock.now()
        for live in self.log.live():
            try:
                data = self.log.read(live.offset)
                (at,) = _TIME.unpack_from(data, 0)
                key, _ = decode_value(data, _TIME.size)
            except Exception:
                self.log.ack(live.offset)
                continue
            if self.ttl is not None and now - at >= self.ttl:
                self.log.ack(live.offset)
                continue
            self._seen[key] = (at, live.offset)
        while len(self._seen) > self.size:
            self._forget(next(iter(self._seen)))
        return len(self._seen)
