"""AMQP URIs as RabbitMQ 3.10.8 reads them: its Erlang client's ``uri_parser`` and
``amqp_uri`` (which the shovel and federation plugins use), with the query parameters,
so that a URI means the same to leveret's client as to RabbitMQ, and a shovel or federation
definition is refused with the same words.

    amqps://user:pass@host:port/vhost?heartbeat=10&cacertfile=/ca.pem&verify=verify_peer

Sans-I/O on purpose: the client connects with what ``parse`` returns (``leveret.client.url``
fills in its defaults), and the broker validates shovel and federation URIs with it
(``broker`` may not import the client).

RabbitMQ's reading, which ``urllib``'s differs from in ways a definition can see:
``amqp://`` (no path) is the vhost "/", ``amqp:///`` and ``amqp://host/`` the vhost "",
``amqp:///%2f`` "/"; a URI without a host is RabbitMQ's direct connection (to this broker,
for a shovel) and ignores the network parameters; the first ``@`` ends the user info and
the first ``:`` after it starts the port, which is anything ``list_to_integer`` reads (``+5``
too); an unclosed ``[`` is a host; ``%`` escapes must be whole; query values are not
percent-decoded except the TLS options'; the first occurrence of a parameter wins
(``auth_mechanism`` may repeat: a list of preferences); unknown parameters are ignored.
Erlang reads the URI as bytes, so the parts are bytes until the end (``_raw``, ``_text``).

``UriError`` says what is wrong in words that name the parameter; where RabbitMQ refuses
the URI, ``reason`` is RabbitMQ's reason term as ``~p`` prints it, and ``validation_error``
gives the plugins' message. Where RabbitMQ accepts a value that can never work (it fails
later, when it connects) leveret refuses it at once and ``reason`` is None: a number out of
its AMQP field's range, ``verify`` other than verify_peer/verify_none, an empty file name,
an auth mechanism the client does not speak, a ``%-1`` escape outside the vhost and user
info. Those checks come after all of RabbitMQ's, so a URI RabbitMQ refuses always gets
RabbitMQ's reason.

Where leveret's reading differs from RabbitMQ's, on purpose (the client's public
behaviour, kept): ``amqp://host/`` is the vhost "" here as in RabbitMQ, but the client
connects to "/" (as pika does; ``leveret.client.url``); a password is all of the user info
after its first ``:`` (RabbitMQ stops at the next ``:``, silently); an ``amqps://`` URI
without a host is accepted (the client: TLS to 127.0.0.1; a shovel or federation end: this
broker over loopback) where RabbitMQ refuses it with a ``{badrecord,...}`` naming its node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
# amqps:// query keys, in the order amqp_uri checks them
TLS_KEYS = ("cacertfile", "certfile", "keyfile", "verify", "fail_if_no_peer_cert",
            "password", "server_name_indication", "depth")
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
_HEX = "0123456789abcdefABCDEF"
_ATOM = re.compile(r"[a-z][a-zA-Z0-9_@]*\Z")
_RESERVED = frozenset(("after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr",
                       "bxor", "case", "catch", "cond", "div", "end", "fun", "if", "let",
                       "not", "of", "or", "orelse", "receive", "rem", "try", "when", "xor"))
# what ~p prints inside a string as an escape; the rest of latin-1's printable characters
# as they are (any other character makes the string a list of integers)
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r",
            "\x1b": "\\e", '"': '\\"', "\\": "\\\\"}
_ATOM_ESCAPES = {**_ESCAPES, '"': '"', "'": "\\'"}
_Query = list[tuple[str, str | None]]  # (key, value), or (key, None) for a key without =


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
    """A parsed URI; None for what it does not say (the client has defaults). ``host``
    None is RabbitMQ's direct connection: this broker, for a shovel or federation."""

    scheme: str
    host: str | None
    port: int | None
    username: str | None
    password: str | None
    vhost: str  # RabbitMQ's reading: "/" without a path, "" for the path "/"
    channel_max: int | None = None
    frame_max: int | None = None
    heartbeat: int | None = None
    connection_timeout: int | None = None  # milliseconds
    auth_mechanisms: tuple[str, ...] = DEFAULT_MECHANISMS
    tls: TLSOptions | None = None  # set for amqps://


# -- bytes, and Erlang terms as ~p prints them (without its line breaks) ---------------------


