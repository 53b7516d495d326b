"""``leveret status`` and ``leveret close connection``."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from leveret.cli.admin.api import ApiError, ManagementAPI, Resource, segment
from leveret.cli.admin.output import done, human_bytes, human_duration, lookup, print_json


def close_connection(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    headers = {"X-Reason": args.reason} if args.reason else None
    api.call("DELETE", f"/connections/{segment(args.name)}", headers=headers,
             about=Resource("connection", args.name))
    return done(args, out, f"closed connection '{args.name}'")


def status(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    overview = api.get("/overview") or {}
    node: dict[str, Any] = {}
    if overview.get("node"):
        try:
            node = api.get(f"/nodes/{segment(overview['node'])}") or {}
        except ApiError:  # a node view is optional; the overview says enough
            node = {}
    if args.json:
        print_json({"overview": overview, "node": node}, out)
        return 0
    out.write(format_status(overview, node) + "\n")
    return 0


def format_status(overview: dict[str, Any], node: dict[str, Any]) -> str:
    totals = overview.get("object_totals") or {}
    queued = overview.get("queue_totals") or {}
    stats = overview.get("message_stats") or {}
    product = overview.get("product_name") or "RabbitMQ"
    version = overview.get("product_version") or overview.get("rabbitmq_version") or "?"
    lines = [("broker", f"{product} {version}"),
             ("node", str(overview.get("node", "?"))),
             ("cluster", str(overview.get("cluster_name", "?")))]
    if "uptime" in node:
        lines.append(("uptime", human_duration(node.get("uptime"))))
    lines += [(k, str(totals.get(k, 0)))
              for k in ("connections", "channels", "queues", "consumers", "exchanges")]
    lines.append(("messages", f"{queued.get('messages', 0)} ({queued.get('messages_ready', 0)} "
                              f"ready, {queued.get('messages_unacknowledged', 0)} unacked)"))
    rates = [f"{name} {lookup(stats, key + '_details.rate') or 0:g}/s"
             for name, key in (("publish", "publish"), ("deliver", "deliver_get"),
                               ("ack", "ack")) if key in stats]
    if rates:
        lines.append(("rates", ", ".join(rates)))
    if "mem_used" in node:
        lines.append(("memory", f"{human_bytes(node.get('mem_used'))} used, high watermark "
                                f"{human_bytes(node.get('mem_limit'))}"))
    if "disk_free" in node:
        lines.append(("disk free", f"{human_bytes(node.get('disk_free'))}, low watermark "
                                   f"{human_bytes(node.get('disk_free_limit'))}"))
    alarms = [name for name, key in (("memory", "mem_alarm"), ("disk", "disk_free_alarm"))
              if node.get(key)]
    if node:
        lines.append(("alarms", ", ".join(alarms) or "none"))
    listeners = [f"{item.get('protocol')} {item.get('ip_address')}:{item.get('port')}"
                 for item in overview.get("listeners") or []]
    if listeners:
        lines.append(("listeners", ", ".join(listeners)))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)
