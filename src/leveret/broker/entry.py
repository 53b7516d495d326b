"""``Entry``: one message's place in one queue.

A message routed to three queues is one ``Message`` and three entries: each queue keeps its
own position (``seq``, for requeueing to the original place), redelivered flag, delivery
count, expiry time and log offset. Channels hold entries while they are unacknowledged.
"""

from __future__ import annotations

from leveret.broker.message import Message


class Entry:
    __slots__ = ("delivery_count", "expires_at", "message", "offset", "original", "priority",
                 "redelivered", "seq")

    def __init__(self, seq: int, message: Message, redelivered: bool = False,
                 priority: int = 0, expires_at: float | None = None) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = redelivered
        self.priority = priority
        self.expires_at = expires_at
        self.delivery_count = 0  # times returned to the queue unacknowledged
        self.original: Message | None = None  # as published, when message carries a stamp
        self.offset: int | None = None  # its offset in the queue's log, if persisted
