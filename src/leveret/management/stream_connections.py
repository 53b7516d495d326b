"""Stream-protocol connections, publishers and consumers: the routes of RabbitMQ 3.10's
rabbitmq_stream_management plugin (``/api/stream/...``), with its JSON and its rules.

- ``/api/stream/connections[/{vhost}]``: as /api/connections, a user's own connections
  (monitoring users: everyone's, and in any vhost, where /api/vhosts/{vhost}/connections
  wants permissions in it); a named connection (``{vhost}/{name}``) is shown to its
  user and monitoring users, and closed (DELETE) by its user or an administrator: the
  socket is closed without a Close frame, as RabbitMQ does.
- ``.../{name}/publishers``, ``.../{name}/consumers``: that connection's.
- ``/api/stream/publishers[/{vhost}[/{stream}]]``, ``/api/stream/consumers[/{vhost}]``:
  any management user, in any vhost; the publishers and consumers of their own
  connections (monitoring users: all); 404 for an unknown vhost or stream;
  ``disable_stats=true`` is 400, RabbitMQ's "Stats in management UI are disabled".

Stream connections are also rows of /api/connections (protocol ``stream``), and their
subscriptions rows of /api/consumers (tag ``stream.subid-<id>``): connections.py asks this
module for them.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from leveret.broker.stream_connection import StreamConnection
from leveret.broker.stream_snapshot import (
    StreamConnectionSnapshot,
    StreamConsumerSnapshot,
    StreamPublisherSnapshot,
    snapshot_stream_connections,
    stream_consumers,
    stream_publishers,
)
from leveret.management.auth import (
    check_owner,
    current_user,
    named_vhost,
    sees_connection,
    visible_vhost_of,
)
from leveret.management.context import Context, context
from leveret.management.http import bad_request, no_content, not_found
from leveret.management.listing import listing, one, stats_disabled
from leveret.management.rates import details

log = logging.getLogger("leveret.management")

DEFAULT_REASON = "Closed via management plugin"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def stream_connection_name(conn: StreamConnectionSnapshot) -> str:
    return f"{_address(conn.peer_host, conn.peer_port)} -> {_address(conn.host, conn.port)}"


def stream_connection_json(ctx: Context, conn: StreamConnectionSnapshot,
                           with_stats: bool = True, single: bool = False) -> dict[str, Any]:
    """RabbitMQ's row; a plain connection's TLS fields are null in lists and "" one by one
    (as RabbitMQ 3.10.8 answers)."""
    tls = conn.tls
    none = "" if single else None
    item: dict[str, Any] = {
        "name": stream_connection_name(conn), "node": ctx.node_name, "protocol": "stream",
        "user": conn.user, "user_who_performed_action": conn.user, "vhost": conn.vhost,
        "auth_mechanism": conn.auth_mechanism, "client_properties": dict(
            conn.client_properties), "channel_max": 0, "channels": 0,
        "frame_max": conn.frame_max, "timeout": conn.heartbeat,
        "connected_at": conn.connected_at, "host": conn.host, "port": conn.port,
        "peer_host": conn.peer_host, "peer_port": conn.peer_port, "ssl": tls is not None,
        "ssl_protocol": tls.protocol if tls else none,
        "ssl_key_exchange": tls.key_exchange if tls else none,
        "ssl_cipher": tls.cipher if tls else none, "ssl_hash": tls.hash if tls else none,
        "peer_cert_subject": tls.peer_cert_subject if tls else none,
        "peer_cert_issuer": tls.peer_cert_issuer if tls else none,
        "peer_cert_validity": tls.peer_cert_validity if tls else none,
    }
    provided = conn.client_properties.get("connection_name")
    if provided is not None:
        item["user_provided_name"] = provided
    if with_stats:
        rates = ctx.sampler.rates(conn.handle)
        item.update({"state": conn.state, "recv_oct": conn.recv_oct,
                     "recv_oct_details": details(rates, "recv_oct"),
                     "recv_cnt": conn.recv_cnt, "send_oct": conn.send_oct,
                     "send_oct_details": details(rates, "send_oct"),
                     "send_cnt": conn.send_cnt, "send_pend": conn.send_pend})
    return item


def _connection_details(ctx: Context, conn: StreamConnectionSnapshot) -> dict[str, Any]:
    return {"name": stream_connection_name(conn), "node": ctx.node_name,
            "peer_host": conn.peer_host, "peer_port": conn.peer_port, "user": conn.user}


def publisher_json(ctx: Context, p: StreamPublisherSnapshot) -> dict[str, Any]:
    return {"publisher_id": p.publisher_id, "reference": p.reference,
            "queue": {"name": p.stream, "vhost": p.vhost},
            "connection_details": _connection_details(ctx, p.connection),
            "published": p.published, "confirmed": p.confirmed, "errored": p.errored}


def consumer_json(ctx: Context, c: StreamConsumerSnapshot) -> dict[str, Any]:
    return {"subscription_id": c.subscription_id,
            "queue": {"name": c.stream, "vhost": c.vhost},
            "connection_details": _connection_details(ctx, c.connection),
            "credits": c.credits, "consumed": c.consumed, "offset": c.offset,
            "offset_lag": c.offset_lag, "properties": dict(c.properties)}


def amqp_consumer_json(ctx: Context, c: StreamConsumerSnapshot) -> dict[str, Any]:
    """A subscription as a row of /api/consumers and of its stream's consumer_details
    (RabbitMQ lists them there too)."""
    conn = c.connection
    return {"consumer_tag": f"stream.subid-{c.subscription_id}", "exclusive": False,
            "ack_required": False, "prefetch_count": 0,
            "arguments": dict(c.properties),  # Subscribe's properties, as RabbitMQ shows
            "active": c.active, "activity_status": c.activity_status,
            "queue": {"name": c.stream, "vhost": c.vhost},
            "channel_details": {"name": "", "connection_name": stream_connection_name(conn),
                                "node": ctx.node_name, "number": 0,
                                "peer_host": conn.peer_host, "peer_port": conn.peer_port,
                                "user": conn.user}}


# -- reading the runtime ---------------------------------------------------------------

def all_stream_connections(ctx: Context) -> list[StreamConnectionSnapshot]:
    broker = ctx.broker
    if broker is None:
        return []
    return snapshot_stream_connections(broker.stream_connections())


def visible_stream_connections(request: web.Request, vhost: str | None = None
                               ) -> list[StreamConnectionSnapshot]:
    """The user's own (a monitoring user's: all), in ``vhost`` when given."""
    user = current_user(request)
    return [c for c in all_stream_connections(context(request))
            if sees_connection(user, c.user) and (vhost is None or c.vhost == vhost)]


def find_stream_connection(request: web.Request, name: str, vhost: str | None = None
                           ) -> StreamConnectionSnapshot | None:
    """The connection named ``name`` (in ``vhost``), None if there is none; 401 if the
    user may not see it (or, for DELETE, close it)."""
    for conn in all_stream_connections(context(request)):
        if stream_connection_name(conn) == name and (vhost is None or conn.vhost == vhost):
            check_owner(request, conn.user)
            return conn
    return None


def close_stream_connection(request: web.Request, conn: StreamConnectionSnapshot) -> None:
    reason = request.headers.get("X-Reason") or DEFAULT_REASON
    live: StreamConnection = conn.handle
    log.info("closing stream connection %s on request of user '%s': %s",
             stream_connection_name(conn), current_user(request).name, reason)
    live.shut_down(reason)


# -- handlers ----------------------------------------------------------------------------

async def list_connections(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = visible_vhost_of(request, ctx.node).name if "vhost" in request.match_info \
        else None
    stats = not stats_disabled(request)
    return listing(request, [stream_connection_json(ctx, c, stats)
                             for c in visible_stream_connections(request, vhost)])


def _named(request: web.Request) -> StreamConnectionSnapshot:
    ctx = context(request)
    vhost = named_vhost(request, ctx.node).name
    conn = find_stream_connection(request, request.match_info["name"], vhost)
    if conn is None:
        raise not_found()
    return conn


async def get_connection(request: web.Request) -> web.Response:
    conn = _named(request)
    return one(request, stream_connection_json(context(request), conn,
                                               not stats_disabled(request), single=True))


async def delete_connection(request: web.Request) -> web.Response:
    close_stream_connection(request, _named(request))
    return no_content()


async def connection_publishers(request: web.Request) -> web.Response:
    ctx = context(request)
    return listing(request, [publisher_json(ctx, p) for p in stream_publishers(
        _named(request))], default_sort=())


async def connection_consumers(request: web.Request) -> web.Response:
    ctx = context(request)
    return listing(request, [consumer_json(ctx, c) for c in stream_consumers(
        _named(request))], default_sort=())


def _stats_required(request: web.Request) -> None:
    if stats_disabled(request):
        raise bad_request("Stats in management UI are disabled on this node")


async def list_publishers(request: web.Request) -> web.Response:
    ctx = context(request)
    _stats_required(request)
    vhost = named_vhost(request, ctx.node) if "vhost" in request.match_info else None
    stream = request.match_info.get("stream")
    if vhost is not None and stream is not None and stream not in vhost.queues:
        raise not_found()
    found = [publisher_json(ctx, p)
             for c in visible_stream_connections(request, vhost.name if vhost else None)
             for p in stream_publishers(c) if stream is None or p.stream == stream]
    return listing(request, found, default_sort=())


async def list_consumers(request: web.Request) -> web.Response:
    ctx = context(request)
    _stats_required(request)
    vhost = named_vhost(request, ctx.node).name if "vhost" in request.match_info else None
    found = [consumer_json(ctx, c) for conn in visible_stream_connections(request, vhost)
             for c in stream_consumers(conn)]
    return listing(request, found, default_sort=())


def add_routes(app: web.Application) -> None:
    r = app.router
    base = "/api/stream/connections"
    r.add_get(base, list_connections)
    r.add_get(base + "/{vhost}", list_connections)
    r.add_get(base + "/{vhost}/{name}", get_connection)
    r.add_delete(base + "/{vhost}/{name}", delete_connection)
    r.add_get(base + "/{vhost}/{name}/publishers", connection_publishers)
    r.add_get(base + "/{vhost}/{name}/consumers", connection_consumers)
    r.add_get("/api/stream/publishers", list_publishers)
    r.add_get("/api/stream/publishers/{vhost}", list_publishers)
    r.add_get("/api/stream/publishers/{vhost}/{stream}", list_publishers)
    r.add_get("/api/stream/consumers", list_consumers)
    r.add_get("/api/stream/consumers/{vhost}", list_consumers)
