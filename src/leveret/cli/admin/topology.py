"""``leveret declare|delete|purge|show`` for queues, exchanges and bindings."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from leveret.cli.admin.api import AdminError, ApiError, ManagementAPI, Resource, segment
from leveret.cli.admin.options import json_object, vhost_of
from leveret.cli.admin.output import (
    cell,
    done,
    format_table,
    human_bytes,
    human_duration,
    print_json,
)


def declare_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    arguments = json_object(args.arguments, "--arguments")
    if args.type:
        arguments["x-queue-type"] = args.type
    for option, key in (("max_age", "x-max-age"), ("max_length_bytes", "x-max-length-bytes"),
                        ("max_segment_size_bytes", "x-stream-max-segment-size-bytes")):
        value = getattr(args, option)
        if value is not None:
            arguments[key] = value
    durable = args.durable
    if durable is None:  # quorum and stream queues are always durable
        durable = arguments.get("x-queue-type") in ("quorum", "stream")
    body = {"durable": durable, "auto_delete": args.auto_delete, "arguments": arguments}
    api.call("PUT", f"/queues/{segment(vhost)}/{segment(args.name)}", body,
             about=Resource("vhost", vhost))
    return done(args, out, f"declared queue '{args.name}' in vhost '{vhost}'")


def show_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    item = api.get(f"/queues/{segment(vhost)}/{segment(args.name)}",
                   about=Resource("queue", args.name, vhost))
    if args.json:
        print_json(item, out)
    else:
        out.write(format_queue(item) + "\n")
    return 0


def _exact_bytes(n: int | None) -> str:
    return "none" if n is None else f"{n} ({human_bytes(n)})"


def format_queue(item: dict[str, Any]) -> str:
    """A queue as ``key: value`` lines; a stream's log and readers after them."""
    lines: list[tuple[str, str]] = [
        (key, cell(item.get(key))) for key in (
            "name", "vhost", "type", "state", "durable", "auto_delete", "exclusive",
            "arguments", "policy", "effective_policy_definition", "messages",
            "messages_ready", "messages_unacknowledged", "consumers")]
    lines.append(("message_bytes", human_bytes(item.get("message_bytes"))))
    stream = item.get("stream")
    if isinstance(stream, dict):
        retention = stream.get("retention") or {}
        age = retention.get("max_age_seconds")
        lines += [
            ("first_offset", cell(stream.get("first_offset"))),
            ("last_offset", cell(stream.get("last_offset")) or "(empty)"),
            ("next_offset", cell(stream.get("next_offset"))),
            ("segments", cell(stream.get("segments"))),
            ("bytes", _exact_bytes(stream.get("bytes"))),
            ("max_length_bytes", _exact_bytes(retention.get("max_length_bytes"))),
            ("max_age", human_duration(age * 1000) if age is not None else "none"),
            ("max_segment_size_bytes",
             _exact_bytes(retention.get("max_segment_size_bytes"))),
        ]
    width = max(len(key) for key, _ in lines)
    text = "\n".join(f"{key.ljust(width)}  {value}".rstrip() for key, value in lines)
    if isinstance(stream, dict):
        readers = stream.get("consumers") or []
        text += "\n\nstream consumers:\n" + format_table(
            readers, ("consumer_tag", "channel", "next_offset", "lag"))
    return text


def declare_exchange(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    body = {"type": args.type, "durable": args.durable, "auto_delete": args.auto_delete,
            "internal": args.internal, "arguments": json_object(args.arguments, "--arguments")}
    api.call("PUT", f"/exchanges/{segment(vhost)}/{segment(args.name)}", body,
             about=Resource("vhost", vhost))
    return done(args, out, f"declared {args.type} exchange '{args.name}' in vhost '{vhost}'")


def _binding_path(vhost: str, source: str, destination: str, destination_type: str) -> str:
    kind = "q" if destination_type == "queue" else "e"
    return f"/bindings/{segment(vhost)}/e/{segment(source)}/{kind}/{segment(destination)}"


def _binding_words(args: argparse.Namespace) -> str:
    return (f"exchange '{args.source}' to {args.destination_type} '{args.destination}' "
            f"with routing key '{args.routing_key}'")


def declare_binding(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    body = {"routing_key": args.routing_key,
            "arguments": json_object(args.arguments, "--arguments")}
    path = _binding_path(vhost, args.source, args.destination, args.destination_type)
    try:
        api.call("POST", path, body)
    except ApiError as exc:
        if exc.code != 404:
            raise
        raise ApiError(404, exc.reason, _missing_endpoint(api, vhost, args)) from None
    return done(args, out, f"bound {_binding_words(args)} in vhost '{vhost}'")


def _missing_endpoint(api: ManagementAPI, vhost: str, args: argparse.Namespace) -> str:
    """Which end of a binding is missing (or the vhost)."""
    ends = [("exchanges", "exchange", args.source),
            ("queues" if args.destination_type == "queue" else "exchanges",
             args.destination_type, args.destination)]
    for collection, kind, name in ends:
        about = Resource(kind, name, vhost)
        try:
            api.get(f"/{collection}/{segment(vhost)}/{segment(name or 'amq.default')}", about=about)
        except ApiError as exc:
            if exc.code == 404:
                return str(exc)
            raise
    return f"binding from {_binding_words(args)} not found in vhost '{vhost}'"


def delete_binding(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    path = _binding_path(vhost, args.source, args.destination, args.destination_type)
    try:
        bindings = api.get(path) or []
    except ApiError as exc:
        if exc.code != 404:
            raise
        raise ApiError(404, exc.reason, _missing_endpoint(api, vhost, args)) from None
    wanted = None if args.arguments is None else json_object(args.arguments, "--arguments")
    matching = [b for b in bindings if b.get("routing_key") == args.routing_key
                and (wanted is None or b.get("arguments", {}) == wanted)]
    if not matching:
        raise AdminError(f"binding from {_binding_words(args)} not found in vhost '{vhost}'")
    if len(matching) > 1:
        raise AdminError(f"{len(matching)} bindings from {_binding_words(args)} differ only "
                         "in their arguments: say which with --arguments JSON")
    key = matching[0].get("properties_key") or "~"
    api.call("DELETE", f"{path}/{segment(key)}",
             about=Resource("binding", f"{args.source}->{args.destination}", vhost))
    return done(args, out, f"deleted the binding from {_binding_words(args)} in vhost "
                            f"'{vhost}'")


def delete_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    query = {k: "true" for k, on in (("if-unused", args.if_unused),
                                     ("if-empty", args.if_empty)) if on}
    api.call("DELETE", f"/queues/{segment(vhost)}/{segment(args.name)}", query=query or None,
             about=Resource("queue", args.name, vhost))
    return done(args, out, f"deleted queue '{args.name}' in vhost '{vhost}'")


def delete_exchange(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    query = {"if-unused": "true"} if args.if_unused else None
    api.call("DELETE", f"/exchanges/{segment(vhost)}/{segment(args.name)}", query=query,
             about=Resource("exchange", args.name, vhost))
    return done(args, out, f"deleted exchange '{args.name}' in vhost '{vhost}'")


def purge_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    api.call("DELETE", f"/queues/{segment(vhost)}/{segment(args.name)}/contents",
             about=Resource("queue", args.name, vhost))
    return done(args, out, f"purged queue '{args.name}' in vhost '{vhost}'")
