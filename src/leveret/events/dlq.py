"""A group's dead-letter queue: look at it, replay it, empty it.

Reading without consuming uses basic.get without ack and then closes the channel, which
hands every message back to the queue in its original order. Redrive republishes to the
group's queue with the attempt count reset (the history stays), waits for the confirm, and
only then acks the dead letter, so a crash mid-redrive duplicates at worst.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from dataclasses import asdict, dataclass
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from leveret.events import envelope, topology
from leveret.events.errors import EventsError
from leveret.events.publisher import Publisher


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    """Header values as JSON can show them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class DeadLetterInfo:
    event_id: str | None
    event_type: str | None
    routing_key: str | None
    reason: str | None
    error: str | None
    attempts: int
    history: list[dict[str, Any]]
    dead_lettered_at: str | None
    redrives: int
    body: str

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadLetterInfo:
        h = message.headers or {}
        return cls(
            event_id=_text(message.message_id), event_type=_text(message.type),
            routing_key=_text(h.get(envelope.ORIGINAL_ROUTING_KEY)),
            reason=_text(h.get(envelope.DEAD_LETTER_REASON)),
            error=_text(h.get(envelope.ERROR)),
            attempts=envelope.header_int(h, envelope.ATTEMPT, 1),
            history=_plain(envelope.header_list(h, envelope.HISTORY)),
            dead_lettered_at=_text(h.get(envelope.DEAD_LETTERED_AT)),
            redrives=envelope.header_int(h, envelope.REDRIVES, 0),
            body=message.body.decode("utf-8", "replace"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DeadLetterQueue:
    def __init__(self, connection: AbstractConnection, group: str) -> None:
        self.connection = connection
        self.group = group
        self.name = topology.dlq_name(group)

    @contextlib.asynccontextmanager
    async def _channel(self, confirms: bool = False) -> AsyncIterator[AbstractChannel]:
        channel = await self.connection.channel(publisher_confirms=confirms,
                                                on_return_raises=confirms)
        try:
            yield channel
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise EventsError(f"group {self.group!r} has no queue {exc}") from exc
        finally:
            if not channel.is_closed:
                await channel.close()

    async def count(self) -> int:
        async with self._channel() as channel:
            queue = await channel.declare_queue(self.name, passive=True)
            return int(queue.declaration_result.message_count or 0)

    async def peek(self, limit: int = 10) -> list[DeadLetterInfo]:
        """Up to ``limit`` dead letters, oldest first, left in the queue."""
        found: list[DeadLetterInfo] = []
        async with self._channel() as channel:
            queue = await channel.declare_queue(self.name, passive=True)
            while len(found) < limit:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                found.append(DeadLetterInfo.of(message))
        return found  # closing the channel returned them all, in order

    async def redrive(self, limit: int | None = None,
                      event_ids: Collection[str] | None = None) -> int:
        """Send dead letters back to the group (all, the first ``limit``, or those with
        the given event ids); returns how many. Bounded by the queue's length when it
        starts, so events that fail again during the redrive are not replayed twice."""
        moved = 0
        async with self._channel(confirms=True) as channel:
            queue = await channel.declare_queue(self.name, passive=True)
            publisher = Publisher(channel)
            for _ in range(int(queue.declaration_result.message_count or 0)):
                if limit is not None and moved >= limit:
                    break
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                if event_ids is not None and _text(message.message_id) not in event_ids:
                    continue  # left unacked: back in place when the channel closes
                redriven = envelope.copy(message, {
                    envelope.ATTEMPT: 1, envelope.ERROR: None,
                    envelope.DEAD_LETTER_REASON: None, envelope.DEAD_LETTERED_AT: None,
                    envelope.REDRIVES: envelope.header_int(
                        message.headers, envelope.REDRIVES, 0) + 1})
                await publisher.to_queue(self.group, redriven)
                await message.ack()
                moved += 1
        return moved

    async def purge(self) -> int:
        async with self._channel() as channel:
            queue = await channel.declare_queue(self.name, passive=True)
            result = await queue.purge()
            return int(result.message_count or 0)
