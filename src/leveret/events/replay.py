"""Replay readers: read a stream of kept events in order, from a start point, resuming
after a restart at the offset after the last one handled.

    handled          -> save the offset in the reader's OffsetStore, then ack
    not matching     -> skipped (topic pattern, or before a time start); its offset is
                        saved with the next handled event or when the reader stops
    invalid payload  -> logged and skipped like a non-matching event
    handler raised   -> the reader stops there (logged, ``error`` set); the offset is not
                        saved, so the next start begins with that event again

On a stream an ack removes nothing: it only gives the consumer credit for the next
delivery (the channel's per-consumer prefetch). Stream deliveries are never nacked or
rejected (RabbitMQ 3.10 closes the connection for it). Events are handled one at a time, in
stream order, so the saved offset always means "everything up to here is done".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from leveret.events.envelope import Delivery
from leveret.events.errors import EventsError, EventValidationError
from leveret.events.handler import Handler
from leveret.events.metrics import Metrics
from leveret.events.offsets import OffsetStore, StreamAwareOffsetStore
from leveret.events.publisher import SETTLE_ERRORS
from leveret.events.stream import STREAM_OFFSET, Start, StartPoint, offset_of, topic_matches
from leveret.events.tracing import Tracer

log = logging.getLogger("leveret.events")
DEFAULT_PREFETCH = 100


@dataclass(frozen=True)
class Replay:
    """What ``@bus.replay`` declared."""

    patterns: tuple[str, ...]
    name: str
    handler: Handler
    start: Start
    store: OffsetStore | StreamAwareOffsetStore | None  # None: the bus's
    stream: str | None         # None: found from the patterns (``EventBus.stream_for``)
    prefetch: int

    def matches(self, routing_key: str) -> bool:
        return any(topic_matches(p, routing_key) for p in self.patterns)


class StreamCursor:
    """One consumer on a stream, from a start point, handing out deliveries in order.

    Needs its own channel: the prefetch set here is that consumer's credit (basic.qos,
    global=False), which streams require. After a reconnection the robust channel consumes
    again with the same arguments, and ``resume_after`` moves them on, so it restarts at
    the offset after the last one handled rather than at the original start."""

    def __init__(self, channel: AbstractChannel, stream: str, start: StartPoint,
                 prefetch: int = DEFAULT_PREFETCH) -> None:
        if prefetch < 1:
            raise ValueError("a stream consumer needs a prefetch of at least 1")
        self.channel = channel
        self.stream = stream
        self.start = start
        self.prefetch = prefetch
        self.arguments: dict[str, Any] = {STREAM_OFFSET: start.argument}
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None

    async def open(self) -> None:
        await self.channel.set_qos(prefetch_count=self.prefetch)
        try:
            self._queue = await self.channel.declare_queue(self.stream, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise EventsError(f"there is no stream {self.stream!r}") from exc
        self._tag = await self._queue.consume(self._take, arguments=self.arguments)

    async def _take(self, message: AbstractIncomingMessage) -> None:
        self._buffer.put_nowait(message)  # first step of the task: keeps delivery order

    async def next(self, timeout: float | None = None) -> AbstractIncomingMessage | None:
        """The next delivery, or None if none came within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self._buffer.get(), timeout)
        except TimeoutError:
            return None

    def resume_after(self, offset: int) -> None:
        self.arguments[STREAM_OFFSET] = offset + 1

    async def cancel(self) -> None:
        if self._queue is not None and self._tag is not None:
            queue, tag, self._tag = self._queue, self._tag, None
            with contextlib.suppress(*SETTLE_ERRORS):
                await queue.cancel(tag)

    async def close(self) -> None:
        """Cancel the consumer and close its channel; prefetched deliveries are dropped
        (a stream does not requeue: the next reader starts where it asks to)."""
        await self.cancel()
        with contextlib.suppress(*SETTLE_ERRORS):
            await self.channel.close()


async def ack(message: AbstractIncomingMessage) -> None:
    """Credit for the next delivery; if the channel is gone there is nothing to credit."""
    with contextlib.suppress(*SETTLE_ERRORS):
        await message.ack()


async def last_offset(channel: AbstractChannel, stream: str, wait: float = 1.0,
                      settle: float = 0.2) -> int | None:
    """The offset of the last event in ``stream`` now, or None if it holds none.

    AMQP 0-9-1 has no call for it, so this attaches at ``last`` (the broker starts at the
    last storage chunk), takes what comes, and keeps the highest offset: waits ``wait``
    seconds for the first delivery (none: the stream is empty), then until ``settle``
    seconds pass without one. Closes ``channel``."""
    cursor = StreamCursor(channel, stream, StartPoint("last"), prefetch=1000)
    try:
        await cursor.open()
        last: int | None = None
        timeout = wait
        while (message := await cursor.next(timeout)) is not None:
            offset = offset_of(message.headers)
            if offset is not None and (last is None or offset > last):
                last = offset
            await ack(message)
            timeout = settle
        return last
    finally:
        await cursor.close()


