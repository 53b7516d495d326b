"""Read-only snapshots of stream-protocol connections, their publishers and their
subscriptions, for the management API and /metrics (snapshot.py does the same for AMQP
connections): the one place that reads StreamConnection's and StreamSession's insides.

``handle`` is the live connection, to act on (close it), never to read through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from leveret.broker.queues.stream import StreamQueue
from leveret.broker.stream_connection import CLOSED, CLOSING, OPEN, StreamConnection
from leveret.broker.stream_session import GroupSubscription, StreamLink, Subscription
from leveret.broker.tls_session import TLSSession


@dataclass(frozen=True, slots=True)
class StreamConnectionSnapshot:
    handle: StreamConnection = field(repr=False, compare=False)
    peer_host: str
    peer_port: int
    host: str  # the address it was accepted on
    port: int
    state: str  # running, or blocked while its reading is paused (RabbitMQ's names)
    user: str
    vhost: str
    auth_mechanism: str
    client_properties: Mapping[str, str]
    frame_max: int
    heartbeat: int
    connected_at: int  # ms since the epoch
    recv_oct: int
    recv_cnt: int
    send_oct: int
    send_cnt: int
    send_pend: int  # bytes written and not yet handed to the transport
    tls: TLSSession | None


@dataclass(frozen=True, slots=True)
class StreamPublisherSnapshot:
    connection: StreamConnectionSnapshot
    publisher_id: int
    stream: str
    vhost: str
    reference: str
    published: int
    confirmed: int
    errored: int


@dataclass(frozen=True, slots=True)
class StreamConsumerSnapshot:
    """``offset`` is RabbitMQ's: the first offset of the last chunk sent (where it
    subscribed, until then). ``offset_lag`` counts the entries not sent yet (RabbitMQ
    subtracts ``offset`` from the newest chunk's first offset: the same at its chunk
    granularity, where leveret's chunks are made at delivery)."""
    connection: StreamConnectionSnapshot
    subscription_id: int
    stream: str
    vhost: str
    credits: int
    consumed: int
    offset: int
    offset_lag: int
    next_offset: int  # the next offset it will be sent
    properties: Mapping[str, str]
    # A single active consumer's subscription waits (active False) while another
    # member of its group reads; RabbitMQ's activity status: up, single_active, waiting.
    active: bool = True
    activity_status: str = "up"


def snapshot_stream_connection(conn: StreamConnection) -> StreamConnectionSnapshot:
    reading = conn.state is OPEN and not conn.blocked
    return StreamConnectionSnapshot(
        handle=conn, peer_host=str(conn.peer[0]), peer_port=int(conn.peer[1]),
        host=conn.local[0], port=conn.local[1],
        state="running" if reading else "blocked" if conn.state is OPEN else
        "closing" if conn.state in (CLOSING, CLOSED) else "starting",
        user=conn.user, vhost=conn.vhost.name if conn.vhost is not None else "",
        auth_mechanism=conn.auth_mechanism, client_properties=dict(conn.client_properties),
        frame_max=conn.frame_max, heartbeat=conn.heartbeat, connected_at=conn.connected_at,
        recv_oct=conn.recv_oct, recv_cnt=conn.recv_cnt, send_oct=conn.send_oct,
        send_cnt=conn.send_cnt, send_pend=conn.out_bytes, tls=conn.tls)


def snapshot_stream_connections(connections: Iterable[StreamConnection]
                                ) -> list[StreamConnectionSnapshot]:
    """The open ones (a connection is listed from Open until it closes, as in RabbitMQ)."""
    return [snapshot_stream_connection(c) for c in list(connections)
            if c.vhost is not None and c.state is not CLOSED]


def stream_publishers(connection: StreamConnectionSnapshot) -> list[StreamPublisherSnapshot]:
    session = connection.handle.session
    return [StreamPublisherSnapshot(
        connection=connection, publisher_id=p.id, stream=p.queue.name,
        vhost=connection.vhost, reference=p.reference, published=p.published,
        confirmed=p.confirmed, errored=p.errored)
        for p in sorted(session.publishers.values(), key=lambda p: p.id)]


def stream_consumers(connection: StreamConnectionSnapshot) -> list[StreamConsumerSnapshot]:
    session = connection.handle.session
    return [_subscription(connection, sub)
            for sub in sorted(session.subscriptions.values(), key=lambda s: s.id)]


def stream_subscriptions(queue: StreamQueue) -> list[StreamConsumerSnapshot]:
    """The stream-protocol subscriptions to ``queue``, of every open connection (a stream
    queue counts them among its consumers, as RabbitMQ does)."""
    found = []
    for link in list(queue.readers):
        if not isinstance(link, StreamLink):
            continue
        conn = cast(StreamConnection, link.session.conn)
        if conn.vhost is None or conn.state is CLOSED:
            continue
        connection = snapshot_stream_connection(conn)
        found += [_subscription(connection, sub)
                  for sub in sorted(link.session.subscriptions.values(), key=lambda s: s.id)
                  if sub.queue is queue]
    return found


def _subscription(connection: StreamConnectionSnapshot, sub: Subscription
                  ) -> StreamConsumerSnapshot:
    active, status = True, "up"
    if isinstance(sub, GroupSubscription):
        active = sub.group.active is sub
        status = "single_active" if active else "waiting"
    return StreamConsumerSnapshot(
        connection=connection, subscription_id=sub.id, stream=sub.queue.name,
        vhost=connection.vhost, credits=sub.credit, consumed=sub.consumed,
        offset=sub.offset, offset_lag=max(0, sub.queue.next_offset - sub.next),
        next_offset=sub.next, properties=dict(sub.properties), active=active,
        activity_status=status)
