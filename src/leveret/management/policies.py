"""Policies: /api/policies[/{vhost}[/{name}]]. Reading needs access to the vhost; changing
them the policymaker (or administrator) tag, as in RabbitMQ.
"""

from __future__ import annotations

from aiohttp import web

from leveret.broker.rabbit_definitions import (
    InvalidDefinition,
    check_policy_definition,
    policy_json,
)
from leveret.management.auth import current_user, permitted_vhosts, policy_vhost_of, vhost_of
from leveret.management.context import context
from leveret.management.http import (
    bad_request,
    created,
    missing_keys,
    no_content,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one
from leveret.management.validate import integer, text


async def list_policies(request: web.Request) -> web.Response:
    ctx = context(request)
    if "vhost" in request.match_info:
        names = [vhost_of(request, ctx.node).name]
    else:
        names = permitted_vhosts(ctx.node, current_user(request))
    return listing(request, [policy_json(n, p) for n in names
                             for p in ctx.node.vhosts[n].policies.values()])


async def get_policy(request: web.Request) -> web.Response:
    vhost = policy_vhost_of(request, context(request).node)
    p = vhost.policies.get(request.match_info["name"])
    if p is None:
        raise not_found()
    return one(request, policy_json(vhost.name, p))


async def put_policy(request: web.Request) -> web.Response:
    vhost = policy_vhost_of(request, context(request).node)
    body = await read_json(request)
    missing_keys(body, "pattern", "definition")
    name = request.match_info["name"]
    existed = name in vhost.policies
    priority = integer(body, "priority", 0)
    pattern, apply_to = text(body, "pattern"), text(body, "apply-to", "all")
    try:
        definition = check_policy_definition(body["definition"])
    except InvalidDefinition as exc:
        raise bad_request(exc.reason) from None
    vhost.set_policy(name, pattern, definition, priority, apply_to)
    return no_content() if existed else created()


async def delete_policy(request: web.Request) -> web.Response:
    vhost = policy_vhost_of(request, context(request).node)
    name = request.match_info["name"]
    if name not in vhost.policies:
        raise not_found()
    vhost.clear_policy(name)
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/policies", list_policies)
    r.add_get("/api/policies/{vhost}", list_policies)
    r.add_get("/api/policies/{vhost}/{name}", get_policy)
    r.add_put("/api/policies/{vhost}/{name}", put_policy)
    r.add_delete("/api/policies/{vhost}/{name}", delete_policy)
