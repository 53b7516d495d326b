"""Importing a RabbitMQ definitions document into a ``Node``: the whole document is
checked first, then applied, so a document with a bad item changes nothing.

    import_definitions(node, document)            # /api/definitions, definitions= at start
    import_definitions(node, document, "v1")      # a per-vhost export, into vhost v1

The check covers what the document itself decides: every section a list of objects, every
field of the type the import needs, names that the import would refuse (``amq.*`` queues,
unknown exchange types, unknown hashing algorithms), queue arguments and policy
definitions with RabbitMQ's texts, and references (a permission's user and vhost, a
binding's exchange and queue) to what exists or what the document creates. What only the
broker's state decides (a queue redeclared with other properties, a vhost's queue limit)
can still stop an import part way, as it stops RabbitMQ's.

Import order follows RabbitMQ's: users, vhosts, permissions, topic permissions, parameters,
policies, queues, exchanges, bindings. Errors: ``InvalidDefinition`` with RabbitMQ's reason
where it has one, or a ``leveret.errors.AMQPError`` from the broker.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from leveret.broker import federation, shovels
from leveret.broker.access import HASHES, SHA256, parse_tags
from leveret.broker.arguments import validate_queue_arguments
from leveret.broker.exchanges import TYPES
from leveret.broker.node import Node
from leveret.broker.policy import Policy
from leveret.broker.rabbit_definitions import (
    InvalidDefinition,
    check_policy_definition,
    field_table,
)
from leveret.broker.vhost import VirtualHost

# Hash lengths (salt + digest) of the algorithms, for exports that do not name theirs.
_BY_LENGTH = {4 + 16: "rabbit_password_hashing_md5", 4 + 32: SHA256,
              4 + 64: "rabbit_password_hashing_sha512"}

_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "str": (str, "a string"), "bool": (bool, "true or false"), "int": (int, "an integer"),
    "dict": (dict, "an object"), "tags": ((str, list), "a list of strings or a string"),
}


def import_definitions(node: Node, defs: dict[str, Any], only_vhost: str | None = None
                       ) -> None:
    """Check ``defs`` whole, then apply it; with ``only_vhost`` the items carry no vhost
    (a per-vhost export) and land there."""
    if not isinstance(defs, dict):
        raise InvalidDefinition("definitions must be a JSON object")
    check_definitions(node, defs, only_vhost)
    if only_vhost is None:
        _import_access(node, defs)
    _import_vhost_items(node, defs, only_vhost)


# -- the check --------------------------------------------------------------------------------

def _items(defs: dict[str, Any], section: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, item) for each item of a section: "queues[3]" names it in errors."""
    items = defs.get(section)
    if items is None:
        return
    if not isinstance(items, list):
        raise InvalidDefinition(f"{section} must be a list of objects")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidDefinition(f"{section}[{index}] must be an object")
        yield f"{section}[{index}]", item


def _field(item: dict[str, Any], key: str, kind: str, where: str,
           required: bool = False) -> Any:
    value = item.get(key)
    if value is None:
        if required:
            raise InvalidDefinition(f"{where} has no {key}")
        return None
    wanted, described = _TYPES[kind]
    if not isinstance(value, wanted) or (kind == "int" and isinstance(value, bool)) or (
            kind == "tags" and isinstance(value, list)
            and not all(isinstance(t, str) for t in value)):
        raise InvalidDefinition(f"{where}: {key} must be {described}")
    return value


def _pattern(item: dict[str, Any], key: str, where: str) -> None:
    try:
        re.compile(_field(item, key, "str", where, required=True))
    except re.error as exc:
        raise InvalidDefinition(f"{where}: {key} is not a regular expression: {exc}") from None


def _limits(item: dict[str, Any], key: str, where: str) -> None:
    for name, value in (_field(item, key, "dict", where) or {}).items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidDefinition(f"{where}: {key}: {name} must be an integer")


def check_definitions(node: Node, defs: dict[str, Any], only_vhost: str | None) -> None:
    """InvalidDefinition (or an AMQPError, for queue arguments and policies) for the first
    thing in ``defs`` the import would refuse; nothing is changed."""
    vhosts = set(node.vhosts) | ({only_vhost} if only_vhost is not None else set())
    users = set(node.users)
    if only_vhost is None:
        users |= _check_users(defs)
        vhosts |= _check_vhosts(defs)
        _check_permissions(defs, vhosts, users)
        list(_items(defs, "global_parameters"))  # objects; only cluster_name is read

    def vhost_of(item: dict[str, Any], where: str) -> str:
        if only_vhost is not None:
            return only_vhost
        name = _field(item, "vhost", "str", where) or "/"
        if name not in vhosts:
            raise InvalidDefinition(["no_such_vhost", name])
        return str(name)

    _check_policies(defs, vhost_of)
    queues = {(v.name, q) for v in node.vhosts.values() for q in v.queues}
    exchanges = {(v.name, x) for v in node.vhosts.values() for x in v.exchanges}
    queues |= _check_queues(defs, vhost_of)
    exchanges |= _check_exchanges(defs, vhost_of)
    _check_bindings(defs, vhost_of, queues, exchanges)