def _raw(text: str) -> str:
    """The URI as Erlang sees it: one character per UTF-8 byte."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _text(raw: str) -> str:
    """Bytes back to text (what an unescaped part or a printed term says)."""
    return raw.encode("latin-1").decode("utf-8", "replace")


def _erl_string(raw: str) -> str:
    """An Erlang string (a list of bytes): "..." when printable, else a list of integers."""
    if raw == "":
        return "[]"
    if all(c in _ESCAPES or 32 <= ord(c) < 127 or 160 <= ord(c) < 256 for c in raw):
        return '"' + "".join(_ESCAPES.get(c, c) for c in raw) + '"'
    return "[" + ",".join(str(ord(c)) for c in raw) + "]"


def _erl_atom(raw: str) -> str:
    if _ATOM.match(raw) and raw not in _RESERVED:
        return raw
    return "'" + "".join(_ATOM_ESCAPES.get(c, c) for c in raw) + "'"


def _erl_query(query: _Query) -> str:
    """uri_parser's query proplist: ``{"k","v"}``, or the bare string of a key without =."""
    items = [_erl_string(k) if v is None else f"{{{_erl_string(k)},{_erl_string(v)}}}"
             for k, v in query]
    return "[" + ",".join(items) + "]"


def _refused(text: str, reason: str | None, parameter: str | None = None) -> UriError:
    return UriError(text, parameter, None if reason is None else _text(reason))


class _Refused(Exception):
    """A part or value refused: ``text`` for people, ``reason`` RabbitMQ's term (None where
    RabbitMQ accepts it). The caller names the parameter or the part."""

    def __init__(self, text: str, reason: str | None = None) -> None:
        super().__init__(text)
        self.text, self.reason = text, reason


# -- uri_parser: the parts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parts:
    """What uri_parser finds, still bytes; None (or []) for a part that is empty."""

    scheme: str
    userinfo: str | None  # None: no "@"; "" an empty one
    host: str | None
    port: int | None
    path: str | None
    query: _Query


def _port_number(digits: str) -> int:
    """erlang:list_to_integer: an optional sign and decimal digits, nothing else."""
    if not _INTEGER.match(digits):
        raise _Refused(f"the port {_text(digits)!r} is not a number",
                         f"{{'EXIT',{{badarg,{_erl_string(digits)}}}}}")
    return int(digits)


def _host_port(host_port: str) -> tuple[str, int | None]:
    if host_port.startswith("["):  # an IPv6 address; one never closed is a host all the same
        host, _, after = host_port[1:].partition("]")
        if ":" in after:  # what comes before the colon is ignored
            return host, _port_number(after.partition(":")[2])
        if after:
            raise _Refused(f"{_text(after)!r} after the IPv6 address [{_text(host)}]",
                             f"{{invalid_port,{_erl_string(after)}}}")
        return host, None
    host, colon, port = host_port.partition(":")
    return host, _port_number(port) if colon else None


def _split_query(query: str) -> _Query:
    """Split on & and the first =, decode nothing."""
    if not query:
        return []
    pairs: _Query = []
    for param in query.split("&"):
        key, eq, value = param.partition("=")
        pairs.append((key, value) if eq else (param, None))
    return pairs


def _parts(raw: str) -> _Parts:
    """uri_parser:parse, then merge_keylists (an empty part is no part)."""
    scheme, _, rest = raw.partition(":")
    userinfo = host = None
    port = None
    if rest.startswith("//"):
        authority = re.split(r"[/?#]", rest[2:], maxsplit=1)[0]
        rest = rest[2 + len(authority):]
        if "@" in authority:
            userinfo, _, authority = authority.partition("@")
        host, port = _host_port(authority)
    path, _, query = rest.partition("#")[0].partition("?")
    return _Parts(scheme, userinfo, host or None, port, path or None, _split_query(query))


# -- amqp_uri: the values -------------------------------------------------------------------


def _unescape(raw: str, binary: bool = True) -> str:
    """amqp_uri:unescape_string: each % and the two characters after it is the byte
    list_to_integer(_, 16) reads, a sign included. A negative one only list_to_binary (the
    vhost, user and password: ``binary``) refuses; RabbitMQ takes it elsewhere and fails
    later, leveret refuses it there too (no reason)."""
    out, i = [], 0
    while (j := raw.find("%", i)) != -1:
        digits = raw[j + 1:j + 3]
        if len(digits) < 2:
            chars = ",".join(["'%'"] + [str(ord(c)) for c in digits])
            raise _Refused(f"an unterminated %-escape in {_text(raw)!r}",
                           f"{{unterminated_entity,[{chars}]}}")
        if digits[1] not in _HEX or digits[0] not in _HEX + "+-":
            raise _Refused(f"an invalid %-escape %{_text(digits)} in {_text(raw)!r}",
                           f"{{invalid_entitiy,['%',{ord(digits[0])},{ord(digits[1])}]}}")
        byte = int(digits, 16)
        if byte < 0:
            raise _Refused(f"the %-escape %{digits} is not a byte, in {_text(raw)!r}",
                           "badarg" if binary else None)
        out += [raw[i:j], chr(byte)]
        i = j + 3
    out.append(raw[i:])
    return "".join(out)


