"""Connections, channels and consumers: /api/connections, /api/channels, /api/consumers.

Names are RabbitMQ's: a connection is ``"<peer host>:<peer port> -> <host>:<port>"`` and a
channel ``"<connection name> (<number>)"``. DELETE /api/connections/{name} closes the
connection with 320 CONNECTION_FORCED and the ``X-Reason`` header as the text.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leveret.broker.connection import CLOSED, CLOSING, RUNNING
from leveret.broker.rabbit_definitions import jsonable
from leveret.broker.stats import DELIVERING, PUBLISHING
from leveret.management.auth import current_user, sees_connection, vhost_of
from leveret.management.context import Context, context
from leveret.management.http import no_content, not_found
from leveret.management.listing import listing, one, stats_disabled
from leveret.management.rates import details, message_stats

DEFAULT_REASON = "Closed via management plugin"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def local_addresses(ctx: Context) -> dict[object, tuple[str, int]]:
    """connection -> the broker's address it was accepted on."""
    return ctx.local_addresses()


def connection_name(conn: Any, local: dict[object, tuple[str, int]]) -> str:
    host, port = local.get(conn, ("?", 0))
    return f"{_address(str(conn.peer[0]), int(conn.peer[1]))} -> {_address(host, port)}"


def channel_name(conn_name: str, number: int) -> str:
    return f"{conn_name} ({number})"


def _state(conn: Any) -> str:
    return {RUNNING: "running", CLOSING: "closing", CLOSED: "closed"}.get(conn.state,
                                                                          "starting")


def connection_json(ctx: Context, conn: Any, local: dict[object, tuple[str, int]],
                    with_stats: bool = True) -> dict[str, Any]:
    host, port = local.get(conn, ("?", 0))
    name = connection_name(conn, local)
    props = jsonable(conn.client_properties)
    item: dict[str, Any] = {
        "name": name, "node": ctx.node_name, "type": "network", "protocol": "AMQP 0-9-1",
        "state": _state(conn), "user": conn.user, "user_who_performed_action": conn.user,
        "vhost": conn.vhost.name, "client_properties": props,
        "channels": len(conn.channels), "channel_max": conn.channel_max,
        "frame_max": conn.frame_max, "timeout": conn.heartbeat,
        "connected_at": getattr(conn, "connected_at", 0),
        "host": host, "port": port,
        "peer_host": str(conn.peer[0]), "peer_port": int(conn.peer[1]),
        "ssl": False, "ssl_protocol": None, "ssl_key_exchange": None, "ssl_cipher": None,
        "ssl_hash": None, "peer_cert_subject": None, "peer_cert_issuer": None,
        "peer_cert_validity": None,
    }
    provided = props.get("connection_name") if isinstance(props, dict) else None
    if provided is not None:
        item["user_provided_name"] = provided
    if with_stats:
        rates = ctx.sampler.rates(conn)
        for key in ("recv_oct", "send_oct"):
            item[key] = getattr(conn, key, 0)
            item[f"{key}_details"] = details(rates, key)
    return item


def channel_stats(counters: Any, rates: dict[str, float]) -> dict[str, Any]:
    """A channel's message_stats: the publishing and delivery groups it has used."""
    values = counters.as_dict()
    stats: dict[str, Any] = {}
    if any(values[k] for k in PUBLISHING):
        stats.update(message_stats(values, PUBLISHING, rates))
    delivering = (*DELIVERING, "deliver_get")
    if any(values[k] for k in delivering):
        stats.update(message_stats(values, delivering, rates))
    return stats


def channel_json(ctx: Context, conn: Any, ch: Any, conn_name: str,
                 with_stats: bool = True) -> dict[str, Any]:
    tx = ch.tx
    item: dict[str, Any] = {
        "name": channel_name(conn_name, ch.number), "node": ctx.node_name,
        "number": ch.number, "user": conn.user, "user_who_performed_action": conn.user,
        "vhost": conn.vhost.name, "state": "closing" if ch.closing else "running",
        "connection_details": {"name": conn_name, "peer_host": str(conn.peer[0]),
                               "peer_port": int(conn.peer[1])},
        "consumer_count": len(ch.consumers), "prefetch_count": ch.prefetch,
        "global_prefetch_count": ch.global_prefetch, "confirm": ch.confirm,
        "transactional": tx is not None,
        "messages_unacknowledged": len(ch.unacked),
        "messages_unconfirmed": max(0, ch.publish_seq - ch.confirmed_upto) if ch.confirm
        else 0,
        "messages_uncommitted": sum(1 for op, _ in tx if op == "publish") if tx else 0,
        "acks_uncommitted": sum(1 for op, _ in tx if op != "publish") if tx else 0,
        "pending_raft_commands": 0,
    }
    if with_stats:
        stats = channel_stats(ch.counters, ctx.sampler.rates(ch))
        if stats:
            item["message_stats"] = stats
    return item


