"""RabbitMQ's JSON definitions, exported from and imported into a ``Node``.

This is the format of ``rabbitmqctl export_definitions`` and of the management API's
/api/definitions: the whole broker, or one vhost whose items carry no "vhost" key. It is
the domain's format, not the HTTP API's, so it lives here: the management API and the
runtime (``definitions=`` at start-up) both call these functions. lavinmq keeps the same
split (``definitions.cr`` beside a small HTTP controller). Importing is
``rabbit_import.py``.

An export from RabbitMQ imports as is: users keep their password hashes (so they log in
with the same passwords), vhost limits arrive as ``vhost-limits`` parameters, and keys
that mean nothing on one leveret node (global parameters such as the cluster id,
mirroring policy keys) are accepted.

Errors: ``InvalidDefinition`` (a ValueError) with RabbitMQ's reason, which the management
API answers as 400.

Not to be confused with ``broker/definitions.py``: the durable records leveret keeps in
its own definitions log, in its own format.
"""

from __future__ import annotations

import base64
import datetime
import decimal
from typing import Any

from leveret.amqp.fields import FieldTable, Long
from leveret.broker.access import Permission, TopicPermission, User
from leveret.broker.arguments import QUEUE_ARGUMENTS, parse_interval
from leveret.broker.exchanges import Exchange
from leveret.broker.node import Node
from leveret.broker.policy import Policy
from leveret.broker.queues import Queue
from leveret.broker.queues.stream import MAX_SEGMENT_SIZE
from leveret.broker.vhost import VirtualHost
from leveret.version import __version__

# The RabbitMQ release whose formats (and management API) leveret follows; tools branch
# on it, so they take the 3.10 path.
RABBITMQ_VERSION = "3.10.8"

# Policy keys RabbitMQ recognises that have no effect on one leveret node (mirroring,
# federation, queue versions, a stream's cluster size); accepted so RabbitMQ's definitions
# import unchanged.
ACCEPTED_WITHOUT_EFFECT = frozenset({
    "ha-mode", "ha-params", "ha-sync-mode", "ha-promote-on-shutdown",
    "ha-promote-on-failure", "ha-sync-batch-size", "federation-upstream",
    "federation-upstream-set", "queue-version", "initial-cluster-size",
})
# A stream's policy keys (with max-length-bytes, which classic and quorum queues share):
# what RabbitMQ's policy validation (rabbit_policies.erl) says of a bad value. RabbitMQ
# 3.10 answers 500 for a max-age that is not a string or has no digits ("bogus"): leveret
# says what it says of "0D".
STREAM_POLICY_KEYS = ("max-age", "max-length-bytes", "stream-max-segment-size-bytes")
_POLICY_VALUE_NAMES = {"max-age": "a valid max age",
                       "max-length-bytes": "a valid maximum length in bytes",
                       "stream-max-segment-size-bytes": "a valid segment size"}


class InvalidDefinition(ValueError):
    """A document (or part of one) RabbitMQ would refuse. ``reason`` is RabbitMQ's, a
    string or an Erlang-like term such as ``["no_such_vhost", "v1"]``."""

    def __init__(self, reason: str | list[str]) -> None:
        super().__init__(reason)
        self.reason = reason


def product_version() -> str:
    return __version__


# -- values between JSON and AMQP ---------------------------------------------------------

def jsonable(value: Any) -> Any:
    """An AMQP field value as JSON (what RabbitMQ's management plugin prints for it)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode()
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def field_table(value: Any) -> FieldTable:
    """JSON arguments as an AMQP field table: integers become longs, as RabbitMQ makes
    them, so declarations from JSON and over AMQP are equivalent."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise InvalidDefinition("arguments must be an object")
    return {str(k): _field_value(v) for k, v in value.items()}


def _field_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -(1 << 63) <= value < 1 << 63:  # what a field table's long can hold
            raise InvalidDefinition(f"integer {value} out of range for an argument")
        return Long(value)
    if isinstance(value, dict):
        return {str(k): _field_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_field_value(v) for v in value]
    return value


# -- the access model and policies as JSON (the management API lists them the same way) -----

def user_json(user: User) -> dict[str, Any]:
    return {"name": user.name, "password_hash": user.password_hash,
            "hashing_algorithm": user.hashing_algorithm, "tags": list(user.tags),
            "limits": dict(user.limits)}


def permission_json(vhost: str, user: str, p: Permission) -> dict[str, Any]:
    return {"user": user, "vhost": vhost, "configure": p.configure, "write": p.write,
            "read": p.read}


def topic_permission_json(vhost: str, user: str, t: TopicPermission) -> dict[str, Any]:
    return {"user": user, "vhost": vhost, "exchange": t.exchange, "write": t.write,
            "read": t.read}


def policy_json(vhost: str, p: Policy) -> dict[str, Any]:
    return {"vhost": vhost, "name": p.name, "pattern": p.pattern, "apply-to": p.apply_to,
            "definition": jsonable(p.definition), "priority": p.priority}


