"""Federation: the ``federation-upstream`` and ``federation-upstream-set`` runtime
parameters (/api/parameters/{component}[/{vhost}[/{name}]], management/parameters.py), as
RabbitMQ's federation plugin serves them, and /api/federation-links[/{vhost}].
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from leveret.broker import federation
from leveret.broker.snapshot import snapshot_channels, snapshot_connections
from leveret.management.connections import channel_json, connection_name
from leveret.management.context import Context, context
from leveret.management.listing import listing
from leveret.management.parameters import Validate, add_parameter_routes, status_vhosts


def _validator(component: str) -> Validate:
    def validate(_request: web.Request, name: str, value: Any) -> list[str]:
        return federation.validate(component, name, value)
    return validate


async def list_links(request: web.Request) -> web.Response:
    """RabbitMQ's federation status: monitoring users and administrators, about the vhosts
    they have permissions in."""
    ctx = context(request)
    names = status_vhosts(request)
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
    for component in federation.COMPONENTS:
        add_parameter_routes(app, component, _validator(component))
    r = app.router
    r.add_get("/api/federation-links", list_links)
    r.add_get("/api/federation-links/{vhost}", list_links)