def _first(query: _Query, key: str) -> str | None:
    for k, v in query:
        if k == key and v is not None:
            return v
    return None


def _integer(key: str, value: str, later: list[UriError]) -> int:
    if not _INTEGER.match(value):
        raise _Refused(f"must be an integer, got {_text(value)!r}",
                       f"{{not_an_integer,{_erl_string(value)}}}")
    number = int(value)
    if not 0 <= number <= INTEGER_LIMITS[key]:
        later.append(UriError(f"URI query parameter {key}: must be between 0 and "
                              f"{INTEGER_LIMITS[key]}, got {number}", key))
    return number


def _tls_value(key: str, value: str, later: list[UriError]) -> str | bool | int:
    if key == "verify":  # an atom to RabbitMQ: any value, it fails when it connects
        if value not in VERIFY_MODES:
            later.append(UriError(f"URI query parameter verify: must be verify_peer or "
                                  f"verify_none, got {_text(value)!r}", key))
        return value
    if key == "fail_if_no_peer_cert":
        if value not in ("true", "false"):
            raise _Refused(f"must be true or false, got {_text(value)!r}",
                           f"{{require_boolean,{_erl_atom(value)}}}")
        return value == "true"
    if key == "depth":
        return _integer(key, value, later)
    if key == "server_name_indication" and value == SNI_DISABLE:
        return value
    decoded = _text(_unescape(value, binary=False))
    if key != "password" and not decoded:
        later.append(UriError(f"URI query parameter {key}: must not be empty", key))
    return decoded


def _tls_options(query: _Query, later: list[UriError]) -> TLSOptions:
    found: dict[str, str | bool | int] = {}
    for key in TLS_KEYS:
        value = _first(query, key)
        if value is None:
            continue
        try:
            found[key] = _tls_value(key, value, later)
        except _Refused as exc:
            reason = exc.reason and (f"{{invalid_ssl_parameter,{key},{_erl_string(value)},"
                                     f"{_erl_query(query)},{exc.reason}}}")
            if reason is None:
                later.append(UriError(f"URI query parameter {key}: {exc.text}", key))
                continue
            raise _refused(f"URI query parameter {key}: {exc.text}", reason, key) from None
    return TLSOptions(**found)  # type: ignore[arg-type]


def _mechanisms(query: _Query, later: list[UriError]) -> tuple[str, ...]:
    wanted = [v for k, v in query if k == "auth_mechanism" and v is not None]
    found = []
    for value in wanted:
        tokens = [t for t in value.split(":") if t]
        if len(tokens) not in (1, 2):
            atoms = ",".join(_erl_atom(t) for t in tokens)
            raise _refused(f"URI query parameter auth_mechanism: not a mechanism: "
                           f"{_text(value)!r}", f"{{not_mechanism,[{atoms}]}}",
                           "auth_mechanism")
        name = tokens[-1].lower()
        if len(tokens) == 2 and tokens[0] != "amqp_auth_mechanisms":
            later.append(UriError(f"URI query parameter auth_mechanism: {_text(value)!r} "
                                  f"names an Erlang module; leveret's client offers "
                                  f"{', '.join(MECHANISMS)}", "auth_mechanism"))
        elif name not in MECHANISMS:
            later.append(UriError(f"URI query parameter auth_mechanism: must be one of "
                                  f"{', '.join(MECHANISMS)}, got {_text(value)!r}",
                                  "auth_mechanism"))
        else:
            found.append(MECHANISMS[name])
    return tuple(dict.fromkeys(found)) or DEFAULT_MECHANISMS


def _record_fields(query: _Query, fields: tuple[str, ...], later: list[UriError]
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
                               f"{_erl_string(value)}}}")
            found[field] = _integer(field, value, later)
        except _Refused as exc:
            reason = (f"{{invalid_amqp_params_parameter,{field},{_erl_string(value)},"
                      f"{_erl_query(query)},{exc.reason}}}")
            raise _refused(f"URI query parameter {field}: {exc.text}", reason, field) from None
    return found