def check_policy_definition(definition: Any) -> dict[str, Any]:
    """A policy's definition, if every key is one RabbitMQ recognises."""
    if not isinstance(definition, dict) or not definition:
        raise InvalidDefinition("Validation failed\n\ndefinition must be a non-empty object\n")
    unknown = [k for k in definition if k != "alternate-exchange"
               and f"x-{k}" not in QUEUE_ARGUMENTS and k not in ACCEPTED_WITHOUT_EFFECT
               and k not in STREAM_POLICY_KEYS]
    if unknown:
        terms = ",".join(f'{{<<"{k}">>,{jsonable(definition[k])}}}' for k in unknown)
        raise InvalidDefinition(f"Validation failed\n\n[{terms}] are not recognised policy "
                                "settings\n")
    for key in STREAM_POLICY_KEYS:
        if key in definition and not _valid_policy_value(key, definition[key]):
            raise InvalidDefinition(f"Validation failed\n\n{_erlang(definition[key])} is not "
                                    f"{_POLICY_VALUE_NAMES[key]}\n")
    return definition


def _valid_policy_value(key: str, value: Any) -> bool:
    if key == "max-age":
        return isinstance(value, str) and parse_interval(value) is not None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return False
    return key != "stream-max-segment-size-bytes" or value <= MAX_SEGMENT_SIZE


def _erlang(value: Any) -> str:
    """A JSON value as RabbitMQ's ``~p`` prints it in a validation error."""
    if isinstance(value, str):
        return f'<<"{value}">>'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return str(jsonable(value))


# -- export -----------------------------------------------------------------------------------

def _exported_exchanges(vhost: VirtualHost) -> list[Exchange]:
    return [ex for ex in vhost.exchanges.values()
            if ex.name and not ex.name.startswith("amq.")]


def _exported_queues(vhost: VirtualHost) -> list[Queue]:
    return [q for q in vhost.queues.values() if not q.exclusive]


def vhost_items(vhost: VirtualHost) -> dict[str, list[dict[str, Any]]]:
    """A vhost's queues, exchanges, bindings, policies and limits, each with its vhost."""
    name = vhost.name
    bindings = [{"source": ex.name, "vhost": name, "destination": b.destination.name,
                 "destination_type": b.destination.kind, "routing_key": b.routing_key,
                 "arguments": jsonable(b.arguments)}
                for ex in vhost.exchanges.values() if ex.name
                for b in ex.bindings.values()
                if not (isinstance(b.destination, Queue) and b.destination.exclusive)]
    return {
        "policies": [policy_json(name, p) for p in vhost.policies.values()],
        "queues": [{"name": q.name, "vhost": name, "durable": q.durable,
                    "auto_delete": q.auto_delete, "arguments": jsonable(q.arguments)}
                   for q in _exported_queues(vhost)],
        "exchanges": [{"name": ex.name, "vhost": name, "type": ex.type,
                       "durable": ex.durable, "auto_delete": ex.auto_delete,
                       "internal": ex.internal, "arguments": jsonable(ex.arguments)}
                      for ex in _exported_exchanges(vhost)],
        "bindings": bindings,
    }


def _limit_parameters(node: Node, names: list[str]) -> list[dict[str, Any]]:
    """Runtime parameters: vhost limits, then the others (shovels) as they were given."""
    rows = [{"value": dict(node.vhost_limits[n]), "vhost": n, "component": "vhost-limits",
             "name": "limits"} for n in names if node.vhost_limits.get(n)]
    return rows + [{"value": value, "vhost": vh, "component": component, "name": name}
                   for (component, vh, name), value in node.parameters.items()
                   if vh in names]


def _vhost_json(vhost: VirtualHost) -> dict[str, Any]:
    return {"name": vhost.name, "description": vhost.description, "tags": list(vhost.tags),
            "metadata": {"description": vhost.description, "tags": list(vhost.tags)}}


def export_all(node: Node) -> dict[str, Any]:
    """The whole broker's definitions."""
    per_vhost: dict[str, list[dict[str, Any]]] = {
        "policies": [], "queues": [], "exchanges": [], "bindings": []}
    for vhost in node.vhosts.values():
        for key, items in vhost_items(vhost).items():
            per_vhost[key].extend(items)
    return {
        "rabbit_version": RABBITMQ_VERSION, "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "leveret", "product_version": product_version(),
        "users": [user_json(u) for u in node.users.values()],
        "vhosts": [_vhost_json(v) for v in node.vhosts.values()],
        "permissions": [permission_json(v, u, p) for (v, u), p in node.permissions.items()],
        "topic_permissions": [topic_permission_json(v, u, t)
                              for (v, u, _), t in node.topic_permissions.items()],
        "parameters": _limit_parameters(node, list(node.vhosts)),
        "global_parameters": [{"name": "cluster_name", "value": node.cluster_name}],
        **per_vhost,
    }


def export_vhost(node: Node, vhost: VirtualHost) -> dict[str, Any]:
    """One vhost's definitions, its items without their "vhost" key (but its policies' and
    its parameters'), as RabbitMQ 3.10.8 exports a vhost."""
    items = vhost_items(vhost)
    for key, group in items.items():
        if key != "policies":  # RabbitMQ keeps the vhost of policies only
            for item in group:
                item.pop("vhost", None)
    params = _limit_parameters(node, [vhost.name])  # with their "vhost", as RabbitMQ's
    return {"rabbit_version": RABBITMQ_VERSION, "rabbitmq_version": RABBITMQ_VERSION,
            "product_name": "leveret", "product_version": product_version(),
            "parameters": params, **items}
