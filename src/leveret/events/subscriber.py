"""One subscriber group in one worker: consume its queue and decide each event's fate.

    handled          -> ack (and remember the event id, to skip duplicates)
    duplicate        -> ack without handling
    invalid payload  -> dead-letter queue, with the validation error
    handler raised   -> attempts left: copy with attempt+1 to the retry strategy, then ack
                        no attempts left, or DeadLetter raised: dead-letter queue, then ack

The copy is confirmed by the broker before the original is acked, so a crash in between
duplicates an attempt but never loses the event. The attempt number travels in the
message's headers, which is what makes it count across workers and restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from leveret.events import envelope, topology
from leveret.events.envelope import Delivery
from leveret.events.errors import DeadLetter, EventValidationError
from leveret.events.handler import Handler
from leveret.events.idempotency import IdempotencyStore
from leveret.events.inflight import Inflight, requeue
from leveret.events.metrics import Metrics
from leveret.events.policy import RetryPolicy
from leveret.events.publisher import SETTLE_ERRORS, Publisher
from leveret.events.retry import RetryStrategy
from leveret.events.tracing import Tracer

log = logging.getLogger("leveret.events")


@dataclass(frozen=True)
class Subscription:
    """What ``@bus.subscribe`` declared; also the source of the AsyncAPI document."""

    patterns: tuple[str, ...]
    group: str
    handler: Handler
    retry: RetryPolicy
    prefetch: int
    concurrency: int
    idempotent: bool


@dataclass
class Services:
    """What a consumer borrows from its bus."""

    publisher: Publisher
    retry: RetryStrategy
    store: IdempotencyStore
    dedupe_window: float
    metrics: Metrics
    tracer: Tracer


class GroupConsumer:
    def __init__(self, sub: Subscription, services: Services, channel: AbstractChannel) -> None:
        self.sub = sub
        self.services = services
        self.channel = channel
        self.inflight = Inflight(sub.concurrency)
        self.executor = (None if sub.handler.is_async else ThreadPoolExecutor(
            sub.concurrency, thread_name_prefix=f"events-{sub.group}"))
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        labels = {"group": sub.group, "handler": sub.handler.name}
        m = services.metrics
        self._handled, self._failed = m.handled.labels(**labels), m.failed.labels(**labels)
        self._retried, self._dead = m.retried.labels(**labels), m.dead_lettered.labels(**labels)
        self._dupes, self._latency = m.duplicates.labels(**labels), m.latency.labels(**labels)

    async def start(self, exchange: str) -> None:
        await self.channel.set_qos(prefetch_count=self.sub.prefetch)
        self._queue = await topology.declare_group(self.channel, exchange, self.sub.group,
                                                   self.sub.patterns)
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, timeout: float) -> None:
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(*SETTLE_ERRORS):
                await self._queue.cancel(self._tag)
        cancelled = await self.inflight.drain(timeout)
        if cancelled:
            log.warning("%s: %d handler(s) still running after %.1f s; their events go "
                        "back to the queue", self.sub.group, cancelled, timeout)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await self.inflight.run(message, self._process)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        delivery = Delivery.of(message, self.sub.group)
        key = f"{self.sub.group}:{delivery.event_id}"
        try:
            if self.sub.idempotent and await self.services.store.seen(key):
                log.info("%s: skipping duplicate event %s", self.sub.group, delivery.event_id)
                self._dupes.inc()
                await self._ack(message)
                return
            await self._handle(message, delivery, key)
        except asyncio.CancelledError:
            await requeue(message)
            raise
        except Exception:  # our own plumbing failed (e.g. the connection dropped)
            log.exception("%s: could not settle event %s; it goes back to the queue",
                          self.sub.group, delivery.event_id)
            await requeue(message)

    async def _handle(self, message: AbstractIncomingMessage, delivery: Delivery,
                      key: str) -> None:
        started = time.perf_counter()
        with self.services.tracer.process(self.sub.group, delivery.routing_key,
                                          delivery.event_id, delivery.attempt,
                                          delivery.headers) as span:
            try:
                payload = self.sub.handler.payload(message.body, delivery.event_type)
                await self.sub.handler(payload, delivery, self.executor)
            except EventValidationError as exc:
                log.error("%s: event %s is invalid, dead-lettering it: %s",
                          self.sub.group, delivery.event_id, exc.detail)
                await self._dead_letter(message, delivery, "invalid", str(exc))
                return
            except Exception as exc:
                self._failed.inc()
                if span is not None:
                    span.record_exception(exc)
                await self._failure(message, delivery, exc)
                return
            finally:
                self._latency.observe(time.perf_counter() - started)
        if self.sub.idempotent:
            await self.services.store.remember(key, self.services.dedupe_window)
        self._handled.inc()
        await self._ack(message)

    async def _failure(self, message: AbstractIncomingMessage, delivery: Delivery,
                       exc: Exception) -> None:
        policy, attempt = self.sub.retry, delivery.attempt
        error = envelope.error_text(exc)
        if isinstance(exc, DeadLetter) or not policy.should_retry(attempt, exc):
            log.error("%s: event %s failed attempt %d/%d, dead-lettering it: %s",
                      self.sub.group, delivery.event_id, attempt, policy.max_attempts, error,
                      exc_info=exc)
            reason = "rejected" if isinstance(exc, DeadLetter) else "exhausted"
            await self._dead_letter(message, delivery, reason, error)
            return
        delay_ms = policy.delay_ms(attempt)
        log.warning("%s: event %s failed attempt %d/%d, retrying in %d ms: %s",
                    self.sub.group, delivery.event_id, attempt, policy.max_attempts,
                    delay_ms, error)
        retry = envelope.copy(message, {
            envelope.ATTEMPT: attempt + 1,
            envelope.HISTORY: envelope.failed_attempts(message, attempt, error)})
        await self.services.retry.schedule(self.sub.group, retry, delay_ms)
        self._retried.inc()
        await self._ack(message)

    async def _dead_letter(self, message: AbstractIncomingMessage, delivery: Delivery,
                           reason: str, error: str) -> None:
        dead = envelope.copy(message, {
            envelope.ATTEMPT: delivery.attempt,
            envelope.HISTORY: envelope.failed_attempts(message, delivery.attempt, error),
            envelope.ERROR: error,
            envelope.DEAD_LETTER_REASON: reason,
            envelope.DEAD_LETTERED_AT: envelope.now().isoformat(),
            envelope.GROUP: self.sub.group})
        await self.services.publisher.to_queue(topology.dlq_name(self.sub.group), dead)
        self._dead.inc()
        await self._ack(message)

    @staticmethod
    async def _ack(message: AbstractIncomingMessage) -> None:
        try:
            await message.ack()
        except SETTLE_ERRORS:
            # The channel died after the work was done: the broker will redeliver, and
            # the idempotency store makes that redelivery a skipped duplicate.
            log.debug("ack of %s lost with its channel", message.message_id)

