"""Queue types behind one seam (base.py): classic, quorum and stream, chosen by
``x-queue-type``."""

from __future__ import annotations

from leveret.broker.queues.base import Consumer, Gate, Queue, QueueHost
from leveret.broker.queues.classic import ClassicQueue
from leveret.broker.queues.quorum import QuorumQueue
from leveret.broker.queues.stream import StreamQueue

# x-queue-type -> the class that implements it.
QUEUE_TYPES: dict[str, type[Queue]] = {
    "classic": ClassicQueue,
    "quorum": QuorumQueue,
    "stream": StreamQueue,
}


def queue_type(name: str | None) -> type[Queue]:
    """The class for an ``x-queue-type`` value (classic when absent or unknown)."""
    return QUEUE_TYPES.get(name or "classic", ClassicQueue)


__all__ = ["QUEUE_TYPES", "ClassicQueue", "Consumer", "Gate", "Queue", "QueueHost",
           "QuorumQueue", "StreamQueue", "queue_type"]
