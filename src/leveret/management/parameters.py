"""Runtime parameters of a plugin's component (/api/parameters/{component}[/{vhost}[/{name}]]),
as RabbitMQ serves them for shovels and federation: reading or changing one needs the
policymaker (or administrator) tag and permissions in its vhost; listing all of them, the
tag, and the list holds the vhosts the user has permissions in.

``add_parameter_routes`` adds the five routes of one component; what differs between
components is only how a value is checked (``Validate``). Also here: the vhosts whose
plugin status (/api/shovels, /api/federation-links) a user may read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

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

# (request, name, value) -> the reasons the value is refused (empty: accepted)
Validate = Callable[[web.Request, str, Any], list[str]]


def parameter_json(component: str, vhost: str, name: str,
                   value: dict[str, Any]) -> dict[str, Any]:
    return {"value": value, "vhost": vhost, "component": component, "name": name}


def escape(text: str) -> str:
    """RabbitMQ's management API HTML-escapes the reason of a failed validation."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def add_parameter_routes(app: web.Application, component: str, validate: Validate) -> None:
    async def list_parameters(request: web.Request) -> web.Response:
        ctx = context(request)
        user = current_user(request)
        if "vhost" in request.match_info:
            names = [policy_vhost_of(request, ctx.node).name]
        else:
            if not is_admin(user) and not POLICY_TAGS & tags_of(user):
                raise not_authorised("User not authorised to access object")
            names = permitted_vhosts(ctx.node, user)
        rows = [parameter_json(component, vh, name, value)
                for (c, vh, name), value in ctx.node.parameters.items()
                if c == component and vh in names]
        return listing(request, rows)

    async def get_parameter(request: web.Request) -> web.Response:
        node = context(request).node
        vhost = policy_vhost_of(request, node)
        name = request.match_info["name"]
        value = node.parameters.get((component, vhost.name, name))
        if value is None:
            raise not_found()
        return one(request, parameter_json(component, vhost.name, name, value))

    async def put_parameter(request: web.Request) -> web.Response:
        node = context(request).node
        if request.match_info["vhost"] not in node.vhosts:  # RabbitMQ's answer, not a 404
            raise ApiError(404, "not_found", "vhost_not_found")
        vhost = policy_vhost_of(request, node)
        body = await read_json(request)
        if "value" not in body:
            raise bad_request("[{key_missing,value}]")
        name = request.match_info["name"]
        errors = validate(request, name, body["value"])
        if errors:
            raise bad_request(escape("Validation failed\n\n" + "".join(e + "\n" for e in errors)))
        existed = (component, vhost.name, name) in node.parameters
        node.set_parameter(component, vhost.name, name, body["value"])
        return no_content() if existed else created()

    async def delete_parameter(request: web.Request) -> web.Response:
        node = context(request).node
        vhost = policy_vhost_of(request, node)
        name = request.match_info["name"]
        if (component, vhost.name, name) not in node.parameters:
            raise not_found()
        node.clear_parameter(component, vhost.name, name)
        return no_content()

    r = app.router
    base = f"/api/parameters/{component}"
    r.add_get(base, list_parameters)
    r.add_get(base + "/{vhost}", list_parameters)
    r.add_get(base + "/{vhost}/{name}", get_parameter)
    r.add_put(base + "/{vhost}/{name}", put_parameter)
    r.add_delete(base + "/{vhost}/{name}", delete_parameter)


def status_vhosts(request: web.Request) -> set[str]:
    """Whose plugin status (shovels, federation links) the user may read: monitoring users
    and administrators, about the vhosts they have permissions in; with a vhost in the
    path, that one only (an unknown one: 404)."""
    node = context(request).node
    user = require_monitor(request)
    names = {v for v in node.vhosts if has_permissions(node, user, v)}
    if "vhost" in request.match_info:
        names &= {named_vhost(request, node).name}
    return names
