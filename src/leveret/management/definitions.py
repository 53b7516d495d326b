"""Definitions export and import in RabbitMQ's JSON format: /api/definitions (whole broker)
and /api/definitions/{vhost} (one vhost, items without their "vhost" key).

An export from RabbitMQ imports as is: users keep their password hashes (so they log in
with the same passwords), vhost limits arrive as ``vhost-limits`` parameters, and keys
that mean nothing on one leveret node (global parameters such as the cluster id,
mirroring policy keys) are accepted. Import order follows RabbitMQ's: users, vhosts,
permissions, topic permissions, parameters, policies, queues, exchanges, bindings.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from leveret.broker.access import HASHES, SHA256, parse_tags
from leveret.errors import AMQPError
from leveret.management.auth import require_admin
from leveret.management.context import context
from leveret.management.http import (
    ApiError,
    bad_request,
    field_table,
    jsonable,
    no_content,
    not_found,
    read_json,
)
from leveret.management.overview import RABBITMQ_VERSION, _version
from leveret.management.policies import check_definition, policy_json
from leveret.management.users import permission_json, topic_permission_json, user_json

# Hash lengths (salt + digest) of the algorithms, for exports that do not name theirs.
_BY_LENGTH = {4 + 16: "rabbit_password_hashing_md5", 4 + 32: SHA256,
              4 + 64: "rabbit_password_hashing_sha512"}


def _exported_exchanges(vhost: Any) -> list[Any]:
    return [ex for ex in vhost.exchanges.values()
            if ex.name and not ex.name.startswith("amq.")]


def _exported_queues(vhost: Any) -> list[Any]:
    return [q for q in vhost.queues.values() if not q.exclusive]


def vhost_items(vhost: Any) -> dict[str, list[dict[str, Any]]]:
    """A vhost's queues, exchanges, bindings, policies and limits, each with its vhost."""
    name = vhost.name
    bindings = [{"source": ex.name, "vhost": name, "destination": b.destination.name,
                 "destination_type": b.destination.kind, "routing_key": b.routing_key,
                 "arguments": jsonable(b.arguments)}
                for ex in vhost.exchanges.values() if ex.name
                for b in ex.bindings.values()
                if not (b.destination.kind == "queue" and b.destination.exclusive)]
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


def _limit_parameters(node: Any, names: list[str]) -> list[dict[str, Any]]:
    return [{"value": dict(node.vhost_limits[n]), "vhost": n, "component": "vhost-limits",
             "name": "limits"} for n in names if node.vhost_limits.get(n)]


def export_all(node: Any) -> dict[str, Any]:
    per_vhost: dict[str, list[dict[str, Any]]] = {
        "policies": [], "queues": [], "exchanges": [], "bindings": []}
    for vhost in node.vhosts.values():
        for key, items in vhost_items(vhost).items():
            per_vhost[key].extend(items)
    return {
        "rabbit_version": RABBITMQ_VERSION, "rabbitmq_version": RABBITMQ_VERSION,
        "product_name": "leveret", "product_version": _version(),
        "users": [user_json(u) for u in node.users.values()],
        "vhosts": [{"name": n, "description": getattr(v, "description", ""),
                    "tags": list(getattr(v, "tags", [])),
                    "metadata": {"description": getattr(v, "description", ""),
                                 "tags": list(getattr(v, "tags", []))}}
                   for n, v in node.vhosts.items()],
        "permissions": [permission_json(v, u, p) for (v, u), p in node.permissions.items()],
        "topic_permissions": [topic_permission_json(v, u, t)
                              for (v, u, _), t in node.topic_permissions.items()],
        "parameters": _limit_parameters(node, list(node.vhosts)),
        "global_parameters": [{"name": "cluster_name", "value": node.cluster_name}],
        **per_vhost,
    }


def export_vhost(node: Any, vhost: Any) -> dict[str, Any]:
    items = vhost_items(vhost)
    for key, group in items.items():
        if key != "policies":  # RabbitMQ keeps the vhost of policies only
            for item in group:
                item.pop("vhost", None)
    params = _limit_parameters(node, [vhost.name])
    for p in params:
        p.pop("vhost", None)
    return {"rabbit_version": RABBITMQ_VERSION, "rabbitmq_version": RABBITMQ_VERSION,
            "product_name": "leveret", "product_version": _version(),
            "parameters": params, **items}


# -- import ---------------------------------------------------------------------------------

def _algorithm(user: dict[str, Any]) -> str:
    named = user.get("hashing_algorithm")
    if named:
        if named not in HASHES:
            raise bad_request(f"unknown hashing algorithm {named}")
        return str(named)
    try:
        length = len(base64.b64decode(user.get("password_hash", ""), validate=True))
    except (binascii.Error, ValueError):
        return SHA256
    return _BY_LENGTH.get(length, SHA256)


