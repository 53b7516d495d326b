"""``EventBus``: declare handlers with decorators, then publish, subscribe and request.

    bus = EventBus("amqp://guest:guest@localhost/")

    @bus.subscribe("orders.*", group="billing", retry=RetryPolicy(max_attempts=3))
    async def bill(order: OrderPlaced) -> None: ...

    async with bus:                       # connect, declare, start consuming
        await bus.publish(OrderPlaced(...))   # returns once the broker confirmed it

Events can also be kept in streams (``EventBus(keep=StreamRetention(...))``,
``bus.keep(topic)``) and read again in order by ``@bus.replay`` readers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from leveret.events import codec, envelope, retry, topology
from leveret.events.context import lineage
from leveret.events.dlq import DeadLetterQueue
from leveret.events.errors import EventsError
from leveret.events.handler import Handler
from leveret.events.idempotency import IdempotencyStore, MemoryIdempotencyStore
from leveret.events.metrics import Metrics
from leveret.events.offsets import (
    MemoryOffsetStore,
    OffsetStore,
    StreamAwareOffsetStore,
    store_for,
)
from leveret.events.policy import RetryPolicy
from leveret.events.publisher import Publisher
from leveret.events.replay import DEFAULT_PREFETCH, Replay, ReplayConsumer
from leveret.events.rpc import Requester, Responder, ResponderConsumer
from leveret.events.stream import Start, StartPoint, StreamRetention
from leveret.events.stream_offsets import BrokerOffsetStore
from leveret.events.subscriber import GroupConsumer, Services, Subscription
from leveret.events.tracing import Tracer

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T", bound=type)
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
URL_ENV = "LEVERET_EVENTS_URL"
# Where replay offsets go by default: the broker's stream protocol at this URL (a
# rabbitmq-stream:// URL, or "auto": the bus's broker on port 5552); else memory.
OFFSETS_ENV = "LEVERET_EVENTS_OFFSETS_URL"


def default_offsets() -> OffsetStore | StreamAwareOffsetStore:
    url = os.environ.get(OFFSETS_ENV)
    if url:
        return BrokerOffsetStore(None if url == "auto" else url)
    return MemoryOffsetStore()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class EventBus:
    def __init__(self, url: str | None = None, *, name: str = "leveret-events",
                 exchange: str = topology.DEFAULT_EXCHANGE,
                 retry_policy: RetryPolicy | None = None, prefetch: int = 10,
                 concurrency: int = 1, idempotency: IdempotencyStore | None = None,
                 dedupe_window: float = 3600.0, metrics: Metrics | None = None,
                 tracer_provider: Any = None,
                 retry_strategy: retry.StrategyFactory | None = None,
                 publish_timeout: float = 30.0, reconnect_interval: float = 1.0,
                 version: str = "1.0.0", keep: StreamRetention | None = None,
                 offsets: OffsetStore | StreamAwareOffsetStore | None = None) -> None:
        self.url = url
        self.name = name
        self.exchange = exchange
        self.version = version
        self.retry_policy = retry_policy or RetryPolicy()
        self.prefetch, self.concurrency = prefetch, concurrency
        self.idempotency = idempotency or MemoryIdempotencyStore()
        self.dedupe_window = dedupe_window
        self.metrics = metrics or Metrics.for_registry()
        self.tracer = Tracer(tracer_provider)
        self.publish_timeout = publish_timeout
        self.reconnect_interval = reconnect_interval
        self._strategy_factory = retry_strategy
        self.retention = keep                       # keep every event in <exchange>.stream
        self.kept: dict[str, StreamRetention] = {}  # topic -> <exchange>.stream.<topic>
        self.offsets = offsets or default_offsets()
        self.events: dict[str, type] = {}
        self.subscriptions: list[Subscription] = []
        self.responders: list[Responder] = []
        self.replays: list[Replay] = []
        self.connection: AbstractRobustConnection | None = None
        self.retry_strategy: retry.RetryStrategy | None = None
        self._publisher: Publisher | None = None
        self._requester: Requester | None = None
        self._consumers: list[GroupConsumer | ResponderConsumer | ReplayConsumer] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- declaring -------------------------------------------------------------------

    def event(self, type_name: str, *, keep: StreamRetention | None = None,
              ) -> Callable[[T], T]:
        """Class decorator: name an event type and list it in the bus's documentation;
        with ``keep=``, also keep events of that type (routing key) in a stream."""
        if keep is not None:
            self.keep(type_name, keep)

        def mark(cls: T) -> T:
            return self.register(codec.event(type_name)(cls))
        return mark

    def keep(self, topic: str, retention: StreamRetention | None = None) -> str:
        """Keep the events published with the routing key ``topic`` (an event type: no
        wildcards) in the stream ``<exchange>.stream.<topic>``, declared and bound when
        the bus connects; returns the stream's name. Groups are not affected. To keep
        several types in one stream, keep the whole bus (``EventBus(keep=...)``)."""
        if not topology.valid_stream_topic(topic):
            raise ValueError(f"keep needs an event type (letters, digits, '-', '_', '.', "
                             f"':'; no wildcards), not {topic!r}")
        self.kept[topic] = retention or StreamRetention()
        return topology.stream_name(self.exchange, topic)

    def stream_for(self, topic: str) -> str | None:
        """The stream this bus keeps ``topic`` in: its own stream if ``bus.keep(topic)``,
        else the bus's stream if ``keep=`` was given, else None (a reader then asks the
        broker: ``topology.find_stream``)."""
        if topic in self.kept:
            return topology.stream_name(self.exchange, topic)
        return topology.stream_name(self.exchange) if self.retention is not None else None

    def replay(self, *patterns: str, name: str, start: Start = "first",
               store: OffsetStore | StreamAwareOffsetStore | None = None,
               stream: str | None = None,
               event: Any = None, prefetch: int | None = None) -> Callable[[F], F]:
        """Read kept events in order, once each, from ``start`` (``"first"``, ``"last"``,
        ``"next"``, an offset, a datetime, a timedelta or ``"1h"``), then follow new ones.
        Events whose routing key matches none of ``patterns`` are skipped. ``name`` keys
        the reader's position in ``store`` (default: the bus's ``offsets``): a reader that
        has a saved offset resumes after it and ignores ``start``. ``stream`` defaults to
        ``stream_for(patterns[0])``, else the broker is asked which stream keeps it."""
        if not patterns:
            raise ValueError("replay needs at least one routing-key pattern ('#': all)")
        if any(r.name == name for r in self.replays):
            raise ValueError(f"replay {name!r} already has a handler on this bus")
        StartPoint.of(start)  # a bad start fails here, not when the bus starts

        def add(fn: F) -> F:
            handler = Handler.wrap(fn, event)
            for cls in handler.event_classes:
                self.events.setdefault(codec.event_type(cls), cls)
            self.replays.append(Replay(
                patterns=tuple(patterns), name=name, handler=handler, start=start,
                store=store, stream=stream, prefetch=prefetch or DEFAULT_PREFETCH))
            return fn
        return add

    def register(self, cls: T) -> T:
        self.events[codec.event_type(cls)] = cls
        return cls

    def subscribe(self, *patterns: str, group: str, event: Any = None,
                  retry: RetryPolicy | None = None, prefetch: int | None = None,
                  concurrency: int | None = None, idempotent: bool = True,
                  ) -> Callable[[F], F]:
        """Handle events whose routing key matches any of the topic ``patterns`` in the
        durable queue ``group`` (competing workers share it; each group gets every
        event). The event type comes from the handler's annotation, or ``event=``."""
        if not patterns:
            raise ValueError("subscribe needs at least one routing-key pattern")
        if any(s.group == group for s in self.subscriptions):
            raise ValueError(f"group {group!r} already has a handler on this bus")

        def add(fn: F) -> F:
            handler = Handler.wrap(fn, event)
            for cls in handler.event_classes:
                self.events.setdefault(codec.event_type(cls), cls)
            self.subscriptions.append(Subscription(
                patterns=tuple(patterns), group=group, handler=handler,
                retry=retry or self.retry_policy, prefetch=prefetch or self.prefetch,
                concurrency=concurrency or self.concurrency, idempotent=idempotent))
            return fn
        return add

    def responder(self, name: str, *, request: Any = None,
                  concurrency: int = 1) -> Callable[[F], F]:
        """Answer ``bus.request(name, ...)``; the return value is the reply."""
        def add(fn: F) -> F:
            self.responders.append(Responder(name, Handler.wrap(fn, request), concurrency))
            return fn
        return add

    # -- running ---------------------------------------------------------------------

    def resolved_url(self, url: str | None = None) -> str:
        return url or self.url or os.environ.get(URL_ENV) or DEFAULT_URL

    async def connect(self, url: str | None = None) -> None:
        """Connect and declare the exchange: enough to publish and request."""
        if self.connection is not None:
            return
        self.url = self.resolved_url(url)
        self._loop = asyncio.get_running_loop()
        self.connection = await aio_pika.connect_robust(
            self.url, reconnect_interval=self.reconnect_interval,
            client_properties={"connection_name": self.name})
        channel = await self.connection.channel(publisher_confirms=True,
                                                on_return_raises=True)
        await topology.declare_exchange(channel, self.exchange)
        for name, retention, patterns in self._streams():
            await topology.declare_stream(channel, self.exchange, name, retention, patterns)
        self._publisher = Publisher(channel, self.publish_timeout)
        props = self.connection.transport.connection.server_properties  # type: ignore[union-attr]
        factory = self._strategy_factory or (lambda ch, pub: retry.choose(props, ch, pub))
        self.retry_strategy = factory(channel, self._publisher)
        self._requester = Requester(await self.connection.channel(
            publisher_confirms=True, on_return_raises=True))
        for store in self._offset_stores():
            if isinstance(store, BrokerOffsetStore):
                store.attach(self.url, props)

    async def start(self, url: str | None = None) -> None:
        """Connect, then declare and consume every subscriber group and responder."""
        await self.connect(url)
        if self._consumers:
            return
        assert self.connection is not None and self._publisher is not None
        assert self.retry_strategy is not None
        services = Services(self._publisher, self.retry_strategy, self.idempotency,
                            self.dedupe_window, self.metrics, self.tracer)
        for sub in self.subscriptions:
            group = GroupConsumer(sub, services, await self.connection.channel())
            await group.start(self.exchange)
            self._consumers.append(group)
        for resp in self.responders:
            rc = ResponderConsumer(resp, self._publisher, await self.connection.channel())
            await rc.start()
            self._consumers.append(rc)
        for rep in self.replays:
            stream = (rep.stream or self.stream_for(rep.patterns[0])
                      or await topology.find_stream(self.connection, self.exchange,
                                                    rep.patterns[0]))
            reader = ReplayConsumer(rep, store_for(rep.store or self.offsets, stream),
                                    await self.connection.channel(), stream, self.metrics,
                                    self.tracer)
            await reader.start()
            self._consumers.append(reader)

    def _streams(self) -> list[tuple[str, StreamRetention, tuple[str, ...]]]:
        streams: list[tuple[str, StreamRetention, tuple[str, ...]]] = [
            (topology.stream_name(self.exchange, topic), retention, (topic,))
            for topic, retention in self.kept.items()]
        if self.retention is not None:
            streams.append((topology.stream_name(self.exchange), self.retention, ("#",)))
        return streams

    def _offset_stores(self) -> list[Any]:
        return list({id(s): s for s in (self.offsets, *(r.store for r in self.replays))
                     if s is not None}.values())

    @property
    def readers(self) -> list[ReplayConsumer]:
        """The running replay readers (``error``, ``last``, ``handled`` of each)."""
        return [c for c in self._consumers if isinstance(c, ReplayConsumer)]

    async def close(self, timeout: float = 10.0) -> None:
        """Graceful stop: stop taking events, give running handlers ``timeout`` seconds,
        then close; whatever is unfinished goes back to its queue."""
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(c.stop(timeout) for c in consumers))
        for store in self._offset_stores():
            if isinstance(store, BrokerOffsetStore):
                await store.close()
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await connection.close()

    async def __aenter__(self) -> EventBus:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- messaging -------------------------------------------------------------------

    def _require(self) -> Publisher:
        if self._publisher is None:
            raise EventsError("the bus is not connected: await bus.connect() or bus.start()")
        return self._publisher

    async def publish(self, event: Any, *, routing_key: str | None = None,
                      event_type: str | None = None, mandatory: bool = False,
                      event_id: str | None = None, correlation_id: str | None = None,
                      causation_id: str | None = None,
                      headers: Mapping[str, Any] | None = None,
                      timeout: float | None = None) -> str:
        """Publish and wait for the broker's confirm; returns the event id. ``mandatory``:
        raise ``Unroutable`` if no queue is bound for the routing key."""
        publisher = self._require()
        type_name = event_type or (codec.event_type(type(event))
                                   if codec.is_model(type(event)) else routing_key)
        if type_name is None:
            raise TypeError("publishing a plain value needs routing_key= or event_type=")
        key = routing_key or type_name
        event_id = event_id or envelope.new_id()
        correlation_id, causation_id = lineage(correlation_id, causation_id, event_id)
        all_headers = dict(headers or {})
        with self.tracer.publish(self.exchange, key, event_id, all_headers):
            message = envelope.build(
                codec.encode(event), event_type=type_name, event_id=event_id,
                correlation_id=correlation_id, causation_id=causation_id,
                app_id=self.name, headers=all_headers)
            await publisher.publish(self.exchange, message, key, mandatory=mandatory,
                                    timeout=timeout)
        return event_id

    def publish_sync(self, event: Any, **kwargs: Any) -> str:
        """``publish`` from a sync handler's thread (or any thread but the bus's)."""
        if self._loop is None:
            raise EventsError("the bus is not connected")
        if _running_loop() is self._loop:
            raise EventsError("publish_sync would block the bus's own event loop: "
                              "await bus.publish(...) instead")
        return asyncio.run_coroutine_threadsafe(self.publish(event, **kwargs),
                                                self._loop).result()

    async def request(self, name: str, payload: Any, *, timeout: float = 5.0,
                      response: Any = None) -> Any:
        """Ask the responder for ``name``; raises ``RequestTimeout`` after ``timeout`` s,
        ``NoResponder`` when none listens, ``RemoteError`` when it failed."""
        self._require()
        assert self._requester is not None
        return await self._requester.request(name, payload, timeout=timeout,
                                             response=response)

    # -- operations ------------------------------------------------------------------

    def dead_letters(self, group: str) -> DeadLetterQueue:
        if self.connection is None:
            raise EventsError("the bus is not connected")
        return DeadLetterQueue(self.connection, group)

    async def delete_topology(self, url: str | None = None) -> None:
        """Delete this bus's queues and exchanges (those its retries used too), on a
        connection of its own so it works after ``close`` (tests, resetting a dev broker)."""
        names = [q for s in self.subscriptions
                 for q in (s.group, topology.dlq_name(s.group))]
        names += sorted(getattr(self.retry_strategy, "declared", ()))
        names += [topology.rpc_queue_name(r.name) for r in self.responders]
        names += [name for name, _, _ in self._streams()]
        exchanges = [*sorted(getattr(self.retry_strategy, "declared_exchanges", ())),
                     self.exchange]
        connection = await aio_pika.connect(self.resolved_url(url))
        async with connection:
            channel = await connection.channel()
            for name in names:
                await channel.queue_delete(name, if_unused=False, if_empty=False)
            for name in exchanges:
                await channel.exchange_delete(name)
