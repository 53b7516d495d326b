"""Connections, channels and consumers: /api/connections, /api/channels, /api/consumers.

Names are RabbitMQ's: a connection is ``"<peer host>:<peer port> -> <host>:<port>"`` and a
channel ``"<connection name> (<number>)"``. DELETE /api/connections/{name} closes the
connection with 320 CONNECTION_FORCED and the ``X-Reason`` header as the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from leveret.broker.connection import ServerConnection
from leveret.broker.rabbit_definitions import jsonable
from leveret.broker.snapshot import (
    ChannelSnapshot,
    ConnectionSnapshot,
    ConsumerSnapshot,
    connection_consumers,
    snapshot_channels,
    snapshot_connections,
)
from leveret.broker.stats import DELIVERING, PUBLISHING
from leveret.broker.stream_snapshot import stream_consumers
from leveret.management.auth import (
    check_owner,
    current_user,
    named_vhost,
    sees_connection,
    vhost_of,
)
from leveret.management.context import Context, context
from leveret.management.http import no_content, not_found
from leveret.management.listing import listing, one, stats_disabled
from leveret.management.rates import details, message_stats
from leveret.management.stream_connections import (
    amqp_consumer_json,
    close_stream_connection,
    find_stream_connection,
    stream_connection_json,
    visible_stream_connections,
)

DEFAULT_REASON = "Closed via management plugin"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connection_name(conn: ConnectionSnapshot) -> str:
    return f"{_address(conn.peer_host, conn.peer_port)} -> {_address(conn.host, conn.port)}"


def channel_name(conn_name: str, number: int) -> str:
    return f"{conn_name} ({number})"


def connection_json(ctx: Context, conn: ConnectionSnapshot, with_stats: bool = True
                    ) -> dict[str, Any]:
    props = jsonable(conn.client_properties)
    item: dict[str, Any] = {
        "name": connection_name(conn), "node": ctx.node_name, "type": "network",
        "protocol": "AMQP 0-9-1", "state": conn.state, "user": conn.user,
        "user_who_performed_action": conn.user, "vhost": conn.vhost,
        "client_properties": props, "channels": conn.channels,
        "channel_max": conn.channel_max, "frame_max": conn.frame_max,
        "timeout": conn.heartbeat, "connected_at": conn.connected_at,
        "host": conn.host, "port": conn.port,
        "peer_host": conn.peer_host, "peer_port": conn.peer_port,
        "ssl": False, "ssl_protocol": None, "ssl_key_exchange": None, "ssl_cipher": None,
        "ssl_hash": None, "peer_cert_subject": None, "peer_cert_issuer": None,
        "peer_cert_validity": None,
    }
    provided = props.get("connection_name") if isinstance(props, dict) else None
    if provided is not None:
        item["user_provided_name"] = provided
    if with_stats:
        rates = ctx.sampler.rates(conn.handle)
        item["recv_oct"] = conn.recv_oct
        item["recv_oct_details"] = details(rates, "recv_oct")
        item["send_oct"] = conn.send_oct
        item["send_oct_details"] = details(rates, "send_oct")
    return item


def channel_stats(counters: Mapping[str, int], rates: dict[str, float]) -> dict[str, Any]:
    """A channel's message_stats: the publishing and delivery groups it has used."""
    stats: dict[str, Any] = {}
    if any(counters[k] for k in PUBLISHING):
        stats.update(message_stats(counters, PUBLISHING, rates))
    delivering = (*DELIVERING, "deliver_get")
    if any(counters[k] for k in delivering):
        stats.update(message_stats(counters, delivering, rates))
    return stats


def channel_json(ctx: Context, ch: ChannelSnapshot, with_stats: bool = True
                 ) -> dict[str, Any]:
    conn = ch.connection
    conn_name = connection_name(conn)
    item: dict[str, Any] = {
        "name": channel_name(conn_name, ch.number), "node": ctx.node_name,
        "number": ch.number, "user": conn.user, "user_who_performed_action": conn.user,
        "vhost": conn.vhost, "state": "closing" if ch.closing else "running",
        "connection_details": {"name": conn_name, "peer_host": conn.peer_host,
                               "peer_port": conn.peer_port},
        "consumer_count": ch.consumers, "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count, "confirm": ch.confirm,
        "transactional": ch.transactional,
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "messages_uncommitted": ch.messages_uncommitted,
        "acks_uncommitted": ch.acks_uncommitted,
        "pending_raft_commands": 0,
    }
    if with_stats:
        stats = channel_stats(ch.counters, ctx.sampler.rates(ch.handle))
        if stats:
            item["message_stats"] = stats
    return item


