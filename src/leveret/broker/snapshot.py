"""Read-only snapshots of the live broker objects, for whoever reports on them.

The management API, its rate sampler and /metrics show queues, connections, channels and
consumers. They used to read some twenty attributes of the live objects, often with
``getattr(obj, name, default)``, so a renamed field silently read 0. They now read these
frozen values instead, and this module is the one place that reads the live objects'
internals: when queue, channel or connection change shape, this file is what to fix, and
mypy (``--strict`` here) says where.

Each snapshot copies numbers and small containers at one moment (lavinmq's
``details_tuple``). ``handle`` is the live object itself, typed ``object``: a key for
what is kept per object across snapshots (rates, the runtime's connection addresses),
never a way to read through.

Where a connection was accepted (its local address) only the socket knows; callers pass
the runtime's ``{connection: (host, port)}`` as ``local``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from leveret.broker.channel import Channel
from leveret.broker.connection import CLOSED, CLOSING, RUNNING, ServerConnection
from leveret.broker.exchanges import Exchange
from leveret.broker.node import Node
from leveret.broker.queues import Consumer, Queue, StreamQueue
from leveret.broker.stream_snapshot import StreamConsumerSnapshot, stream_subscriptions
from leveret.broker.vhost import VirtualHost

Address = tuple[str, int]


def _server_connections(node: Node) -> list[ServerConnection]:
    # The node types its connections by what it needs of them; they are the server's.
    return cast("list[ServerConnection]", list(node.connections))

UNKNOWN_ADDRESS: Address = ("?", 0)
NO_ADDRESSES: Mapping[object, Address] = {}

_STATES = {RUNNING: "running", CLOSING: "closing", CLOSED: "closed"}


@dataclass(frozen=True, slots=True)
class ConnectionSnapshot:
    handle: object = field(repr=False, compare=False)
    peer_host: str
    peer_port: int
    host: str  # the broker's side: the address the connection was accepted on
    port: int
    state: str  # starting (handshake), running, closing, closed
    user: str
    vhost: str
    client_properties: Mapping[str, Any]
    channels: int
    channel_max: int
    frame_max: int
    heartbeat: int
    connected_at: int  # ms since the epoch
    recv_oct: int
    send_oct: int


@dataclass(frozen=True, slots=True)
class ChannelSnapshot:
    handle: object = field(repr=False, compare=False)
    connection: ConnectionSnapshot
    number: int
    closing: bool
    consumers: int
    prefetch_count: int  # for consumers created from now on
    global_prefetch_count: int  # shared by the channel
    confirm: bool
    transactional: bool
    messages_unacknowledged: int
    messages_unconfirmed: int
    messages_uncommitted: int  # publishes waiting in the transaction
    acks_uncommitted: int  # acks, nacks and rejects waiting in the transaction
    counters: Mapping[str, int]  # broker.stats events, deliver_get included


@dataclass(frozen=True, slots=True)
class ConsumerSnapshot:
    tag: str
    exclusive: bool
    ack_required: bool
    prefetch_count: int
    arguments: Mapping[str, Any]
    active: bool  # false: waiting to become the single active consumer
    activity_status: str  # up, single_active or waiting (RabbitMQ's names)
    queue: str
    vhost: str
    channel_number: int
    connection: ConnectionSnapshot
    stream: StreamReaderSnapshot | None = None  # a stream consumer's place in the stream


@dataclass(frozen=True, slots=True)
class StreamReaderSnapshot:
    """A stream consumer's place: ``next_offset`` is the next offset it will be sent (the
    stream's first offset if retention removed the one it was at); ``lag`` how many
    retained entries it has still to read (0 when it waits at or beyond the end)."""
    next_offset: int
    lag: int


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """What a stream queue holds beyond a queue's counts (broker/queues/stream.py)."""
    first_offset: int  # the oldest retained offset (== next_offset when empty)
    next_offset: int  # the offset the next message appended gets
    segments: int  # retention units (whole segments are removed, oldest first)
    bytes: int  # bytes retained, as stored
    max_length_bytes: int | None  # effective retention (arguments and policy merged)
    max_age: float | None  # seconds
    max_segment_size_bytes: int
    readers: tuple[ConsumerSnapshot, ...]  # the stream's consumers (each with .stream)
    subscriptions: tuple[StreamConsumerSnapshot, ...] = ()  # and the stream protocol's

    @property
    def last_offset(self) -> int | None:
        """The newest retained offset (None when nothing is retained)."""
        return self.next_offset - 1 if self.next_offset > self.first_offset else None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    handle: object = field(repr=False, compare=False)
    name: str
    vhost: str
    type: str  # x-queue-type: classic, quorum...
    durable: bool
    auto_delete: bool
    owner: ConnectionSnapshot | None  # the exclusive queue's connection
    arguments: Mapping[str, Any]
    policy: str | None
    policy_definition: Mapping[str, Any]  # {} without a policy
    consumers: int
    exclusive_consumer_tag: str | None
    single_active_consumer_tag: str | None
    messages_ready: int
    messages_unacknowledged: int
    message_bytes_ready: int
    message_bytes_unacknowledged: int
    messages_paged_out: int  # ready, with their bodies in the queue's log (paging.py)
    message_bytes_paged_out: int
    counters: Mapping[str, int]
    stream: StreamSnapshot | None = None  # a stream queue's offsets, segments and readers

    @property
    def exclusive(self) -> bool:
        return self.owner is not None

    @property
    def messages(self) -> int:
        return self.messages_ready + self.messages_unacknowledged


