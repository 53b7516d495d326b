"""AMQP URIs as RabbitMQ reads them: the URI spec plus the query parameters of RabbitMQ's
Erlang client (``amqp_uri`` in RabbitMQ 3.10.8, which its shovel and federation plugins
use), so a URI RabbitMQ takes means the same here.

    amqps://user:pass@host:port/vhost?heartbeat=10&cacertfile=/ca.pem&verify=verify_peer

Sans-I/O on purpose: the client connects with what ``parse`` returns, and the broker
validates shovel and federation URIs with it (``broker`` may not import the client).

``UriError`` says what is wrong in words that name the parameter; where RabbitMQ 3.10.8
refuses the same URI, ``reason`` also carries RabbitMQ's reason as Erlang prints it, so
parameter validation can answer with RabbitMQ's text. Where RabbitMQ accepts a value that
can never work (``verify=sometimes`` fails later, at connection time) leveret refuses it at
once, and ``reason`` is None.

As RabbitMQ does: query values are not percent-decoded except the TLS options'; the first
occurrence of a parameter wins (``auth_mechanism`` may repeat: a list of preferences);
unknown parameters are ignored, so URIs written for other clients still parse; TLS options
on an ``amqp://`` URI are ignored; a URI without a host (RabbitMQ's direct connection, this
broker for a shovel) ignores the network parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = ("amqp", "amqps")
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
VERIFY_MODES = ("verify_peer", "verify_none")
SNI_DISABLE = "disable"
# the mechanisms leveret's client speaks, as RabbitMQ's auth_mechanism values name them
MECHANISMS = {"plain": "PLAIN", "amqplain": "AMQPLAIN", "external": "EXTERNAL"}
DEFAULT_MECHANISMS: tuple[str, ...] = ("PLAIN", "AMQPLAIN")
# integer parameters and the AMQP field they end up in: short (16 bits) or long (32 bits)
INTEGER_LIMITS = {"channel_max": 0xFFFF, "frame_max": 0xFFFFFFFF, "heartbeat": 0xFFFF,
                  "connection_timeout": 0xFFFFFFFF, "depth": 0xFFFF}
# amqp_params_network / amqp_params_direct record fields, in order: a query key naming
# one of them is read (integers) or refused (parameter_unconfigurable_in_query)
NETWORK_FIELDS = ("username", "password", "virtual_host", "host", "port", "channel_max",
                  "frame_max", "heartbeat", "connection_timeout", "ssl_options",
                  "auth_mechanisms", "client_properties", "socket_options")
DIRECT_FIELDS = ("username", "password", "virtual_host", "node", "adapter_info",
                 "client_properties")
TLS_KEYS = ("cacertfile", "certfile", "keyfile", "verify", "fail_if_no_peer_cert",
            "password", "server_name_indication", "depth")
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_ATOM = re.compile(r"[a-z][a-zA-Z0-9_@]*\Z")


class UriError(ValueError):
    """Why a URI cannot be used: ``parameter`` names the query parameter at fault (None
    for the rest of the URI); ``reason`` is RabbitMQ's reason term, or None where RabbitMQ
    would accept the URI."""

    def __init__(self, text: str, parameter: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(text)
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """The TLS query parameters of an ``amqps://`` URI (None: not given).

    ``verify`` None is RabbitMQ 3.10.8's default: no certificate verification (it logs a
    warning; RabbitMQ 4's client verifies by default). ``server_name_indication`` None
    means the URI's host; ``"disable"`` sends no SNI and skips the host name check.
    ``fail_if_no_peer_cert`` is a server-side setting: accepted, as RabbitMQ accepts it,
    with no effect on a client."""

    cacertfile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: str | None = None  # the key file's passphrase, not the AMQP password
    verify: str | None = None
    fail_if_no_peer_cert: bool | None = None
    server_name_indication: str | None = None
    depth: int | None = None


@dataclass(frozen=True, slots=True)
class AmqpUri:
    """A parsed URI; None for what it does not say (the client has defaults)."""

    scheme: str
    host: str | None
    port: int | None
    username: str | None
    password: str | None
    vhost: str | None
    channel_max: int | None = None
    frame_max: int | None = None
    heartbeat: int | None = None
    connection_timeout: int | None = None  # milliseconds
    auth_mechanisms: tuple[str, ...] = DEFAULT_MECHANISMS
    tls: TLSOptions | None = None  # set for amqps://


# -- Erlang terms, as ~p prints them (without its line breaks) -------------------------------


def erl_string(s: str) -> str:
    """An Erlang string (a list of characters): "..." when printable, else a list."""
    if s == "":
        return "[]"
    if all(32 <= ord(c) < 127 or 160 <= ord(c) < 256 for c in s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ",".join(str(ord(c)) for c in s) + "]"


def erl_atom(name: str) -> str:
    return name if _ATOM.match(name) else "'" + name.replace("'", "\\'") + "'"


def _erl_query(query: list[tuple[str, str | None]]) -> str:
    """uri_parser's query proplist: ``{"k","v"}``, or the bare string of a key without =."""
    items = [erl_string(k) if v is None else f"{{{erl_string(k)},{erl_string(v)}}}"
             for k, v in query]
    return "[" + ",".join(items) + "]"


