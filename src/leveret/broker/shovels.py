"""Dynamic shovels' definitions: RabbitMQ's ``shovel`` runtime parameter, validated with
RabbitMQ's rules and error texts (rabbit_shovel_parameters), and parsed into ``ShovelSpec``.

What runs a shovel (two AMQP connections, an asyncio task) is ``leveret.runtime.shovels``;
this module stays free of I/O like the rest of ``leveret.broker``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    """The vhost of a URI without a host (this broker), as RabbitMQ's amqp_uri reads it:
    ``amqp://`` is "/", ``amqp:///`` is "", ``amqp:///v`` is "v"; None for a URI with a
    host (or one that does not parse)."""
    try:
        parsed = amqp_uri.parse(uri)
    except amqp_uri.UriError:
        return None
    return parsed.vhost if parsed.host is None else None


def uri_error(uri: Any) -> str | None:
    """Why ``uri`` is not an AMQP URI RabbitMQ accepts (amqp_uri:parse), or None: RabbitMQ's
    text where RabbitMQ refuses it too (its reason term, without ~p's line breaks), else
    what leveret's client could not use (``verify=sometimes``, an unknown auth_mechanism)."""
    if not isinstance(uri, str):
        return f"src-uri should be binary, actually was {erl(uri)}"
    return amqp_uri.validation_error(uri)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _terms(value: dict[str, Any] | list[Any]) -> str:
    """The terms of a proplist RabbitMQ did not recognise: a map's items in key order (how
    Erlang lists a small map), a list's elements as they are."""
    if isinstance(value, list):
        return erl(value)
    return "[" + ",".join(f"{{{erl(k)},{erl(v)}}}" for k, v in sorted(value.items())) + "]"


# rabbit_amqqueue:declare_args() and consume_args() of RabbitMQ 3.10.8: the keys
# src-queue-args, dest-queue-args and src-consumer-args may hold (their values are not
# checked when the parameter is set)
QUEUE_ARGS = ("x-expires", "x-message-ttl", "x-dead-letter-exchange",
              "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-max-length",
              "x-max-length-bytes", "x-max-in-memory-length", "x-max-in-memory-bytes",
              "x-max-priority", "x-overflow", "x-queue-mode", "x-queue-version",
              "x-single-active-consumer", "x-queue-type", "x-quorum-initial-group-size",
              "x-max-age", "x-stream-max-segment-size-bytes", "x-initial-cluster-size",
              "x-queue-leader-locator")
CONSUMER_ARGS = ("x-priority", "x-cancel-on-ha-failover", "x-stream-offset")

# rabbit_shovel_parameters' checks of an amqp091 shovel, in RabbitMQ's order (its messages
# come out in reverse)
CHECKS: list[tuple[str, str, bool]] = [
    ("reconnect-delay", "num", False), ("ack-mode", "ack", False),
    ("src-protocol", "proto", False), ("dest-protocol", "proto", False),
    ("src-uri", "uri", True), ("src-exchange", "bin", False),
    ("src-exchange-key", "bin", False), ("src-queue", "bin", False),
    ("src-queue-args", "qargs", False), ("src-consumer-args", "cargs", False),
    ("prefetch-count", "num", False), ("src-prefetch-count", "num", False),
    ("delete-after", "del", False), ("src-delete-after", "del", False),
    ("dest-uri", "uri", True), ("dest-exchange", "bin", False),
    ("dest-exchange-key", "bin", False), ("dest-queue", "qname", False),
    ("dest-queue-args", "qargs", False), ("add-forward-headers", "bool", False),
    ("add-timestamp-header", "bool", False), ("dest-add-forward-headers", "bool", False),
    ("dest-add-timestamp-header", "bool", False), ("publish-properties", "props", False),
    ("dest-publish-properties", "props", False)]


def validate(name: str, value: Any, user: str | None = None,
             may_use: Callable[[str], bool] | None = None) -> list[str]:
    """RabbitMQ's validation messages for a shovel definition (empty: valid). With
    ``may_use``, a URI naming this broker needs a vhost ``user`` has permissions in, as
    RabbitMQ checks the acting user's access to a direct connection's vhost.

    A JSON list is an Erlang proplist to RabbitMQ: it holds no keys, and its elements are
    unrecognised terms. Where RabbitMQ 3.10.8 crashes (a string or number as the value,
    an unknown protocol, queue arguments that are not an object: HTTP 500), leveret
    answers with a validation message."""
    if isinstance(value, list):
        d: dict[str, Any] = {}
    elif isinstance(value, dict):
        d = value
    else:
        return [f"{name} not a list {erl(value)}"]
    amqp10 = [f"{key} amqp10 is not supported: leveret's shovels speak AMQP 0-9-1 only "
              f"(amqp091)" for key in ("src-protocol", "dest-protocol")
              if d.get(key) == "amqp10"]
    if amqp10:
        return amqp10
    errors = _ends(d)
    found: list[list[str]] = []
    for key, kind, mandatory in CHECKS:
        if key not in d:
            if mandatory:
                found.append([f'Key "{key}" not found in {name}'])
            continue
        if kind == "uri":
            problem = _check_uris(key, d[key], user or "", may_use)
            problems = [problem] if problem else []
        else:
            problems = _check(key, kind, d[key])
        if problems:
            found.append(problems)
    known = {k for k, _, _ in CHECKS}
    unknown: dict[str, Any] | list[Any] = (
        value if isinstance(value, list) else {k: v for k, v in d.items() if k not in known})
    if unknown:
        errors.append(f"Unrecognised terms {_terms(unknown)} in {name}")
    return errors + [p for problems in found[::-1] for p in problems]


def _ends(d: dict[str, Any]) -> list[str]:
    """rabbit_shovel_parameters' validate_amqp091_src and validate_amqp091_dest."""
    errors: list[str] = []
    has = [k in d for k in ("src-exchange", "src-queue")]
    if not any(has):
        errors.append("Must specify 'src-exchange' or 'src-queue'")
    elif all(has):
        errors.append("Cannot specify 'src-exchange' and 'src-queue'")
    if _int(d.get("src-delete-after", d.get("delete-after"))) and d.get("ack-mode") == "no-ack":
        errors.append("Cannot specify 'no-ack' and numerical 'delete-after'")
    if "dest-exchange" in d and "dest-queue" in d:
        errors.append("Cannot specify 'dest-exchange' and 'dest-queue'")
    return errors


def _check(key: str, kind: str, v: Any) -> list[str]:
    problem: str | None = None
    if kind == "num" and not _num(v):
        problem = f"{key} should be a number, actually was {erl(v)}"
    elif kind in ("bin", "qname") and not isinstance(v, str):
        problem = f"{key} should be binary, actually was {erl(v)}"
    elif kind == "qname" and len(v.encode()) > 255:
        problem = f"{key} should be less than 255 bytes, actually was {len(v.encode())}"
    elif kind == "bool" and not isinstance(v, bool):
        problem = f"{key} should be boolean, actually was {erl(v)}"
    elif kind in ("ack", "proto") and not isinstance(v, str):
        problem = f"{key} should be binary, actually was {erl(v)}"
    elif kind == "ack" and v not in ACK_MODES:
        problem = (f"ack-mode should be one of [{','.join(erl(m) for m in ACK_MODES)}], "
                   f"actually was {erl(v)}")
    elif kind == "proto" and v not in ("amqp10", "amqp091"):
        problem = (f"{key} should be one of [<<\"amqp10\">>,<<\"amqp091\">>], actually "
                   f"was {erl(v)}")
    elif kind == "del" and not (v in ("never", "queue-length") or (_int(v) and v >= 0)):
        problem = (f'{key} should be a number greater than or equal to 0, "never" or '
                   f'"queue-length", actually was {erl(v)}')
    elif kind == "props":
        return _check_properties(key, v)
    elif kind in ("qargs", "cargs"):
        return _check_arguments(key, v, QUEUE_ARGS if kind == "qargs" else CONSUMER_ARGS)
    return [problem] if problem else []


def _check_uris(key: str, v: Any, user: str,
                may_use: Callable[[str], bool] | None) -> str | None:
    """rabbit_shovel_parameters:validate_uri: a URI (that, naming this broker, names a
    vhost the user may use), or a list of URIs (or of lists), the first problem."""
    if isinstance(v, str):
        problem = uri_error(v)
        vhost = None if problem or may_use is None else local_vhost(v)
        if vhost is not None and may_use is not None and not may_use(vhost):
            return f'user "{user}" may not connect to vhost "{vhost}"'
        return problem
    if not isinstance(v, list):
        return f"{key} should be list, actually was {erl(v)}"
    for u in v:
        problem = _check_uris(key, u, user, may_use)
        if problem:
            return problem
    return None


def uris(v: Any) -> list[str]:
    """The URIs of a valid src-uri or dest-uri, in order."""
    if isinstance(v, str):
        return [v]
    return [u for item in v for u in uris(item)]


def _check_arguments(key: str, v: Any, names: tuple[str, ...]) -> list[str]:
    if not isinstance(v, dict | list):
        return [f"{key} not a list {erl(v)}"]
    unknown = v if isinstance(v, list) else {k: x for k, x in v.items() if k not in names}
    return [f"Unrecognised terms {_terms(unknown)} in {key}"] if unknown else []


def _check_properties(key: str, v: Any) -> list[str]:
    if not isinstance(v, dict | list):
        return [f"{key} not a list {erl(v)}"]
    items = v if isinstance(v, dict) else {}
    unknown = v if isinstance(v, list) else {k: x for k, x in v.items()
                                             if k not in PROPERTY_KEYS}
    problems = [f"Unrecognised terms {_terms(unknown)} in {key}"] if unknown else []
    for k, want in reversed(PROPERTY_KEYS.items()):
        if k not in items:
            continue
        x = items[k]
        if want == "num" and not _num(x):
            problems.append(f"{k} should be a number, actually was {erl(x)}")
        if want == "str" and not isinstance(x, str):
            problems.append(f"{k} should be binary, actually was {erl(x)}")
    return problems


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
    consumer_args: dict[str, Any] = field(default_factory=dict)
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

    def status_fields(self, src_uri: str, dest_uri: str) -> dict[str, Any]:
        """The keys of RabbitMQ's /api/shovels row of a running shovel: the URIs it is
        connected to (without credentials), its source, and its destination's keys."""
        row: dict[str, Any] = {"src_uri": amqp_uri.remove_credentials(src_uri),
                               "src_protocol": "amqp091", "dest_protocol": "amqp091",
                               "dest_uri": amqp_uri.remove_credentials(dest_uri)}
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


def parse(vhost: str, name: str, d: dict[str, Any]) -> ShovelSpec:
    """The spec of a definition ``validate`` accepted."""
    return ShovelSpec(
        vhost, name, uris(d["src-uri"]), uris(d["dest-uri"]),
        src_queue=d.get("src-queue"), src_exchange=d.get("src-exchange"),
        src_exchange_key=d.get("src-exchange-key", ""),
        src_queue_args=dict(d.get("src-queue-args") or {}),
        consumer_args=dict(d.get("src-consumer-args") or {}),
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
