"""Who is asking, and what they may see, as RabbitMQ's management plugin decides it:

- no or wrong credentials: 401 with ``WWW-Authenticate`` and ``Login failed``;
- a user without a management tag (management, policymaker, monitoring, administrator):
  401 ``Not management user``;
- administrator: everything; monitoring: may read everything (every vhost, every
  connection); management and policymaker: only vhosts they have permissions in, and their
  own connections; policymaker may also change policies there.
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


def require_policymaker(request: web.Request) -> User:
    user = current_user(request)
    if not POLICY_TAGS & tags_of(user):
        raise not_authorised("Not policymaker user")
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


def visible_vhosts(node: Node, user: User) -> list[str]:
    """Monitors and administrators see every vhost; others those they have permissions
    in (RabbitMQ's list_visible_vhosts)."""
    if is_monitor(user):
        return list(node.vhosts)
    return [v for v in node.vhosts if (v, user.name) in node.permissions]


def vhost_of(request: web.Request, node: Node, *, write: bool = False) -> VirtualHost:
    """The vhost named in the path: 404 if unknown; 401 if the user may not see it, or,
    for changes, has no permissions in it (even an administrator needs some)."""
    name = request.match_info["vhost"]
    vhost = node.vhosts.get(name)
    if vhost is None:
        raise not_found()
    user = current_user(request)
    if (write or not is_monitor(user)) and (name, user.name) not in node.permissions:
        raise not_authorised("User not authorised to access virtual host")
    return vhost


def grants(request: web.Request, node: Node, vhost: str) -> Grants:
    """The user's AMQP permissions in ``vhost``, checked as a client's would be."""
    return node.grants(vhost, current_user(request).name)


def sees_connection(user: User, connection_user: str) -> bool:
    return is_monitor(user) or user.name == connection_user