# -- parsing ----------------------------------------------------------------------------------


class _Refused(Exception):
    """A value refused: ``text`` for people, ``reason`` RabbitMQ's term (None where
    RabbitMQ accepts it). ``parse`` turns it into a UriError naming the parameter."""

    def __init__(self, text: str, reason: str | None = None) -> None:
        super().__init__(text)
        self.text, self.reason = text, reason


def split_query(query: str) -> list[tuple[str, str | None]]:
    """RabbitMQ's uri_parser: split on & and the first =, decode nothing."""
    if not query:
        return []
    pairs: list[tuple[str, str | None]] = []
    for param in query.split("&"):
        key, eq, value = param.partition("=")
        pairs.append((key, value) if eq else (param, None))
    return pairs


def _first(query: list[tuple[str, str | None]], key: str) -> str | None:
    for k, v in query:
        if k == key and v is not None:
            return v
    return None


def _unescape(value: str) -> str:
    """amqp_uri's percent-decoding of TLS options: a broken escape is an error."""
    i = value.find("%")
    while i != -1:
        rest = value[i + 1:i + 3]
        if len(rest) < 2:
            chars = ",".join(["'%'"] + [str(ord(c)) for c in rest])
            raise _Refused(f"an unterminated %-escape in {value!r}",
                           f"{{unterminated_entity,[{chars}]}}")
        if not all(c in "0123456789abcdefABCDEF" for c in rest):
            raise _Refused(f"an invalid %-escape %{rest} in {value!r}",
                           f"{{invalid_entitiy,['%',{ord(rest[0])},{ord(rest[1])}]}}")
        i = value.find("%", i + 3)
    return unquote(value)


def _integer(key: str, value: str) -> int:
    if not _INTEGER.match(value):
        raise _Refused(f"must be an integer, got {value!r}",
                       f"{{not_an_integer,{erl_string(value)}}}")
    number = int(value)
    if not 0 <= number <= INTEGER_LIMITS[key]:
        raise _Refused(f"must be between 0 and {INTEGER_LIMITS[key]}, got {number}")
    return number


def _tls_value(key: str, value: str) -> str | bool | int:
    if key == "verify":
        if value not in VERIFY_MODES:
            raise _Refused(f"must be verify_peer or verify_none, got {value!r}")
        return value
    if key == "fail_if_no_peer_cert":
        if value not in ("true", "false"):
            raise _Refused(f"must be true or false, got {value!r}",
                           f"{{require_boolean,{erl_atom(value)}}}")
        return value == "true"
    if key == "depth":
        return _integer(key, value)
    decoded = _unescape(value)
    if key in ("cacertfile", "certfile", "keyfile", "server_name_indication") and not decoded:
        raise _Refused("must not be empty")
    return decoded


def _tls_options(query: list[tuple[str, str | None]]) -> TLSOptions:
    found: dict[str, str | bool | int] = {}
    for key in TLS_KEYS:  # RabbitMQ checks them in this order
        value = _first(query, key)
        if value is None:
            continue
        try:
            found[key] = _tls_value(key, value)
        except _Refused as exc:
            reason = exc.reason and (f"{{invalid_ssl_parameter,{key},{erl_string(value)},"
                                     f"{_erl_query(query)},{exc.reason}}}")
            raise UriError(f"URI query parameter {key}: {exc.text}", key, reason) from None
    return TLSOptions(**found)  # type: ignore[arg-type]


