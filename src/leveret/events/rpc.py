"""Request-reply over RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``).

Requests go through the default exchange to ``rpc.<name>``, mandatory, so a request
nobody listens for fails at once with ``NoResponder`` instead of waiting out its timeout.
Replies come back on the requesting channel's pseudo-queue: no reply queue to declare or
clean up. A request carries its timeout as its expiration, so one the caller gave up on
is not worked on late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from leveret.events import envelope, topology
from leveret.events.codec import CONTENT_TYPE, decode, encode
from leveret.events.envelope import Delivery
from leveret.events.errors import NoResponder, RemoteError, RequestTimeout
from leveret.events.handler import Handler
from leveret.events.inflight import Inflight
from leveret.events.publisher import Publisher

log = logging.getLogger("leveret.events")
REPLY_TO = "amq.rabbitmq.reply-to"


class Requester:
    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        self._pending: dict[str, asyncio.Future[aiormq.abc.DeliveredMessage]] = {}
        self._consuming_on: Any = None
        self._lock = asyncio.Lock()

    async def _ensure_reply_consumer(self) -> None:
        # Direct reply-to is per channel: consume again after a reconnection.
        async with self._lock:
            underlay = await self.channel.get_underlay_channel()
            if underlay is not self._consuming_on:
                await underlay.basic_consume(REPLY_TO, self._on_reply, no_ack=True)
                self._consuming_on = underlay

    async def _on_reply(self, message: aiormq.abc.DeliveredMessage) -> None:
        future = self._pending.pop(message.header.properties.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message)

    async def request(self, name: str, payload: Any, *, timeout: float,
                      response: Any = None) -> Any:
        correlation_id = envelope.new_id()
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            async with asyncio.timeout(timeout):
                await self._ensure_reply_consumer()
                message = aio_pika.Message(
                    encode(payload), content_type=CONTENT_TYPE, type=name,
                    message_id=correlation_id, correlation_id=correlation_id,
                    reply_to=REPLY_TO, expiration=timeout, timestamp=envelope.now())
                try:
                    await self.channel.default_exchange.publish(
                        message, topology.rpc_queue_name(name), mandatory=True)
                except aiormq.exceptions.PublishError as exc:
                    raise NoResponder(name) from exc
                reply = await future
        except TimeoutError as exc:
            raise RequestTimeout(name, timeout) from exc
        finally:
            self._pending.pop(correlation_id, None)
        headers = reply.header.properties.headers or {}
        if envelope.ERROR in headers:
            error = headers[envelope.ERROR]
            raise RemoteError(name, error.decode() if isinstance(error, bytes) else str(error))
        return decode(reply.body, response, name)


@dataclass(frozen=True)
class Responder:
    name: str
    handler: Handler
    concurrency: int


class ResponderConsumer:
    def __init__(self, responder: Responder, publisher: Publisher,
                 channel: AbstractChannel) -> None:
        self.responder = responder
        self.publisher = publisher
        self.channel = channel
        self.inflight = Inflight(responder.concurrency)
        self._queue: Any = None
        self._tag: str | None = None

    async def start(self) -> None:
        await self.channel.set_qos(prefetch_count=self.responder.concurrency)
        self._queue = await self.channel.declare_queue(
            topology.rpc_queue_name(self.responder.name), durable=False, auto_delete=True)
        self._tag = await self._queue.consume(self._on_message)

    async def stop(self, timeout: float) -> None:
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):  # the channel may already be gone
                await self._queue.cancel(self._tag)
        await self.inflight.drain(timeout)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await self.inflight.run(message, self._process)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        delivery = Delivery.of(message, topology.rpc_queue_name(self.responder.name))
        headers: dict[str, Any] = {}
        body = b"null"
        try:
            payload = self.responder.handler.payload(message.body, delivery.event_type)
            body = encode(await self.responder.handler(payload, delivery, None))
        except Exception as exc:
            log.warning("responder %s failed on request %s: %s", self.responder.name,
                        delivery.event_id, exc, exc_info=exc)
            headers[envelope.ERROR] = envelope.error_text(exc)
        if message.reply_to:
            reply = aio_pika.Message(body, headers=headers, content_type=CONTENT_TYPE,
                                     correlation_id=message.correlation_id,
                                     timestamp=envelope.now())
            await self.publisher.publish("", reply, message.reply_to)
        await message.ack()
