"""Exchanges: /api/exchanges[/{vhost}[/{name}]], declare (PUT) and delete. The default
exchange is ``amq.default`` in URLs and ``""`` in the JSON, as in RabbitMQ.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leveret.broker.exchanges import Exchange
from leveret.broker.rabbit_definitions import jsonable
from leveret.broker.snapshot import ExchangeSnapshot, snapshot_exchange
from leveret.broker.vhost import VirtualHost
from leveret.errors import AMQPError
from leveret.management.auth import current_user, grants, permitted_vhosts, vhost_of
from leveret.management.context import Context, context
from leveret.management.http import (
    ApiError,
    as_bool,
    created,
    exchange_name,
    field_table,
    no_content,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one, stats_disabled
from leveret.management.rates import message_stats
from leveret.management.validate import boolean, text


def exchange_json(ctx: Context, ex: ExchangeSnapshot, with_stats: bool = True
                  ) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": ex.name, "vhost": ex.vhost, "type": ex.type, "durable": ex.durable,
        "auto_delete": ex.auto_delete, "internal": ex.internal,
        "arguments": jsonable(ex.arguments),
    }
    if ex.policy:
        item["policy"] = ex.policy
    if with_stats:
        # as RabbitMQ: publish_in once something was published to it, publish_out once
        # something it took reached a queue; no message_stats before either
        counts = {"publish_in": ex.publish_in, "publish_out": ex.publish_out}
        names = tuple(k for k, v in counts.items() if v)
        if names:
            item["message_stats"] = message_stats(counts, names,
                                                  ctx.sampler.rates(ex.handle))
    return item


def find_exchange(request: web.Request) -> tuple[VirtualHost, Exchange]:
    vhost = vhost_of(request, context(request).node)
    ex = vhost.exchanges.get(exchange_name(request.match_info["name"]))
    if ex is None:
        raise not_found()
    return vhost, ex


async def list_exchanges(request: web.Request) -> web.Response:
    ctx = context(request)
    if "vhost" in request.match_info:
        names = [vhost_of(request, ctx.node).name]
    else:
        names = permitted_vhosts(ctx.node, current_user(request))
    stats = not stats_disabled(request)
    return listing(request, [exchange_json(ctx, snapshot_exchange(ctx.node.vhosts[n], ex),
                                           stats)
                             for n in names
                             for ex in list(ctx.node.vhosts[n].exchanges.values())])


async def get_exchange(request: web.Request) -> web.Response:
    vhost, ex = find_exchange(request)
    item = exchange_json(context(request), snapshot_exchange(vhost, ex),
                         not stats_disabled(request))
    item["incoming"] = []
    item["outgoing"] = []
    return one(request, item)


async def put_exchange(request: web.Request) -> web.Response:
    ctx = context(request)
    if request.match_info["vhost"] not in ctx.node.vhosts:
        raise ApiError(404, "not_found", "vhost_not_found")
    vhost = vhost_of(request, ctx.node)
    body = await read_json(request)
    name = exchange_name(request.match_info["name"])
    existed = name in vhost.exchanges
    try:
        vhost.declare_exchange(name, text(body, "type", "direct"), False,
                               boolean(body, "durable"), boolean(body, "auto_delete"),
                               boolean(body, "internal"), field_table(body.get("arguments")),
                               grants(request, ctx.node, vhost.name))
    except AMQPError as exc:
        if exc.reply_code == 403 and "reserved prefix" in exc.text:
            raise ApiError(401, "not_authorised", "Access refused.") from exc
        raise
    return no_content() if existed else created()


async def delete_exchange(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost, ex = find_exchange(request)
    vhost.delete_exchange(ex.name, as_bool(request.query.get("if-unused", "false")),
                          grants(request, ctx.node, vhost.name))
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/exchanges", list_exchanges)
    r.add_get("/api/exchanges/{vhost}", list_exchanges)
    r.add_get("/api/exchanges/{vhost}/{name}", get_exchange)
    r.add_put("/api/exchanges/{vhost}/{name}", put_exchange)
    r.add_delete("/api/exchanges/{vhost}/{name}", delete_exchange)
