"""The ``leveret`` command: ``serve`` runs the broker, ``perf`` measures one, the admin verbs
(``list``, ``declare``, ...) administer a running broker, ``events`` serves leveret.events
applications. ``DESCRIPTION`` and ``EPILOG`` are what ``leveret --help`` prints."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leveret import config as cfg
from leveret.errors import LeveretError
from leveret.store.base import StoreError

if TYPE_CHECKING:
    from leveret.server.listener import ListenError

log = logging.getLogger("leveret")


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML configuration file (docs/configuration.md); flags override "
                        "environment variables (LEVERET_<SECTION>_<KEY>), which override it")
    groups: dict[str, Any] = {}
    for key in cfg.KEYS:
        if key.flag is None:
            continue
        group = groups.get(key.section)
        if group is None:
            group = groups[key.section] = p.add_argument_group(f"[{key.section}]")
        dest = f"{key.section}__{key.name}"
        default = key.default if key.default is not None else "unset"
        if isinstance(default, list):
            default = ",".join(default)
        if key.flag_value is not None:  # a switch
            help_text = (f"{key.label} = {json.dumps(key.flag_value)}: {key.help} "
                         f"({key.env})")
            group.add_argument(key.flag, dest=dest, action="store_const", const=key.flag_value,
                               default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))
        else:
            help_text = f"{key.help} (default: {default}; {key.env})"
            group.add_argument(key.flag, dest=dest, default=argparse.SUPPRESS,
                               metavar=key.name.upper(), help=help_text.replace("%", "%%"))
    p.add_argument("--policies", type=Path, metavar="FILE",
                   help="JSON file of policies: a RabbitMQ definitions export (its "
                        "\"policies\" list is used) or a list of {name, pattern, definition, "
                        "priority, apply-to, vhost}")


def _given_flags(args: argparse.Namespace) -> dict[tuple[str, str], Any]:
    flags = {}
    for dest, value in vars(args).items():
        section, sep, name = dest.partition("__")
        if sep and section in cfg.SECTIONS:
            flags[(section, name)] = value
    return flags


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


def _read_definitions(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object (a RabbitMQ definitions export)")
    return data


def _make_broker(config: cfg.Config, policies: list[dict[str, Any]] | None,
                 definitions: dict[str, Any] | None) -> Any:
    """The Broker the configuration describes (raises ValueError on unusable TLS files)."""
    from leveret.broker.node import Limits
    from leveret.runtime.embedded import Broker
    from leveret.server.tls import TLSConfig

    amqps, limits, management = config["amqps"], config["limits"], config["management"]
    tls = None
    if config.tls_enabled:
        tls = TLSConfig(certfile=amqps["cert"], keyfile=amqps["key"], cafile=amqps["ca"],
                        verify=amqps["verify"], min_version=amqps["min_version"])
    broker = Broker(
        host=config.get("amqp", "host"),
        port=config.get("amqp", "port") if config.get("amqp", "enabled") else None,
        data_dir=config.get("storage", "data_dir"), policies=policies,
        fsync=config.get("storage", "fsync"), tls=tls, tls_port=amqps["port"],
        management_port=management["port"] if management["enabled"] else None,
        management_host=management["host"], management_tls=management["tls"],
        definitions=definitions,
        stream_port=config.get("stream", "port"),
        stream_advertised_host=config.get("stream", "advertised_host"),
        stream_advertised_port=config.get("stream", "advertised_port"),
        stream_tls_port=config.get("stream", "tls_port"),
        stream_advertised_tls_port=config.get("stream", "advertised_tls_port"),
        limits=Limits(channel_max=limits["channel_max"], frame_max=limits["frame_max"],
                      heartbeat=limits["heartbeat"],
                      max_message_size=limits["max_message_size"],
                      max_connections=limits["max_connections"],
                      queue_memory_messages=limits["queue_memory_messages"],
                      queue_memory_bytes=limits["queue_memory_bytes"],
                      memory_high_watermark=config.get("alarms", "memory_high_watermark"),
                      disk_free_limit=config.get("alarms", "disk_free_limit")))
    broker.node.loopback_users = list(config.get("auth", "loopback_users"))
    broker.node.failed_login_delay = config.get("auth", "failed_login_delay")
    return broker


_LISTEN_HINTS = {
    "AMQP": "try another --port, or --no-plain to serve AMQPS only",
    "AMQPS": "try another --amqps-port",
    "the stream protocol": "try another --stream-port",
    "the stream protocol over TLS": "try another --stream-tls-port",
    "the management API": "change --management-port, or turn the API off with "
                          "--no-management",
}


def _listen_hint(exc: ListenError) -> str:
    if exc.errno == errno.EADDRINUSE:
        start = f"is another broker running? port {exc.port} is taken; "
    elif exc.errno in (errno.EACCES, errno.EPERM) and exc.port < 1024:
        start = f"port {exc.port} needs privileges; "
    elif exc.errno == errno.EADDRNOTAVAIL or isinstance(exc.cause, socket.gaierror):
        flag = "--management-host" if exc.what == "the management API" else "--host"
        return f"{exc.host} is not an address of this machine; change {flag}"
    else:
        start = ""
    return start + _LISTEN_HINTS.get(exc.what, "")


async def _serve(config: cfg.Config, policies_file: Path | None) -> int:
    from leveret.server.listener import ListenError

    try:
        policies = _read_policies(policies_file) if policies_file else None
    except (OSError, ValueError, KeyError, LeveretError) as exc:
        log.error("cannot load policies from %s: %s", policies_file, exc)
        return 2
    definitions_file = config.get("definitions", "load_file")
    try:
        definitions = _read_definitions(definitions_file) if definitions_file else None
    except (OSError, ValueError) as exc:
        log.error("cannot load definitions from %s: %s", definitions_file, exc)
        return 2
    try:
        broker = _make_broker(config, policies, definitions)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        await broker.start()
    except ValueError as exc:  # definitions that cannot be imported
        log.error("%s (from %s)", exc, definitions_file)
        return 2
    except StoreError as exc:
        log.error("cannot use data directory %s: %s", config.get("storage", "data_dir"), exc)
        return 2
    except ListenError as exc:
        log.error("%s (%s)", exc, _listen_hint(exc))
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: closing connections", extra={"event": "shutdown"})
    await broker.stop()
    return 0


def serve(args: argparse.Namespace) -> int:
    from leveret.server.logs import configure_logging

    try:
        config = cfg.load(args.config, flags=_given_flags(args))
    except cfg.ConfigError as exc:
        print(f"leveret serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.get("log", "level"), config.get("log", "format"))
    from leveret.build import stale_extensions

    stale = stale_extensions()
    if stale:  # an in-place compiled build (make compile) older than edited sources
        log.warning("compiled modules older than their sources run the old code: %s "
                    "(make compile again, or make clean-compiled)", ", ".join(stale))
    from leveret.server.allocator import tune_allocator

    tune_allocator()
    try:
        import uvloop

        return uvloop.run(_serve(config, args.policies))
    except ImportError:  # pragma: no cover
        return asyncio.run(_serve(config, args.policies))


DESCRIPTION = "leveret: a message broker that speaks AMQP 0-9-1 like RabbitMQ."

EPILOG = """\
run and measure a broker:
  leveret serve [--port 5672] [--data-dir PATH] [--config FILE]
  leveret perf --uri amqp://guest:guest@127.0.0.1:5672/ --time 10

