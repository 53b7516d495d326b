"""Federation's definitions: RabbitMQ's ``federation-upstream`` and
``federation-upstream-set`` runtime parameters, validated with RabbitMQ's rules and texts
(rabbit_federation_parameters, checked on RabbitMQ 3.10.8), and an upstream resolved for a
federated exchange or queue from its policy (``federation-upstream`` or
``federation-upstream-set``).

What runs the links (AMQP connections, asyncio tasks) is ``leveret.runtime.federation``;
this module stays free of I/O like the rest of ``leveret.broker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leveret.broker.shovels import ACK_MODES, erl, uri_error

UPSTREAM = "federation-upstream"
UPSTREAM_SET = "federation-upstream-set"
COMPONENTS = (UPSTREAM, UPSTREAM_SET)
DEFAULT_PREFETCH = 1000
DEFAULT_RECONNECT_DELAY = 5
DEFAULT_MAX_HOPS = 1
HEADER = "x-received-from"

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
        ack_mode=d.get("ack-mode", "on-confirm"))


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
