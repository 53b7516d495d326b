"""AMQP URIs read as RabbitMQ 3.10.8 reads them (amqp_client's ``uri_parser`` and
``amqp_uri``), for shovel and federation definitions: which URIs are accepted, why the
others are not (the Erlang term RabbitMQ's validation message prints), the vhost of a URI
without a host (this broker), and the URI as RabbitMQ shows it without its credentials.

RabbitMQ's reading differs from ``urllib``'s in ways definitions can see: ``amqp://`` is the
vhost "/" but ``amqp:///`` the vhost "" (and ``amqp:///%2f`` "/"); a port is anything
``list_to_integer`` reads; an unclosed ``[`` is a host; only some query keys are allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# amqp_params_network's and amqp_params_direct's fields, in record order: the query keys
# amqp_uri looks at (the others are ignored).
NETWORK_FIELDS = ("username", "password", "virtual_host", "host", "port", "channel_max",
                  "frame_max", "heartbeat", "connection_timeout", "ssl_options",
                  "auth_mechanisms", "client_properties", "socket_options")
DIRECT_FIELDS = ("username", "password", "virtual_host", "node", "adapter_info",
                 "client_properties")
INTEGER_FIELDS = ("channel_max", "frame_max", "heartbeat", "connection_timeout")
# amqps:// query keys and how each is read, in amqp_uri's order
SSL_KEYS = (("cacertfile", "str"), ("certfile", "str"), ("keyfile", "str"),
            ("verify", "atom"), ("fail_if_no_peer_cert", "bool"), ("password", "str"),
            ("server_name_indication", "str"), ("depth", "int"))


class Atom(str):
    """An Erlang atom, printed bare (or quoted when it must be)."""


class Text(str):
    """An Erlang string (a list of characters), printed "..." or [] when empty."""


class UriError(Exception):
    """Why a URI was refused: ``term`` is the Erlang term, ready to print."""

    def __init__(self, term: Any) -> None:
        super().__init__(term)
        self.term = term


class _Thrown(Exception):
    def __init__(self, term: Any) -> None:
        super().__init__(term)
        self.term = term


@dataclass(frozen=True)
class AmqpUri:
    scheme: str
    host: str | None  # None: this broker (RabbitMQ's direct connection)
    port: int | None
    vhost: str
    userinfo: list[str] = field(default_factory=list)


def show(term: Any) -> str:
    """An Erlang term as ``io_lib:format("~p")`` prints it, on one line."""
    if isinstance(term, Atom):
        return term if re.fullmatch(r"[a-z][A-Za-z0-9_@]*", term) else f"'{term}'"
    if isinstance(term, Text):
        if not term:
            return "[]"
        if all(32 <= ord(c) < 127 for c in term):
            return '"' + term.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return "[" + ",".join(str(ord(c)) for c in term) + "]"
    if isinstance(term, tuple):
        return "{" + ",".join(show(t) for t in term) + "}"
    if isinstance(term, list):
        return "[" + ",".join(show(t) for t in term) + "]"
    if isinstance(term, bool):
        return "true" if term else "false"
    return str(term)


def _split(part: str, pattern: str, no_match: Any, skip_left: int = 1,
           skip_right: int = 1) -> Any:
    """uri_parser:split_uri: around the first match, keeping the separator when told."""
    m = re.search(pattern, part)
    if m is None:
        return no_match
    i = m.start()
    return part[:i + 1 - skip_left], part[i + skip_right:]


def _to_integer(text: str) -> int:
    """erlang:list_to_integer: an optional sign and decimal digits, nothing else."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise _Thrown((Atom("EXIT"), (Atom("badarg"), Text(text))))
    return int(text)


def _host_port(host_port: str) -> dict[str, Any]:
    if host_port.startswith("["):
        host, colon_port = _split(host_port[1:], r"\]", (host_port[1:], ""))
        found = _split(colon_port, ":", None, 0, 1)
        if found is None:
            if colon_port:
                raise _Thrown((Atom("invalid_port"), Text(colon_port)))
            return {"host": host}
        return {"host": host, "port": _to_integer(found[1])}
    host, port = _split(host_port, ":", (host_port, None))
    return {"host": host} if port is None else {"host": host, "port": _to_integer(port)}


def _query(text: str) -> list[Any]:
    if not text:
        return []
    return [(Text(p[0]), Text(p[1])) if (p := _split(param, "=", None)) else Text(param)
            for param in text.split("&")]


def _rest(rest: str) -> dict[str, Any]:
    """uri_parser:parse_uri_rest and merge_keylists: empty values are no values."""
    parts: dict[str, Any] = {}
    if rest.startswith("//"):
        authority, rest = _split(rest[2:], r"/|\?|#", (rest[2:], ""), 1, 0)
        userinfo, host_port = _split(authority, "@", ("", authority))
        parts["userinfo"] = userinfo.split(":") if userinfo else []
        parts.update(_host_port(host_port))
    path_query = rest.split("#", 1)[0]
    path, query = _split(path_query, r"\?", (path_query, ""))
    parts["path"], parts["query"] = path, _query(query)
    return {k: v for k, v in parts.items() if v != "" or k == "userinfo"}


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        digits = text[i + 1:i + 3]
        if len(digits) < 2:
            raise _Thrown((Atom("unterminated_entity"),
                           [Atom("%"), *(ord(d) for d in text[i + 1:])]))
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", digits):
            raise _Thrown((Atom("invalid_entitiy"),  # sic, RabbitMQ's spelling
                           [Atom("%"), ord(digits[0]), ord(digits[1])]))
        out.append(chr(int(digits, 16)))
        i += 3
    # the characters are bytes (list_to_binary): read them as UTF-8
    return "".join(out).encode("latin-1").decode("utf-8", "surrogateescape")