@dataclass(frozen=True, slots=True)
class VhostSnapshot:
    handle: object = field(repr=False, compare=False)
    name: str
    description: str
    tags: tuple[str, ...]
    default_queue_type: str | None
    counters: Mapping[str, int]  # every channel's, closed ones included


@dataclass(frozen=True, slots=True)
class ExchangeSnapshot:
    handle: object = field(repr=False, compare=False)
    name: str
    vhost: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: Mapping[str, Any]
    policy: str | None
    publish_in: int  # messages published to it
    publish_out: int  # deliveries of those to queues


# -- connections, channels, consumers ---------------------------------------------------------

def snapshot_connection(conn: ServerConnection,
                        local: Mapping[object, Address] = NO_ADDRESSES) -> ConnectionSnapshot:
    host, port = local.get(conn, UNKNOWN_ADDRESS)
    return ConnectionSnapshot(
        handle=conn, peer_host=str(conn.peer[0]), peer_port=int(conn.peer[1]),
        host=host, port=port, state=_STATES.get(conn.state, "starting"), user=conn.user,
        vhost=conn.vhost.name, client_properties=dict(conn.client_properties),
        channels=len(conn.channels), channel_max=conn.channel_max,
        frame_max=conn.frame_max, heartbeat=conn.heartbeat,
        connected_at=conn.connected_at, recv_oct=conn.recv_oct, send_oct=conn.send_oct)


def snapshot_connections(node: Node, local: Mapping[object, Address] = NO_ADDRESSES
                         ) -> list[tuple[ServerConnection, ConnectionSnapshot]]:
    """Every open connection with its snapshot (the live one, to act on: close it)."""
    connections = _server_connections(node)
    return [(conn, snapshot_connection(conn, local)) for conn in connections]


def snapshot_channel(ch: Channel, connection: ConnectionSnapshot) -> ChannelSnapshot:
    tx = ch.tx
    publishes = sum(1 for op, _ in tx if op == "publish") if tx else 0
    return ChannelSnapshot(
        handle=ch, connection=connection, number=ch.number, closing=ch.closing,
        consumers=len(ch.consumers), prefetch_count=ch.prefetch,
        global_prefetch_count=ch.global_prefetch, confirm=ch.confirm,
        transactional=tx is not None, messages_unacknowledged=len(ch.unacked),
        messages_unconfirmed=max(0, ch.publish_seq - ch.confirmed_upto) if ch.confirm
        else 0,
        messages_uncommitted=publishes, acks_uncommitted=len(tx) - publishes if tx else 0,
        counters=ch.counters.as_dict())


