"""Who is asking, and what they may see, as RabbitMQ's management plugin decides it
(``tests/management/test_mgmt_authz_matrix.py`` holds its answers route by route):

- no or wrong credentials: 401 with ``WWW-Authenticate`` and ``Login failed``;
- a user without a management tag (management, policymaker, monitoring, administrator):
  401 ``Not management user``;
- a route naming a vhost (``vhost_of``): administrators pass, others need permissions in
  it, whatever their tag; what then happens to queues, exchanges, bindings and messages is
  checked against the user's permissions as a client's would be, administrators included;
- lists of queues, exchanges, bindings and policies: the vhosts with permissions, every
  vhost for administrators (``permitted_vhosts``); lists of vhosts and vhost limits: every
  vhost for monitoring users too (``visible_vhosts``);
- connections and channels: a user's own; monitoring users may look at everyone's,
  administrators may also close them (``check_owner``);
- policies one by one: policymakers with permissions in the vhost, administrators.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from leveret.broker.access import Grants, User
from leveret.broker.node import Node
from leveret.broker.vhost import VirtualHost
from leveret.management.http import ApiError, not_authorised, not_found

REALM = 'Basic realm="RabbitMQ Management"'
MANAGEMENT_TAGS = frozenset({"management", "policymaker", "monitoring", "administrator"})
MONITOR_TAGS = frozenset({"monitoring", "administrator"})
POLICY_TAGS = frozenset({"policymaker", "administrator"})

# Typed request storage where aiohttp has it (3.14+, which warns about plain string keys).
USER_KEY: Any = (web.RequestKey("leveret.user", User) if hasattr(web, "RequestKey")
                 else "leveret.user")


def current_user(request: web.Request) -> User:
    user: User = request[USER_KEY]
    return user


def tags_of(user: User) -> set[str]:
    return set(user.tags)


def is_admin(user: User) -> bool:
    return "administrator" in user.tags


def is_monitor(user: User) -> bool:
    return bool(MONITOR_TAGS & tags_of(user))


def require_admin(request: web.Request) -> User:
    user = current_user(request)
    if not is_admin(user):
        raise not_authorised("Not administrator user")
    return user


def require_monitor(request: web.Request) -> User:
    user = current_user(request)
    if not is_monitor(user):
        raise not_authorised("Not monitor user")
    return user


def authenticate(node: Node, request: web.Request) -> User:
    """The user of the request's Basic credentials, or a 401."""
    header = request.headers.get("Authorization", "")
    failed = ApiError(401, "not_authorized", "Login failed", {"WWW-Authenticate": REALM})
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise failed
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(
            ":")
    except (binascii.Error, UnicodeDecodeError):
        raise failed from None
    user: User | None = node.authenticate(username, password, request.remote or "")
    if user is None:
        raise failed
    if not MANAGEMENT_TAGS & tags_of(user):
        raise not_authorised("Not management user")
    return user


def has_permissions(node: Node, user: User, vhost: str) -> bool:
    return (vhost, user.name) in node.permissions


def permitted_vhosts(node: Node, user: User) -> list[str]:
    """Administrators: every vhost; others: those they have permissions in (RabbitMQ's
    list_login_vhosts; the monitoring tag does not widen it)."""
    if is_admin(user):
        return list(node.vhosts)
    return [v for v in node.vhosts if has_permissions(node, user, v)]


def visible_vhosts(node: Node, user: User) -> list[str]:
    """Monitors and administrators see every vhost; others those they have permissions
    in (RabbitMQ's list_visible_vhosts)."""
    if is_monitor(user):
        return list(node.vhosts)
    return [v for v in node.vhosts if has_permissions(node, user, v)]


def named_vhost(request: web.Request, node: Node) -> VirtualHost:
    """The vhost named in the path, whoever asks: 404 if unknown."""
    vhost = node.vhosts.get(request.match_info["vhost"])
    if vhost is None:
        raise not_found()
    return vhost


def vhost_of(request: web.Request, node: Node) -> VirtualHost:
    """The vhost named in the path: 404 if unknown; 401 unless the user is an administrator
    or has permissions in it."""
    vhost = named_vhost(request, node)
    user = current_user(request)
    if not is_admin(user) and not has_permissions(node, user, vhost.name):
        raise not_authorised("User not authorised to access virtual host")
    return vhost


def visible_vhost_of(request: web.Request, node: Node) -> VirtualHost:
    """``vhost_of``, which monitoring users also pass."""
    vhost = named_vhost(request, node)
    user = current_user(request)
    if vhost.name not in visible_vhosts(node, user):
        raise not_authorised("User not authorised to access virtual host")
    return vhost


def policy_vhost_of(request: web.Request, node: Node) -> VirtualHost:
    """The vhost of a policy the user reads or changes: administrators, or policymakers
    with permissions in it."""
    vhost = named_vhost(request, node)
    user = current_user(request)
    if not is_admin(user) and not (POLICY_TAGS & tags_of(user)
                                   and has_permissions(node, user, vhost.name)):
        raise not_authorised("User not authorised to access object")
    return vhost


def grants(request: web.Request, node: Node, vhost: str) -> Grants:
    """The user's AMQP permissions in ``vhost``, checked as a client's would be."""
    return node.grants(vhost, current_user(request).name)


def client_grants(request: web.Request, node: Node, vhost: str) -> Grants:
    """``grants`` for acting on messages, which RabbitMQ does through a connection as the
    user: 401 ``Access refused.`` if that connection would be refused (no permissions in
    the vhost, administrators too)."""
    if not has_permissions(node, current_user(request), vhost):
        raise not_authorised("Access refused.")
    return grants(request, node, vhost)


def sees_connection(user: User, connection_user: str) -> bool:
    return is_monitor(user) or user.name == connection_user


def check_owner(request: web.Request, connection_user: str) -> None:
    """A connection or channel by name: its own user; monitoring users may look at it,
    administrators may also close it."""
    user = current_user(request)
    allowed = (user.name == connection_user or is_admin(user)
               or (request.method != "DELETE" and is_monitor(user)))
    if not allowed:
        raise not_authorised("User not authorised to access object")
