"""Federation's definitions: RabbitMQ's ``federation-upstream`` and
``federation-upstream-set`` runtime parameters, validated with RabbitMQ's rules and texts
(rabbit_federation_parameters, checked on RabbitMQ 3.10.8), and an upstream resolved for a
federated exchange or queue from its policy (``federation-upstream`` or
``federation-upstream-set``).

It also holds what the links build and write as data: the upstream queue's and internal
exchange's names and arguments, the ``x-bound-from`` arguments of upstream bindings and the
headers of forwarded messages, as RabbitMQ 3.10's federation plugin makes them. What runs
the links (AMQP connections, asyncio tasks) is ``leveret.runtime.federation``; this module
stays free of I/O like the rest of ``leveret.broker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leveret.amqp.fields import Long, Short
from leveret.broker.exchanges.federation_upstream import (
    DOWNSTREAM_NAME,
    DOWNSTREAM_VHOST,
    MAX_HOPS,
    ROUTING_HEADER,
    already_seen,
)
from leveret.broker.shovels import ACK_MODES, erl, uri_error

UPSTREAM = "federation-upstream"
UPSTREAM_SET = "federation-upstream-set"
COMPONENTS = (UPSTREAM, UPSTREAM_SET)
DEFAULT_PREFETCH = 1000
DEFAULT_RECONNECT_DELAY = 5
DEFAULT_MAX_HOPS = 1
HEADER = ROUTING_HEADER
BINDING_HEADER = "x-bound-from"
PURPOSE = {"x-internal-purpose": "federation"}

# rabbit_federation_parameters:shared_validation/0, in its order (errors come reversed)
SHARED = [("exchange", "bin"), ("queue", "bin"), ("consumer-tag", "bin"),
          ("prefetch-count", "num"), ("reconnect-delay", "num"), ("max-hops", "num"),
          ("expires", "num"), ("message-ttl", "num"), ("trust-user-id", "bool"),
          ("ack-mode", "ack"), ("resource-cleanup-mode", "cleanup"), ("ha-policy", "bin"),
          ("bind-nowait", "bool"), ("channel-use-mode", "chanmode")]
ONE_OF = {"ack": ACK_MODES, "cleanup": ("default", "never"), "chanmode": ("multiple", "single")}


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(key: str, kind: str, v: Any) -> str | None:
    if kind == "num" and not _num(v):
        return f"{key} should be a number, actually was {erl(v)}"
    if kind == "bin" and not isinstance(v, str):
        return f"{key} should be binary, actually was {erl(v)}"
    if kind == "bool" and not isinstance(v, bool):
        return f"{key} should be boolean, actually was {erl(v)}"
    if kind in ONE_OF and v not in ONE_OF[kind]:
        return (f"{key} should be one of [{','.join(erl(m) for m in ONE_OF[kind])}], "
                f"actually was {erl(v)}")
    if kind == "uri":
        for u in v if isinstance(v, list) else [v]:
            if not isinstance(u, str):
                return f"uri should be list, actually was {erl(u)}"
            problem = uri_error(u)
            if problem:
                return problem
    return None


def _proplist(name: str, d: dict[str, Any], checks: list[tuple[str, str, bool]]) -> list[str]:
    """rabbit_parameter_validation:proplist: unknown keys first, then each key's problem
    in reverse order of the checks."""
    found: list[str] = []
    for key, kind, mandatory in checks:
        if key not in d:
            if mandatory:
                found.append(f'Key "{key}" not found in {name}')
            continue
        problem = _check(key, kind, d[key])
        if problem:
            found.append(problem)
    known = {k for k, _, _ in checks}
    unknown = [(k, v) for k, v in d.items() if k not in known]
    errors = []
    if unknown:
        terms = ",".join(f"{{{erl(k)},{erl(v)}}}" for k, v in unknown)
        errors.append(f"Unrecognised terms [{terms}] in {name}")
    return errors + found[::-1]


UPSTREAM_CHECKS = [("uri", "uri", True)] + [(k, t, False) for k, t in SHARED]
SET_CHECKS = [("upstream", "bin", True)] + [(k, t, False) for k, t in SHARED]


def validate(component: str, name: str, value: Any) -> list[str]:
    """RabbitMQ's validation messages for an upstream or an upstream set (empty: valid).
    RabbitMQ answers 500 for a value of the wrong shape; leveret says it is not a list."""
    if component == UPSTREAM:
        if not isinstance(value, dict):
            return [f"{name} not a list {erl(value)}"]
        return _proplist(name, value, UPSTREAM_CHECKS)
    if not isinstance(value, list):
        return [f"{name} not a list {erl(value)}"]
    errors: list[str] = []
    for entry in value:
        if not isinstance(entry, dict):
            errors.append(f"{name} not a list {erl(entry)}")
            continue
        errors += _proplist(name, entry, SET_CHECKS)
    return errors


@dataclass
class Upstream:
    """One upstream of a federated exchange or queue, with RabbitMQ's defaults resolved
    (a set's entry overrides the upstream's own keys)."""

    name: str
    uris: list[str]
    exchange: str | None = None
    queue: str | None = None
    prefetch: int = DEFAULT_PREFETCH
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY
    max_hops: int = DEFAULT_MAX_HOPS
    expires: int | None = None
    message_ttl: int | None = None
    trust_user_id: bool = False
    ack_mode: str = "on-confirm"
    consumer_tag: str = ""
    resource_cleanup_mode: str = "default"


def upstream(name: str, value: dict[str, Any], overrides: dict[str, Any] | None = None
             ) -> Upstream:
    d = {**value, **(overrides or {})}
    uri = d["uri"]
    return Upstream(
        name, [uri] if isinstance(uri, str) else list(uri), exchange=d.get("exchange"),
        queue=d.get("queue"), prefetch=int(d.get("prefetch-count", DEFAULT_PREFETCH)),
        reconnect_delay=float(d.get("reconnect-delay", DEFAULT_RECONNECT_DELAY)),
        max_hops=int(d.get("max-hops", DEFAULT_MAX_HOPS)),
        expires=int(d["expires"]) if _num(d.get("expires")) else None,
        message_ttl=int(d["message-ttl"]) if _num(d.get("message-ttl")) else None,
        trust_user_id=bool(d.get("trust-user-id", False)),
        ack_mode=d.get("ack-mode", "on-confirm"),
        consumer_tag=d.get("consumer-tag", f"federation-link-{name}"),
        resource_cleanup_mode=d.get("resource-cleanup-mode", "default"))


def upstreams_for(definition: dict[str, Any], vhost: str,
                  parameters: dict[tuple[str, str, str], Any]) -> list[Upstream]:
    """The upstreams a policy definition names, in the vhost's parameters: a
    ``federation-upstream`` (one name) or a ``federation-upstream-set`` (a set's name, or
    ``all``: every upstream of the vhost). Names with no upstream are skipped, as in
    RabbitMQ."""
    def own(n: str) -> Any:
        return parameters.get((UPSTREAM, vhost, n))

    name = definition.get(UPSTREAM)
    if isinstance(name, str):
        value = own(name)
        return [upstream(name, value)] if isinstance(value, dict) else []
    set_name = definition.get(UPSTREAM_SET)
    if not isinstance(set_name, str):
        return []
    if set_name == "all":
        return sorted((upstream(n, v) for (c, vh, n), v in parameters.items()
                       if c == UPSTREAM and vh == vhost and isinstance(v, dict)),
                      key=lambda u: u.name)
    entries = parameters.get((UPSTREAM_SET, vhost, set_name))
    found = []
    for entry in entries if isinstance(entries, list) else []:
        value = own(entry.get("upstream", ""))
        if isinstance(value, dict):
            overrides = {k: v for k, v in entry.items() if k != "upstream"}
            found.append(upstream(entry["upstream"], value, overrides))
    return found


def queue_name(exchange: str, cluster_name: str, upstream_vhost: str, vhost: str,
               downstream: str) -> str:
    """The upstream queue of a federated exchange, as RabbitMQ 3.10 names it:
    ``federation: {upstream exchange} -> {cluster name}``, with ``:{exchange}`` when the
    downstream exchange has another name, ``:{vhost}:{exchange}`` when it is in another
    vhost."""
    if vhost != upstream_vhost:
        suffix = f":{vhost}:{downstream}"
    else:
        suffix = "" if downstream == exchange else f":{downstream}"
    return f"federation: {exchange} -> {cluster_name}{suffix}"


def internal_exchange_name(queue: str, suffix: str) -> str:
    """The upstream's ``x-federation-upstream`` exchange of a link: its queue's name and
    ``A`` or ``B``, alternating at each start of the link so that the new one is bound
    before the old one goes."""
    return f"{queue} {suffix}"


def queue_arguments(u: Upstream) -> dict[str, Any]:
    """The upstream queue's arguments, in RabbitMQ's order and field types."""
    args: dict[str, Any] = {}
    if u.expires is not None:
        args["x-expires"] = Long(u.expires)
    if u.message_ttl is not None:
        args["x-message-ttl"] = Long(u.message_ttl)
    return {**args, **PURPOSE}


def internal_exchange_arguments(u: Upstream, cluster_name: str, vhost: str
                                ) -> dict[str, Any]:
    """What the ``x-federation-upstream`` exchange filters by: hops, and the downstream's
    cluster name and vhost (who must not receive its own messages back)."""
    return {MAX_HOPS: Long(u.max_hops), DOWNSTREAM_NAME: cluster_name,
            DOWNSTREAM_VHOST: vhost, **PURPOSE}


def _sorted(table: dict[str, Any]) -> dict[str, Any]:
    """RabbitMQ keeps a field table it changed sorted by key (rabbit_misc:set_table_value)."""
    return dict(sorted(table.items()))


def _prepend(table: dict[str, Any], name: str, entry: dict[str, Any]) -> dict[str, Any]:
    prior = table.get(name)
    return _sorted({**table, name: [entry, *(prior if isinstance(prior, list) else [])]})


def upstream_binding(arguments: dict[str, Any], max_hops: int, upstream_cluster: str | None,
                     upstream_vhost: str, cluster_name: str, vhost: str, exchange: str,
                     suffix: str) -> dict[str, Any] | None:
    """The arguments of the upstream binding that stands for a downstream binding, or None
    when it should travel no further (rabbit_federation_exchange_link:update_binding).

    Bindings travel against the messages' direction and as far as messages could come
    back: ``hops`` counts down from the tightest ``max-hops`` passed, and a binding that
    came from the upstream itself goes no further."""
    prior = arguments.get(BINDING_HEADER)
    if isinstance(prior, list) and prior:
        first = prior[0] if isinstance(prior[0], dict) else {}
        prev = first.get("hops")
        prev_hops = int(prev) if isinstance(prev, int) and not isinstance(prev, bool) else 0
        hops = 0 if already_seen(upstream_cluster, upstream_vhost, prior) else min(
            prev_hops - 1, max_hops)
    else:
        hops = max_hops
    if hops <= 0:
        return None
    entry = {"cluster-name": cluster_name, "vhost": vhost,
             "exchange": f"{vhost}:{exchange} {suffix}", "hops": Short(hops)}
    return _prepend(arguments, BINDING_HEADER, entry)


def exchange_headers(headers: dict[str, Any], uri: str, exchange: str, redelivered: bool,
                     upstream_cluster: str | None, upstream_vhost: str) -> dict[str, Any]:
    """A message's headers after an exchange link: its ``x-received-from`` entry first
    (update_routing_headers); ``cluster-name`` only when the upstream said its name."""
    entry: dict[str, Any] = {"uri": uri, "exchange": exchange, "redelivered": redelivered}
    if upstream_cluster is not None:
        entry["cluster-name"] = upstream_cluster
    entry["vhost"] = upstream_vhost
    return _prepend(headers, HEADER, entry)


def queue_headers(headers: dict[str, Any], uri: str, queue: str, redelivered: bool,
                  exchange: str, routing_key: str) -> dict[str, Any]:
    """A message's headers after a queue link (rabbit_federation_queue_link
    update_headers): where it was first published (``x-original-exchange`` and
    ``-routing-key``, the first time), ``CC`` kept as ``x-original-cc``, and one
    ``x-received-from`` entry per upstream counting its visits."""
    prior = headers.get(HEADER)
    count = 0
    if isinstance(prior, list):
        mine = [h for h in prior if isinstance(h, dict) and h.get("uri") == uri
                and h.get("queue") == queue and "virtual_host" not in h]
        if mine:
            visits = mine[0].get("visit-count")
            count = int(visits) if isinstance(visits, int) else 0
        headers = {**headers, HEADER: [h for h in prior if not any(h is m for m in mine)]}
    else:
        headers = _sorted({**headers, "x-original-exchange": exchange,
                           "x-original-routing-key": routing_key})
    headers = {("x-original-cc" if k == "CC" else k): v for k, v in headers.items()}
    entry = {"uri": uri, "queue": queue, "redelivered": redelivered,
             "visit-count": Long(count + 1)}
    return _prepend(headers, HEADER, entry)
