"""Dynamic shovels' definitions: RabbitMQ's ``shovel`` runtime parameter, validated with
RabbitMQ's rules and error texts (rabbit_shovel_parameters), and parsed into ``ShovelSpec``.

What runs a shovel (two AMQP connections, an asyncio task) is ``leveret.runtime.shovels``;
this module stays free of I/O like the rest of ``leveret.broker``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from leveret.amqp import uri as amqp_uri

COMPONENT = "shovel"
DEFAULT_PREFETCH = 1000
DEFAULT_RECONNECT_DELAY = 5
ACK_MODES = ("no-ack", "on-publish", "on-confirm")
PROPERTY_KEYS = {"content_type": "str", "content_encoding": "str", "delivery_mode": "num",
                 "priority": "num", "correlation_id": "str", "reply_to": "str",
                 "expiration": "str", "message_id": "str", "timestamp": "num", "type": "str",
                 "user_id": "str", "app_id": "str", "cluster_id": "str"}


def erl(term: Any) -> str:
    """A JSON value as Erlang prints it in RabbitMQ's messages (``<<"x">>``, ``[1,2]``)."""
    if isinstance(term, bool):
        return "true" if term else "false"
    if isinstance(term, str):
        return '<<"' + term.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if term is None:
        return "null"
    if isinstance(term, list):
        return "[" + ",".join(erl(t) for t in term) + "]"
    if isinstance(term, dict):
        return "#{" + ",".join(f"{erl(k)} => {erl(v)}" for k, v in term.items()) + "}"
    return str(term)


def local_vhost(uri: str) -> str | None:
    """The vhost of a URI without a host (this broker: ``amqp://`` is "/", ``amqp:///v``
    is "v", as RabbitMQ's amqp_uri reads them), None for a URI with a host."""
    parts = urlsplit(uri)
    if parts.hostname:
        return None
    return "/" if parts.path in ("", "/") else unquote(parts.path[1:])


def uri_error(uri: Any) -> str | None:
    """Why ``uri`` is not an AMQP URI RabbitMQ accepts (amqp_uri:parse), or None: RabbitMQ's
    text where RabbitMQ refuses it too (its reason term, without ~p's line breaks), else
    what leveret's client could not use (``verify=sometimes``, an unknown auth_mechanism)."""
    if not isinstance(uri, str):
        return f"src-uri should be binary, actually was {erl(uri)}"
    try:
        amqp_uri.parse(uri)
    except amqp_uri.UriError as exc:
        if exc.reason is None:
            return f'"{uri}" not a valid URI: {exc}'
        return f'"{uri}" not a valid URI: {{{exc.reason},{amqp_uri.erl_string(uri)}}}'
    return None


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate(name: str, value: Any, user: str | None = None,
             may_use: Callable[[str], bool] | None = None) -> list[str]:
    """RabbitMQ's validation messages for a shovel definition (empty: valid). With
    ``may_use``, a URI naming this broker needs a vhost ``user`` has permissions in, as
    RabbitMQ checks the acting user's access to a direct connection's vhost."""
    if not isinstance(value, dict):
        return [f"{name} not a list {erl(value)}"]
    d = value
    errors: list[str] = []
    src_proto, dest_proto = d.get("src-protocol", "amqp091"), d.get("dest-protocol", "amqp091")
    for key, proto in (("src-protocol", src_proto), ("dest-protocol", dest_proto)):
        if proto == "amqp10":
            errors.append(f"{key} amqp10 is not supported: leveret's shovels speak AMQP "
                          f"0-9-1 only (amqp091)")
    if errors:
        return errors
    has = [k in d for k in ("src-exchange", "src-queue")]
    if not any(has):
        errors.append("Must specify 'src-exchange' or 'src-queue'")
    elif all(has):
        errors.append("Cannot specify 'src-exchange' and 'src-queue'")
    if _num(d.get("src-delete-after", d.get("delete-after"))) and d.get("ack-mode") == "no-ack":
        errors.append("Cannot specify 'no-ack' and numerical 'delete-after'")
    if "dest-exchange" in d and "dest-queue" in d:
        errors.append("Cannot specify 'dest-exchange' and 'dest-queue'")
    # rabbit_parameter_validation:proplist: each key's check, in reverse order
    checks: list[tuple[str, str, bool]] = [
        ("reconnect-delay", "num", False), ("ack-mode", "ack", False),
        ("src-protocol", "proto", False), ("dest-protocol", "proto", False),
        ("src-uri", "uri", True), ("src-exchange", "bin", False),
        ("src-exchange-key", "bin", False), ("src-queue", "bin", False),
        ("src-queue-args", "map", False), ("prefetch-count", "num", False),
        ("src-prefetch-count", "num", False), ("delete-after", "del", False),
        ("src-delete-after", "del", False), ("dest-uri", "uri", True),
        ("dest-exchange", "bin", False), ("dest-exchange-key", "bin", False),
        ("dest-queue", "bin", False), ("dest-queue-args", "map", False),
        ("add-forward-headers", "bool", False), ("add-timestamp-header", "bool", False),
        ("dest-add-forward-headers", "bool", False),
        ("dest-add-timestamp-header", "bool", False), ("publish-properties", "props", False),
        ("dest-publish-properties", "props", False)]
    found: list[str] = []
    for key, kind, mandatory in checks:
        if key not in d:
            if mandatory:
                found.append(f'Key "{key}" not found in {name}')
            continue
        v = d[key]
        problem = _check(key, kind, v)
        if problem is None and kind == "uri" and may_use is not None:
            problem = _check_access(v, user or "", may_use)
        if problem:
            found.append(problem)
    known = {k for k, _, _ in checks}
    unknown = [(k, v) for k, v in d.items() if k not in known]
    if unknown:
        terms = ",".join(f"{{{erl(k)},{erl(v)}}}" for k, v in unknown)
        errors.append(f"Unrecognised terms [{terms}] in {name}")
    return errors + found[::-1]


