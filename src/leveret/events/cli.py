"""``leveret events``: run a worker, inspect and replay dead letters, read kept events,
write AsyncAPI docs.

    leveret events run orders.app:bus [--url URL] [--shutdown-timeout 30] [--metrics-port N]
    leveret events dlq list (--app orders.app:bus | --group billing ...) [--url URL]
    leveret events dlq show billing [--limit 10] [--json]
    leveret events dlq redrive billing [--limit N] [--id EVENT_ID ...]
    leveret events dlq purge billing --yes
    leveret events replay 'orders.*' --from first|last|next|OFFSET|ISO-TIME|1h [--count N]
                          [--json] [--app orders.app:bus | --exchange X | --stream S]
    leveret events tail 'orders.*' [--from next] [--json]     (until Ctrl-C)
    leveret events docs orders.app:bus [-o asyncapi.json]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from leveret.events.errors import EventsError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    events = subparsers.add_parser("events", help="event-bus applications (leveret.events)",
                                   description=(__doc__ or "").replace("``", ""),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = events.add_subparsers(dest="events_command", required=True)

    run = sub.add_parser("run", help="run a bus's subscribers and responders")
    run.add_argument("app", help="module:attribute naming the EventBus")
    _url(run)
    run.add_argument("--shutdown-timeout", type=float, default=30.0,
                     help="seconds in-flight handlers get on SIGTERM (default: %(default)s)")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    run.add_argument("--log-level", default="info",
                     choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_needs_extra(_run))

    _dlq_parsers(sub.add_parser("dlq", help="inspect and replay dead-letter queues"))

    replay = sub.add_parser("replay", help="print the events kept in a stream, then exit")
    tail = sub.add_parser("tail", help="print new events kept in a stream until Ctrl-C")
    for p, default in ((replay, "first"), (tail, "next")):
        p.add_argument("topic", help="routing-key pattern to show ('orders.*', '#'); also "
                                     "picks the stream, as <exchange>.stream.<topic> if the "
                                     "broker has it, else <exchange>.stream")
        p.add_argument("--from", dest="start", default=default,
                       help="first, last, next, an offset, an ISO timestamp (naive: UTC) "
                            "or an interval like 1h, 30m, 7D (default: %(default)s)")
        p.add_argument("--app", help="module:attribute naming the EventBus (its exchange, "
                                     "URL and kept topics)")
        p.add_argument("--exchange", help="the bus's exchange (default: the app's, or "
                                          "leveret.events)")
        p.add_argument("--stream", help="read this stream, whatever the topic")
        p.add_argument("--count", type=int, help="stop after printing this many events")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
        p.add_argument("--prefetch", type=int, default=100,
                       help="deliveries in flight (the consumer's credit; default %(default)s)")
        _url(p)
    replay.add_argument("--idle", type=float, default=5.0,
                        help="also stop after this many seconds without a delivery "
                             "(default: %(default)s)")
    replay.set_defaults(func=_needs_extra(functools.partial(_with_connection,
                                                            command=_replay)))
    tail.set_defaults(func=_needs_extra(functools.partial(_with_connection, command=_tail)))

    docs = sub.add_parser("docs", help="write the AsyncAPI 3.0 document of a bus")
    docs.add_argument("app", help="module:attribute naming the EventBus")
    docs.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    docs.add_argument("--title", help="document title (default: the bus's name)")
    docs.set_defaults(func=_needs_extra(_docs))
    return events


def _needs_extra(command: Callable[[argparse.Namespace], int],
                ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            import aio_pika  # noqa: F401 - only to say what is missing, up front
        except ImportError:
            print("error: leveret events needs aio-pika: pip install 'leveret[events]'",
                  file=sys.stderr)
            return 2
        return command(args)
    return run


def _url(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="AMQP URL (default: the bus's, $LEVERET_EVENTS_URL, or "
                                 "amqp://guest:guest@127.0.0.1:5672/)")


def _dlq_parsers(dlq: argparse.ArgumentParser) -> None:
    sub = dlq.add_subparsers(dest="dlq_command", required=True)
    ls = sub.add_parser("list", help="dead letters per group")
    ls.add_argument("--app", help="module:attribute: list every group of this bus")
    ls.add_argument("--group", action="append", default=[], help="a group (repeatable)")
    show = sub.add_parser("show", help="print dead letters without removing them")
    show.add_argument("group")
    show.add_argument("--limit", type=int, default=10)
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    redrive = sub.add_parser("redrive", help="send dead letters back to their group")
    redrive.add_argument("group")
    redrive.add_argument("--limit", type=int, help="at most this many (oldest first)")
    redrive.add_argument("--id", action="append", dest="ids", help="only this event id")
    purge = sub.add_parser("purge", help="delete every dead letter of a group")
    purge.add_argument("group")
    purge.add_argument("--yes", action="store_true", help="really delete them")
    for p, fn in ((ls, _dlq_list), (show, _dlq_show), (redrive, _dlq_redrive),
                  (purge, _dlq_purge)):
        _url(p)
        p.set_defaults(func=_needs_extra(functools.partial(_with_connection, command=fn)))


def _resolve_url(args: argparse.Namespace) -> str:
    from leveret.events.bus import DEFAULT_URL, URL_ENV
    from leveret.events.worker import load

    if args.url:
        return str(args.url)
    app = getattr(args, "app", None)
    bus_url = load(app).url if app else None
    return bus_url or os.environ.get(URL_ENV) or DEFAULT_URL


def _with_connection(args: argparse.Namespace,
                     command: Callable[[Any, argparse.Namespace], Awaitable[int]]) -> int:
    import aio_pika

    async def go() -> int:
        connection = await aio_pika.connect(_resolve_url(args))
        try:
            return await command(connection, args)
        finally:
            await connection.close()

    try:
        return asyncio.run(go())
    except EventsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _dlq_list(connection: Any, args: argparse.Namespace) -> int:
    from leveret.events.dlq import DeadLetterQueue
    from leveret.events.worker import load

    groups = list(args.group)
    if args.app:
        groups += [s.group for s in load(args.app).subscriptions]
    if not groups:
        print("error: name the groups with --group, or the bus with --app", file=sys.stderr)
        return 2
    print(f"{'GROUP':<30} {'QUEUE':<36} DEAD LETTERS")
    for group in groups:
        dlq = DeadLetterQueue(connection, group)
        try:
            count: int | str = await dlq.count()
        except EventsError:
            count = "(no queue)"
        print(f"{group:<30} {dlq.name:<36} {count}")
    return 0


async def _dlq_show(connection: Any, args: argparse.Namespace) -> int:
    from leveret.events.dlq import DeadLetterQueue

    letters = await DeadLetterQueue(connection, args.group).peek(args.limit)
    for info in letters:
        if args.json:
            print(json.dumps(info.as_dict(), sort_keys=True))
            continue
        print(f"event {info.event_id}  type {info.event_type}  key {info.routing_key}")
        print(f"  {info.reason} after {info.attempts} attempt(s) at {info.dead_lettered_at}"
              f"{f'; redriven {info.redrives}x' if info.redrives else ''}")
        print(f"  error: {info.error}")
        for entry in info.history:
            print(f"    attempt {entry.get('attempt')} at {entry.get('at')}: "
                  f"{entry.get('error')}")
        print(f"  body: {info.body[:500]}")
    if not args.json:
        print(f"({len(letters)} shown)")
    return 0


async def _dlq_redrive(connection: Any, args: argparse.Namespace) -> int:
    from leveret.events.dlq import DeadLetterQueue

    moved = await DeadLetterQueue(connection, args.group).redrive(
        limit=args.limit, event_ids=set(args.ids) if args.ids else None)
    print(f"redrove {moved} dead letter(s) to {args.group!r}")
    return 0


async def _dlq_purge(connection: Any, args: argparse.Namespace) -> int:
    from leveret.events.dlq import DeadLetterQueue

    dlq = DeadLetterQueue(connection, args.group)
    if not args.yes:
        print(f"{await dlq.count()} dead letter(s) in {dlq.name}; add --yes to delete them",
              file=sys.stderr)
        return 2
    print(f"purged {await dlq.purge()} dead letter(s) from {dlq.name}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from leveret.events import metrics
    from leveret.events.worker import load, serve

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bus = load(args.app)
    if args.metrics_port is not None and not metrics.serve(args.metrics_port):
        logging.getLogger("leveret.events").warning(
            "--metrics-port needs prometheus_client (pip install 'leveret[events]')")
    try:
        asyncio.run(serve(bus, args.url, args.shutdown_timeout))
    except (OSError, EventsError) as exc:
        logging.getLogger("leveret.events").error("cannot run %s: %s", args.app, exc)
        return 1
    return 0


def _docs(args: argparse.Namespace) -> int:
    from leveret.events.asyncapi import document
    from leveret.events.worker import load

    text = json.dumps(document(load(args.app), args.title), indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


async def _find_stream(connection: Any, args: argparse.Namespace) -> str:
    from leveret.events import topology
    from leveret.events.worker import load

    if args.stream:
        return str(args.stream)
    bus = load(args.app) if args.app else None
    exchange = args.exchange or (bus.exchange if bus else topology.DEFAULT_EXCHANGE)
    known = bus.stream_for(args.topic) if bus and exchange == bus.exchange else None
    return known or await topology.find_stream(connection, exchange, args.topic)


def _print_event(message: Any, args: argparse.Namespace) -> None:
    from leveret.events.envelope import Delivery

    d = Delivery.of(message, "")
    if args.json:
        try:
            payload: Any = json.loads(message.body)
        except ValueError:
            payload = message.body.decode(errors="replace")
        print(json.dumps({
            "offset": d.offset, "routing_key": d.routing_key, "event_type": d.event_type,
            "event_id": d.event_id, "correlation_id": d.correlation_id,
            "causation_id": d.causation_id,
            "timestamp": d.timestamp.isoformat() if d.timestamp else None,
            "payload": payload}, sort_keys=True, default=str), flush=True)
        return
    when = d.timestamp.isoformat() if d.timestamp else "-"
    body = message.body.decode(errors="replace")
    print(f"{d.offset:>8}  {when}  {d.routing_key}  {d.event_type}  {d.event_id}  "
          f"{body[:500]}", flush=True)


def _shows(message: Any, args: argparse.Namespace, start: Any) -> bool:
    from leveret.events.envelope import Delivery
    from leveret.events.stream import topic_matches

    d = Delivery.of(message, "")
    return topic_matches(args.topic, d.routing_key) and not start.too_early(d.timestamp)


async def _replay(connection: Any, args: argparse.Namespace) -> int:
    """Reads from ``--from`` up to the offset that was last when the command started
    (found by attaching at ``last``), so events published meanwhile are left out and the
    command ends even while publishers go on; ``--idle`` seconds without a delivery also
    end it (a start past the end, retention removing the end meanwhile)."""
    from leveret.events.replay import StreamCursor, ack, last_offset
    from leveret.events.stream import offset_of

    start = _start(args)
    stream = await _find_stream(connection, args)
    end = await last_offset(await connection.channel(), stream)
    if end is None or start.argument == "next" or (
            isinstance(start.argument, int) and start.argument > end):
        return 0
    cursor = StreamCursor(await connection.channel(), stream, start, args.prefetch)
    shown = 0
    try:
        await cursor.open()
        while args.count is None or shown < args.count:
            message = await cursor.next(args.idle)
            if message is None:
                break
            offset = offset_of(message.headers)
            if offset is not None and offset > end:
                break
            if _shows(message, args, start):
                _print_event(message, args)
                shown += 1
            await ack(message)
            if offset is not None and offset >= end:
                break
    finally:
        await cursor.close()
    return 0


async def _tail(connection: Any, args: argparse.Namespace) -> int:
    import signal

    from leveret.events.replay import StreamCursor, ack

    start = _start(args)
    stream = await _find_stream(connection, args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cursor = StreamCursor(await connection.channel(), stream, start, args.prefetch)
    shown = 0
    try:
        await cursor.open()
        print(f"following {stream} ({args.topic}); Ctrl-C to stop", file=sys.stderr,
              flush=True)
        while not stop.is_set() and (args.count is None or shown < args.count):
            message = await cursor.next(0.2)
            if message is None:
                continue
            if _shows(message, args, start):
                _print_event(message, args)
                shown += 1
            await ack(message)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await cursor.close()
    return 0


def _start(args: argparse.Namespace) -> Any:
    from leveret.events.stream import StartPoint

    try:
        return StartPoint.of(args.start)
    except ValueError as exc:
        raise EventsError(str(exc)) from exc
