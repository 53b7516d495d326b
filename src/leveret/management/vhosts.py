"""Virtual hosts and their limits: /api/vhosts, /api/vhosts/{vhost}[/permissions|
/topic-permissions], /api/vhost-limits[/{vhost}[/{name}]].

Creating a vhost over HTTP gives its creator full permissions there, as RabbitMQ does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leveret.broker.snapshot import snapshot_connections, snapshot_queue, snapshot_vhost
from leveret.broker.stats import EVENTS
from leveret.broker.vhost import VirtualHost
from leveret.management import validate
from leveret.management.auth import (
    current_user,
    named_vhost,
    require_admin,
    visible_vhost_of,
    visible_vhosts,
)
from leveret.management.context import Context, context
from leveret.management.http import (
    bad_request,
    created,
    missing_keys,
    no_content,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one, stats_disabled
from leveret.management.rates import DEPTHS, details, message_stats, queue_depths
from leveret.management.validate import optional_text, text

LIMITS = ("max-connections", "max-queues")
VHOST_STATS = (*EVENTS, "deliver_get")


def vhost_json(ctx: Context, vhost: VirtualHost, with_stats: bool = True) -> dict[str, Any]:
    snapshot = snapshot_vhost(vhost)
    tags = list(snapshot.tags)
    item: dict[str, Any] = {
        "name": snapshot.name, "description": snapshot.description, "tags": tags,
        "default_queue_type": snapshot.default_queue_type or "undefined",
        "metadata": {"description": snapshot.description, "tags": tags},
        "tracing": False, "cluster_state": {ctx.node_name: "running"},
    }
    if not with_stats:
        return item
    rates = ctx.sampler.rates(snapshot.handle)
    depths = dict.fromkeys(DEPTHS, 0)
    for q in list(vhost.queues.values()):
        for key, value in queue_depths(snapshot_queue(q)).items():
            depths[key] += value
    for key in DEPTHS:
        item[key] = depths[key]
        item[f"{key}_details"] = details(rates, key)
    if any(snapshot.counters.values()):
        item["message_stats"] = message_stats(snapshot.counters, VHOST_STATS, rates)
    conns = [c for _, c in snapshot_connections(ctx.node) if c.vhost == snapshot.name]
    if conns:
        conn_rates: dict[str, float] = {}
        for c in conns:
            for key, rate in ctx.sampler.rates(c.handle).items():
                conn_rates[key] = conn_rates.get(key, 0.0) + rate
        item["recv_oct"] = sum(c.recv_oct for c in conns)
        item["recv_oct_details"] = details(conn_rates, "recv_oct")
        item["send_oct"] = sum(c.send_oct for c in conns)
        item["send_oct_details"] = details(conn_rates, "send_oct")
    return item


async def list_vhosts(request: web.Request) -> web.Response:
    ctx = context(request)
    names = visible_vhosts(ctx.node, current_user(request))
    stats = not stats_disabled(request)
    return listing(request, [vhost_json(ctx, ctx.node.vhosts[n], stats) for n in names],
                   default_sort=("name",))


async def get_vhost(request: web.Request) -> web.Response:
    ctx = context(request)
    require_admin(request)  # as RabbitMQ 3.10; the list shows the same to every user
    return one(request, vhost_json(ctx, named_vhost(request, ctx.node),
                                   not stats_disabled(request)))


async def put_vhost(request: web.Request) -> web.Response:
    ctx = context(request)
    user = require_admin(request)
    name = request.match_info["vhost"]
    body = await read_json(request)
    description, tags = text(body, "description", ""), validate.tags(body)
    queue_type = optional_text(body, "default_queue_type")
    existed = name in ctx.node.vhosts
    ctx.node.add_vhost(name, description, tags, queue_type)
    if not existed:
        ctx.node.set_permissions(name, user.name, ".*", ".*", ".*")
    return no_content() if existed else created()


async def delete_vhost(request: web.Request) -> web.Response:
    ctx = context(request)
    require_admin(request)
    try:
        ctx.node.delete_vhost(request.match_info["vhost"])
    except KeyError:
        raise not_found() from None
    return no_content()


async def vhost_permissions(request: web.Request) -> web.Response:
    ctx = context(request)
    require_admin(request)
    vhost = named_vhost(request, ctx.node)
    return listing(request, [
        {"vhost": v, "user": u, "configure": p.configure, "write": p.write, "read": p.read}
        for (v, u), p in ctx.node.permissions.items() if v == vhost.name],
        default_sort=("user",))


async def vhost_topic_permissions(request: web.Request) -> web.Response:
    ctx = context(request)
    require_admin(request)
    vhost = named_vhost(request, ctx.node)
    return listing(request, [
        {"vhost": v, "user": u, "exchange": t.exchange, "write": t.write, "read": t.read}
        for (v, u, _), t in ctx.node.topic_permissions.items() if v == vhost.name],
        default_sort=("user",))


def _limits(ctx: Context, names: list[str]) -> list[dict[str, Any]]:
    return [{"vhost": n, "value": dict(ctx.node.vhost_limits[n])} for n in names
            if ctx.node.vhost_limits.get(n)]


async def list_vhost_limits(request: web.Request) -> web.Response:
    ctx = context(request)
    if "vhost" in request.match_info:
        names = [visible_vhost_of(request, ctx.node).name]
    else:
        names = visible_vhosts(ctx.node, current_user(request))
    return listing(request, _limits(ctx, names), default_sort=("vhost",))


async def put_vhost_limit(request: web.Request) -> web.Response:
    ctx = context(request)
    require_admin(request)
    vhost = named_vhost(request, ctx.node)
    name = request.match_info["name"]
    body = await read_json(request)
    missing_keys(body, "value")
    if name not in LIMITS:
        raise bad_request(f"Validation failed\n\n{name} is not a valid vhost limit\n")
    value = body["value"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"Validation failed\n\n{name} must be an integer\n")
    ctx.node.set_vhost_limits(vhost.name, {name: value})
    return no_content()


async def delete_vhost_limit(request: web.Request) -> web.Response:
    ctx = context(request)
    require_admin(request)
    vhost = named_vhost(request, ctx.node)
    # Clearing a limit that is not set succeeds, as in RabbitMQ.
    ctx.node.clear_vhost_limits(vhost.name, request.match_info["name"])
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/vhosts", list_vhosts)
    r.add_get("/api/vhosts/{vhost}", get_vhost)
    r.add_put("/api/vhosts/{vhost}", put_vhost)
    r.add_delete("/api/vhosts/{vhost}", delete_vhost)
    r.add_get("/api/vhosts/{vhost}/permissions", vhost_permissions)
    r.add_get("/api/vhosts/{vhost}/topic-permissions", vhost_topic_permissions)
    r.add_get("/api/vhost-limits", list_vhost_limits)
    r.add_get("/api/vhost-limits/{vhost}", list_vhost_limits)
    r.add_put("/api/vhost-limits/{vhost}/{name}", put_vhost_limit)
    r.add_delete("/api/vhost-limits/{vhost}/{name}", delete_vhost_limit)