def _check(key: str, kind: str, v: Any) -> str | None:
    if kind == "num" and not _num(v):
        return f"{key} should be a number, actually was {erl(v)}"
    if kind == "bin" and not isinstance(v, str):
        return f"{key} should be binary, actually was {erl(v)}"
    if kind == "bool" and not isinstance(v, bool):
        return f"{key} should be boolean, actually was {erl(v)}"
    if kind == "map" and not isinstance(v, dict):
        return f"{key} should be a map, actually was {erl(v)}"
    if kind == "ack" and v not in ACK_MODES:
        return (f"ack-mode should be one of [{','.join(erl(m) for m in ACK_MODES)}], "
                f"actually was {erl(v)}")
    if kind == "proto" and v not in ("amqp10", "amqp091"):
        return f"{key} should be one of [<<\"amqp10\">>,<<\"amqp091\">>], actually was {erl(v)}"
    if kind == "del" and not (v in ("never", "queue-length") or (_num(v) and v >= 0)):
        return (f'{key} should be a number greater than or equal to 0, "never" or '
                f'"queue-length", actually was {erl(v)}')
    if kind == "uri":
        return _check_uris(key, v)
    if kind == "props":
        return _check_properties(key, v)
    return None


def _check_uris(key: str, v: Any) -> str | None:
    for u in v if isinstance(v, list) else [v]:
        problem = uri_error(u)
        if problem:
            return problem.replace("src-uri", key)
    return None


def _check_access(v: Any, user: str, may_use: Callable[[str], bool]) -> str | None:
    for u in v if isinstance(v, list) else [v]:
        vhost = local_vhost(u)
        if vhost is not None and not may_use(vhost):
            return f'user "{user}" may not connect to vhost "{vhost}"'
    return None


