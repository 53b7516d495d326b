"""leveret.events: typed events over AMQP 0-9-1, on leveret and on RabbitMQ.

A client library on aio-pika: publisher confirms, topic subscriptions in competing-consumer
groups, retries delayed in the broker and counted in the message, per-group dead-letter
queues, duplicate skipping, request-reply, metrics and traces, and events kept in streams
for replay readers that resume where they left off. See docs/events.md.

Names are imported on first use, so ``leveret serve`` (whose CLI registers the ``events``
command) neither needs nor loads aio-pika: ``pip install 'leveret[events]'`` brings it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leveret.lazy import lazy_getattr

if TYPE_CHECKING:
    from leveret.events.bus import EventBus
    from leveret.events.codec import event, event_type
    from leveret.events.dlq import DeadLetterInfo, DeadLetterQueue
    from leveret.events.envelope import Delivery
    from leveret.events.errors import (
        DeadLetter,
        EventsError,
        EventValidationError,
        NoResponder,
        PublishError,
        RemoteError,
        RequestError,
        RequestTimeout,
        Unroutable,
    )
    from leveret.events.idempotency import IdempotencyStore, MemoryIdempotencyStore
    from leveret.events.metrics import Metrics
    from leveret.events.offsets import FileOffsetStore, MemoryOffsetStore, OffsetStore
    from leveret.events.policy import NO_RETRY, RetryPolicy
    from leveret.events.retry import DelayedExchangeRetry, RetryStrategy, TtlQueueRetry
    from leveret.events.stream import StreamRetention
    from leveret.events.stream_offsets import BrokerOffsetStore

_HOME = {
    "EventBus": "bus", "event": "codec", "event_type": "codec",
    "DeadLetterInfo": "dlq", "DeadLetterQueue": "dlq", "Delivery": "envelope",
    "DeadLetter": "errors", "EventsError": "errors", "EventValidationError": "errors",
    "NoResponder": "errors", "PublishError": "errors", "RemoteError": "errors",
    "RequestError": "errors", "RequestTimeout": "errors", "Unroutable": "errors",
    "IdempotencyStore": "idempotency", "MemoryIdempotencyStore": "idempotency",
    "Metrics": "metrics", "NO_RETRY": "policy", "RetryPolicy": "policy",
    "DelayedExchangeRetry": "retry", "RetryStrategy": "retry", "TtlQueueRetry": "retry",
    "FileOffsetStore": "offsets", "MemoryOffsetStore": "offsets", "OffsetStore": "offsets",
    "StreamRetention": "stream", "BrokerOffsetStore": "stream_offsets",
}

__all__ = [
    "NO_RETRY",
    "BrokerOffsetStore",
    "DeadLetter",
    "DeadLetterInfo",
    "DeadLetterQueue",
    "DelayedExchangeRetry",
    "Delivery",
    "EventBus",
    "EventValidationError",
    "EventsError",
    "FileOffsetStore",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "MemoryOffsetStore",
    "Metrics",
    "NoResponder",
    "OffsetStore",
    "PublishError",
    "RemoteError",
    "RequestError",
    "RequestTimeout",
    "RetryPolicy",
    "RetryStrategy",
    "StreamRetention",
    "TtlQueueRetry",
    "Unroutable",
    "event",
    "event_type",
]


__getattr__ = lazy_getattr("leveret.events", _HOME, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
