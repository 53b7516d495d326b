"""Names and declarations of what a bus puts in the broker.

    <exchange>             topic exchange every event is published to (durable)
    <group>                durable queue of a subscriber group, bound with its patterns
    <group>.retry.<ms>     one delay queue per distinct delay (RabbitMQ; see ``retry.py``)
    <group>.delay          x-delayed-message exchange bound to <group> (leveret; ``retry.py``)
    <group>.dlq            dead-letter queue: events that failed their last attempt
    rpc.<name>             requests for a responder (transient, auto-delete)
    <exchange>.stream      stream keeping every event of the bus (``EventBus(keep=...)``)
    <exchange>.stream.<type>  stream keeping one event type (``bus.keep(type)``)

Internal hops (retry, dead-letter, redrive) go through the default exchange straight to
a queue by name, or through the group's own delay exchange, so they never match another
group's topic patterns.
"""

from __future__ import annotations

import re

import aiormq
from aio_pika import ExchangeType
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractQueue,
)

from leveret.events.errors import EventsError
from leveret.events.stream import StreamRetention

DEFAULT_EXCHANGE = "leveret.events"
DELAYED_EXCHANGE_TYPE = "x-delayed-message"
RPC_PREFIX = "rpc."
_QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_.:-]+$")


def dlq_name(group: str) -> str:
    return f"{group}.dlq"


def retry_queue_name(group: str, delay_ms: int) -> str:
    return f"{group}.retry.{delay_ms}"


def delay_exchange_name(group: str) -> str:
    return f"{group}.delay"


def rpc_queue_name(name: str) -> str:
    return f"{RPC_PREFIX}{name}"


def valid_stream_topic(topic: str) -> bool:
    """Whether ``topic`` can name a per-topic stream: an event type, no wildcards, only
    what AMQP clients accept in queue names (letters, digits, ``-_.:``)."""
    return bool(_QUEUE_NAME.match(topic))


def stream_name(exchange: str, topic: str | None = None) -> str:
    """``<exchange>.stream`` keeps a whole bus; ``<exchange>.stream.<topic>`` one topic."""
    return f"{exchange}.stream" if topic is None else f"{exchange}.stream.{topic}"


async def declare_stream(channel: AbstractChannel, exchange: str, name: str,
                         retention: StreamRetention, patterns: tuple[str, ...],
                         ) -> AbstractQueue:
    """A durable stream queue bound to ``exchange`` with ``patterns``. Declaring it again
    with other retention arguments is refused by the broker (PRECONDITION_FAILED): change
    retention with a policy, or delete the stream."""
    queue = await channel.declare_queue(name, durable=True, arguments=retention.arguments())
    for pattern in patterns:
        await queue.bind(exchange, routing_key=pattern)
    return queue


async def find_stream(connection: AbstractConnection, exchange: str, topic: str,
                      ) -> str:
    """The stream that keeps ``topic`` when the caller does not know how the publishing
    bus was configured: ``<exchange>.stream.<topic>`` if the broker has it, else
    ``<exchange>.stream``. Each probe is a passive declare on a channel of its own (a
    missing queue closes the channel)."""
    candidates = [stream_name(exchange, topic)] if valid_stream_topic(topic) else []
    candidates.append(stream_name(exchange))
    for name in candidates:
        if await queue_exists(connection, name):
            return name
    raise EventsError(f"no stream keeps {topic!r} on exchange {exchange!r} (looked for "
                      f"{' and '.join(repr(c) for c in candidates)})")


async def queue_exists(connection: AbstractConnection, name: str) -> bool:
    try:
        async with connection.channel() as channel:
            await channel.declare_queue(name, passive=True)
        return True
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False


async def declare_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    return await channel.declare_exchange(name, ExchangeType.TOPIC, durable=True)


async def declare_group(channel: AbstractChannel, exchange: str, group: str,
                        patterns: tuple[str, ...]) -> AbstractQueue:
    """The group's queue, bound to ``patterns``, and its dead-letter queue."""
    await channel.declare_queue(dlq_name(group), durable=True)
    queue = await channel.declare_queue(group, durable=True)
    for pattern in patterns:
        await queue.bind(exchange, routing_key=pattern)
    return queue


async def declare_retry_queue(channel: AbstractChannel, group: str,
                              delay_ms: int) -> AbstractQueue:
    # Every message in this queue has the same TTL, so expiry is in FIFO order and the
    # head never holds back a message due earlier: that is why delays get a queue each.
    return await channel.declare_queue(
        retry_queue_name(group, delay_ms), durable=True,
        arguments={"x-message-ttl": delay_ms, "x-dead-letter-exchange": "",
                   "x-dead-letter-routing-key": group})


async def declare_delay_exchange(channel: AbstractChannel, group: str) -> AbstractExchange:
    """The group's delayed-message exchange, bound to the group's queue by its name.

    A message published there with ``x-delay: <ms>`` is held by the broker and routed when
    due, with the bindings of that moment; each message carries its own delay, so one
    exchange serves every delay value and a long one never holds back a short one."""
    exchange = await channel.declare_exchange(
        delay_exchange_name(group), DELAYED_EXCHANGE_TYPE, durable=True,
        arguments={"x-delayed-type": ExchangeType.DIRECT.value})
    queue = await channel.declare_queue(group, durable=True)
    await queue.bind(exchange, routing_key=group)
    return exchange