def _parse(uri: str) -> AmqpUri:
    if ":" not in uri:
        raise _Thrown((Atom("unable_to_parse_uri"), Atom("no_scheme")))
    scheme, rest = uri.split(":", 1)
    try:
        parts = _rest(rest)
    except _Thrown as exc:
        raise _Thrown((Atom("unable_to_parse_uri"),
                       (Atom("malformed_uri"), Text(uri), exc.term))) from None
    if scheme.lower() not in ("amqp", "amqps"):
        raise _Thrown((Atom("unexpected_uri_scheme"), Text(scheme.lower())))
    port = parts.get("port")
    if port is not None and not 0 < port <= 65535:
        raise _Thrown((Atom("port_out_of_range"), port))
    path = parts.get("path")
    if path is None:
        vhost = "/"
    elif not path.startswith("/"):
        raise _Thrown((Atom("case_clause"), Text(path)))
    elif "/" in path[1:]:
        raise _Thrown((Atom("invalid_vhost"), Text(path[1:])))
    else:
        vhost = _unescape(path[1:])
    host = _unescape(parts["host"]) if "host" in parts else None
    if host is None and port is not None:
        raise _Thrown(Atom("port_requires_host"))
    query = parts.get("query", [])
    if host is not None:
        _mechanisms(query)
    userinfo = [_unescape(u) for u in parts["userinfo"][:2]] if "userinfo" in parts else []
    if host is not None and scheme.lower() == "amqps":
        _ssl_options(query)
    _query_fields(query, DIRECT_FIELDS if host is None else NETWORK_FIELDS)
    return AmqpUri(scheme.lower(), host, port, vhost, userinfo)


def _lookup(query: list[Any], key: str) -> str | None:
    for item in query:
        if isinstance(item, tuple) and item[0] == key:
            return str(item[1])
    return None


def _mechanisms(query: list[Any]) -> None:
    for item in query:
        if isinstance(item, tuple) and item[0] == "auth_mechanism":
            tokens = [t for t in item[1].split(":") if t]
            if len(tokens) not in (1, 2):
                raise _Thrown((Atom("not_mechanism"), [Atom(t) for t in tokens]))


def _ssl_options(query: list[Any]) -> None:
    for key, kind in SSL_KEYS:
        value = _lookup(query, key)
        if value is None:
            continue
        try:
            if kind == "int":
                _integer_parameter(value)
            elif kind == "bool" and value not in ("true", "false"):
                raise _Thrown((Atom("require_boolean"), Atom(value)))
            elif kind == "str":
                _unescape(value)
        except _Thrown as exc:
            raise _Thrown((Atom("invalid_ssl_parameter"), Atom(key), Text(value), query,
                           exc.term)) from None


def _integer_parameter(value: str) -> int:
    try:
        return _to_integer(value)
    except _Thrown:
        raise _Thrown((Atom("not_an_integer"), Text(value))) from None


def _query_fields(query: list[Any], fields: tuple[str, ...]) -> None:
    for name in fields:
        value = _lookup(query, name)
        if value is None:
            continue
        if name in INTEGER_FIELDS:
            try:
                _integer_parameter(value)
            except _Thrown as exc:
                reason = exc.term
            else:
                continue
        elif name == "password":
            continue
        else:
            reason = (Atom("parameter_unconfigurable_in_query"), Atom(name), Text(value))
        raise _Thrown((Atom("invalid_amqp_params_parameter"), Atom(name), Text(value), query,
                       reason))


def parse(uri: str) -> AmqpUri:
    """The URI as amqp_uri:parse reads it; ``UriError`` with RabbitMQ's term if it fails."""
    try:  # Erlang reads the URI as bytes (binary_to_list)
        return _parse(uri.encode("utf-8", "surrogateescape").decode("latin-1"))
    except _Thrown as exc:
        raise UriError((exc.term, Text(uri))) from None


def error(uri: str) -> str | None:
    """RabbitMQ's validation message for a URI it refuses, or None."""
    try:
        parse(uri)
    except UriError as exc:
        return f'"{uri}" not a valid URI: {show(exc.term)}'
    return None


def remove_credentials(uri: str) -> str:
    """amqp_uri:remove_credentials: scheme, host, port and path (no user, no query), as
    RabbitMQ shows a shovel's URIs."""
    scheme, _, rest = uri.partition(":")
    try:
        parts = _rest(rest)
    except _Thrown:
        return uri
    port = f":{parts['port']}" if "port" in parts else ""
    return f"{scheme}://{parts.get('host', '')}{port}{parts.get('path', '')}"
