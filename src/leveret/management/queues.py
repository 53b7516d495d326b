"""Queues: /api/queues[/{vhost}[/{name}]], declare (PUT), delete, purge (DELETE .../contents)
and actions. Message counts come from the queue itself; rates from the sampler.

A stream queue shows the keys RabbitMQ 3.10 shows for one (``messages`` and
``messages_ready`` are the retained entries, ``messages_unacknowledged`` is 0; no paging,
consumer utilisation or single-active-consumer keys; ``members``, ``online``,
``readers``), the byte counts, and leveret's ``stream`` object: first, last and next
offset, segments, bytes, the retention in force and each consumer's offset and lag.
Purging a stream or getting from it is a 400 with RabbitMQ's text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from leveret.broker.queues import Queue
from leveret.broker.rabbit_definitions import jsonable
from leveret.broker.snapshot import (
    QueueSnapshot,
    StreamSnapshot,
    queue_consumers,
    snapshot_queue,
    snapshot_queues,
    unacked_bytes,
)
from leveret.broker.stats import DELIVERING
from leveret.management.auth import current_user, grants, permitted_vhosts, require_admin, vhost_of
from leveret.management.connections import channel_name, connection_name, consumer_json
from leveret.management.context import Context, context
from leveret.management.http import (
    ApiError,
    as_bool,
    bad_request,
    created,
    field_table,
    no_content,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one, stats_disabled
from leveret.management.rates import details, message_stats, queue_depths
from leveret.management.stream_connections import amqp_consumer_json, stream_connection_name
from leveret.management.validate import boolean

QUEUE_DELIVERY = (*DELIVERING, "deliver_get")


def queue_stats(counters: Mapping[str, int], rates: dict[str, float]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    if counters["publish"]:
        stats.update(message_stats(counters, ("publish",), rates))
    if any(counters[k] for k in QUEUE_DELIVERY):
        stats.update(message_stats(counters, QUEUE_DELIVERY, rates))
    return stats


def stream_json(ctx: Context, stream: StreamSnapshot) -> dict[str, Any]:
    """leveret's view of a stream's log (not in RabbitMQ's API)."""
    return {
        "first_offset": stream.first_offset, "last_offset": stream.last_offset,
        "next_offset": stream.next_offset, "segments": stream.segments,
        "bytes": stream.bytes,
        "retention": {"max_length_bytes": stream.max_length_bytes,
                      "max_age_seconds": stream.max_age,
                      "max_segment_size_bytes": stream.max_segment_size_bytes},
        "consumers": [{"consumer_tag": c.tag, "channel": channel_name(
                           connection_name(c.connection), c.channel_number),
                       "connection_name": connection_name(c.connection),
                       "next_offset": c.stream.next_offset, "lag": c.stream.lag}
                      for c in stream.readers if c.stream is not None] + [
                      {"consumer_tag": f"stream.subid-{s.subscription_id}", "channel": "",
                       "connection_name": stream_connection_name(s.connection),
                       "next_offset": s.next_offset, "lag": s.offset_lag}
                      for s in stream.subscriptions],
    }


def _stream_queue_json(ctx: Context, q: QueueSnapshot, stream: StreamSnapshot
                       ) -> dict[str, Any]:
    depths = queue_depths(q)
    return {
        "name": q.name, "vhost": q.vhost, "node": ctx.node_name,
        "type": q.type, "state": "running",
        "durable": q.durable, "auto_delete": q.auto_delete, "exclusive": q.exclusive,
        "arguments": jsonable(q.arguments),
        "policy": q.policy, "operator_policy": None,
        "effective_policy_definition": jsonable(q.policy_definition),
        # its AMQP 0-9-1 consumers and its stream-protocol subscriptions, as RabbitMQ's
        "consumers": q.consumers,
        # one node: the stream's only member; readers counts its consumers, as osiris's
        "members": [ctx.node_name], "online": [ctx.node_name],
        "readers": {ctx.node_name: q.consumers} if q.consumers else {},
        **depths,
        "message_bytes": q.message_bytes_ready,
        "message_bytes_ready": q.message_bytes_ready,
        "message_bytes_unacknowledged": 0,
        "stream": stream_json(ctx, stream),
    }


def queue_json(ctx: Context, q: QueueSnapshot, with_stats: bool = True) -> dict[str, Any]:
    if q.stream is not None:
        stream_item = _stream_queue_json(ctx, q, q.stream)
        if with_stats:
            _add_stats(ctx, q, stream_item)
        return stream_item
    depths = queue_depths(q)
    ready_bytes = q.message_bytes_ready
    out_bytes = q.message_bytes_unacknowledged
    paged = q.messages_paged_out
    paged_bytes = q.message_bytes_paged_out
    item: dict[str, Any] = {
        "name": q.name, "vhost": q.vhost, "node": ctx.node_name,
        "type": q.type, "state": "running",
        "durable": q.durable, "auto_delete": q.auto_delete, "exclusive": q.exclusive,
        "arguments": jsonable(q.arguments),
        "policy": q.policy, "operator_policy": None,
        "effective_policy_definition": jsonable(q.policy_definition),
        "consumers": q.consumers,
        "consumer_capacity": 1.0 if q.consumers else 0,
        "consumer_utilisation": 1.0 if q.consumers else 0,
        "exclusive_consumer_tag": q.exclusive_consumer_tag,
        "single_active_consumer_tag": q.single_active_consumer_tag,
        "head_message_timestamp": None,
        "recoverable_slaves": None,
        **depths,
        # paged out: ready messages whose bodies wait in the queue's log (broker/queues/paging.py)
        "messages_paged_out": paged,
        "message_bytes_paged_out": paged_bytes,
        "messages_ram": depths["messages"] - paged,
        "messages_ready_ram": depths["messages_ready"] - paged,
        "messages_unacknowledged_ram": depths["messages_unacknowledged"],
        "message_bytes": ready_bytes + out_bytes,
        "message_bytes_ready": ready_bytes,
        "message_bytes_unacknowledged": out_bytes,
        "message_bytes_ram": ready_bytes + out_bytes - paged_bytes,
    }
    if q.owner is not None:
        item["owner_pid_details"] = {"name": connection_name(q.owner),
                                     "peer_host": q.owner.peer_host,
                                     "peer_port": q.owner.peer_port}
    if with_stats:
        _add_stats(ctx, q, item)
    return item


def _add_stats(ctx: Context, q: QueueSnapshot, item: dict[str, Any]) -> None:
    rates = ctx.sampler.rates(q.handle)
    for key in ("messages", "messages_ready", "messages_unacknowledged"):
        item[f"{key}_details"] = details(rates, key)
    stats = queue_stats(q.counters, rates)
    if stats:
        item["message_stats"] = stats


def find_queue(request: web.Request) -> Queue:
    vhost = vhost_of(request, context(request).node)
    q = vhost.queues.get(request.match_info["name"])
    if q is None:
        raise not_found()
    return q


async def list_queues(request: web.Request) -> web.Response:
    ctx = context(request)
    if "vhost" in request.match_info:
        names = [vhost_of(request, ctx.node).name]
    else:
        names = permitted_vhosts(ctx.node, current_user(request))
    stats = not stats_disabled(request)
    snapshots = snapshot_queues(ctx.node, names, ctx.local_addresses())
    return listing(request, [queue_json(ctx, q, stats) for q in snapshots])


async def get_queue(request: web.Request) -> web.Response:
    ctx = context(request)
    q = find_queue(request)
    local = ctx.local_addresses()
    snapshot = snapshot_queue(q, unacked_bytes(ctx.node).get(q, 0), local)
    item = queue_json(ctx, snapshot, not stats_disabled(request))
    item["consumer_details"] = [consumer_json(ctx, c) for c in queue_consumers(q, local)]
    if snapshot.stream is not None:  # (RabbitMQ lists a stream's subscriptions too)
        item["consumer_details"] += [amqp_consumer_json(ctx, s)
                                     for s in snapshot.stream.subscriptions]
    item["incoming"] = []
    item["deliveries"] = []
    return one(request, item)


async def put_queue(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = ctx.node.vhosts.get(request.match_info["vhost"])
    if vhost is None:
        raise ApiError(404, "not_found", "vhost_not_found")
    vhost = vhost_of(request, ctx.node)
    body = await read_json(request)
    name = request.match_info["name"]
    existed = name in vhost.queues
    arguments = field_table(body.get("arguments"))
    if "x-queue-type" not in arguments and vhost.default_queue_type:
        arguments["x-queue-type"] = vhost.default_queue_type
    vhost.declare_queue(name, False, boolean(body, "durable"), False,
                        boolean(body, "auto_delete"), arguments, None,
                        grants(request, ctx.node, vhost.name))
    return no_content() if existed else created()


async def delete_queue(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node)
    q = find_queue(request)
    query = request.query
    vhost.delete_queue(q.name, as_bool(query.get("if-unused", "false")),
                       as_bool(query.get("if-empty", "false")), q.exclusive_owner,
                       grants(request, ctx.node, vhost.name))
    return no_content()


async def purge_queue(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost = vhost_of(request, ctx.node)
    q = find_queue(request)
    vhost.purge_queue(q.name, q.exclusive_owner, grants(request, ctx.node, vhost.name))
    return no_content()


async def queue_actions(request: web.Request) -> web.Response:
    """``sync`` and ``cancel_sync`` concern mirrored classic queues, which leveret (one
    node) does not have: accepted and nothing to do, as RabbitMQ does for an unmirrored
    queue. Administrators only, as in RabbitMQ."""
    require_admin(request)
    find_queue(request)
    body = await read_json(request)
    if body.get("action") not in ("sync", "cancel_sync"):
        raise bad_request("unknown action")
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/queues", list_queues)
    r.add_get("/api/queues/{vhost}", list_queues)
    r.add_get("/api/queues/{vhost}/{name}", get_queue)
    r.add_put("/api/queues/{vhost}/{name}", put_queue)
    r.add_delete("/api/queues/{vhost}/{name}", delete_queue)
    r.add_delete("/api/queues/{vhost}/{name}/contents", purge_queue)
    r.add_post("/api/queues/{vhost}/{name}/actions", queue_actions)