def snapshot_channels(conn: ServerConnection, connection: ConnectionSnapshot
                      ) -> list[ChannelSnapshot]:
    """``conn``'s channels; ``connection`` is its snapshot."""
    return [snapshot_channel(ch, connection) for ch in list(conn.channels.values())]


def snapshot_consumer(consumer: Consumer, connection: ConnectionSnapshot) -> ConsumerSnapshot:
    """``connection``: the snapshot of the consumer's channel's connection."""
    q = consumer.queue
    active = not q.single_active or (bool(q.consumers) and q.consumers[0] is consumer)
    status = ("single_active" if q.single_active else "up") if active else "waiting"
    return ConsumerSnapshot(
        tag=consumer.tag, exclusive=consumer.exclusive, ack_required=not consumer.no_ack,
        prefetch_count=consumer.prefetch, arguments=dict(consumer.arguments), active=active,
        activity_status=status, queue=q.name, vhost=q.vhost.name,
        channel_number=consumer.channel.number, connection=connection,
        stream=_reader(q, consumer) if isinstance(q, StreamQueue) else None)


def _reader(q: StreamQueue, consumer: Consumer) -> StreamReaderSnapshot | None:
    cursor = q.cursors.get(consumer)
    if cursor is None:
        return None
    # (a cursor behind the first offset moves up when it next reads; shown where it will)
    at = max(cursor.next, q.first)
    return StreamReaderSnapshot(next_offset=at, lag=max(0, q.next_offset - at))


def connection_consumers(conn: ServerConnection, connection: ConnectionSnapshot
                         ) -> list[ConsumerSnapshot]:
    """The consumers on ``conn``'s channels, but not direct reply-to's pseudo-consumers
    (RabbitMQ does not list those)."""
    return [snapshot_consumer(consumer, connection)
            for ch in list(conn.channels.values())
            for consumer in list(ch.consumers.values())
            if consumer.queue is not ch.reply_queue]


def queue_consumers(q: Queue, local: Mapping[object, Address] = NO_ADDRESSES
                    ) -> list[ConsumerSnapshot]:
    """A queue's consumers, in its order (the single active one first)."""
    return [snapshot_consumer(c, snapshot_connection(_server_connection(c), local))
            for c in list(q.consumers)]


def _server_connection(consumer: Consumer) -> ServerConnection:
    # A queue sees its consumers' channels through a Protocol; they are the server's.
    return cast(ServerConnection, cast(Channel, consumer.channel).connection)


# -- queues -----------------------------------------------------------------------------------

def unacked_bytes(node: Node) -> dict[object, int]:
    """queue -> body bytes of its messages delivered and not yet acknowledged, in one pass
    over every channel's unacked deliveries (the queue counts them, not their bytes)."""
    found: dict[object, int] = {}
    connections = _server_connections(node)
    for conn in connections:
        for ch in list(conn.channels.values()):
            for record in list(ch.unacked.values()):
                found[record.queue] = found.get(record.queue, 0) + len(
                    record.entry.message.body)
    return found


