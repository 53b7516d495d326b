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

``DelayedExchangeRetry`` is leveret's native delayed retry: one ``x-delayed-message``
exchange per group, ``<group>.delay`` (routing like ``direct``), bound to the group's queue
with the group's name as key. The copy is published there with ``x-delay: <ms>``; the
broker holds it, indexed by due time, and routes it when due. No delay queues, any delay
value, and a long delay never holds back a short one.

``choose`` picks the native strategy when the server's properties say ``product: leveret``,
the portable one otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aio_pika
from aio_pika.abc import AbstractChannel

from leveret.events import topology
from leveret.events.errors import Unroutable
from leveret.events.publisher import Publisher

DELAY_HEADER = "x-delay"


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


class DelayedExchangeRetry:
    """leveret's native delayed retry (see the module docstring); needs the broker's
    ``x-delayed-message`` exchange type, which RabbitMQ only has with a plugin."""

    name = "delayed-exchange"

    def __init__(self, channel: AbstractChannel, publisher: Publisher) -> None:
        self.channel = channel
        self.publisher = publisher
        self._ready: set[str] = set()

    async def schedule(self, group: str, message: aio_pika.Message, delay_ms: int) -> None:
        if delay_ms <= 0:
            await self.publisher.to_queue(group, message)
            return
        message.headers = {**(message.headers or {}), DELAY_HEADER: int(delay_ms)}
        exchange = topology.delay_exchange_name(group)
        if group not in self._ready:
            await topology.declare_delay_exchange(self.channel, group)
            self._ready.add(group)
        try:
            # mandatory: leveret routes a delayed message once at publish to check it has
            # somewhere to go, so a missing binding is an error now, not a silent drop later
            await self.publisher.publish(exchange, message, group, mandatory=True)
        except Unroutable:  # the binding (or the group's queue) was deleted: again
            await topology.declare_delay_exchange(self.channel, group)
            await self.publisher.publish(exchange, message, group, mandatory=True)

    @property
    def declared(self) -> frozenset[str]:
        """Queues this strategy declared for its own use: none."""
        return frozenset()

    @property
    def declared_exchanges(self) -> frozenset[str]:
        return frozenset(topology.delay_exchange_name(g) for g in self._ready)


StrategyFactory = Callable[[AbstractChannel, Publisher], RetryStrategy]


def is_leveret(server_properties: Mapping[str, Any]) -> bool:
    product = server_properties.get("product")
    if isinstance(product, bytes):
        product = product.decode()
    return product == "leveret"


def choose(server_properties: Mapping[str, Any], channel: AbstractChannel,
           publisher: Publisher) -> RetryStrategy:
    """The native strategy on leveret, the portable TTL scheme on any other broker."""
    if is_leveret(server_properties):
        return DelayedExchangeRetry(channel, publisher)
    return TtlQueueRetry(channel, publisher)
