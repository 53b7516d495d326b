"""Dynamic shovels: the ``shovel`` runtime parameters (/api/parameters/shovel[/{vhost}
[/{name}]]) and their status (/api/shovels[/{vhost}], restart), as RabbitMQ's shovel and
shovel_management plugins serve them.

Parameters need the policymaker (or administrator) tag and permissions in the vhost, as in
RabbitMQ; the status lists the shovels of the vhosts the user may see.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leveret.broker import shovels
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
from leveret.management.context import context
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

COMPONENT = shovels.COMPONENT


def _json(vhost: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"value": value, "vhost": vhost, "component": COMPONENT, "name": name}


def _escape(text: str) -> str:
    """RabbitMQ's management API HTML-escapes the reason of a failed validation."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def list_parameters(request: web.Request) -> web.Response:
    ctx = context(request)
    user = current_user(request)
    if "vhost" in request.match_info:
        names = [policy_vhost_of(request, ctx.node).name]
    else:
        if not is_admin(user) and not POLICY_TAGS & tags_of(user):
            raise not_authorised("User not authorised to access object")
        names = permitted_vhosts(ctx.node, user)
    rows = [_json(vh, name, value) for (component, vh, name), value
            in ctx.node.parameters.items() if component == COMPONENT and vh in names]
    return listing(request, rows)


async def get_parameter(request: web.Request) -> web.Response:
    node = context(request).node
    vhost = policy_vhost_of(request, node)
    name = request.match_info["name"]
    value = node.parameters.get((COMPONENT, vhost.name, name))
    if value is None:
        raise not_found()
    return one(request, _json(vhost.name, name, value))


async def put_parameter(request: web.Request) -> web.Response:
    node = context(request).node
    if request.match_info["vhost"] not in node.vhosts:  # RabbitMQ's answer, not a plain 404
        raise ApiError(404, "not_found", "vhost_not_found")
    vhost = policy_vhost_of(request, node)
    body = await read_json(request)
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    name = request.match_info["name"]
    user = current_user(request)
    errors = shovels.validate(name, body["value"], user.name,
                              lambda v: has_permissions(node, user, v))
    if errors:
        raise bad_request(_escape("Validation failed\n\n" + "".join(e + "\n" for e in errors)))
    existed = (COMPONENT, vhost.name, name) in node.parameters
    node.set_parameter(COMPONENT, vhost.name, name, body["value"])
    return no_content() if existed else created()


async def delete_parameter(request: web.Request) -> web.Response:
    node = context(request).node
    vhost = policy_vhost_of(request, node)
    name = request.match_info["name"]
    if (COMPONENT, vhost.name, name) not in node.parameters:
        raise not_found()
    node.clear_parameter(COMPONENT, vhost.name, name)
    return no_content()


def _shovel_vhosts(request: web.Request) -> set[str]:
    """RabbitMQ's shovel status: monitoring users and administrators, about the vhosts they
    have permissions in (an unknown or other vhost: an empty list, or 404 on restart)."""
    node = context(request).node
    user = require_monitor(request)
    names = {v for v in node.vhosts if has_permissions(node, user, v)}
    if "vhost" in request.match_info:
        names &= {named_vhost(request, node).name}
    return names


async def list_shovels(request: web.Request) -> web.Response:
    ctx = context(request)
    names = _shovel_vhosts(request)
    rows = ctx.broker.shovel_status(ctx.node_name) if ctx.broker is not None else []
    return listing(request, [r for r in rows if r["vhost"] in names])


def _shovel_rows(request: web.Request) -> list[dict[str, Any]]:
    """The status rows of /api/shovels/vhost/{vhost}/{name}'s vhost; 404 unless the named
    shovel is among them (RabbitMQ's resource_exists)."""
    ctx = context(request)
    names = _shovel_vhosts(request)
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    rows = ctx.broker.shovel_status(ctx.node_name) if ctx.broker is not None else []
    rows = [r for r in rows if r["vhost"] == vhost and vhost in names]
    if not any(r["name"] == name for r in rows):
        raise not_found()
    return rows


async def get_shovel(request: web.Request) -> web.Response:
    """RabbitMQ answers with every shovel of the vhost, once the named one exists."""
    return listing(request, _shovel_rows(request))


async def delete_shovel(request: web.Request) -> web.Response:
    """Deletes the shovel's parameter (RabbitMQ's rabbit_shovel_util:delete_shovel; the
    status's permissions, monitoring or administrator, are enough, as in RabbitMQ)."""
    _shovel_rows(request)
    context(request).node.clear_parameter(COMPONENT, request.match_info["vhost"],
                                          request.match_info["name"])
    return no_content()


async def restart_shovel(request: web.Request) -> web.Response:
    ctx = context(request)
    _shovel_rows(request)
    if ctx.broker is None or not ctx.broker.restart_shovel(request.match_info["vhost"],
                                                           request.match_info["name"]):
        raise not_found()
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/parameters/shovel", list_parameters)
    r.add_get("/api/parameters/shovel/{vhost}", list_parameters)
    r.add_get("/api/parameters/shovel/{vhost}/{name}", get_parameter)
    r.add_put("/api/parameters/shovel/{vhost}/{name}", put_parameter)
    r.add_delete("/api/parameters/shovel/{vhost}/{name}", delete_parameter)
    r.add_get("/api/shovels", list_shovels)
    r.add_get("/api/shovels/{vhost}", list_shovels)
    r.add_get("/api/shovels/vhost/{vhost}/{name}", get_shovel)
    r.add_delete("/api/shovels/vhost/{vhost}/{name}", delete_shovel)
    r.add_delete("/api/shovels/vhost/{vhost}/{name}/restart", restart_shovel)
