"""Who may do what: users, their password hashes and tags, and per-vhost permissions.

The model is RabbitMQ's internal auth backend, so definitions exported from RabbitMQ import
here and its users log in with their passwords:

- A password hash is ``base64(salt + H(salt + utf8(password)))`` with a 4-byte random salt
  and ``H`` named by the user's ``hashing_algorithm`` (sha256 by default; sha512 and md5 for
  older exports).
- A permission is three regular expressions (configure, write, read) matched with
  ``re.search`` against a resource name, as Erlang's ``re:run`` does; an empty expression
  matches nothing. The default exchange is checked under the name ``amq.default``.
- A topic permission limits the routing keys a user may publish with (write) or bind with
  (read) on one topic exchange; ``{username}`` and ``{vhost}`` in it are replaced first. With
  no topic permission for an exchange, every key is allowed.

``Grants`` is the compiled view one connection uses: every check is a dict lookup after the
first for a given name, and the cache is dropped when the node's permissions change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from typing import Any

from leveret.errors import AccessRefused

SHA256 = "rabbit_password_hashing_sha256"
HASHES = {
    SHA256: hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}
CONFIGURE, WRITE, READ = "configure", "write", "read"
DEFAULT_EXCHANGE = "amq.default"


@dataclass
class User:
    name: str
    password_hash: str  # base64, RabbitMQ's format; "" means no password login
    hashing_algorithm: str = SHA256
    tags: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)  # max-connections, max-channels


@dataclass
class Permission:
    configure: str = ".*"
    write: str = ".*"
    read: str = ".*"


@dataclass
class TopicPermission:
    exchange: str
    write: str = ".*"
    read: str = ".*"


def hash_password(password: str, algorithm: str = SHA256, salt: bytes | None = None) -> str:
    if algorithm not in HASHES:
        raise ValueError(f"unknown hashing algorithm {algorithm!r}; one of "
                         f"{', '.join(HASHES)}")
    salt = os.urandom(4) if salt is None else salt
    digest = HASHES[algorithm](salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def check_password(user: User, password: str) -> bool:
    hasher = HASHES.get(user.hashing_algorithm)
    if hasher is None or not user.password_hash:
        return False
    try:
        raw = base64.b64decode(user.password_hash, validate=True)
    except ValueError:
        return False
    salt, expected = raw[:4], raw[4:]
    return hmac.compare_digest(hasher(salt + password.encode()).digest(), expected)


def parse_tags(tags: Any) -> list[str]:
    """Tags as RabbitMQ accepts them: a list, or one comma-separated string."""
    if tags is None:
        return []
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    return [str(t) for t in tags]


def _compile(pattern: str) -> re.Pattern[str] | None:
    """None matches nothing (RabbitMQ's empty permission)."""
    if pattern == "":
        return None
    try:
        return re.compile(pattern)
    except re.error:
        return None  # an invalid expression cannot be satisfied; PUT rejects them first


def validate_pattern(pattern: str) -> None:
    if pattern:
        re.compile(pattern)


class Grants:
    """One user's permissions in one vhost, compiled, with the answers cached."""

    def __init__(self, user: str, vhost: str, permission: Permission | None,
                 topics: dict[str, TopicPermission], impersonator: bool = False) -> None:
        self.user = user
        self.vhost = vhost
        self.impersonator = impersonator
        p = permission
        self._patterns = {
            CONFIGURE: _compile(p.configure) if p else None,
            WRITE: _compile(p.write) if p else None,
            READ: _compile(p.read) if p else None,
        }
        self._topics = {}
        def expand(pattern: str) -> str:
            return pattern.replace("{username}", user).replace("{vhost}", vhost)

        for name, t in topics.items():
            self._topics[name] = (_compile(expand(t.write)), _compile(expand(t.read)))
        self._cache: dict[tuple[str, str, str], bool] = {}
        # Exchanges this user may publish to: the publish path's one set lookup.
        self.writable_exchanges: set[str] = set()

    def allowed(self, action: str, kind: str, name: str) -> bool:
        key = (action, kind, name)
        ok = self._cache.get(key)
        if ok is None:
            pattern = self._patterns[action]
            subject = DEFAULT_EXCHANGE if kind == "exchange" and name == "" else name
            ok = pattern is not None and pattern.search(subject) is not None
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = ok
        return ok

    def check(self, action: str, kind: str, name: str) -> None:
        """Raise 403 ACCESS_REFUSED with RabbitMQ's text unless ``action`` is allowed."""
        if self.allowed(action, kind, name):
            if action == WRITE and kind == "exchange" and len(self.writable_exchanges) < 4096:
                self.writable_exchanges.add(name)
        else:
            shown = DEFAULT_EXCHANGE if kind == "exchange" and name == "" else name
            raise AccessRefused(f"access to {kind} '{shown}' in vhost '{self.vhost}' refused "
                                f"for user '{self.user}'")

    def check_topic(self, action: str, exchange: str, routing_key: str) -> None:
        """Topic permissions apply to topic exchanges only; the caller checks the type."""
        patterns = self._topics.get(exchange)
        if patterns is None:
            return
        pattern = patterns[0] if action == WRITE else patterns[1]
        if pattern is None or pattern.search(routing_key) is None:
            raise AccessRefused(f"access to topic '{routing_key}' in exchange '{exchange}' in "
                                f"vhost '{self.vhost}' refused for user '{self.user}'")

