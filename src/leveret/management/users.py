"""Users, permissions, topic permissions and user limits (administrators only):
/api/users, /api/users/{user}[/permissions|/topic-permissions], /api/users/without-permissions,
/api/users/bulk-delete, /api/permissions[/{vhost}/{user}],
/api/topic-permissions[/{vhost}/{user}], /api/user-limits[/{user}[/{name}]], /api/whoami.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiohttp import web

from leveret.broker.access import HASHES, SHA256
from leveret.broker.rabbit_definitions import permission_json, topic_permission_json, user_json
from leveret.management import validate
from leveret.management.auth import current_user, require_admin
from leveret.management.context import context
from leveret.management.http import (
    bad_request,
    created,
    json_response,
    missing_keys,
    no_content,
    not_found,
    read_json,
)
from leveret.management.listing import listing, one
from leveret.management.validate import optional_text, text, text_list

USER_LIMITS = ("max-connections", "max-channels")


def _user(request: web.Request) -> Any:
    user = context(request).node.users.get(request.match_info["user"])
    if user is None:
        raise not_found()
    return user


async def whoami(request: web.Request) -> web.Response:
    user = current_user(request)
    return json_response({"name": user.name, "tags": list(user.tags)})


async def list_users(request: web.Request) -> web.Response:
    require_admin(request)
    return listing(request, [user_json(u) for u in context(request).node.users.values()],
                   default_sort=("name",))


async def users_without_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    granted = {u for _, u in node.permissions}
    return listing(request, [user_json(u) for u in node.users.values()
                             if u.name not in granted], default_sort=("name",))


async def get_user(request: web.Request) -> web.Response:
    require_admin(request)
    return one(request, user_json(_user(request)))


async def put_user(request: web.Request) -> web.Response:
    """``password`` (hashed here) or ``password_hash`` (+ ``hashing_algorithm``), and
    ``tags`` (a list or comma-separated), which RabbitMQ requires."""
    require_admin(request)
    node = context(request).node
    name = request.match_info["user"]
    body = await read_json(request)
    if "tags" not in body:
        raise bad_request("tags_not_present")
    algorithm = optional_text(body, "hashing_algorithm") or SHA256
    if algorithm not in HASHES:
        raise bad_request(f"unknown hashing algorithm {algorithm}")
    existed = name in node.users
    tags = validate.tags(body)
    if "password" in body:
        node.add_user(name, text(body, "password"), hashing_algorithm=algorithm, tags=tags)
    elif "password_hash" in body:
        node.add_user(name, password_hash=_password_hash(body),
                      hashing_algorithm=algorithm, tags=tags)
    elif existed:  # only the tags change; the password stays
        old = node.users[name]
        node.add_user(name, password_hash=old.password_hash,
                      hashing_algorithm=old.hashing_algorithm, tags=tags)
    else:
        node.add_user(name, password_hash="", tags=tags)
    return no_content() if existed else created()


def _password_hash(body: dict[str, Any]) -> str:
    """Base64 (of salt and digest), or empty: a user who cannot log in with a password."""
    value = text(body, "password_hash")
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise bad_request(["not_base64", value]) from None
    return value


async def delete_user(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        context(request).node.delete_user(request.match_info["user"])
    except KeyError:
        raise not_found() from None
    return no_content()


async def bulk_delete_users(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    body = await read_json(request)
    missing_keys(body, "users")
    for name in text_list(body, "users"):
        if name in node.users:
            node.delete_user(name)
    return no_content()


async def user_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    user = _user(request)
    node = context(request).node
    return listing(request, [permission_json(v, u, p) for (v, u), p in node.permissions.items()
                             if u == user.name], default_sort=("vhost",))


async def user_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    user = _user(request)
    node = context(request).node
    return listing(request, [topic_permission_json(v, u, t)
                             for (v, u, _), t in node.topic_permissions.items()
                             if u == user.name], default_sort=("vhost",))


async def list_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    return listing(request, [permission_json(v, u, p) for (v, u), p in node.permissions.items()],
                   default_sort=("vhost", "user"))


def _vhost_and_user(request: web.Request) -> tuple[str, str]:
    node = context(request).node
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    if vhost not in node.vhosts or user not in node.users:
        raise not_found()
    return vhost, user


async def get_permission(request: web.Request) -> web.Response:
    require_admin(request)
    vhost, user = _vhost_and_user(request)
    p = context(request).node.permissions.get((vhost, user))
    if p is None:
        raise not_found()
    return one(request, permission_json(vhost, user, p))


def _patterns(body: dict[str, Any], *keys: str) -> list[str]:
    missing_keys(body, *keys)
    patterns = [text(body, k) for k in keys]
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise bad_request(f"invalid regular expression '{pattern}': {exc}") from None
    return patterns


async def put_permission(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    body = await read_json(request)
    configure, write, read = _patterns(body, "configure", "write", "read")
    if vhost not in node.vhosts or user not in node.users:
        raise bad_request("vhost_or_user_not_found")
    existed = (vhost, user) in node.permissions
    node.set_permissions(vhost, user, configure, write, read)
    return no_content() if existed else created()


async def delete_permission(request: web.Request) -> web.Response:
    require_admin(request)
    vhost, user = _vhost_and_user(request)
    node = context(request).node
    if (vhost, user) not in node.permissions:
        raise not_found()
    node.clear_permissions(vhost, user)
    return no_content()


async def list_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    return listing(request, [topic_permission_json(v, u, t)
                             for (v, u, _), t in node.topic_permissions.items()],
                   default_sort=())


async def get_topic_permission(request: web.Request) -> web.Response:
    require_admin(request)
    vhost, user = _vhost_and_user(request)
    node = context(request).node
    found = [topic_permission_json(v, u, t) for (v, u, _), t in node.topic_permissions.items()
             if v == vhost and u == user]
    if not found:
        raise not_found()
    return listing(request, found, default_sort=("exchange",))


async def put_topic_permission(request: web.Request) -> web.Response:
    require_admin(request)
    node = context(request).node
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    body = await read_json(request)
    missing_keys(body, "exchange")
    exchange = text(body, "exchange")
    write, read = _patterns(body, "write", "read")
    if vhost not in node.vhosts or user not in node.users:
        raise bad_request("vhost_or_user_not_found")
    existed = (vhost, user, exchange) in node.topic_permissions
    node.set_topic_permissions(vhost, user, exchange, write, read)
    return no_content() if existed else created()


async def delete_topic_permission(request: web.Request) -> web.Response:
    require_admin(request)
    vhost, user = _vhost_and_user(request)
    node = context(request).node
    exchange = request.query.get("exchange")
    # RabbitMQ answers 404 when there is nothing to clear, with or without ?exchange=.
    if not any(v == vhost and u == user and exchange in (None, x)
               for v, u, x in node.topic_permissions):
        raise not_found()
    node.clear_topic_permissions(vhost, user, exchange)
    return no_content()


async def list_user_limits(request: web.Request) -> web.Response:
    node = context(request).node
    users = [_user(request)] if "user" in request.match_info else list(node.users.values())
    return listing(request, [{"user": u.name, "value": dict(u.limits)} for u in users
                             if u.limits], default_sort=("user",))


async def put_user_limit(request: web.Request) -> web.Response:
    require_admin(request)
    user = context(request).node.users.get(request.match_info["user"])
    if user is None:  # RabbitMQ: 400, not 404
        raise bad_request(["no_such_user", request.match_info["user"]])
    name = request.match_info["name"]
    body = await read_json(request)
    missing_keys(body, "value")
    value = body["value"]
    if name not in USER_LIMITS:
        raise bad_request(f"Validation failed\n\n{name} is not a valid user limit\n")
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"Validation failed\n\n{name} must be an integer\n")
    context(request).node.set_user_limits(user.name, {name: value})
    return no_content()


async def delete_user_limit(request: web.Request) -> web.Response:
    require_admin(request)
    user = _user(request)
    # Clearing a limit that is not set succeeds, as in RabbitMQ.
    context(request).node.clear_user_limits(user.name, request.match_info["name"])
    return no_content()


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/whoami", whoami)
    r.add_get("/api/users", list_users)
    r.add_get("/api/users/without-permissions", users_without_permissions)
    r.add_post("/api/users/bulk-delete", bulk_delete_users)
    r.add_get("/api/users/{user}", get_user)
    r.add_put("/api/users/{user}", put_user)
    r.add_delete("/api/users/{user}", delete_user)
    r.add_get("/api/users/{user}/permissions", user_permissions)
    r.add_get("/api/users/{user}/topic-permissions", user_topic_permissions)
    r.add_get("/api/permissions", list_permissions)
    r.add_get("/api/permissions/{vhost}/{user}", get_permission)
    r.add_put("/api/permissions/{vhost}/{user}", put_permission)
    r.add_delete("/api/permissions/{vhost}/{user}", delete_permission)
    r.add_get("/api/topic-permissions", list_topic_permissions)
    r.add_get("/api/topic-permissions/{vhost}/{user}", get_topic_permission)
    r.add_put("/api/topic-permissions/{vhost}/{user}", put_topic_permission)
    r.add_delete("/api/topic-permissions/{vhost}/{user}", delete_topic_permission)
    r.add_get("/api/user-limits", list_user_limits)
    r.add_get("/api/user-limits/{user}", list_user_limits)
    r.add_put("/api/user-limits/{user}/{name}", put_user_limit)
    r.add_delete("/api/user-limits/{user}/{name}", delete_user_limit)
