"""Bindings: /api/bindings[/{vhost}], exchange-to-queue (``e/{source}/q/{queue}``) and
exchange-to-exchange (``e/{source}/e/{destination}``) with their ``properties_key``s, and
the per-exchange and per-queue lists. The default exchange's implicit binding to every
queue (routing key = queue name) is listed as RabbitMQ lists it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from aiohttp import web

from leveret.broker.rabbit_definitions import jsonable
from leveret.management.auth import current_user, grants, permitted_vhosts, vhost_of
from leveret.management.binding_keys import location_quote, matches_properties_key, properties_key
from leveret.management.context import context
from leveret.management.http import (
    created,
    exchange_name,
    field_table,
    no_content,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one
from leveret.management.validate import text

KINDS = {"q": "queue", "e": "exchange"}


def binding_json(vhost: str, source: str, kind: str, destination: str, routing_key: str,
                 arguments: dict[str, Any]) -> dict[str, Any]:
    return {"source": source, "vhost": vhost, "destination": destination,
            "destination_type": kind, "routing_key": routing_key,
            "arguments": jsonable(arguments),
            "properties_key": properties_key(routing_key, arguments)}


def vhost_bindings(vhost: Any) -> Iterator[dict[str, Any]]:
    for q in list(vhost.queues.values()):
        yield binding_json(vhost.name, "", "queue", q.name, q.name, {})
    for ex in list(vhost.exchanges.values()):
        for b in list(ex.bindings.values()):
            yield binding_json(vhost.name, ex.name, b.destination.kind, b.destination.name,
                               b.routing_key, b.arguments)


async def list_bindings(request: web.Request) -> web.Response:
    ctx = context(request)
    if "vhost" in request.match_info:
        names = [vhost_of(request, ctx.node).name]
    else:
        names = permitted_vhosts(ctx.node, current_user(request))
    return listing(request, [b for n in names for b in vhost_bindings(ctx.node.vhosts[n])],
                   default_sort=())


def _endpoints(request: web.Request) -> tuple[Any, Any, str, Any]:
    """The vhost, the source exchange, the destination kind and the destination."""
    vhost = vhost_of(request, context(request).node)
    kind = KINDS[request.match_info["kind"]]
    source = vhost.exchanges.get(exchange_name(request.match_info["source"]))
    name = request.match_info["destination"]
    dest = (vhost.queues if kind == "queue" else vhost.exchanges).get(
        exchange_name(name) if kind == "exchange" else name)
    if source is None or dest is None:
        raise not_found()
    return vhost, source, kind, dest


def _between(vhost: Any, source: Any, dest: Any) -> list[dict[str, Any]]:
    found = [binding_json(vhost.name, source.name, b.destination.kind, b.destination.name,
                          b.routing_key, b.arguments)
             for b in list(source.bindings.values()) if b.destination is dest]
    if source.name == "" and dest.kind == "queue":
        found.append(binding_json(vhost.name, "", "queue", dest.name, dest.name, {}))
    return found


async def list_between(request: web.Request) -> web.Response:
    vhost, source, _, dest = _endpoints(request)
    return listing(request, _between(vhost, source, dest), default_sort=())


async def create_binding(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node)
    kind = KINDS[request.match_info["kind"]]
    source = exchange_name(request.match_info["source"])
    destination = request.match_info["destination"]
    body = await read_json(request)
    routing_key = text(body, "routing_key", "")
    arguments = field_table(body.get("arguments"))
    user_grants = grants(request, ctx.node, vhost.name)
    if kind == "queue":
        vhost.bind_queue(destination, source, routing_key, arguments, None, user_grants)
    else:
        vhost.bind_exchange(exchange_name(destination), source, routing_key, arguments,
                            grants=user_grants)
    # RabbitMQ quotes the key once more in the Location header ("a.%23" -> "a.%2523").
    key = location_quote(properties_key(routing_key, arguments))
    return created(f"{quote(destination, safe='')}/{key}")


def _find_binding(request: web.Request) -> tuple[Any, Any, Any]:
    vhost, source, _, dest = _endpoints(request)
    wanted = request.match_info["props"]
    for b in list(source.bindings.values()):
        if b.destination is dest and matches_properties_key(wanted, b.routing_key,
                                                            b.arguments):
            return vhost, source, b
    raise not_found()


async def get_binding(request: web.Request) -> web.Response:
    vhost, source, _, dest = _endpoints(request)
    wanted = request.match_info["props"]
    for item in _between(vhost, source, dest):
        if matches_properties_key(wanted, item["routing_key"], item["arguments"]):
            return one(request, item)
    raise not_found()


async def delete_binding(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost, source, b = _find_binding(request)
    dest = b.destination
    user_grants = grants(request, ctx.node, vhost.name)
    if dest.kind == "queue":
        vhost.unbind_queue(dest.name, source.name, b.routing_key, b.arguments, None,
                           user_grants)
    else:
        vhost.bind_exchange(dest.name, source.name, b.routing_key, b.arguments, unbind=True,
                            grants=user_grants)
    return no_content()


async def exchange_bindings(request: web.Request) -> web.Response:
    vhost = vhost_of(request, context(request).node)
    ex = vhost.exchanges.get(exchange_name(request.match_info["name"]))
    if ex is None:
        raise not_found()
    if request.match_info["direction"] == "source":
        items = [binding_json(vhost.name, ex.name, b.destination.kind, b.destination.name,
                              b.routing_key, b.arguments) for b in list(ex.bindings.values())]
    else:
        items = [binding_json(vhost.name, other.name, "exchange", ex.name, b.routing_key,
                              b.arguments)
                 for other in list(vhost.exchanges.values())
                 for b in list(other.bindings.values()) if b.destination is ex]
    return listing(request, items, default_sort=())


async def queue_bindings(request: web.Request) -> web.Response:
    vhost = vhost_of(request, context(request).node)
    q = vhost.queues.get(request.match_info["name"])
    if q is None:
        raise not_found()
    items = [binding_json(vhost.name, "", "queue", q.name, q.name, {})]
    items += [binding_json(vhost.name, ex.name, "queue", q.name, b.routing_key, b.arguments)
              for ex, b in list(q.bindings)]
    return listing(request, items, default_sort=())


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/bindings", list_bindings)
    r.add_get("/api/bindings/{vhost}", list_bindings)
    between = "/api/bindings/{vhost}/e/{source}/{kind:[qe]}/{destination}"
    r.add_get(between, list_between)
    r.add_post(between, create_binding)
    r.add_get(between + "/{props}", get_binding)
    r.add_delete(between + "/{props}", delete_binding)
    r.add_get("/api/exchanges/{vhost}/{name}/bindings/{direction:source|destination}",
              exchange_bindings)
    r.add_get("/api/queues/{vhost}/{name}/bindings", queue_bindings)
