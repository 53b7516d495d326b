"""``leveret declare|delete|restart shovel``: dynamic shovels, kept as runtime parameters."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from leveret.cli.admin.api import EXIT_USAGE, AdminError, ApiError, ManagementAPI, Resource, segment
from leveret.cli.admin.options import vhost_of
from leveret.cli.admin.output import done


def delete_after(text: str) -> str | int:
    if text in ("never", "queue-length"):
        return text
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"never, queue-length or a count, not {text!r}")
    return count


def _shovel_value(args: argparse.Namespace) -> dict[str, Any]:
    """The ``shovel`` parameter's value, with RabbitMQ's keys; only what was given."""
    value: dict[str, Any] = {
        "src-protocol": "amqp091",
        "src-uri": args.src_uri[0] if len(args.src_uri) == 1 else args.src_uri,
        "dest-protocol": "amqp091",
        "dest-uri": args.dest_uri[0] if len(args.dest_uri) == 1 else args.dest_uri}
    for option, key in (("src_queue", "src-queue"), ("src_exchange", "src-exchange"),
                        ("src_exchange_key", "src-exchange-key"),
                        ("dest_queue", "dest-queue"), ("dest_exchange", "dest-exchange"),
                        ("dest_exchange_key", "dest-exchange-key"), ("ack_mode", "ack-mode"),
                        ("src_prefetch_count", "src-prefetch-count"),
                        ("src_delete_after", "src-delete-after"),
                        ("reconnect_delay", "reconnect-delay"),
                        ("dest_add_forward_headers", "dest-add-forward-headers"),
                        ("dest_add_timestamp_header", "dest-add-timestamp-header")):
        given = getattr(args, option)
        if isinstance(given, float) and given.is_integer():
            given = int(given)  # as RabbitMQ's own examples write it: 5, not 5.0
        if given is not None:
            value[key] = given
    if args.src_exchange_key is not None and args.src_exchange is None:
        raise AdminError("--src-exchange-key goes with --src-exchange", EXIT_USAGE)
    if args.dest_queue is not None and args.dest_exchange_key is not None:
        raise AdminError("--dest-exchange-key goes with --dest-exchange, not --dest-queue",
                         EXIT_USAGE)
    return value


def _validation_failure(exc: ApiError) -> AdminError:
    """RabbitMQ's 400 ``Validation failed\n\nline\n...`` (HTML-escaped) as one line."""
    text = exc.reason.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    head, _, rest = text.partition("\n\n")
    lines = [line.strip() for line in rest.splitlines() if line.strip()]
    return AdminError(f"{head.strip()}: {'; '.join(lines)}" if lines else head.strip())


def declare_shovel(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    body = {"value": _shovel_value(args)}
    try:
        api.call("PUT", f"/parameters/shovel/{segment(vhost)}/{segment(args.name)}", body,
                 about=Resource("vhost", vhost))
    except ApiError as exc:
        if exc.code == 404:  # RabbitMQ's answer for a missing vhost: "vhost_not_found"
            raise ApiError(404, exc.reason, f"vhost '{vhost}' not found") from None
        if exc.code == 400 and exc.reason.startswith("Validation failed"):
            raise _validation_failure(exc) from None
        raise
    return done(args, out, f"declared shovel '{args.name}' in vhost '{vhost}'")


def delete_shovel(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    api.call("DELETE", f"/parameters/shovel/{segment(vhost)}/{segment(args.name)}",
             about=Resource("shovel", args.name, vhost))
    return done(args, out, f"deleted shovel '{args.name}' in vhost '{vhost}'")


def restart_shovel(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    api.call("DELETE", f"/shovels/vhost/{segment(vhost)}/{segment(args.name)}/restart",
             about=Resource("shovel", args.name, vhost))
    return done(args, out, f"restarted shovel '{args.name}' in vhost '{vhost}'")