def snapshot_queue(q: Queue, unacked: int = 0,
                   local: Mapping[object, Address] = NO_ADDRESSES) -> QueueSnapshot:
    """``unacked``: its entry in ``unacked_bytes()`` (0 when the caller needs no bytes)."""
    owner = cast("ServerConnection | None", q.exclusive_owner)
    policy = cast(VirtualHost, q.vhost).policies.get(q.policy) if q.policy else None
    consumers = list(q.consumers)
    if isinstance(q, StreamQueue):
        return _snapshot_stream(q, local, policy.definition if policy is not None else {})
    return QueueSnapshot(
        handle=q, name=q.name, vhost=q.vhost.name, type=q.queue_type, durable=q.durable,
        auto_delete=q.auto_delete,
        owner=snapshot_connection(owner, local) if owner is not None else None,
        arguments=dict(q.arguments), policy=q.policy,
        policy_definition=dict(policy.definition) if policy is not None else {},
        consumers=len(consumers),
        exclusive_consumer_tag=next((c.tag for c in consumers if c.exclusive), None),
        single_active_consumer_tag=consumers[0].tag if q.single_active and consumers
        else None,
        messages_ready=q.message_count, messages_unacknowledged=q.unacked,
        message_bytes_ready=q.ready_bytes, message_bytes_unacknowledged=unacked,
        messages_paged_out=q.message_count - q.messages_in_memory,
        message_bytes_paged_out=q.ready_bytes - q.memory_used,
        counters=q.counters.as_dict())


def snapshot_stream(q: StreamQueue, local: Mapping[object, Address] = NO_ADDRESSES
                    ) -> StreamSnapshot:
    readers = tuple(c for c in queue_consumers(q, local) if c.stream is not None)
    return StreamSnapshot(
        first_offset=q.first, next_offset=q.next_offset, segments=len(q.segments),
        bytes=q.ready_bytes, max_length_bytes=q.max_length_bytes, max_age=q.max_age,
        max_segment_size_bytes=q.segment_size, readers=tuple(readers),
        subscriptions=tuple(stream_subscriptions(q)))


def _snapshot_stream(q: StreamQueue, local: Mapping[object, Address],
                     policy_definition: Mapping[str, Any]) -> QueueSnapshot:
    """A stream as RabbitMQ 3.10 counts one: every retained entry is ready, none
    unacknowledged (deliveries awaiting their ack are the consumers' credit, not messages
    taken out), nothing is paged out (every entry is in the log, a few also in memory);
    its consumers are its AMQP 0-9-1 consumers and its stream-protocol subscriptions."""
    stream = snapshot_stream(q, local)
    return QueueSnapshot(
        handle=q, name=q.name, vhost=q.vhost.name, type=q.queue_type, durable=q.durable,
        auto_delete=q.auto_delete, owner=None, arguments=dict(q.arguments), policy=q.policy,
        policy_definition=dict(policy_definition),
        consumers=len(q.consumers) + len(stream.subscriptions),
        exclusive_consumer_tag=None, single_active_consumer_tag=None,
        messages_ready=q.message_count, messages_unacknowledged=0,
        message_bytes_ready=q.ready_bytes, message_bytes_unacknowledged=0,
        messages_paged_out=0, message_bytes_paged_out=0, counters=q.counters.as_dict(),
        stream=stream)


def snapshot_queues(node: Node, vhosts: Iterable[str],
                    local: Mapping[object, Address] = NO_ADDRESSES) -> list[QueueSnapshot]:
    """The queues of the named vhosts, with their unacknowledged bytes."""
    in_flight = unacked_bytes(node)
    return [snapshot_queue(q, in_flight.get(q, 0), local)
            for name in vhosts for q in list(node.vhosts[name].queues.values())]


# -- vhosts and exchanges ---------------------------------------------------------------------

def snapshot_vhost(vhost: VirtualHost) -> VhostSnapshot:
    return VhostSnapshot(handle=vhost, name=vhost.name, description=vhost.description,
                         tags=tuple(vhost.tags), default_queue_type=vhost.default_queue_type,
                         counters=vhost.counters.as_dict())


def snapshot_exchange(vhost: VirtualHost, ex: Exchange) -> ExchangeSnapshot:
    return ExchangeSnapshot(handle=ex, name=ex.name, vhost=vhost.name, type=ex.type,
                            durable=ex.durable, auto_delete=ex.auto_delete,
                            internal=ex.internal, arguments=dict(ex.arguments),
                            policy=ex.policy, publish_in=ex.publish_in,
                            publish_out=ex.publish_out)