def _check_users(defs: dict[str, Any]) -> set[str]:
    names = set()
    for where, u in _items(defs, "users"):
        names.add(_field(u, "name", "str", where, required=True))
        _field(u, "tags", "tags", where)
        password_hash = _field(u, "password_hash", "str", where) or ""
        try:
            base64.b64decode(password_hash, validate=True)
        except binascii.Error:
            raise InvalidDefinition(["not_base64", password_hash]) from None
        algorithm = _field(u, "hashing_algorithm", "str", where)
        if algorithm and algorithm not in HASHES:
            raise InvalidDefinition(f"unknown hashing algorithm {algorithm}")
        _limits(u, "limits", where)
    return names


def _check_vhosts(defs: dict[str, Any]) -> set[str]:
    names = set()
    for where, v in _items(defs, "vhosts"):
        names.add(_field(v, "name", "str", where, required=True))
        _field(v, "description", "str", where)
        _field(v, "tags", "tags", where)
        _field(v, "default_queue_type", "str", where)
        meta = _field(v, "metadata", "dict", where) or {}
        _field(meta, "description", "str", f"{where}: metadata")
        _field(meta, "tags", "tags", f"{where}: metadata")
    return names


def _check_permissions(defs: dict[str, Any], vhosts: set[str], users: set[str]) -> None:
    for section, keys in (("permissions", ("configure", "write", "read")),
                          ("topic_permissions", ("write", "read"))):
        for where, p in _items(defs, section):
            vhost = _field(p, "vhost", "str", where, required=True)
            user = _field(p, "user", "str", where, required=True)
            if section == "topic_permissions":
                _field(p, "exchange", "str", where, required=True)
            for key in keys:
                _pattern(p, key, where)
            if vhost not in vhosts or user not in users:
                raise InvalidDefinition(["no_such_vhost_or_user", vhost, user])


def _check_policies(defs: dict[str, Any], vhost_of: Any) -> None:
    for where, p in _items(defs, "parameters"):
        vhost_of(p, where)
        component = _field(p, "component", "str", where)
        if component == "vhost-limits":
            _limits(p, "value", where)
        elif component == shovels.COMPONENT:
            name = _field(p, "name", "str", where, required=True)
            errors = shovels.validate(name, p.get("value"))
            if errors:
                raise InvalidDefinition("Validation failed\n\n" + "".join(
                    e + "\n" for e in errors))
        elif component in federation.COMPONENTS:
            name = _field(p, "name", "str", where, required=True)
            errors = federation.validate(component, name, p.get("value"))
            if errors:
                raise InvalidDefinition("Validation failed\n\n" + "".join(
                    e + "\n" for e in errors))
    for where, p in _items(defs, "policies"):
        vhost = vhost_of(p, where)
        name = _field(p, "name", "str", where, required=True)
        _field(p, "pattern", "str", where, required=True)
        _field(p, "apply-to", "str", where)
        _field(p, "priority", "int", where)
        try:
            definition = check_policy_definition(p.get("definition"))
        except InvalidDefinition as exc:
            raise InvalidDefinition(f"{where}: {exc.reason}") from None
        policy = Policy(name, p["pattern"], definition, p.get("priority") or 0,
                        p.get("apply-to") or "all")  # its own checks: apply-to, pattern
        validate_queue_arguments(policy.as_arguments(), f"policy '{name}' in vhost '{vhost}'")


def _check_queues(defs: dict[str, Any], vhost_of: Any) -> set[tuple[str, str]]:
    declared = set()
    for where, q in _items(defs, "queues"):
        vhost = vhost_of(q, where)
        name = _field(q, "name", "str", where, required=True)
        if name.startswith("amq."):
            raise InvalidDefinition(f"{where}: queue name '{name}' contains reserved "
                                    "prefix 'amq.*'")
        _field(q, "durable", "bool", where)
        _field(q, "auto_delete", "bool", where)
        arguments = field_table(_field(q, "arguments", "dict", where))
        validate_queue_arguments(arguments, f"queue '{name}' in vhost '{vhost}'")
        declared.add((vhost, name))
    return declared