def consumer_json(ctx: Context, consumer: Any, local: dict[object, tuple[str, int]]
                  ) -> dict[str, Any]:
    ch = consumer.channel
    conn = ch.connection
    conn_name = connection_name(conn, local)
    q = consumer.queue
    active = not q.single_active or (bool(q.consumers) and q.consumers[0] is consumer)
    return {
        "consumer_tag": consumer.tag, "exclusive": consumer.exclusive,
        "ack_required": not consumer.no_ack, "prefetch_count": consumer.prefetch,
        "arguments": jsonable(consumer.arguments), "active": active,
        "activity_status": ("single_active" if q.single_active else "up") if active
        else "waiting",
        "queue": {"name": q.name, "vhost": q.vhost.name},
        "channel_details": {"name": channel_name(conn_name, ch.number),
                            "connection_name": conn_name, "node": ctx.node_name,
                            "number": ch.number, "peer_host": str(conn.peer[0]),
                            "peer_port": int(conn.peer[1]), "user": conn.user},
    }


def queue_consumers(ctx: Context, q: Any) -> list[dict[str, Any]]:
    local = local_addresses(ctx)
    return [consumer_json(ctx, c, local) for c in q.consumers]


def _visible_connections(request: web.Request, vhost: str | None = None) -> list[Any]:
    ctx = context(request)
    user = current_user(request)
    return [c for c in list(ctx.node.connections)
            if sees_connection(user, c.user) and (vhost is None or c.vhost.name == vhost)]


def _find_connection(request: web.Request) -> tuple[Any, dict[object, tuple[str, int]]]:
    ctx = context(request)
    local = local_addresses(ctx)
    wanted = request.match_info["name"]
    for conn in _visible_connections(request):
        if connection_name(conn, local) == wanted:
            return conn, local
    raise not_found()


async def list_connections(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node).name if "vhost" in request.match_info else None
    local = local_addresses(ctx)
    stats = not stats_disabled(request)
    return listing(request, [connection_json(ctx, c, local, stats)
                             for c in _visible_connections(request, vhost)])


async def get_connection(request: web.Request) -> web.Response:
    conn, local = _find_connection(request)
    return one(request, connection_json(context(request), conn, local))


async def delete_connection(request: web.Request) -> web.Response:
    conn, _ = _find_connection(request)
    reason = request.headers.get("X-Reason") or DEFAULT_REASON
    conn.close(320, f"CONNECTION_FORCED - {reason}")
    return no_content()


def _channels(request: web.Request, conns: list[Any]) -> list[dict[str, Any]]:
    ctx = context(request)
    local = local_addresses(ctx)
    stats = not stats_disabled(request)
    found = []
    for conn in conns:
        name = connection_name(conn, local)
        for ch in list(conn.channels.values()):
            found.append(channel_json(ctx, conn, ch, name, stats))
    return found


async def connection_channels(request: web.Request) -> web.Response:
    conn, _ = _find_connection(request)
    return listing(request, _channels(request, [conn]))


async def list_channels(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node).name if "vhost" in request.match_info else None
    return listing(request, _channels(request, _visible_connections(request, vhost)))


async def get_channel(request: web.Request) -> web.Response:
    wanted = request.match_info["name"]
    for item in _channels(request, _visible_connections(request)):
        if item["name"] == wanted:
            return one(request, item)
    raise not_found()


async def list_consumers(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node).name if "vhost" in request.match_info else None
    local = local_addresses(ctx)
    found = []
    for conn in _visible_connections(request, vhost):
        for ch in list(conn.channels.values()):
            for consumer in list(ch.consumers.values()):
                if consumer.queue is not ch.reply_queue:
                    found.append(consumer_json(ctx, consumer, local))
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
