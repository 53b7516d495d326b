"""``leveret list ...``: what each listing asks the API for, and its default columns."""

from __future__ import annotations

import argparse
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from leveret.cli.admin.api import EXIT_USAGE, AdminError, ApiError, ManagementAPI, Resource, segment
from leveret.cli.admin.options import columns_option, vhost_of
from leveret.cli.admin.output import cell, format_table, lookup, print_json, select


@dataclass(frozen=True)
class Listing:
    """How to list one kind of object: where, with which default columns."""

    columns: tuple[str, ...]
    node_path: str                      # every vhost (or the whole node)
    vhost_path: str | None = None       # one vhost, "{vhost}" replaced
    help: str = ""
    by_vhost_field: bool = False        # node-wide, but rows say their vhost: --vhost filters
    queue_type: str | None = None       # only the queues of this type
    # adds computed columns to the rows (given the API, to read more when needed)
    derive: Callable[[ManagementAPI, list[Any]], list[Any]] | None = None


def _shovel_end(row: dict[str, Any], side: str) -> str | None:
    """A shovel's source or destination in one cell: ``queue:q@URI``,
    ``exchange:x[key]@URI`` (the URI without its credentials, as the API shows it)."""
    uri = row.get(f"{side}_uri")
    if isinstance(uri, list):
        uri = ",".join(str(u) for u in uri)
    queue, exchange = row.get(f"{side}_queue"), row.get(f"{side}_exchange")
    key = row.get(f"{side}_exchange_key")
    if queue is not None:
        what = f"queue:{queue}"
    elif exchange is not None or key is not None:
        what = f"exchange:{exchange if exchange is not None else '(its own)'}"
        if key is not None:
            what += f"[{key}]"
    else:
        what = "(its own exchange and key)"
    return what if uri is None else f"{what}@{uri}"


def _shovel_rows(api: ManagementAPI, rows: list[Any]) -> list[Any]:
    """/api/shovels tells a shovel's ends only while it runs: the others' are read from
    their parameters (when the user may read them: policymakers and administrators)."""
    values: dict[tuple[str, str], dict[str, Any]] = {}
    if any(row.get("state") != "running" for row in rows):
        try:
            for item in api.get("/parameters/shovel") or []:
                values[item.get("vhost"), item.get("name")] = item.get("value") or {}
        except ApiError:
            pass
    derived = []
    for row in rows:
        ends = row
        if row.get("state") != "running":
            value = values.get((row.get("vhost"), row.get("name")), {})
            ends = {k.replace("-", "_"): strip_credentials(v) if k.endswith("-uri") else v
                    for k, v in value.items()}
        known = "src_uri" in ends
        derived.append({**row, "src": _shovel_end(ends, "src") if known else None,
                        "dest": _shovel_end(ends, "dest") if known else None})
    return derived


def strip_credentials(uri: Any) -> Any:
    """A URI (or a list of them) without user and password, as /api/shovels shows it."""
    if isinstance(uri, list):
        return [strip_credentials(u) for u in uri]
    if not isinstance(uri, str):
        return uri
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


LISTINGS: dict[str, Listing] = {
    "queues": Listing(("name", "type", "durable", "messages", "messages_ready",
                       "messages_unacknowledged", "consumers"),
                      "/queues", "/queues/{vhost}", "queues and their depth"),
    # (the stream.* columns are leveret's: empty against RabbitMQ)
    "streams": Listing(("name", "messages", "stream.first_offset", "stream.last_offset",
                        "stream.next_offset", "stream.segments", "stream.bytes", "consumers"),
                       "/queues", "/queues/{vhost}",
                       "stream queues: retained messages, offsets, segments, bytes",
                       queue_type="stream"),
    "exchanges": Listing(("name", "type", "durable", "auto_delete", "internal"),
                         "/exchanges", "/exchanges/{vhost}", "exchanges"),
    "bindings": Listing(("source", "destination", "destination_type", "routing_key",
                         "arguments"),
                        "/bindings", "/bindings/{vhost}", "bindings"),
    "consumers": Listing(("queue.name", "consumer_tag", "channel_details.name", "ack_required",
                          "prefetch_count", "exclusive", "active"),
                         "/consumers", "/consumers/{vhost}", "consumers of queues"),
    "policies": Listing(("name", "pattern", "apply-to", "priority", "definition"),
                        "/policies", "/policies/{vhost}", "policies"),
    "permissions": Listing(("user", "configure", "write", "read"),
                           "/permissions", "/vhosts/{vhost}/permissions",
                           "users' permissions in a vhost"),
    "connections": Listing(("name", "user", "vhost", "state", "channels"), "/connections",
                           help="client connections (all vhosts, or --vhost's)",
                           by_vhost_field=True),
    "channels": Listing(("name", "user", "vhost", "consumer_count", "messages_unacknowledged",
                         "prefetch_count"), "/channels",
                        help="channels (all vhosts, or --vhost's)", by_vhost_field=True),
    "users": Listing(("name", "tags"), "/users", help="users"),
    "shovels": Listing(("name", "vhost", "state", "src", "dest", "reason"), "/shovels",
                       help="dynamic shovels: state, why one is terminated, where each moves "
                            "messages from and to (all vhosts, or --vhost's)",
                       by_vhost_field=True, derive=_shovel_rows),
    "vhosts": Listing(("name", "description", "tags", "messages"), "/vhosts",
                      help="virtual hosts"),
}


def list_command(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    listing: Listing = args.listing
    every_vhost = listing.vhost_path is None or args.all_vhosts
    if listing.vhost_path is not None and args.all_vhosts and args.vhost is not None:
        raise AdminError("give either --vhost or --all-vhosts", EXIT_USAGE)
    vhost = vhost_of(args)
    if getattr(args, "of_user", None):
        path = f"/users/{segment(args.of_user)}/permissions"
        about = Resource("user", args.of_user)
        every_vhost = True
    elif every_vhost:
        path, about = listing.node_path, None
    else:
        assert listing.vhost_path is not None
        path = listing.vhost_path.format(vhost=segment(vhost))
        about = Resource("vhost", vhost)
    rows = api.get(path, about=about) or []
    if listing.by_vhost_field and args.vhost is not None:
        rows = [row for row in rows if row.get("vhost") == args.vhost]
    if listing.queue_type is not None:
        rows = [row for row in rows if row.get("type") == listing.queue_type]
    if listing.derive is not None:
        rows = listing.derive(api, rows)
    if args.sort:
        rows.sort(key=lambda row: _sort_key(lookup(row, args.sort)),
                  reverse=args.sort_reverse)
    columns = columns_option(args.columns) or list(listing.columns)
    if not args.columns and every_vhost and listing.vhost_path is not None:
        columns.insert(0, "vhost")
    if args.json:
        print_json(select(rows, columns) if args.columns else rows, out)
    else:  # the header alone when there is nothing: scripts can still read it
        out.write(format_table(rows, columns) + "\n")
    return 0


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, cell(value))