def _mechanism(value: str) -> str:
    tokens = [t for t in value.split(":") if t]
    if len(tokens) not in (1, 2):
        atoms = ",".join(erl_atom(t) for t in tokens)
        raise UriError(f"URI query parameter auth_mechanism: not a mechanism: {value!r}",
                       "auth_mechanism",
                       f"{{not_mechanism,[{atoms}]}}")
    if len(tokens) == 2 and tokens[0] != "amqp_auth_mechanisms":
        raise UriError(f"URI query parameter auth_mechanism: {value!r} names an Erlang "
                       f"module; leveret's client offers {', '.join(MECHANISMS)}",
                       "auth_mechanism")
    name = tokens[-1].lower()
    if name not in MECHANISMS:
        raise UriError(f"URI query parameter auth_mechanism: must be one of "
                       f"{', '.join(MECHANISMS)}, got {value!r}", "auth_mechanism")
    return MECHANISMS[name]


def _network_fields(query: list[tuple[str, str | None]], fields: tuple[str, ...]
                    ) -> dict[str, int]:
    """amqp_uri's broker_add_query: the record fields a query may set, in record order."""
    found: dict[str, int] = {}
    for field in fields:
        value = _first(query, field)
        if value is None or field == "password":  # password: the TLS key's passphrase
            continue
        try:
            if field not in INTEGER_LIMITS:
                raise _Refused("cannot be set in a URI's query (user, password, host, "
                               "port and vhost belong in the URI itself)",
                               f"{{parameter_unconfigurable_in_query,{field},"
                               f"{erl_string(value)}}}")
            found[field] = _integer(field, value)
        except _Refused as exc:
            reason = exc.reason and (f"{{invalid_amqp_params_parameter,{field},"
                                     f"{erl_string(value)},{_erl_query(query)},"
                                     f"{exc.reason}}}")
            raise UriError(f"URI query parameter {field}: {exc.text}", field, reason) from None
    return found


def _port(netloc: str, uri: str) -> int | None:
    hostport = netloc.rpartition("@")[2]
    if hostport.startswith("["):  # an IPv6 address
        hostport = hostport.partition("]")[2]
    digits = hostport.rpartition(":")[2] if ":" in hostport else ""
    if not digits:
        return None
    if not digits.isascii() or not digits.isdigit():
        raise UriError(f"malformed URI (port {digits!r}): {uri}", reason="malformed_uri")
    port = int(digits)
    if not 0 < port <= 65535:
        raise UriError(f"port {port} is out of range (1-65535): {uri}",
                       reason=f"{{port_out_of_range,{port}}}")
    return port


def parse(uri: str) -> AmqpUri:
    """Parse ``uri`` as RabbitMQ's amqp_uri does; raises UriError."""
    scheme = uri.split("://", 1)[0] if "://" in uri else uri.split(":", 1)[0]
    if scheme.lower() not in SCHEMES:
        raise UriError(f"not an AMQP URI (scheme {scheme!r}, want amqp or amqps): {uri}",
                       reason=f"{{unexpected_uri_scheme,{erl_string(scheme.lower())}}}")
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise UriError(f"malformed URI ({exc}): {uri}", reason="malformed_uri") from None
    port = _port(parts.netloc, uri)
    host = unquote(parts.hostname) if parts.hostname else None
    vhost = None
    if parts.path:
        if "/" in parts.path[1:]:
            raise UriError(f"the vhost cannot contain an unescaped '/' (write %2F): {uri}",
                           reason=f"{{invalid_vhost,{erl_string(parts.path[1:])}}}")
        vhost = unquote(parts.path[1:])
    if host is None and port is not None:
        raise UriError(f"a port needs a host: {uri}", reason="port_requires_host")
    query = split_query(parts.query)
    mechanisms: tuple[str, ...] = DEFAULT_MECHANISMS
    if host is not None:
        wanted = [v for k, v in query if k == "auth_mechanism" and v is not None]
        if wanted:
            mechanisms = tuple(dict.fromkeys(_mechanism(v) for v in wanted))
    tls = _tls_options(query) if scheme.lower() == "amqps" else None
    numbers = _network_fields(query, NETWORK_FIELDS if host is not None else DIRECT_FIELDS)
    return AmqpUri(
        scheme=scheme.lower(), host=host, port=port,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        vhost=vhost, auth_mechanisms=mechanisms, tls=tls, **numbers)