def _check_exchanges(defs: dict[str, Any], vhost_of: Any) -> set[tuple[str, str]]:
    declared = set()
    for where, x in _items(defs, "exchanges"):
        vhost = vhost_of(x, where)
        name = _field(x, "name", "str", where, required=True)
        kind = _field(x, "type", "str", where) or "direct"
        if kind not in TYPES:
            raise InvalidDefinition(f"{where}: unknown exchange type '{kind}'")
        for key in ("durable", "auto_delete", "internal"):
            _field(x, key, "bool", where)
        field_table(_field(x, "arguments", "dict", where))
        if name and not name.startswith("amq."):  # the import skips these
            declared.add((vhost, name))
    return declared


def _check_bindings(defs: dict[str, Any], vhost_of: Any, queues: set[tuple[str, str]],
                    exchanges: set[tuple[str, str]]) -> None:
    for where, b in _items(defs, "bindings"):
        vhost = vhost_of(b, where)
        source = _field(b, "source", "str", where, required=True)
        destination = _field(b, "destination", "str", where, required=True)
        kind = _field(b, "destination_type", "str", where) or "queue"
        if kind not in ("queue", "exchange"):
            raise InvalidDefinition(f"{where}: destination_type must be queue or exchange")
        _field(b, "routing_key", "str", where)
        field_table(_field(b, "arguments", "dict", where))
        wanted = (("exchange", source, exchanges),
                  (kind, destination, queues if kind == "queue" else exchanges))
        for what, name, known in wanted:
            if (vhost, name) not in known:
                raise InvalidDefinition(f"{where}: no {what} '{name}' in vhost '{vhost}'")


# -- applying a checked document -----------------------------------------------------------

def _algorithm(user: dict[str, Any]) -> str:
    named = user.get("hashing_algorithm")
    if named:
        return str(named)
    try:
        length = len(base64.b64decode(user.get("password_hash") or "", validate=True))
    except (binascii.Error, ValueError):
        return SHA256
    return _BY_LENGTH.get(length, SHA256)


def _import_access(node: Node, defs: dict[str, Any]) -> None:
    """Users, vhosts, permissions, topic permissions and global parameters."""
    for u in defs.get("users") or []:
        node.add_user(u["name"], password_hash=u.get("password_hash") or "",
                      hashing_algorithm=_algorithm(u), tags=parse_tags(u.get("tags")))
        if u.get("limits"):
            node.set_user_limits(u["name"], u["limits"])
    for v in defs.get("vhosts") or []:
        meta = v.get("metadata") or {}
        node.add_vhost(v["name"], v.get("description", meta.get("description", "")) or "",
                       parse_tags(v.get("tags", meta.get("tags", []))),
                       v.get("default_queue_type"))
    for p in defs.get("permissions") or []:
        node.set_permissions(p["vhost"], p["user"], p["configure"], p["write"], p["read"])
    for t in defs.get("topic_permissions") or []:
        node.set_topic_permissions(t["vhost"], t["user"], t["exchange"], t["write"],
                                   t["read"])
    for g in defs.get("global_parameters") or []:
        if g.get("name") == "cluster_name" and isinstance(g.get("value"), str):
            node.set_cluster_name(g["value"])


def _import_vhost_items(node: Node, defs: dict[str, Any], only_vhost: str | None) -> None:
    """Vhost limits, policies, queues, exchanges and bindings."""
    def vhost(item: dict[str, Any]) -> VirtualHost:
        return node.vhosts[only_vhost if only_vhost is not None else item.get("vhost") or "/"]

    for p in defs.get("parameters") or []:
        if p.get("component") == "vhost-limits" and p.get("value"):
            node.set_vhost_limits(vhost(p).name, p["value"])
        elif p.get("component") in (shovels.COMPONENT, *federation.COMPONENTS):
            node.set_parameter(p["component"], vhost(p).name, p["name"], p["value"])
    for p in defs.get("policies") or []:
        vhost(p).set_policy(p["name"], p["pattern"], p["definition"], p.get("priority") or 0,
                            p.get("apply-to") or "all")
    for q in defs.get("queues") or []:
        vhost(q).declare_queue(q["name"], False, q.get("durable", True) is not False, False,
                               q.get("auto_delete") is True, field_table(q.get("arguments")),
                               None)
    for x in defs.get("exchanges") or []:
        if x["name"] == "" or x["name"].startswith("amq."):
            continue
        vhost(x).declare_exchange(x["name"], x.get("type") or "direct", False,
                                  x.get("durable", True) is not False,
                                  x.get("auto_delete") is True, x.get("internal") is True,
                                  field_table(x.get("arguments")))
    for b in defs.get("bindings") or []:
        args = field_table(b.get("arguments"))
        if (b.get("destination_type") or "queue") == "queue":
            vhost(b).bind_queue(b["destination"], b["source"], b.get("routing_key") or "",
                                args, None)
        else:
            vhost(b).bind_exchange(b["destination"], b["source"], b.get("routing_key") or "",
                                   args)