def _vhost(node: Any, name: str) -> Any:
    vhost = node.vhosts.get(name)
    if vhost is None:
        raise bad_request(["no_such_vhost", name])
    return vhost


def import_definitions(node: Any, defs: dict[str, Any], only_vhost: str | None = None) -> None:
    """Apply a definitions document; with ``only_vhost`` the items carry no vhost (a
    per-vhost export) and land there."""
    if only_vhost is None:
        _import_access(node, defs)
    _import_vhost_items(node, defs, only_vhost)


def _import_access(node: Any, defs: dict[str, Any]) -> None:
    """Users, vhosts, permissions, topic permissions and global parameters."""
    for u in defs.get("users", []):
        node.add_user(u["name"], password_hash=u.get("password_hash", ""),
                      hashing_algorithm=_algorithm(u), tags=parse_tags(u.get("tags")))
        if u.get("limits"):
            node.set_user_limits(u["name"], u["limits"])
    for v in defs.get("vhosts", []):
        meta = v.get("metadata") or {}
        node.add_vhost(v["name"], v.get("description", meta.get("description", "")),
                       parse_tags(v.get("tags", meta.get("tags", []))),
                       v.get("default_queue_type"))
    for p in defs.get("permissions", []):
        try:
            node.set_permissions(p["vhost"], p["user"], p["configure"], p["write"], p["read"])
        except KeyError:
            raise bad_request(["no_such_vhost_or_user", p["vhost"], p["user"]]) from None
    for t in defs.get("topic_permissions", []):
        try:
            node.set_topic_permissions(t["vhost"], t["user"], t["exchange"], t["write"],
                                       t["read"])
        except KeyError:
            raise bad_request(["no_such_vhost_or_user", t["vhost"], t["user"]]) from None
    for g in defs.get("global_parameters", []):
        if g.get("name") == "cluster_name" and isinstance(g.get("value"), str):
            node.cluster_name = g["value"]


def _import_vhost_items(node: Any, defs: dict[str, Any], only_vhost: str | None) -> None:
    """Vhost limits, policies, queues, exchanges and bindings."""
    def vhost(item: dict[str, Any]) -> Any:
        return _vhost(node, only_vhost if only_vhost is not None
                      else str(item.get("vhost", "/")))

    for p in defs.get("parameters", []):
        if p.get("component") == "vhost-limits" and isinstance(p.get("value"), dict) \
                and p["value"]:
            node.set_vhost_limits(vhost(p).name, p["value"])
    for p in defs.get("policies", []):
        vhost(p).set_policy(p["name"], p["pattern"], check_definition(p["definition"]),
                            int(p.get("priority", 0)), p.get("apply-to", "all"))
    for q in defs.get("queues", []):
        vhost(q).declare_queue(q["name"], False, bool(q.get("durable", True)), False,
                               bool(q.get("auto_delete", False)),
                               field_table(q.get("arguments")), None)
    for x in defs.get("exchanges", []):
        if x["name"] == "" or x["name"].startswith("amq."):
            continue
        vhost(x).declare_exchange(x["name"], x.get("type", "direct"), False,
                                  bool(x.get("durable", True)),
                                  bool(x.get("auto_delete", False)),
                                  bool(x.get("internal", False)),
                                  field_table(x.get("arguments")))
    for b in defs.get("bindings", []):
        args = field_table(b.get("arguments"))
        if b.get("destination_type", "queue") == "queue":
            vhost(b).bind_queue(b["destination"], b["source"], b.get("routing_key", ""), args,
                                None)
        else:
            vhost(b).bind_exchange(b["destination"], b["source"], b.get("routing_key", ""),
                                   args)


def _attachment(request: web.Request, data: dict[str, Any]) -> web.Response:
    headers = {}
    download = request.query.get("download")
    if download:
        headers["Content-Disposition"] = f"attachment; filename={download}"
    return web.Response(text=json.dumps(data, separators=(",", ":")),
                        content_type="application/json", headers=headers)


async def get_definitions(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    if "vhost" in request.match_info:
        vhost = node.vhosts.get(request.match_info["vhost"])
        if vhost is None:
            raise not_found()
        return _attachment(request, export_vhost(node, vhost))
    return _attachment(request, export_all(node))


async def post_definitions(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    only = request.match_info.get("vhost")
    if only is not None and only not in node.vhosts:
        raise not_found()
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        upload = form.get("file")
        raw = upload.file.read() if isinstance(upload, web.FileField) else str(upload or "")
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("not_json") from None
    else:
        body = await read_json(request)
    try:
        import_definitions(node, body, only)
    except AMQPError as exc:
        raise bad_request(exc.text) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(400, "bad_request", f"invalid definitions: {exc!r}") from exc
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/definitions", get_definitions)
    r.add_post("/api/definitions", post_definitions)
    r.add_get("/api/definitions/{vhost}", get_definitions)
    r.add_post("/api/definitions/{vhost}", post_definitions)
