"""``leveret VERB OBJECT ...``: administer a running broker through its management HTTP API.

The grammar is one verb, then what it acts on (see docs/cli.md):

    leveret list queues|streams|exchanges|bindings|connections|channels|consumers|users|
                 vhosts|permissions|policies [--columns a,b.c] [--sort COL] [--all-vhosts]
    leveret show queue NAME                 (a stream: its offsets, segments and readers)
    leveret declare queue NAME [--durable] [--auto-delete] [--type quorum|stream]
                 [--max-age 7D] [--max-length-bytes N] [--max-segment-size-bytes N]
                 [--arguments JSON]
    leveret declare exchange NAME [--type topic] [--durable] [--auto-delete] [--internal]
    leveret declare binding SOURCE DESTINATION [--routing-key K] [--destination-type exchange]
    leveret delete queue|exchange|binding|user|vhost ...
    leveret purge queue NAME
    leveret add user NAME PASSWORD [--tags administrator,monitoring]
    leveret add vhost NAME [--description TEXT]
    leveret set permissions USER [--configure RE] [--write RE] [--read RE]
    leveret clear permissions USER
    leveret set policy NAME PATTERN DEFINITION [--priority N] [--apply-to queues]
    leveret clear policy NAME
    leveret export definitions FILE        leveret import definitions FILE
    leveret publish [--exchange X] [--routing-key K] (--body TEXT | --file F) [--property k=v]
    leveret get QUEUE [--count N] [--requeue]
    leveret close connection NAME [--reason TEXT]
    leveret declare shovel NAME --src-uri URI (--src-queue Q | --src-exchange X) --dest-uri URI
                 [--dest-queue Q | --dest-exchange X] [--ack-mode on-confirm] ...
    leveret list shovels        leveret delete shovel NAME        leveret restart shovel NAME
    leveret status

Every command takes --url, --user, --password, --vhost, --json, --cacert, --insecure. The API
is RabbitMQ's (3.10), so the same commands administer a RabbitMQ node too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.client
import json
import os
import ssl
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from leveret.cli import upload

DEFAULT_URL = "http://127.0.0.1:15672"

# Exit statuses, as rabbitmqctl uses them (sysexits.h): scripts can tell "the broker said no"
# from "there is no broker" and "wrong credentials".
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 69
EXIT_NOPERM = 77


class AdminError(Exception):
    """A failure to report as one line on stderr, with the exit status to return."""

    def __init__(self, message: str, status: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.status = status


class ApiError(AdminError):
    """The API answered with an HTTP error status."""

    def __init__(self, code: int, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason,
                         EXIT_NOPERM if code in (401, 403) else EXIT_REFUSED)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Resource:
    """What a request is about, to say what is missing when the API answers 404."""

    kind: str
    name: str
    vhost: str | None = None

    def __str__(self) -> str:
        where = f" in vhost '{self.vhost}'" if self.vhost is not None else ""
        return f"{self.kind} '{self.name}'{where}"


def _q(segment: str) -> str:
    """One path segment of the API, ``/`` included (the default vhost is ``%2F``)."""
    return urllib.parse.quote(segment, safe="")


def _error_reason(raw: bytes, fallback: str) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip() or fallback
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("error") or fallback)
    return fallback


class ManagementAPI:
    """A small blocking client of the management HTTP API (RabbitMQ's shape)."""

    def __init__(self, url: str, user: str, password: str, *, cacert: str | None = None,
                 insecure: bool = False, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.base = self.url if self.url.endswith("/api") else self.url + "/api"
        self.user = user
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._authorization = f"Basic {token}"
        self.timeout = timeout
        context: ssl.SSLContext | None = None
        if self.base.startswith("https:"):
            context = ssl.create_default_context(cafile=cacert)
            if insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self._context = context
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    def call(self, method: str, path: str, body: Any = None, *,
             about: Resource | None = None, headers: dict[str, str] | None = None,
             query: dict[str, str] | None = None) -> Any:
        """Send one request; return the decoded JSON answer (None when there is none)."""
        url = self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", self._authorization)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc.code, _error_reason(exc.read(), exc.reason), about
                                   ) from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        return self._decoded(raw, method, path)

    def upload(self, method: str, path: str, length: int, chunks: Iterable[bytes], *,
               about: Resource | None = None) -> Any:
        """``call`` for a JSON body too large to hold, given as ``length`` bytes in
        ``chunks``: the server may refuse it before any is sent (``upload.send``)."""
        url = urllib.parse.urlsplit(self.base + path)
        connection = (http.client.HTTPSConnection(url.hostname or "", url.port,
                                                  timeout=self.timeout, context=self._context)
                      if url.scheme == "https" else
                      http.client.HTTPConnection(url.hostname or "", url.port,
                                                 timeout=self.timeout))
        headers = {"Authorization": self._authorization, "Content-Type": "application/json"}
        try:
            answer = upload.send(connection, method, url.path, headers, length, chunks)
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        finally:
            connection.close()
        if answer.status >= 400:
            raise self._http_error(answer.status, _error_reason(answer.body, answer.reason),
                                   about)
        return self._decoded(answer.body, method, path)

    def _decoded(self, raw: bytes, method: str, path: str) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise AdminError(f"the management API at {self.url} answered {method} {path} "
                             "with something that is not JSON") from None

    def get(self, path: str, *, about: Resource | None = None) -> Any:
        return self.call("GET", path, about=about)

    def _unreachable(self, reason: object) -> AdminError:
        if isinstance(reason, ssl.SSLCertVerificationError):
            return AdminError(f"the TLS certificate of {self.url} is not trusted "
                              f"({reason.verify_message}): use --cacert FILE, or --insecure",
                              EXIT_UNREACHABLE)
        detail = "" if isinstance(reason, ConnectionRefusedError) else f" ({reason})"
        return AdminError(f"cannot reach the management API at {self.url}{detail}: is "
                          "`leveret serve` running? (use --url)", EXIT_UNREACHABLE)

    def _http_error(self, code: int, reason: str, about: Resource | None) -> ApiError:
        if code == 401 and reason.lower() in ("login failed", "unauthorized", "unauthorised"):
            return ApiError(code, reason, f"authentication failed for user {self.user}")
        if code in (401, 403):
            return ApiError(code, reason, f"user '{self.user}' is not allowed to do that: "
                                          f"{reason}")
        if code == 404 and about is not None:
            return ApiError(code, reason, self._missing(about))
        if code == 404:
            return ApiError(code, reason, f"not found: {reason}")
        return ApiError(code, reason, reason if 400 <= code < 500 else
                        f"the management API failed (HTTP {code}): {reason}")

    def _missing(self, about: Resource) -> str:
        """Name what is missing: the vhost itself, or the object in it."""
        if about.vhost is not None and about.kind != "vhost":
            try:
                self.call("GET", f"/vhosts/{_q(about.vhost)}")
            except ApiError as exc:
                if exc.code == 404:
                    return f"vhost '{about.vhost}' not found"
            except AdminError:
                pass
            return f"{about.kind} '{about.name}' not found in vhost '{about.vhost}'"
        return f"{about.kind} '{about.name}' not found"


# -- output --------------------------------------------------------------------------------


def _lookup(row: Any, column: str) -> Any:
    """``a.b.c`` reads nested objects, as the API's own ``columns`` parameter does."""
    value = row
    for key in column.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ",".join(_cell(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value).replace("\n", "\\n")


def format_table(rows: Sequence[Any], columns: Sequence[str]) -> str:
    """Columns aligned with two spaces between them; numbers right-aligned."""
    cells = [[_cell(_lookup(row, c)) for c in columns] for row in rows]
    numeric = [all(isinstance(_lookup(row, c), int | float)
                   and not isinstance(_lookup(row, c), bool) for row in rows) and bool(rows)
               for c in columns]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    lines = []
    for line in [list(columns), *cells]:
        padded = [text.rjust(w) if num else text.ljust(w)
                  for text, w, num in zip(line, widths, numeric, strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _select(rows: Sequence[Any], columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: _lookup(row, c) for c in columns} for row in rows]


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _human_duration(ms: float | None) -> str:
    if ms is None:
        return "?"
    seconds = int(ms // 1000)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{seconds}s")
    return " ".join(parts)


# -- list ----------------------------------------------------------------------------------


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


def _list(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    listing: Listing = args.listing
    every_vhost = listing.vhost_path is None or args.all_vhosts
    if listing.vhost_path is not None and args.all_vhosts and args.vhost is not None:
        raise AdminError("give either --vhost or --all-vhosts", EXIT_USAGE)
    vhost = _vhost(args)
    if getattr(args, "of_user", None):
        path = f"/users/{_q(args.of_user)}/permissions"
        about = Resource("user", args.of_user)
        every_vhost = True
    elif every_vhost:
        path, about = listing.node_path, None
    else:
        assert listing.vhost_path is not None
        path = listing.vhost_path.format(vhost=_q(vhost))
        about = Resource("vhost", vhost)
    rows = api.get(path, about=about) or []
    if listing.by_vhost_field and args.vhost is not None:
        rows = [row for row in rows if row.get("vhost") == args.vhost]
    if listing.queue_type is not None:
        rows = [row for row in rows if row.get("type") == listing.queue_type]
    if listing.derive is not None:
        rows = listing.derive(api, rows)
    if args.sort:
        rows.sort(key=lambda row: _sort_key(_lookup(row, args.sort)),
                  reverse=args.sort_reverse)
    columns = _columns(args.columns) or list(listing.columns)
    if not args.columns and every_vhost and listing.vhost_path is not None:
        columns.insert(0, "vhost")
    if args.json:
        _print_json(_select(rows, columns) if args.columns else rows, out)
    else:  # the header alone when there is nothing: scripts can still read it
        out.write(format_table(rows, columns) + "\n")
    return 0


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, _cell(value))


def _columns(text: str | None) -> list[str]:
    return [c.strip() for c in (text or "").split(",") if c.strip()]


# -- declare / delete / purge ----------------------------------------------------------------


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise AdminError(f"{option} is not valid JSON: {exc}", EXIT_USAGE) from None
    if not isinstance(value, dict):
        raise AdminError(f"{option} must be a JSON object, like '{{\"x-max-length\": 10}}'",
                         EXIT_USAGE)
    return value


def _vhost(args: argparse.Namespace) -> str:
    return args.vhost if args.vhost is not None else "/"


def _declare_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    arguments = _json_object(args.arguments, "--arguments")
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
    api.call("PUT", f"/queues/{_q(vhost)}/{_q(args.name)}", body,
             about=Resource("vhost", vhost))
    return _done(args, out, f"declared queue '{args.name}' in vhost '{vhost}'")


def _show_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    item = api.get(f"/queues/{_q(vhost)}/{_q(args.name)}",
                   about=Resource("queue", args.name, vhost))
    if args.json:
        _print_json(item, out)
    else:
        out.write(format_queue(item) + "\n")
    return 0


def _exact_bytes(n: int | None) -> str:
    return "none" if n is None else f"{n} ({_human_bytes(n)})"


def format_queue(item: dict[str, Any]) -> str:
    """A queue as ``key: value`` lines; a stream's log and readers after them."""
    lines: list[tuple[str, str]] = [
        (key, _cell(item.get(key))) for key in (
            "name", "vhost", "type", "state", "durable", "auto_delete", "exclusive",
            "arguments", "policy", "effective_policy_definition", "messages",
            "messages_ready", "messages_unacknowledged", "consumers")]
    lines.append(("message_bytes", _human_bytes(item.get("message_bytes"))))
    stream = item.get("stream")
    if isinstance(stream, dict):
        retention = stream.get("retention") or {}
        age = retention.get("max_age_seconds")
        lines += [
            ("first_offset", _cell(stream.get("first_offset"))),
            ("last_offset", _cell(stream.get("last_offset")) or "(empty)"),
            ("next_offset", _cell(stream.get("next_offset"))),
            ("segments", _cell(stream.get("segments"))),
            ("bytes", _exact_bytes(stream.get("bytes"))),
            ("max_length_bytes", _exact_bytes(retention.get("max_length_bytes"))),
            ("max_age", _human_duration(age * 1000) if age is not None else "none"),
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


def _declare_exchange(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    body = {"type": args.type, "durable": args.durable, "auto_delete": args.auto_delete,
            "internal": args.internal, "arguments": _json_object(args.arguments, "--arguments")}
    api.call("PUT", f"/exchanges/{_q(vhost)}/{_q(args.name)}", body,
             about=Resource("vhost", vhost))
    return _done(args, out, f"declared {args.type} exchange '{args.name}' in vhost '{vhost}'")


def _binding_path(vhost: str, source: str, destination: str, destination_type: str) -> str:
    kind = "q" if destination_type == "queue" else "e"
    return f"/bindings/{_q(vhost)}/e/{_q(source)}/{kind}/{_q(destination)}"


def _binding_words(args: argparse.Namespace) -> str:
    return (f"exchange '{args.source}' to {args.destination_type} '{args.destination}' "
            f"with routing key '{args.routing_key}'")


def _declare_binding(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    body = {"routing_key": args.routing_key,
            "arguments": _json_object(args.arguments, "--arguments")}
    path = _binding_path(vhost, args.source, args.destination, args.destination_type)
    try:
        api.call("POST", path, body)
    except ApiError as exc:
        if exc.code != 404:
            raise
        raise ApiError(404, exc.reason, _missing_endpoint(api, vhost, args)) from None
    return _done(args, out, f"bound {_binding_words(args)} in vhost '{vhost}'")


def _missing_endpoint(api: ManagementAPI, vhost: str, args: argparse.Namespace) -> str:
    """Which end of a binding is missing (or the vhost)."""
    ends = [("exchanges", "exchange", args.source),
            ("queues" if args.destination_type == "queue" else "exchanges",
             args.destination_type, args.destination)]
    for collection, kind, name in ends:
        about = Resource(kind, name, vhost)
        try:
            api.get(f"/{collection}/{_q(vhost)}/{_q(name or 'amq.default')}", about=about)
        except ApiError as exc:
            if exc.code == 404:
                return str(exc)
            raise
    return f"binding from {_binding_words(args)} not found in vhost '{vhost}'"


def _delete_binding(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    path = _binding_path(vhost, args.source, args.destination, args.destination_type)
    try:
        bindings = api.get(path) or []
    except ApiError as exc:
        if exc.code != 404:
            raise
        raise ApiError(404, exc.reason, _missing_endpoint(api, vhost, args)) from None
    wanted = None if args.arguments is None else _json_object(args.arguments, "--arguments")
    matching = [b for b in bindings if b.get("routing_key") == args.routing_key
                and (wanted is None or b.get("arguments", {}) == wanted)]
    if not matching:
        raise AdminError(f"binding from {_binding_words(args)} not found in vhost '{vhost}'")
    if len(matching) > 1:
        raise AdminError(f"{len(matching)} bindings from {_binding_words(args)} differ only "
                         "in their arguments: say which with --arguments JSON")
    key = matching[0].get("properties_key") or "~"
    api.call("DELETE", f"{path}/{_q(key)}",
             about=Resource("binding", f"{args.source}->{args.destination}", vhost))
    return _done(args, out, f"deleted the binding from {_binding_words(args)} in vhost "
                            f"'{vhost}'")


def _delete_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    query = {k: "true" for k, on in (("if-unused", args.if_unused),
                                     ("if-empty", args.if_empty)) if on}
    api.call("DELETE", f"/queues/{_q(vhost)}/{_q(args.name)}", query=query or None,
             about=Resource("queue", args.name, vhost))
    return _done(args, out, f"deleted queue '{args.name}' in vhost '{vhost}'")


def _delete_exchange(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    query = {"if-unused": "true"} if args.if_unused else None
    api.call("DELETE", f"/exchanges/{_q(vhost)}/{_q(args.name)}", query=query,
             about=Resource("exchange", args.name, vhost))
    return _done(args, out, f"deleted exchange '{args.name}' in vhost '{vhost}'")


def _purge_queue(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    api.call("DELETE", f"/queues/{_q(vhost)}/{_q(args.name)}/contents",
             about=Resource("queue", args.name, vhost))
    return _done(args, out, f"purged queue '{args.name}' in vhost '{vhost}'")


# -- users, vhosts, permissions, policies ------------------------------------------------------


def _add_user(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    tags = ",".join(_columns(args.tags))
    api.call("PUT", f"/users/{_q(args.name)}", {"password": args.new_password, "tags": tags})
    return _done(args, out, f"added user '{args.name}'" + (f" (tags: {tags})" if tags else ""))


def _delete_user(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    api.call("DELETE", f"/users/{_q(args.name)}", about=Resource("user", args.name))
    return _done(args, out, f"deleted user '{args.name}'")


def _add_vhost(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {}
    if args.description is not None:
        body["description"] = args.description
    if args.tags is not None:
        body["tags"] = ",".join(_columns(args.tags))
    if args.default_queue_type is not None:
        body["default_queue_type"] = args.default_queue_type
    api.call("PUT", f"/vhosts/{_q(args.name)}", body)
    return _done(args, out, f"added vhost '{args.name}'")


def _delete_vhost(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    api.call("DELETE", f"/vhosts/{_q(args.name)}", about=Resource("vhost", args.name))
    return _done(args, out, f"deleted vhost '{args.name}'")


def _user_in_vhost(api: ManagementAPI, user: str, vhost: str) -> Resource:
    """For a 404 on /permissions/{vhost}/{user}: is it the vhost or the user?"""
    try:
        api.get(f"/vhosts/{_q(vhost)}", about=Resource("vhost", vhost))
    except ApiError as exc:
        if exc.code == 404:
            return Resource("vhost", vhost)
        raise
    return Resource("user", user)


def _set_permissions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    body = {"configure": args.configure, "write": args.write, "read": args.read}
    try:
        api.call("PUT", f"/permissions/{_q(vhost)}/{_q(args.user_name)}", body)
    except ApiError as exc:
        # RabbitMQ 3.10 answers 400 "vhost_or_user_not_found"
        if exc.code == 404 or "not_found" in exc.reason:
            missing = _user_in_vhost(api, args.user_name, vhost)
            raise ApiError(404, exc.reason, f"{missing} not found") from None
        raise
    return _done(args, out, f"set permissions of user '{args.user_name}' in vhost '{vhost}': "
                            f"configure '{args.configure}' write '{args.write}' "
                            f"read '{args.read}'")


def _clear_permissions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    try:
        api.call("DELETE", f"/permissions/{_q(vhost)}/{_q(args.user_name)}")
    except ApiError as exc:
        if exc.code != 404:
            raise
        missing = _user_in_vhost(api, args.user_name, vhost)
        message = (f"vhost '{vhost}' not found" if missing.kind == "vhost" else
                   f"user '{args.user_name}' has no permissions in vhost '{vhost}'")
        raise ApiError(404, exc.reason, message) from None
    return _done(args, out, f"cleared permissions of user '{args.user_name}' in vhost "
                            f"'{vhost}'")


def _set_policy(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    body = {"pattern": args.pattern,
            "definition": _json_object(args.definition, "DEFINITION"),
            "priority": args.priority, "apply-to": args.apply_to}
    api.call("PUT", f"/policies/{_q(vhost)}/{_q(args.name)}", body,
             about=Resource("vhost", vhost))
    return _done(args, out, f"set policy '{args.name}' in vhost '{vhost}'")


def _clear_policy(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    api.call("DELETE", f"/policies/{_q(vhost)}/{_q(args.name)}",
             about=Resource("policy", args.name, vhost))
    return _done(args, out, f"cleared policy '{args.name}' in vhost '{vhost}'")


# -- shovels --------------------------------------------------------------------------------


def _delete_after(text: str) -> str | int:
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


def _declare_shovel(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    body = {"value": _shovel_value(args)}
    try:
        api.call("PUT", f"/parameters/shovel/{_q(vhost)}/{_q(args.name)}", body,
                 about=Resource("vhost", vhost))
    except ApiError as exc:
        if exc.code == 404:  # RabbitMQ's answer for a missing vhost: "vhost_not_found"
            raise ApiError(404, exc.reason, f"vhost '{vhost}' not found") from None
        if exc.code == 400 and exc.reason.startswith("Validation failed"):
            raise _validation_failure(exc) from None
        raise
    return _done(args, out, f"declared shovel '{args.name}' in vhost '{vhost}'")


def _delete_shovel(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    api.call("DELETE", f"/parameters/shovel/{_q(vhost)}/{_q(args.name)}",
             about=Resource("shovel", args.name, vhost))
    return _done(args, out, f"deleted shovel '{args.name}' in vhost '{vhost}'")


def _restart_shovel(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    api.call("DELETE", f"/shovels/vhost/{_q(vhost)}/{_q(args.name)}/restart",
             about=Resource("shovel", args.name, vhost))
    return _done(args, out, f"restarted shovel '{args.name}' in vhost '{vhost}'")


# -- definitions -----------------------------------------------------------------------------


def _export_definitions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    if args.vhost is None:
        definitions = api.get("/definitions")
    else:
        definitions = api.get(f"/definitions/{_q(args.vhost)}",
                              about=Resource("vhost", args.vhost))
    text = json.dumps(definitions, indent=2, ensure_ascii=False) + "\n"
    if args.file == "-":
        out.write(text)
        return 0
    try:
        Path(args.file).write_text(text)
    except OSError as exc:
        raise AdminError(f"cannot write {args.file}: {exc.strerror or exc}") from None
    counts = ", ".join(f"{len(definitions.get(k) or [])} {k}"
                       for k in ("vhosts", "users", "queues", "exchanges", "bindings",
                                 "policies") if k in definitions)
    return _done(args, out, f"exported definitions to {args.file} ({counts})")


def _import_definitions(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    except OSError as exc:
        raise AdminError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    try:
        definitions = json.loads(text)
    except ValueError as exc:
        raise AdminError(f"{args.file} is not JSON: {exc}") from None
    if not isinstance(definitions, dict):
        raise AdminError(f"{args.file} is not a definitions export (a JSON object)")
    if args.vhost is None:
        api.call("POST", "/definitions", definitions)
    else:
        api.call("POST", f"/definitions/{_q(args.vhost)}", definitions,
                 about=Resource("vhost", args.vhost))
    return _done(args, out, f"imported definitions from {args.file}")


# -- messages --------------------------------------------------------------------------------

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


def _publish(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    exchange = args.exchange or "amq.default"
    path = f"/exchanges/{_q(vhost)}/{_q(exchange)}/publish"
    about = Resource("exchange", exchange, vhost)
    if args.file is not None:
        answer = _publish_file(api, args, path, about)
    else:
        answer = api.call("POST", path, {
            "properties": _message_properties(args), "routing_key": args.routing_key,
            "payload": args.body, "payload_encoding": "string"}, about=about)
    if args.json:
        _print_json(answer, out)
        return 0
    routed = bool(answer and answer.get("routed"))
    where = f"exchange '{args.exchange}' with routing key '{args.routing_key}'"
    out.write(f"published to {where}: " +
              ("routed\n" if routed else "not routed (no queue is bound for it)\n"))
    return 0


def _get(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    vhost = _vhost(args)
    body = {"count": args.count, "encoding": args.encoding, "truncate": args.truncate,
            "ackmode": "ack_requeue_true" if args.requeue else "ack_requeue_false"}
    messages = api.call("POST", f"/queues/{_q(vhost)}/{_q(args.queue)}/get", body,
                        about=Resource("queue", args.queue, vhost)) or []
    if args.json:
        _print_json(messages, out)
    elif messages:
        columns = _columns(args.columns) or ["exchange", "routing_key", "redelivered",
                                             "message_count", "payload_bytes",
                                             "payload_encoding", "payload"]
        out.write(format_table(messages, columns) + "\n")
    else:
        out.write(f"queue '{args.queue}' is empty\n")
    return 0


# -- connections and status --------------------------------------------------------------------


def _close_connection(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    headers = {"X-Reason": args.reason} if args.reason else None
    api.call("DELETE", f"/connections/{_q(args.name)}", headers=headers,
             about=Resource("connection", args.name))
    return _done(args, out, f"closed connection '{args.name}'")


def _status(api: ManagementAPI, args: argparse.Namespace, out: TextIO) -> int:
    overview = api.get("/overview") or {}
    node: dict[str, Any] = {}
    if overview.get("node"):
        try:
            node = api.get(f"/nodes/{_q(overview['node'])}") or {}
        except ApiError:  # a node view is optional; the overview says enough
            node = {}
    if args.json:
        _print_json({"overview": overview, "node": node}, out)
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
        lines.append(("uptime", _human_duration(node.get("uptime"))))
    lines += [(k, str(totals.get(k, 0)))
              for k in ("connections", "channels", "queues", "consumers", "exchanges")]
    lines.append(("messages", f"{queued.get('messages', 0)} ({queued.get('messages_ready', 0)} "
                              f"ready, {queued.get('messages_unacknowledged', 0)} unacked)"))
    rates = [f"{name} {_lookup(stats, key + '_details.rate') or 0:g}/s"
             for name, key in (("publish", "publish"), ("deliver", "deliver_get"),
                               ("ack", "ack")) if key in stats]
    if rates:
        lines.append(("rates", ", ".join(rates)))
    if "mem_used" in node:
        lines.append(("memory", f"{_human_bytes(node.get('mem_used'))} used, high watermark "
                                f"{_human_bytes(node.get('mem_limit'))}"))
    if "disk_free" in node:
        lines.append(("disk free", f"{_human_bytes(node.get('disk_free'))}, low watermark "
                                   f"{_human_bytes(node.get('disk_free_limit'))}"))
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


def _done(args: argparse.Namespace, out: TextIO, message: str) -> int:
    """A change went through: say so, unless the caller asked for JSON (then say nothing:
    the API returned no body, and the exit status is the answer)."""
    if not args.json:
        out.write(message + "\n")
    return 0


# -- the parser --------------------------------------------------------------------------------

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
        p = v.command("list", LIST_HELP, name, listing.help, _list)
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
    p = v.command("declare", DECLARE_HELP, "queue", "declare a queue", _declare_queue)
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
                  _show_queue)
    p.add_argument("name")

    p = v.command("declare", DECLARE_HELP, "exchange", "declare an exchange", _declare_exchange)
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
            ("declare", DECLARE_HELP, _declare_binding, "bind an exchange to a queue"),
            ("delete", DELETE_HELP, _delete_binding, "delete a binding")):
        p = v.command(verb, verb_help, "binding", help, command)
        p.add_argument("source", help="the exchange messages come from")
        p.add_argument("destination", help="the queue (or exchange) they go to")
        p.add_argument("--destination-type", choices=["queue", "exchange"], default="queue")
        p.add_argument("--routing-key", default="", help="binding key (default: empty)")
        p.add_argument("--arguments", metavar="JSON",
                       help="binding arguments as a JSON object (headers exchanges)")

    p = v.command("delete", DELETE_HELP, "queue", "delete a queue", _delete_queue)
    p.add_argument("name")
    p.add_argument("--if-unused", action="store_true", help="only if it has no consumers")
    p.add_argument("--if-empty", action="store_true", help="only if it has no messages")
    p = v.command("delete", DELETE_HELP, "exchange", "delete an exchange", _delete_exchange)
    p.add_argument("name")
    p.add_argument("--if-unused", action="store_true", help="only if nothing is bound to it")

    p = v.command("purge", "remove every ready message of a queue", "queue",
                  "remove a queue's ready messages", _purge_queue)
    p.add_argument("name")


def _access_parsers(v: _Verbs) -> None:
    p = v.command("add", ADD_HELP, "user", "add (or replace) a user", _add_user)
    p.add_argument("name")
    p.add_argument("new_password", metavar="PASSWORD", help="the new user's password")
    p.add_argument("--tags", default="",
                   help="comma-separated: administrator, monitoring, management, "
                        "policymaker, impersonator")
    p = v.command("delete", DELETE_HELP, "user", "delete a user", _delete_user)
    p.add_argument("name")

    p = v.command("add", ADD_HELP, "vhost", "add a virtual host", _add_vhost)
    p.add_argument("name")
    p.add_argument("--description")
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--default-queue-type", choices=["classic", "quorum", "stream"])
    p = v.command("delete", DELETE_HELP, "vhost", "delete a virtual host and all in it",
                  _delete_vhost)
    p.add_argument("name")

    p = v.command("set", SET_HELP, "permissions", "set a user's permissions in --vhost",
                  _set_permissions)
    p.add_argument("user_name", metavar="USER")
    for kind in ("configure", "write", "read"):
        p.add_argument(f"--{kind}", default=".*", metavar="REGEX",
                       help=f"names the user may {kind} (default: .*)")
    p = v.command("clear", CLEAR_HELP, "permissions", "remove a user's permissions in --vhost",
                  _clear_permissions)
    p.add_argument("user_name", metavar="USER")

    p = v.command("set", SET_HELP, "policy", "set a policy in --vhost", _set_policy)
    p.add_argument("name")
    p.add_argument("pattern", help="regular expression of the names it applies to")
    p.add_argument("definition", help='JSON object, e.g. \'{"max-length": 1000}\'')
    p.add_argument("--priority", type=int, default=0)
    p.add_argument("--apply-to", default="all",
                   choices=["all", "queues", "exchanges", "classic_queues", "quorum_queues",
                            "streams"])
    p = v.command("clear", CLEAR_HELP, "policy", "remove a policy from --vhost", _clear_policy)
    p.add_argument("name")

    p = v.command("export", "write the broker's definitions to a file", "definitions",
                  "users, vhosts, permissions, policies, queues, exchanges and bindings "
                  "(only --vhost's when given)", _export_definitions)
    p.add_argument("file", metavar="FILE", help="where to write them (- for stdout)")
    p = v.command("import", "load definitions into the broker", "definitions",
                  "load a definitions export (into --vhost only, when given)",
                  _import_definitions)
    p.add_argument("file", metavar="FILE", help="a definitions export (- for stdin)")

    p = v.command("close", "close a client connection", "connection",
                  "close a connection (its name is in `leveret list connections`)",
                  _close_connection)
    p.add_argument("name")
    p.add_argument("--reason", help="the text the client is told")


def _shovel_parsers(v: _Verbs) -> None:
    p = v.command("declare", DECLARE_HELP, "shovel",
                  "declare (or replace) a dynamic shovel in --vhost: the shovel parameter",
                  _declare_shovel)
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
    p.add_argument("--src-delete-after", type=_delete_after, metavar="never|queue-length|N",
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
                  _delete_shovel)
    p.add_argument("name")
    p = v.command("restart", "stop and start a dynamic shovel", "shovel",
                  "stop a dynamic shovel and start it again (reconnecting both ends)",
                  _restart_shovel)
    p.add_argument("name")


def _message_parsers(v: _Verbs) -> None:
    p = v.single("publish", "publish one message through the API", _publish)
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

    p = v.single("get", "fetch messages from a queue through the API", _get)
    p.add_argument("queue")
    p.add_argument("--count", type=int, default=1, help="at most this many (default: 1)")
    p.add_argument("--requeue", action="store_true",
                   help="put them back (default: they are acknowledged and removed)")
    p.add_argument("--encoding", choices=["auto", "base64"], default="auto",
                   help="auto: text bodies as text, binary ones in base64")
    p.add_argument("--truncate", type=int, default=50000,
                   help="show at most this many bytes of each body (default: %(default)s)")
    p.add_argument("--columns", metavar="A,B", help="columns to show")

    v.single("status", "the broker's version, counts, memory, disk and alarms", _status)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m leveret.cli.admin ...``: the admin verbs alone (``leveret`` has them too)."""
    parser = argparse.ArgumentParser(prog="leveret", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
