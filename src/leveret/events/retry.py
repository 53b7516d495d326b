"""Where a failed event waits before its next attempt: in the broker, never in the worker.

A ``RetryStrategy`` takes a copy of the event (its attempt header already bumped) and a
delay, and must have the broker deliver it to the group's queue after that delay; the
caller acks the original only once ``schedule`` returns.

``TtlQueueRetry`` is the portable scheme, plain AMQP 0-9-1 as RabbitMQ has it: the copy is
parked in ``<group>.retry.<ms>``, a queue with ``x-message-ttl: <ms>`` whose dead-letter
exchange is the default exchange and dead-letter routing key the group's queue. One queue
per delay value means every queue's messages share one TTL, so they expire in order and a
long delay never holds back a short one (a per-message TTL in a shared queue would: RabbitMQ
expires only from the head).

leveret is meant to gain native delayed retry (no delay queues); ``choose`` is the hook:
when a leveret broker advertises ``NATIVE_CAPABILITY`` a native strategy goes there. Until
then leveret gets the TTL scheme too, and needs x-message-ttl and dead-lettering for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel

from leveret.events import topology
from leveret.events.errors import Unroutable
from leveret.events.publisher import Publisher

NATIVE_CAPABILITY = "delayed_retry"


class RetryStrategy(Protocol):
    name: str

    async def schedule(self, group: str, message: aio_pika.Message, delay_ms: int) -> None:
        """Have ``message`` delivered to ``group``'s queue in ``delay_ms`` milliseconds."""
        ...


class TtlQueueRetry:
    name = "ttl-queues"

    def __init__(self, channel: AbstractChannel, publisher: Publisher) -> None:
        self.channel = channel
        self.publisher = publisher
        self._declared: set[str] = set()

    async def schedule(self, group: str, message: aio_pika.Message, delay_ms: int) -> None:
        if delay_ms <= 0:
            await self.publisher.to_queue(group, message)
            return
        queue = topology.retry_queue_name(group, delay_ms)
        if queue not in self._declared:
            await topology.declare_retry_queue(self.channel, group, delay_ms)
            self._declared.add(queue)
        try:
            await self.publisher.to_queue(queue, message)
        except Unroutable:  # deleted behind our back (a purge of the topology): again
            await topology.declare_retry_queue(self.channel, group, delay_ms)
            await self.publisher.to_queue(queue, message)

    @property
    def declared(self) -> frozenset[str]:
        return frozenset(self._declared)


StrategyFactory = Callable[[AbstractChannel, Publisher], RetryStrategy]


def is_leveret(server_properties: Mapping[str, Any]) -> bool:
    product = server_properties.get("product")
    if isinstance(product, bytes):
        product = product.decode()
    return product == "leveret"


def choose(server_properties: Mapping[str, Any], channel: AbstractChannel,
           publisher: Publisher) -> RetryStrategy:
    capabilities = server_properties.get("capabilities") or {}
    if is_leveret(server_properties) and capabilities.get(NATIVE_CAPABILITY):
        # Hook for leveret's native delayed retry: return its strategy here once the
        # broker has the feature. Until then the portable scheme below works on leveret
        # as soon as it has x-message-ttl and dead-lettering.
        pass
    return TtlQueueRetry(channel, publisher)
