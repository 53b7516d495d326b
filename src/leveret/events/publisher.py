"""Confirmed publishing on one channel, riding out reconnections.

Every publish waits for the broker's confirm. If the connection drops first, the message
is published again once the robust connection is back, until ``timeout``: a lost confirm
may mean the broker has it already, so this can duplicate, and consumers skip duplicates
by event id (``idempotency.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel

from leveret.events.errors import PublishError, Unroutable

log = logging.getLogger("leveret.events")
# What a dropped connection looks like from aio-pika while it reconnects.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError, aiormq.exceptions.ChannelClosed,
    asyncio.CancelledError)
# ... and settling (ack/nack) a delivery whose channel is gone.
SETTLE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, RuntimeError)


class Publisher:
    def __init__(self, channel: AbstractChannel, timeout: float = 30.0) -> None:
        self.channel = channel
        self.timeout = timeout

    async def publish(self, exchange: str, message: aio_pika.Message, routing_key: str,
                      *, mandatory: bool = False, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                target = (self.channel.default_exchange if exchange == ""
                          else await self.channel.get_exchange(exchange, ensure=False))
                await target.publish(message, routing_key, mandatory=mandatory,
                                     timeout=max(0.1, deadline - time.monotonic()))
                return
            except aiormq.exceptions.PublishError as exc:
                raise Unroutable(exchange, routing_key) from exc
            except aiormq.exceptions.DeliveryError as exc:
                raise PublishError(f"broker refused the message: {exc}") from exc
            except TimeoutError as exc:
                raise PublishError(f"no confirm from the broker for {routing_key!r}") from exc
            except CONNECTION_ERRORS as exc:
                if _cancelled_by_caller(exc):
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishError(f"connection lost publishing {routing_key!r}") from exc
                log.info("connection lost publishing %s (%s); publishing again once "
                         "reconnected", message.message_id, type(exc).__name__)
                await self._reconnected(remaining)

    async def to_queue(self, queue: str, message: aio_pika.Message) -> None:
        """Straight to ``queue`` through the default exchange; mandatory, so a queue that
        is not there is an error rather than a silently dropped message."""
        await self.publish("", message, queue, mandatory=True)

    async def _reconnected(self, timeout: float) -> None:
        await asyncio.sleep(0.05)
        ready = getattr(self.channel, "ready", None)  # robust channels only
        if ready is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready(), timeout)


def _cancelled_by_caller(exc: BaseException) -> bool:
    # aiormq cancels pending confirms with CancelledError when the connection drops;
    # a CancelledError aimed at our own task must propagate.
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0
