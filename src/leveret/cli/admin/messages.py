"""``leveret publish`` and ``leveret get``, through the API's publish and get endpoints."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, TextIO

from leveret.cli.admin.api import EXIT_USAGE, AdminError, ApiError, ManagementAPI, Resource, segment
from leveret.cli.admin.options import columns_option, vhost_of
from leveret.cli.admin.output import format_table, print_json

INTEGER_PROPERTIES = {"delivery_mode", "priority", "timestamp"}
# The largest max_message_size RabbitMQ or leveret can be configured with (512 MiB).
MAX_ANY_MESSAGE = 512 << 20
BODY_CHUNK = 3 << 16  # whole 3-byte groups, so the chunks' base64 joins into one text
PROPERTIES = {"content_type", "content_encoding", "delivery_mode", "priority",
              "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
              "user_id", "app_id", "cluster_id"}


def _pairs(items: Iterable[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AdminError(f"{option} takes KEY=VALUE, not {item!r}", EXIT_USAGE)
        pairs.append((key, value))
    return pairs


def _header_value(text: str) -> Any:
    """Numbers and booleans keep their type (``x-retries=3``); anything else is text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


def _message_properties(args: argparse.Namespace) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for key, value in _pairs(args.property or [], "--property"):
        key = key.replace("-", "_")
        if key not in PROPERTIES:
            raise AdminError(f"unknown message property {key!r}: one of "
                             f"{', '.join(sorted(PROPERTIES))} (headers: --header)", EXIT_USAGE)
        if key in INTEGER_PROPERTIES:
            try:
                properties[key] = int(value)
            except ValueError:
                raise AdminError(f"--property {key} takes a number", EXIT_USAGE) from None
        else:
            properties[key] = value
    headers = {k: _header_value(v) for k, v in _pairs(args.header or [], "--header")}
    if headers:
        properties["headers"] = headers
    return properties


@contextlib.contextmanager
def _opened(name: str) -> Iterator[tuple[BinaryIO, int]]:
    """The body's file and its size, known before reading it: stdin or a pipe is copied
    to a temporary file first, never more than MAX_ANY_MESSAGE of it."""
    try:
        source = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise AdminError(f"cannot read {name}: {exc.strerror or exc}") from None
    with source:
        status = os.fstat(source.fileno())
        if stat.S_ISREG(status.st_mode):
            yield source, status.st_size - source.tell()
            return
        with tempfile.TemporaryFile() as spool:
            while block := source.read(BODY_CHUNK):
                if spool.tell() + len(block) > MAX_ANY_MESSAGE:
                    raise AdminError(f"{name} holds more than {MAX_ANY_MESSAGE} bytes, more "
                                     "than any broker takes in one message")
                spool.write(block)
            size = spool.tell()
            spool.seek(0)
            yield spool, size


def _publish_file(api: ManagementAPI, args: argparse.Namespace, path: str,
                  about: Resource) -> Any:
    """Publish a file's bytes, in base64, without holding the file or its encoding: the
    broker refuses one over its max_message_size before the body is sent."""
    with _opened(args.file) as (source, size):
        if size > MAX_ANY_MESSAGE:
            raise AdminError(f"{args.file} is {size} bytes, more than any broker takes in "
                             f"one message ({MAX_ANY_MESSAGE} bytes)")
        head = json.dumps({"properties": _message_properties(args),
                           "routing_key": args.routing_key, "payload_encoding": "base64",
                           "payload": ""}).encode()[:-2]  # the payload's text goes here
        tail = b'"}'

        def chunks() -> Iterator[bytes]:
            yield head
            left = size
            while left > 0 and (block := source.read(min(BODY_CHUNK, left))):
                left -= len(block)
                yield base64.b64encode(block)
            yield tail

        length = len(head) + 4 * -(-size // 3) + len(tail)
        try:
            return api.upload("POST", path, length, chunks(), about=about)
        except ApiError as exc:
            if exc.code != 413:
                raise
            shown = "stdin" if args.file == "-" else args.file
            raise AdminError(f"{shown} ({size} bytes) is too large for the broker: "
                             f"{exc.reason}") from None


def publish(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    exchange = args.exchange or "amq.default"
    path = f"/exchanges/{segment(vhost)}/{segment(exchange)}/publish"
    about = Resource("exchange", exchange, vhost)
    if args.file is not None:
        answer = _publish_file(api, args, path, about)
    else:
        answer = api.call("POST", path, {
            "properties": _message_properties(args), "routing_key": args.routing_key,
            "payload": args.body, "payload_encoding": "string"}, about=about)
    if args.json:
        print_json(answer, out)
        return 0
    routed = bool(answer and answer.get("routed"))
    where = f"exchange '{args.exchange}' with routing key '{args.routing_key}'"
    out.write(f"published to {where}: " +
              ("routed\n" if routed else "not routed (no queue is bound for it)\n"))
    return 0


def get_messages(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = vhost_of(args)
    body = {"count": args.count, "encoding": args.encoding, "truncate": args.truncate,
            "ackmode": "ack_requeue_true" if args.requeue else "ack_requeue_false"}
    messages = api.call("POST", f"/queues/{segment(vhost)}/{segment(args.queue)}/get", body,
                        about=Resource("queue", args.queue, vhost)) or []
    if args.json:
        print_json(messages, out)
    elif messages:
        columns = columns_option(args.columns) or ["exchange", "routing_key", "redelivered",
                                             "message_count", "payload_bytes",
                                             "payload_encoding", "payload"]
        out.write(format_table(messages, columns) + "\n")
    else:
        out.write(f"queue '{args.queue}' is empty\n")
    return 0