class ReplayConsumer:
    def __init__(self, replay: Replay, store: OffsetStore, channel: AbstractChannel,
                 stream: str, metrics: Metrics, tracer: Tracer) -> None:
        self.replay = replay
        self.store = store
        self.channel = channel
        self.stream = stream
        self.tracer = tracer
        self.error: BaseException | None = None
        self.last: int | None = None    # last offset dealt with (handled or skipped)
        self.saved: int | None = None   # last offset in the store
        self.handled = 0
        self._cursor: StreamCursor | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._stopping = False
        labels = {"group": replay.name, "handler": replay.handler.name}
        self._handled, self._failed = (metrics.handled.labels(**labels),
                                       metrics.failed.labels(**labels))
        self._latency = metrics.latency.labels(**labels)

    async def start(self) -> None:
        self.saved = self.last = await self.store.load(self.replay.name)
        start = (StartPoint(self.last + 1) if self.last is not None
                 else StartPoint.of(self.replay.start))
        self._cursor = StreamCursor(self.channel, self.stream, start, self.replay.prefetch)
        await self._cursor.open()
        log.info("replay %s: reading %s from %s", self.replay.name, self.stream,
                 start.argument if self.last is None else f"offset {self.last + 1} (resumed)")
        self._task = asyncio.create_task(self._run(), name=f"replay-{self.replay.name}")

    @property
    def cursor_arguments(self) -> dict[str, Any]:
        """The consumer arguments a reconnection consumes with (``x-stream-offset``)."""
        return self._cursor.arguments if self._cursor is not None else {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        assert self._cursor is not None
        try:
            while not self._stopping:
                message = await self._cursor.next()
                assert message is not None
                self._busy = True
                try:
                    await self._process(message)
                finally:
                    self._busy = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error = exc
            await self._cursor.cancel()
            # stopping has to save what was skipped, and close the channel
            log.error("replay %s stopped: %s", self.replay.name, exc)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        assert self._cursor is not None
        offset = offset_of(message.headers)
        if offset is None:
            raise EventsError(f"{self.stream!r} delivered a message without "
                              f"{STREAM_OFFSET}: is it a stream?")
        if self.last is not None and offset <= self.last:
            await ack(message)  # seen before a reconnection: delivered again
            return
        delivery = Delivery.of(message, self.replay.name)
        if (self.replay.matches(delivery.routing_key)
                and not self._cursor.start.too_early(delivery.timestamp)):
            await self._handle(message, delivery)
        self.last = offset
        self._cursor.resume_after(offset)
        await ack(message)

    async def _handle(self, message: AbstractIncomingMessage, delivery: Delivery) -> None:
        assert delivery.offset is not None
        started = time.perf_counter()
        with self.tracer.process(self.replay.name, delivery.routing_key,
                                 delivery.event_id, delivery.attempt,
                                 delivery.headers) as span:
            try:
                payload = self.replay.handler.payload(message.body, delivery.event_type)
                await self.replay.handler(payload, delivery, None)
            except EventValidationError as exc:
                self._failed.inc()
                log.error("replay %s: event %s at offset %d is invalid, skipping it: %s",
                          self.replay.name, delivery.event_id, delivery.offset, exc.detail)
                return
            except Exception as exc:
                self._failed.inc()
                if span is not None:
                    span.record_exception(exc)
                log.error("replay %s: handler failed on event %s at offset %d; the replay "
                          "stops and starts there again next time", self.replay.name,
                          delivery.event_id, delivery.offset, exc_info=exc)
                raise
            finally:
                self._latency.observe(time.perf_counter() - started)
        await self.store.save(self.replay.name, delivery.offset)
        self.saved = delivery.offset
        self.handled += 1
        self._handled.inc()

    async def stop(self, timeout: float) -> None:
        """Stop reading; a running handler gets ``timeout`` seconds, then is cancelled
        (its event is not saved, so it is read again next time)."""
        self._stopping = True
        if self._cursor is not None:
            await self._cursor.cancel()
        task = self._task
        if task is not None and not task.done():
            if self._busy:
                await asyncio.wait({task}, timeout=timeout)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.last is not None and self.last != self.saved:
            with contextlib.suppress(Exception):  # skipped events only: read again if lost
                await self.store.save(self.replay.name, self.last)
                self.saved = self.last
        if self._cursor is not None:
            await self._cursor.close()
