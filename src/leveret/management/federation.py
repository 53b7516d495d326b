"""Federation: the ``federation-upstream`` and ``federation-upstream-set`` runtime
parameters (/api/parameters/{component}[/{vhost}[/{name}]]), as RabbitMQ's federation
plugin serves them, with the permission rules of shovels' parameters (policymaker or
administrator, and permissions in the vhost); and /api/federation-links[/{vhost}].
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leveret.broker import federation
from leveret.broker.snapshot import snapshot_channels, snapshot_connections
from leveret.management.auth import (
    POLICY_TAGS,
    current_user,
    has_permissions,
    is_admin,
    named_vhost,
    permitted_vhosts,
    policy_vhost_of,
    require_monitor,
    tags_of,
)
from leveret.management.connections import channel_json, connection_name
from leveret.management.context import Context, context
from leveret.management.http import (
    ApiError,
    bad_request,
    created,
    no_content,
    not_authorised,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one
from leveret.management.shovels import _escape, _json


def _component(request: web.Request) -> str:
    return federation.UPSTREAM_SET if "upstream-set" in request.path else federation.UPSTREAM


async def list_parameters(request: web.Request) -> web.Response:
    ctx = context(request)
    component = _component(request)
    user = current_user(request)
    if "vhost" in request.match_info:
        names = [policy_vhost_of(request, ctx.node).name]
    else:
        if not is_admin(user) and not POLICY_TAGS & tags_of(user):
            raise not_authorised("User not authorised to access object")
        names = permitted_vhosts(ctx.node, user)
    rows = [{**_json(vh, name, value), "component": component}
            for (c, vh, name), value in ctx.node.parameters.items()
            if c == component and vh in names]
    return listing(request, rows)


async def get_parameter(request: web.Request) -> web.Response:
    node = context(request).node
    component = _component(request)
    vhost = policy_vhost_of(request, node)
    name = request.match_info["name"]
    value = node.parameters.get((component, vhost.name, name))
    if value is None:
        raise not_found()
    return one(request, {**_json(vhost.name, name, value), "component": component})


async def put_parameter(request: web.Request) -> web.Response:
    node = context(request).node
    component = _component(request)
    if request.match_info["vhost"] not in node.vhosts:  # RabbitMQ's answer, not a plain 404
        raise ApiError(404, "not_found", "vhost_not_found")
    vhost = policy_vhost_of(request, node)
    body = await read_json(request)
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    name = request.match_info["name"]
    errors = federation.validate(component, name, body["value"])
    if errors:
        raise bad_request(_escape("Validation failed\n\n" + "".join(e + "\n" for e in errors)))
    existed = (component, vhost.name, name) in node.parameters
    node.set_parameter(component, vhost.name, name, body["value"])
    return no_content() if existed else created()


async def delete_parameter(request: web.Request) -> web.Response:
    node = context(request).node
    component = _component(request)
    vhost = policy_vhost_of(request, node)
    name = request.match_info["name"]
    if (component, vhost.name, name) not in node.parameters:
        raise not_found()
    node.clear_parameter(component, vhost.name, name)
    return no_content()


async def list_links(request: web.Request) -> web.Response:
    """RabbitMQ's federation status: monitoring users and administrators, about the vhosts
    they have permissions in."""
    ctx = context(request)
    user = require_monitor(request)
    names = {v for v in ctx.node.vhosts if has_permissions(ctx.node, user, v)}
    if "vhost" in request.match_info:
        names &= {named_vhost(request, ctx.node).name}
    rows = ctx.broker.federation_status(ctx.node_name) if ctx.broker is not None else []
    rows = [r for r in rows if r["vhost"] in names]
    if any("local_channel" in r for r in rows):
        _show_local_channels(ctx, rows)
    return listing(request, rows)


def _show_local_channels(ctx: Context, rows: list[dict[str, Any]]) -> None:
    """A running link's ``local_channel``: its downstream channel as /api/channels shows
    it (RabbitMQ's is a channel of an internal direct connection; leveret's link
    connects over loopback, so its channel is an ordinary one)."""
    channels = {}
    for conn, snapshot in snapshot_connections(ctx.node, ctx.local_addresses()):
        name = connection_name(snapshot)
        for ch in snapshot_channels(conn, snapshot):
            channels[(name, ch.number)] = ch
    for row in rows:
        if "local_channel" not in row:
            continue
        found = channels.get((str(row.get("local_connection")), row["local_channel"]))
        if found is None:  # not accepted yet, or just gone
            del row["local_channel"]
        else:
            row["local_channel"] = channel_json(ctx, found, with_stats=False)


def add_routes(app: web.Application) -> None:
    r = app.router
    for component in federation.COMPONENTS:
        base = f"/api/parameters/{component}"
        r.add_get(base, list_parameters)
        r.add_get(base + "/{vhost}", list_parameters)
        r.add_get(base + "/{vhost}/{name}", get_parameter)
        r.add_put(base + "/{vhost}/{name}", put_parameter)
        r.add_delete(base + "/{vhost}/{name}", delete_parameter)
    r.add_get("/api/federation-links", list_links)
    r.add_get("/api/federation-links/{vhost}", list_links)