administer a running broker through its management API (docs/cli.md):
  leveret list queues|streams|exchanges|bindings|connections|channels|
               consumers|users|vhosts|permissions|policies
  leveret show queue NAME
  leveret declare queue|exchange|binding ...
  leveret delete queue|exchange|binding|user|vhost ...
  leveret purge queue NAME
  leveret add user|vhost ...
  leveret set|clear permissions|policy ...
  leveret export|import definitions FILE
  leveret publish ... | get QUEUE | close connection NAME | status

event-driven applications with leveret.events (docs/events.md):
  leveret events run MODULE:BUS               run a bus's subscribers
  leveret events dlq list|show|redrive|purge  inspect and replay dead letters
  leveret events replay|tail TOPIC            read events kept in a stream
  leveret events docs MODULE:BUS              write a bus's AsyncAPI document

`leveret COMMAND --help` lists a command's options.
"""


def version_line() -> str:
    """``leveret 0.1.0 (pure Python)``, or which modules run compiled (leveret/build.py)."""
    from leveret.build import describe
    from leveret.version import __version__

    return f"leveret {__version__} ({describe()})"


def _version(args: argparse.Namespace) -> int:
    print(version_line())
    return 0


class _VersionAction(argparse.Action):
    """``--version``, worked out only when asked (it imports the hot modules)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 help: str = "show leveret's version and build, and exit") -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(version_line())
        parser.exit()


def build_parser(serve_only: bool = False) -> argparse.ArgumentParser:
    """The whole command line, or with ``serve_only`` just ``serve``: a broker then does not
    import the clients' modules (the admin verbs' HTTP client alone is ~4 MiB of RSS)."""
    parser = argparse.ArgumentParser(prog="leveret", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-V", "--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    p = sub.add_parser("serve", help="run the broker")
    _serve_arguments(p)
    p.set_defaults(func=serve)
    if serve_only:
        return parser
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
    from leveret.cli import admin  # list, declare, delete, ... through the management API
    admin.add_parsers(sub)
    sub.add_parser("version", help="print leveret's version and build").set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    parser = build_parser(serve_only=argv[:1] == ["serve"])
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:  # a bare `leveret`: say what it can do
        parser.print_help()
        return 0
    return int(args.func(args) or 0)
