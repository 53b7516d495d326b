"""The ``leveret`` command: ``serve`` runs the broker, ``perf`` measures one."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from leveret.errors import LeveretError
from leveret.store.base import StoreError

DEFAULT_DATA_DIR = Path(os.environ.get("LEVERET_DATA_DIR", Path.home() / ".local/share/leveret"))


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=5672, help="AMQP port (default: %(default)s)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="where the broker keeps its data (default: %(default)s, or "
                        "$LEVERET_DATA_DIR)")
    p.add_argument("--fsync", default="always", metavar="POLICY",
                   help="when durable changes reach the disk: always (default), "
                        "interval[:MS] or off; see docs/storage.md")
    p.add_argument("--policies", type=Path, metavar="FILE",
                   help="JSON file of policies: a RabbitMQ definitions export (its "
                        "\"policies\" list is used) or a list of {name, pattern, definition, "
                        "priority, apply-to, vhost}")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])


def _read_policies(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    policies = data.get("policies", []) if isinstance(data, dict) else data
    if not isinstance(policies, list):
        raise ValueError("expected a list of policies")
    for p in policies:
        missing = [k for k in ("name", "pattern", "definition") if k not in p]
        if missing:
            raise ValueError(f"policy {p.get('name', p)!r} lacks {', '.join(missing)}")
    return policies


async def _serve(args: argparse.Namespace) -> int:
    from leveret.server.embedded import Broker

    try:
        policies = _read_policies(args.policies) if args.policies else None
    except (OSError, ValueError, KeyError, LeveretError) as exc:
        logging.getLogger("leveret").error("cannot load policies from %s: %s", args.policies,
                                           exc)
        return 2
    try:
        broker = Broker(host=args.host, port=args.port, data_dir=args.data_dir,
                        policies=policies, fsync=args.fsync)
    except ValueError as exc:
        logging.getLogger("leveret").error("%s", exc)
        return 2
    try:
        await broker.start()
    except StoreError as exc:
        logging.getLogger("leveret").error("cannot use data directory %s: %s", args.data_dir,
                                           exc)
        return 2
    except OSError as exc:
        logging.getLogger("leveret").error(
            "cannot listen on %s:%s: %s (is another broker running? try --port)",
            args.host, args.port, exc.strerror or exc)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("leveret").info("shutting down: closing connections")
    await broker.stop()
    return 0


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop

        return uvloop.run(_serve(args))
    except ImportError:  # pragma: no cover
        return asyncio.run(_serve(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leveret", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the broker")
    _serve_arguments(p)
    p.set_defaults(func=serve)
    try:
        from leveret.cli import perf
    except ImportError:  # pragma: no cover - perf ships with the package
        perf = None  # type: ignore[assignment]
    if perf is not None:
        pp = sub.add_parser("perf", help="load-test a broker (any AMQP URL)")
        perf.add_arguments(pp)
        pp.set_defaults(func=perf.run)
    from leveret.events import cli as events_cli
    events_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv if argv is not None else sys.argv[1:])
    return int(args.func(args) or 0)