def _check_properties(key: str, v: Any) -> str | None:
    if not isinstance(v, dict):
        return f"{key} not a list {erl(v)}"
    for k, x in v.items():
        want = PROPERTY_KEYS.get(k)
        if want is None:
            return f"Unrecognised terms [{{{erl(k)},{erl(x)}}}] in {key}"
        if want == "num" and not _num(x):
            return f"{k} should be a number, actually was {erl(x)}"
        if want == "str" and not isinstance(x, str):
            return f"{k} should be binary, actually was {erl(x)}"
    return None


@dataclass
class ShovelSpec:
    """A valid definition, with RabbitMQ's defaults and legacy key names resolved."""

    vhost: str
    name: str
    src_uris: list[str]
    dest_uris: list[str]
    src_queue: str | None = None
    src_exchange: str | None = None
    src_exchange_key: str = ""
    src_queue_args: dict[str, Any] = field(default_factory=dict)
    prefetch: int = DEFAULT_PREFETCH
    delete_after: str | int = "never"
    dest_queue: str | None = None
    dest_exchange: str | None = None
    dest_exchange_key: str | None = None
    dest_queue_args: dict[str, Any] = field(default_factory=dict)
    forward_headers: bool = False
    timestamp_header: bool = False
    publish_properties: dict[str, Any] = field(default_factory=dict)
    ack_mode: str = "on-confirm"
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY

    def status_fields(self) -> dict[str, Any]:
        """The src/dest keys of RabbitMQ's /api/shovels rows."""
        row: dict[str, Any] = {"src_uri": self.src_uris[0] if self.src_uris else "",
                               "src_protocol": "amqp091", "dest_protocol": "amqp091",
                               "dest_uri": self.dest_uris[0] if self.dest_uris else ""}
        if self.src_queue is not None:
            row["src_queue"] = self.src_queue
        else:
            row["src_exchange"] = self.src_exchange
            row["src_exchange_key"] = self.src_exchange_key
        if self.dest_queue is not None:
            row["dest_queue"] = self.dest_queue
        else:
            if self.dest_exchange is not None:
                row["dest_exchange"] = self.dest_exchange
            if self.dest_exchange_key is not None:
                row["dest_exchange_key"] = self.dest_exchange_key
        return row


def _uris(v: Any) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def parse(vhost: str, name: str, d: dict[str, Any]) -> ShovelSpec:
    """The spec of a definition ``validate`` accepted."""
    return ShovelSpec(
        vhost, name, _uris(d["src-uri"]), _uris(d["dest-uri"]),
        src_queue=d.get("src-queue"), src_exchange=d.get("src-exchange"),
        src_exchange_key=d.get("src-exchange-key", ""),
        src_queue_args=dict(d.get("src-queue-args") or {}),
        prefetch=int(d.get("src-prefetch-count", d.get("prefetch-count", DEFAULT_PREFETCH))),
        delete_after=d.get("src-delete-after", d.get("delete-after", "never")),
        dest_queue=d.get("dest-queue"), dest_exchange=d.get("dest-exchange"),
        dest_exchange_key=d.get("dest-exchange-key"),
        dest_queue_args=dict(d.get("dest-queue-args") or {}),
        forward_headers=bool(d.get("dest-add-forward-headers",
                                   d.get("add-forward-headers", False))),
        timestamp_header=bool(d.get("dest-add-timestamp-header",
                                    d.get("add-timestamp-header", False))),
        publish_properties=dict(d.get("dest-publish-properties",
                                      d.get("publish-properties")) or {}),
        ack_mode=d.get("ack-mode", "on-confirm"),
        reconnect_delay=float(d.get("reconnect-delay", DEFAULT_RECONNECT_DELAY)))


STATES = ("starting", "running", "terminated")


@dataclass(frozen=True)
class ShovelReading:
    """A shovel as /metrics shows it. Its counters run from when the shovel was last
    started (with the broker, a new parameter value or a restart; reconnecting after a
    failure keeps them): Prometheus reads a start as a counter reset."""

    vhost: str
    name: str
    state: str
    published: int    # messages published at the destination
    transferred: int  # messages settled at the source (acked, or consumed under no-ack)