def _decoded(raw: str | None, what: str, uri: str, binary: bool = True) -> str | None:
    if raw is None:
        return None
    try:
        return _text(_unescape(raw, binary))
    except _Refused as exc:
        raise _refused(f"{exc.text} (the {what}): {uri}", exc.reason) from None


def _structure(uri: str, raw: str) -> tuple[_Parts, str]:
    """The parts and the vhost, with amqp_uri's checks up to the host."""
    if ":" not in raw:
        raise _refused(f"not an AMQP URI (no scheme; want amqp:// or amqps://): {uri}",
                       "{unable_to_parse_uri,no_scheme}")
    try:
        parts = _parts(raw)
    except _Refused as exc:
        raise _refused(f"malformed URI ({exc.text}): {uri}",
                       f"{{unable_to_parse_uri,{{malformed_uri,{_erl_string(raw)},"
                       f"{exc.reason}}}}}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise _refused(f"not an AMQP URI (scheme {_text(scheme)!r}, want amqp or amqps): "
                       f"{uri}", f"{{unexpected_uri_scheme,{_erl_string(scheme)}}}")
    if parts.port is not None and not 0 < parts.port <= 65535:
        raise _refused(f"port {parts.port} is out of range (1-65535): {uri}",
                       f"{{port_out_of_range,{parts.port}}}")
    if parts.path is None:
        vhost = "/"
    elif not parts.path.startswith("/"):
        raise _refused(f"malformed URI (the path {_text(parts.path)!r} does not start with "
                       f"'/'; write {scheme}://...): {uri}",
                       f"{{case_clause,{_erl_string(parts.path)}}}")
    elif "/" in parts.path[1:]:
        raise _refused(f"the vhost cannot contain an unescaped '/' (write %2F): {uri}",
                       f"{{invalid_vhost,{_erl_string(parts.path[1:])}}}")
    else:
        vhost = _decoded(parts.path[1:], "vhost", uri) or ""
    return parts, vhost


def parse(uri: str) -> AmqpUri:
    """Parse ``uri`` as RabbitMQ's amqp_uri does; raises UriError."""
    raw = _raw(uri)
    parts, vhost = _structure(uri, raw)
    host = _decoded(parts.host, "host", uri, binary=False)
    if host is None and parts.port is not None:
        raise _refused(f"a port needs a host: {uri}", "port_requires_host")
    later: list[UriError] = []  # leveret's own refusals, after all of RabbitMQ's checks
    mechanisms = DEFAULT_MECHANISMS
    if host is not None:
        mechanisms = _mechanisms(parts.query, later)
    username = password = None
    if parts.userinfo:  # amqp://@host: no user, as RabbitMQ reads it
        user, colon, secret = parts.userinfo.partition(":")
        username = _decoded(user, "user name", uri)
        if colon:
            _decoded(secret.partition(":")[0], "password", uri)  # what RabbitMQ reads
            try:
                password = _decoded(secret, "password", uri)
            except UriError as exc:  # after a second ":", which RabbitMQ ignores
                later.append(UriError(str(exc)))
    scheme = parts.scheme.lower()
    tls = _tls_options(parts.query, later) if scheme == "amqps" else None
    numbers = _record_fields(parts.query, NETWORK_FIELDS if host is not None
                             else DIRECT_FIELDS, later)
    if later:
        raise later[0]
    return AmqpUri(scheme=scheme, host=host, port=parts.port, username=username,
                   password=password, vhost=vhost, auth_mechanisms=mechanisms, tls=tls,
                   **numbers)


def validation_error(uri: str) -> str | None:
    """The shovel and federation plugins' message for a URI they refuse (RabbitMQ's
    ``"Uri" not a valid URI: {Reason,Uri}``, leveret's words where only leveret refuses
    it), or None."""
    try:
        parse(uri)
    except UriError as exc:
        if exc.reason is None:
            return f'"{uri}" not a valid URI: {exc}'
        return f'"{uri}" not a valid URI: {{{exc.reason},{_text(_erl_string(_raw(uri)))}}}'
    return None


def remove_credentials(uri: str) -> str:
    """amqp_uri:remove_credentials: scheme, host, port and path (no user, no query), as
    RabbitMQ shows the URIs of a shovel or federation link."""
    raw = _raw(uri)
    try:
        parts = _parts(raw)
    except _Refused:
        return uri
    port = "" if parts.port is None else f":{parts.port}"
    return _text(f"{parts.scheme}://{parts.host or ''}{port}{parts.path or ''}")
