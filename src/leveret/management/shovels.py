"""Dynamic shovels: the ``shovel`` runtime parameters (/api/parameters/shovel[/{vhost}
[/{name}]]) and their status (/api/shovels[/{vhost}], restart), as RabbitMQ's shovel and
shovel_management plugins serve them.

The parameters are served as every component's are (management/parameters.py); a shovel's
value may name only vhosts of this broker the user has permissions in. The status lists the
shovels of the vhosts the user may see.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leveret.broker import shovels
from leveret.management.auth import current_user, has_permissions
from leveret.management.context import context
from leveret.management.http import no_content, not_found
from leveret.management.listing import listing
from leveret.management.parameters import add_parameter_routes, status_vhosts

COMPONENT = shovels.COMPONENT


def _validate(request: web.Request, name: str, value: Any) -> list[str]:
    """A shovel's value, checked as RabbitMQ does: a URI naming this broker needs a vhost
    the acting user has permissions in."""
    node = context(request).node
    user = current_user(request)
    return shovels.validate(name, value, user.name, lambda v: has_permissions(node, user, v))


async def list_shovels(request: web.Request) -> web.Response:
    ctx = context(request)
    names = status_vhosts(request)
    rows = ctx.broker.shovel_status(ctx.node_name) if ctx.broker is not None else []
    return listing(request, [r for r in rows if r["vhost"] in names])


def _shovel_rows(request: web.Request) -> list[dict[str, Any]]:
    """The status rows of /api/shovels/vhost/{vhost}/{name}'s vhost; 404 unless the named
    shovel is among them (RabbitMQ's resource_exists)."""
    ctx = context(request)
    names = status_vhosts(request)
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
    add_parameter_routes(app, COMPONENT, _validate)
    r = app.router
    r.add_get("/api/shovels", list_shovels)
    r.add_get("/api/shovels/{vhost}", list_shovels)
    r.add_get("/api/shovels/vhost/{vhost}/{name}", get_shovel)
    r.add_delete("/api/shovels/vhost/{vhost}/{name}", delete_shovel)
    r.add_delete("/api/shovels/vhost/{vhost}/{name}/restart", restart_shovel)
