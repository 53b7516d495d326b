"""The admin verbs' argument parsers: ``VERB OBJECT``, each with the shared connection
options, run through the management API."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from leveret.cli.admin.access import (
    add_user,
    add_vhost,
    clear_permissions,
    clear_policy,
    delete_user,
    delete_vhost,
    set_permissions,
    set_policy,
)
from leveret.cli.admin.api import DEFAULT_URL, AdminError, ManagementAPI
from leveret.cli.admin.definitions import export_definitions, import_definitions
from leveret.cli.admin.listing import LISTINGS, list_command
from leveret.cli.admin.messages import get_messages, publish
from leveret.cli.admin.shovels import declare_shovel, delete_after, delete_shovel, restart_shovel
from leveret.cli.admin.status import close_connection, status
from leveret.cli.admin.topology import (
    declare_binding,
    declare_exchange,
    declare_queue,
    delete_binding,
    delete_exchange,
    delete_queue,
    purge_queue,
    show_queue,
)

Command = Callable[[ManagementAPI, argparse.Namespace, TextIO], int]


def _connection_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("management API")
    group.add_argument("--url", default=os.environ.get("LEVERET_MANAGEMENT_URL", DEFAULT_URL),
                       help="management API base URL (default: $LEVERET_MANAGEMENT_URL or "
                            "%(default)s)")
    group.add_argument("--user", default=os.environ.get("LEVERET_MANAGEMENT_USER", "guest"),
                       help="user name (default: $LEVERET_MANAGEMENT_USER or guest)")
    group.add_argument("--password",
                       default=os.environ.get("LEVERET_MANAGEMENT_PASSWORD", "guest"),
                       help="password (default: $LEVERET_MANAGEMENT_PASSWORD or guest)")
    group.add_argument("--vhost", default=None, help="virtual host (default: /)")
    group.add_argument("--json", action="store_true", help="print the API's JSON")
    group.add_argument("--cacert", metavar="FILE",
                       help="CA certificate(s) to verify an https:// URL with")
    group.add_argument("--insecure", action="store_true",
                       help="do not verify the TLS certificate of an https:// URL")
    group.add_argument("--timeout", type=float, default=30.0,
                       help="seconds to wait for an answer (default: %(default)s)")
    return common


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        api = ManagementAPI(args.url, args.user, args.password, cacert=args.cacert,
                            insecure=args.insecure, timeout=args.timeout)
        try:
            return command(api, args, sys.stdout)
        except AdminError as exc:
            print(f"leveret: {exc}", file=sys.stderr)
            return exc.status
    return run


@dataclass
class _Verbs:
    """Adds ``VERB OBJECT`` parsers that all share the connection options."""

    subparsers: Any
    common: argparse.ArgumentParser
    verbs: dict[str, Any] = field(default_factory=dict)

    def verb(self, name: str, help: str) -> Any:
        if name not in self.verbs:
            parser = self.subparsers.add_parser(name, help=help)
            self.verbs[name] = parser.add_subparsers(dest="object", required=True,
                                                     metavar="OBJECT")
        return self.verbs[name]

    def command(self, verb: str, verb_help: str, obj: str, help: str,
                command: Command) -> argparse.ArgumentParser:
        parser = self.verb(verb, verb_help).add_parser(obj, parents=[self.common], help=help)
        parser.set_defaults(func=_runner(command))
        return parser

    def single(self, name: str, help: str, command: Command) -> argparse.ArgumentParser:
        parser = self.subparsers.add_parser(name, parents=[self.common], help=help)
        parser.set_defaults(func=_runner(command))
        return parser


LIST_HELP = "list objects as a table (or --json)"
DECLARE_HELP = "declare a queue, exchange, binding or shovel"
DELETE_HELP = "delete a queue, exchange, binding, user, vhost or shovel"
SHOW_HELP = "show one object in detail"
ADD_HELP = "add a user or a vhost"
SET_HELP = "set a user's permissions or a policy"
CLEAR_HELP = "clear a user's permissions or a policy"


def add_parsers(subparsers: Any) -> None:
    """Register the admin verbs (list, declare, delete, ...) on the ``leveret`` command."""
    v = _Verbs(subparsers, _connection_options())
    _list_parsers(v)
    _topology_parsers(v)
    _access_parsers(v)
    _message_parsers(v)
    _shovel_parsers(v)


def _list_parsers(v: _Verbs) -> None:
    for name, listing in LISTINGS.items():
        p = v.command("list", LIST_HELP, name, listing.help, list_command)
        p.set_defaults(listing=listing)
        p.add_argument("--columns", metavar="A,B.C",
                       help="columns to show, by their API field names; nested fields with "
                            "dots (e.g. message_stats.publish)")
        p.add_argument("--sort", metavar="COLUMN", help="sort rows by this column")
        p.add_argument("--sort-reverse", action="store_true", help="sort in reverse order")
        if listing.vhost_path is not None:
            p.add_argument("--all-vhosts", action="store_true",
                           help="list every vhost's, not only --vhost's")
        else:
            p.set_defaults(all_vhosts=True)
        if name == "permissions":
            p.add_argument("--of-user", metavar="USER",
                           help="list this user's permissions in every vhost")


def _topology_parsers(v: _Verbs) -> None:
    p = v.command("declare", DECLARE_HELP, "queue", "declare a queue", declare_queue)
    p.add_argument("name")
    p.add_argument("--durable", action=argparse.BooleanOptionalAction, default=None,
                   help="survive a restart (default: no, but yes for quorum and stream)")
    p.add_argument("--auto-delete", action="store_true",
                   help="delete it when its last consumer goes")
    p.add_argument("--type", choices=["classic", "quorum", "stream"],
                   help="x-queue-type (default: the vhost's default, classic)")
    p.add_argument("--max-age", metavar="AGE",
                   help="x-max-age of a stream: 7D, 12h, 30m, 1Y (Y M D h m s)")
    p.add_argument("--max-length-bytes", type=int, metavar="N",
                   help="x-max-length-bytes: a stream's retention, a queue's limit")
    p.add_argument("--max-segment-size-bytes", type=int, metavar="N",
                   help="x-stream-max-segment-size-bytes: a stream's retention unit")
    p.add_argument("--arguments", metavar="JSON", help="x-arguments as a JSON object")

    p = v.command("show", SHOW_HELP, "queue", "a queue's properties and counts; for a "
                  "stream, its offsets, segments, retention and consumers' offsets",
                  show_queue)
    p.add_argument("name")

    p = v.command("declare", DECLARE_HELP, "exchange", "declare an exchange", declare_exchange)
    p.add_argument("name")
    p.add_argument("--type", default="direct",
                   help="direct (default), fanout, topic, headers, x-delayed-message, ...")
    p.add_argument("--durable", action="store_true", help="survive a restart")
    p.add_argument("--auto-delete", action="store_true",
                   help="delete it when its last binding goes")
    p.add_argument("--internal", action="store_true",
                   help="only other exchanges may publish to it")
    p.add_argument("--arguments", metavar="JSON", help="arguments as a JSON object")

    for verb, verb_help, command, help in (
            ("declare", DECLARE_HELP, declare_binding, "bind an exchange to a queue"),
            ("delete", DELETE_HELP, delete_binding, "delete a binding")):
        p = v.command(verb, verb_help, "binding", help, command)
        p.add_argument("source", help="the exchange messages come from")
        p.add_argument("destination", help="the queue (or exchange) they go to")
        p.add_argument("--destination-type", choices=["queue", "exchange"], default="queue")
        p.add_argument("--routing-key", default="", help="binding key (default: empty)")
        p.add_argument("--arguments", metavar="JSON",
                       help="binding arguments as a JSON object (headers exchanges)")

    p = v.command("delete", DELETE_HELP, "queue", "delete a queue", delete_queue)
    p.add_argument("name")
    p.add_argument("--if-unused", action="store_true", help="only if it has no consumers")
    p.add_argument("--if-empty", action="store_true", help="only if it has no messages")
    p = v.command("delete", DELETE_HELP, "exchange", "delete an exchange", delete_exchange)
    p.add_argument("name")
    p.add_argument("--if-unused", action="store_true", help="only if nothing is bound to it")

    p = v.command("purge", "remove every ready message of a queue", "queue",
                  "remove a queue's ready messages", purge_queue)
    p.add_argument("name")


def _access_parsers(v: _Verbs) -> None:
    p = v.command("add", ADD_HELP, "user", "add (or replace) a user", add_user)
    p.add_argument("name")
    p.add_argument("new_password", metavar="PASSWORD", help="the new user's password")
    p.add_argument("--tags", default="",
                   help="comma-separated: administrator, monitoring, management, "
                        "policymaker, impersonator")
    p = v.command("delete", DELETE_HELP, "user", "delete a user", delete_user)
    p.add_argument("name")

    p = v.command("add", ADD_HELP, "vhost", "add a virtual host", add_vhost)
    p.add_argument("name")
    p.add_argument("--description")
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--default-queue-type", choices=["classic", "quorum", "stream"])
    p = v.command("delete", DELETE_HELP, "vhost", "delete a virtual host and all in it",
                  delete_vhost)
    p.add_argument("name")

    p = v.command("set", SET_HELP, "permissions", "set a user's permissions in --vhost",
                  set_permissions)
    p.add_argument("user_name", metavar="USER")
    for kind in ("configure", "write", "read"):
        p.add_argument(f"--{kind}", default=".*", metavar="REGEX",
                       help=f"names the user may {kind} (default: .*)")
    p = v.command("clear", CLEAR_HELP, "permissions", "remove a user's permissions in --vhost",
                  clear_permissions)
    p.add_argument("user_name", metavar="USER")

    p = v.command("set", SET_HELP, "policy", "set a policy in --vhost", set_policy)
    p.add_argument("name")
    p.add_argument("pattern", help="regular expression of the names it applies to")
    p.add_argument("definition", help='JSON object, e.g. \'{"max-length": 1000}\'')
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--apply-to", default="all",
                   choices=["all", "queues", "exchanges", "classic_queues", "quorum_queues",
                            "streams"])
    p = v.command("clear", CLEAR_HELP, "policy", "remove a policy from --vhost", clear_policy)
    p.add_argument("name")

    p = v.command("export", "write the broker's definitions to a file", "definitions",
                  "users, vhosts, permissions, policies, queues, exchanges and bindings "
                  "(only --vhost's when given)", export_definitions)
    p.add_argument("file", metavar="FILE", help="where to write them (- for stdout)")
    p = v.command("import", "load definitions into the broker", "definitions",
                  "load a definitions export (into --vhost only, when given)",
                  import_definitions)
    p.add_argument("file", metavar="FILE", help="a definitions export (- for stdin)")

    p = v.command("close", "close a client connection", "connection",
                  "close a connection (its name is in `leveret list connections`)",
                  close_connection)
    p.add_argument("name")
    p.add_argument("--reason", help="the text the client is told")


def _shovel_parsers(v: _Verbs) -> None:
    p = v.command("declare", DECLARE_HELP, "shovel",
                  "declare (or replace) a dynamic shovel in --vhost: the shovel parameter",
                  declare_shovel)
    p.add_argument("name")
    p.add_argument("--src-uri", action="append", required=True, metavar="URI",
                   help="AMQP URI of the source (amqp:// is this broker's vhost /); "
                        "repeat it for several, one picked at each connection")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--src-queue", metavar="Q", help="consume from this queue")
    src.add_argument("--src-exchange", metavar="X",
                     help="or: from a queue bound to this exchange")
    p.add_argument("--src-exchange-key", metavar="K",
                   help="the binding key with --src-exchange (default: empty)")
    p.add_argument("--dest-uri", action="append", required=True, metavar="URI",
                   help="AMQP URI of the destination; repeatable as --src-uri")
    dest = p.add_mutually_exclusive_group()
    dest.add_argument("--dest-queue", metavar="Q", help="publish to this queue")
    dest.add_argument("--dest-exchange", metavar="X",
                      help="or: to this exchange (default: the message's own)")
    p.add_argument("--dest-exchange-key", metavar="K",
                   help="routing key with --dest-exchange (default: the message's own)")
    p.add_argument("--ack-mode", choices=["on-confirm", "on-publish", "no-ack"],
                   help="when a message is acked at the source (default: on-confirm)")
    p.add_argument("--src-prefetch-count", type=int, metavar="N",
                   help="unacknowledged messages at once (default: 1000)")
    p.add_argument("--src-delete-after", type=delete_after, metavar="never|queue-length|N",
                   help="stop and delete the shovel after moving what the queue held, or "
                        "N messages (default: never)")
    p.add_argument("--reconnect-delay", type=float, metavar="S",
                   help="seconds before starting again after a failure; 0: stay down "
                        "(default: 5)")
    p.add_argument("--dest-add-forward-headers", action=argparse.BooleanOptionalAction,
                   default=None, help="add the x-shovelled header")
    p.add_argument("--dest-add-timestamp-header", action=argparse.BooleanOptionalAction,
                   default=None, help="add the x-shovelled-timestamp header")

    p = v.command("delete", DELETE_HELP, "shovel", "stop a dynamic shovel and delete it",
                  delete_shovel)
    p.add_argument("name")
    p = v.command("restart", "stop and start a dynamic shovel", "shovel",
                  "stop a dynamic shovel and start it again (reconnecting both ends)",
                  restart_shovel)
    p.add_argument("name")


def _message_parsers(v: _Verbs) -> None:
    p = v.single("publish", "publish one message through the API", publish)
    p.add_argument("--exchange", default="", help="exchange (default: the default exchange)")
    p.add_argument("--routing-key", default="", help="routing key (default: empty)")
    body = p.add_mutually_exclusive_group(required=True)
    body.add_argument("--body", help="the message body, as text")
    body.add_argument("--file", help="read the body from FILE (- for stdin)")
    p.add_argument("--property", action="append", metavar="KEY=VALUE",
                   help="a message property (content_type, delivery_mode=2, priority, "
                        "message_id, expiration, ...); repeatable")
    p.add_argument("--header", action="append", metavar="KEY=VALUE",
                   help="a header (numbers and true/false keep their type); repeatable")

    p = v.single("get", "fetch messages from a queue through the API", get_messages)
    p.add_argument("queue")
    p.add_argument("--count", type=int, default=1, help="at most this many (default: 1)")
    p.add_argument("--requeue", action="store_true",
                   help="put them back (default: they are acknowledged and removed)")
    p.add_argument("--encoding", choices=["auto", "base64"], default="auto",
                   help="auto: text bodies as text, binary ones in base64")
    p.add_argument("--truncate", type=int, default=50000,
                   help="show at most this many bytes of each body (default: %(default)s)")
    p.add_argument("--columns", metavar="A,B", help="columns to show")

    v.single("status", "the broker's version, counts, memory, disk and alarms", status)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leveret.cli.admin ...``: the admin verbs alone (``leveret`` has them too)."""
    from leveret.cli import admin  # its docstring is the grammar

    parser = argparse.ArgumentParser(prog="leveret", description=admin.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    return int(args.func(args))