def consumer_json(ctx: Context, consumer: ConsumerSnapshot) -> dict[str, Any]:
    conn = consumer.connection
    conn_name = connection_name(conn)
    item = {
        "consumer_tag": consumer.tag, "exclusive": consumer.exclusive,
        "ack_required": consumer.ack_required, "prefetch_count": consumer.prefetch_count,
        "arguments": jsonable(consumer.arguments), "active": consumer.active,
        "activity_status": consumer.activity_status,
        "queue": {"name": consumer.queue, "vhost": consumer.vhost},
        "channel_details": {"name": channel_name(conn_name, consumer.channel_number),
                            "connection_name": conn_name, "node": ctx.node_name,
                            "number": consumer.channel_number, "peer_host": conn.peer_host,
                            "peer_port": conn.peer_port, "user": conn.user},
    }
    if consumer.stream is not None:  # leveret's: a stream consumer's place in the stream
        item["stream"] = {"next_offset": consumer.stream.next_offset,
                          "lag": consumer.stream.lag}
    return item


Visible = list[tuple[ServerConnection, ConnectionSnapshot]]


def _visible_connections(request: web.Request, vhost: str | None = None) -> Visible:
    """The connections the user may see (in ``vhost``), live (to act on) and as
    snapshots (to show)."""
    ctx = context(request)
    user = current_user(request)
    return [(conn, snapshot)
            for conn, snapshot in snapshot_connections(ctx.node, ctx.local_addresses())
            if sees_connection(user, snapshot.user)
            and (vhost is None or snapshot.vhost == vhost)]


def _find_connection(request: web.Request) -> tuple[ServerConnection, ConnectionSnapshot]:
    """The connection named in the path: 404 if there is none; 401 if it is another user's
    and the user may not look at (or close) it."""
    ctx = context(request)
    wanted = request.match_info["name"]
    for conn, snapshot in snapshot_connections(ctx.node, ctx.local_addresses()):
        if connection_name(snapshot) == wanted:
            check_owner(request, snapshot.user)
            return conn, snapshot
    raise not_found()


async def list_connections(request: web.Request) -> web.Response:
    """AMQP and stream-protocol connections (RabbitMQ lists both, the latter with protocol
    ``stream``)."""
    ctx = context(request)
    vhost = vhost_of(request, ctx.node).name if "vhost" in request.match_info else None
    stats = not stats_disabled(request)
    rows = [connection_json(ctx, snapshot, stats)
            for _, snapshot in _visible_connections(request, vhost)]
    rows += [stream_connection_json(ctx, c, stats)
             for c in visible_stream_connections(request, vhost)]
    return listing(request, rows)


async def get_connection(request: web.Request) -> web.Response:
    stream = find_stream_connection(request, request.match_info["name"])
    if stream is not None:
        return one(request, stream_connection_json(context(request), stream, single=True))
    _, snapshot = _find_connection(request)
    return one(request, connection_json(context(request), snapshot))


async def delete_connection(request: web.Request) -> web.Response:
    stream = find_stream_connection(request, request.match_info["name"])
    if stream is not None:
        close_stream_connection(request, stream)
        return no_content()
    conn, _ = _find_connection(request)
    reason = request.headers.get("X-Reason") or DEFAULT_REASON
    conn.close(320, f"CONNECTION_FORCED - {reason}")
    return no_content()


def _channels(request: web.Request, connections: Visible) -> list[dict[str, Any]]:
    ctx = context(request)
    stats = not stats_disabled(request)
    return [channel_json(ctx, ch, stats) for conn, snapshot in connections
            for ch in snapshot_channels(conn, snapshot)]


async def connection_channels(request: web.Request) -> web.Response:
    if find_stream_connection(request, request.match_info["name"]) is not None:
        return listing(request, [])  # the stream protocol has no channels
    return listing(request, _channels(request, [_find_connection(request)]))


async def list_channels(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node).name if "vhost" in request.match_info else None
    return listing(request, _channels(request, _visible_connections(request, vhost)))


async def get_channel(request: web.Request) -> web.Response:
    ctx = context(request)
    wanted = request.match_info["name"]
    everyone = snapshot_connections(ctx.node, ctx.local_addresses())
    for item in _channels(request, everyone):
        if item["name"] == wanted:
            check_owner(request, item["user"])
            return one(request, item)
    raise not_found()


async def list_consumers(request: web.Request) -> web.Response:
    """Any management user's, in any vhost: the consumers of the connections they see."""
    ctx = context(request)
    vhost = named_vhost(request, ctx.node).name if "vhost" in request.match_info else None
    found = [consumer_json(ctx, consumer)
             for conn, snapshot in _visible_connections(request, vhost)
             for consumer in connection_consumers(conn, snapshot)]
    found += [amqp_consumer_json(ctx, sub)
              for conn in visible_stream_connections(request, vhost)
              for sub in stream_consumers(conn)]
    return listing(request, found, default_sort=("consumer_tag",))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/connections", list_connections)
    r.add_get("/api/vhosts/{vhost}/connections", list_connections)
    r.add_get("/api/connections/{name}", get_connection)
    r.add_delete("/api/connections/{name}", delete_connection)
    r.add_get("/api/connections/{name}/channels", connection_channels)
    r.add_get("/api/channels", list_channels)
    r.add_get("/api/vhosts/{vhost}/channels", list_channels)
    r.add_get("/api/channels/{name}", get_channel)
    r.add_get("/api/consumers", list_consumers)
    r.add_get("/api/consumers/{vhost}", list_consumers)
