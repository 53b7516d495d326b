"""The broker's shared state: virtual hosts, users, and what it says about itself."""

from __future__ import annotations

import hmac
import json
import logging
import platform
import secrets
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from typing import Any, Protocol

from leveret.broker import access
from leveret.broker.access import Grants, Permission, TopicPermission, User
from leveret.broker.clock import Clock, Timers
from leveret.broker.exchanges import DelayedExchange
from leveret.broker.logins import FAILED_LOGIN_DELAY, RateLimitedLog, Refused
from leveret.broker.queues import Queue
from leveret.broker.stats import Counters, node_counters
from leveret.broker.vhost import VirtualHost
from leveret.store.base import Definitions, Store
from leveret.version import __version__

log = logging.getLogger("leveret.node")

# Definitions-log kinds for the access model (exchanges, queues... are in definitions.py).
USER, VHOST, PERMISSION, TOPIC_PERMISSION = "user", "vhost", "permission", "topic_permission"
# RabbitMQ's global runtime parameters (only ``cluster_name``): {"name", "value"} by name.
GLOBAL_PARAMETER = "global_parameter"
VHOST_LIMITS, USER_LIMITS = "vhost_limits", "user_limits"
# Runtime parameters of components other than vhost-limits (shovels): the value as given.
PARAMETER = "parameter"
# The user of the broker's own AMQP connections to itself (local shovel ends): it logs in
# from the loopback address with ``Node.internal_password``, a secret made afresh by each
# process and never stored, and has every permission in every vhost, as RabbitMQ's direct
# connections do. It is not in ``users``: not listed, exported or changeable.
INTERNAL_USER = "leveret-internal"
LOOPBACK = ("127.", "::1", "::ffff:127.", "localhost")

CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}


@dataclass
class Limits:
    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    max_message_size: int = 128 * 1024 * 1024
    max_connections: int | None = None  # whole broker; None: unlimited
    # Resource alarms (server/alarms.py): a float is a fraction of RAM, an int bytes.
    memory_high_watermark: float | int = 0.4
    disk_free_limit: float | int = 50_000_000
    # Paging (with a data directory): ready messages, and bytes of their bodies, a queue
    # keeps in memory before further ones wait on disk (docs/storage.md, "Paging"); a
    # queue's x-max-in-memory-length / -bytes override them.
    queue_memory_messages: int = 100_000
    queue_memory_bytes: int = 64 << 20


class NodeConnection(Protocol):
    """What the node needs of an open AMQP connection (admission, limits, closing it)."""

    cached_grants: Grants | None  # the compiled permissions; None makes it recompile them

    @property
    def user(self) -> str: ...
    @property
    def vhost(self) -> VirtualHost: ...
    @property
    def channels(self) -> Sized: ...

    def force_close(self, reason: str) -> None: ...


class StreamClient(Protocol):
    """What the node needs of an open stream-protocol connection (stream_connection.py):
    its user and vhost, counted in the connection limits, and closing it."""

    user: str
    vhost: VirtualHost | None

    def force_close(self, reason: str) -> None: ...


class Node:
    """Everything connections share. One per broker process (or embedded broker).

    ``users``: the initial users, name -> password (administrators with full permissions
    on "/") or ``User``; replaced by the recorded ones when a data directory has some."""

    def __init__(self, users: Mapping[str, str | User] | None = None,
                 limits: Limits | None = None, clock: Clock | None = None,
                 cluster_name: str | None = None) -> None:
        self.limits = limits if limits is not None else Limits()
        self.clock = clock if clock is not None else Clock()
        self.timers = Timers(self.clock)
        # Who this broker is to others (federation's loop detection and upstream queue
        # names, shovels' shovelled-by): distinct per broker, as RabbitMQ's default (its node
        # name) is; a data directory keeps it across restarts (attach_definitions).
        self.cluster_name = cluster_name if cluster_name is not None else default_cluster_name()
        self.vhosts: dict[str, VirtualHost] = {}
        self.connections: set[NodeConnection] = set()
        # Open stream-protocol connections: they count in the connection limits and close
        # with their user or vhost, as RabbitMQ's do (it tracks them with its AMQP ones).
        self.stream_connections: set[StreamClient] = set()
        # direct reply-to pseudo-queues by their amq.rabbitmq.reply-to.<id> name
        self.reply_queues: dict[str, Queue] = {}
        # Users who may log in only from a loopback address (RabbitMQ's loopback_users).
        self.loopback_users: list[str] = ["guest"]
        # Seconds a refused login waits for its answer, and the log of refusals that a
        # flood cannot multiply (logins.py).
        self.failed_login_delay = FAILED_LOGIN_DELAY
        self.refusal_log = RateLimitedLog(logging.getLogger("leveret.connection"), self.timers)
        # Active resource alarms ("memory", "disk"), kept by the server's ResourceMonitor.
        self.alarms: list[str] = []
        self._definitions: Definitions | None = None
        self._on_definitions_changed: Callable[[], None] = lambda: None
        self.store: Store | None = None
        # Called after something outside the AMQP input path (the management API, timers)
        # may have written to the store: the runtime installs its group commit here.
        self.store_changed: Callable[[], None] = lambda: None
        self.users: dict[str, User] = {}
        self.permissions: dict[tuple[str, str], Permission] = {}
        self.topic_permissions: dict[tuple[str, str, str], TopicPermission] = {}
        self.vhost_limits: dict[str, dict[str, int]] = {}
        # Runtime parameters: (component, vhost, name) -> value (shovels), and who hears of
        # each change (the runtime's shovels): listener(component, vhost, name, value|None).
        self.parameters: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.parameter_listeners: list[Callable[[str, str, str, Any], None]] = []
        self.internal_password = secrets.token_urlsafe(24)
        self._access_version = 0
        self.restore_incomplete = False  # a durable definition could not be restored
        self.add_vhost("/")
        for name, value in (users if users is not None else {"guest": "guest"}).items():
            if isinstance(value, User):
                self.users[name] = value
            else:
                self.add_user(name, str(value), tags=["administrator"])
                self.set_permissions("/", name)

    # -- vhosts ------------------------------------------------------------------------

    def add_vhost(self, name: str, description: str = "", tags: Any = (),
                  default_queue_type: str | None = None) -> VirtualHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = VirtualHost(name, self.timers, store=self.store,
                                definitions=self._definitions,
                                on_definitions_changed=self._on_definitions_changed,
                                limits=self.limits, reply_queues=self.reply_queues)
            self.vhosts[name] = vhost
        vhost.description = description
        vhost.tags = access.parse_tags(tags)
        vhost.default_queue_type = default_queue_type
        self._record(VHOST, name, {"name": name, "description": description,
                                   "tags": vhost.tags,
                                   "default_queue_type": default_queue_type})
        return vhost

    def delete_vhost(self, name: str) -> None:
        vhost = self.vhosts.pop(name)  # KeyError if unknown
        for conn in [c for c in self.connections if c.vhost is vhost]:
            conn.force_close("vhost deleted")
        for stream_conn in [c for c in self.stream_connections if c.vhost is vhost]:
            stream_conn.force_close("vhost deleted")
        vhost.delete_all()
        for key in [k for k in self.permissions if k[0] == name]:
            self.clear_permissions(*key)
        for vh, user, exchange in [k for k in self.topic_permissions if k[0] == name]:
            self.clear_topic_permissions(vh, user, exchange)
        if name in self.vhost_limits:
            self.clear_vhost_limits(name)
        for component, vh, pname in [k for k in self.parameters if k[1] == name]:
            self.clear_parameter(component, vh, pname)
        self._forget(VHOST, name)

    # -- identity ------------------------------------------------------------------------

    def set_cluster_name(self, name: str) -> None:
        """Rename the cluster (PUT /api/cluster-name, a definitions import): durable."""
        self.cluster_name = name
        self._record(GLOBAL_PARAMETER, "cluster_name", {"name": "cluster_name", "value": name})

    # -- runtime parameters (RabbitMQ's /api/parameters/{component}) --------------------

    def set_parameter(self, component: str, vhost: str, name: str,
                      value: dict[str, Any]) -> None:
        """Record a (validated) parameter and tell the listeners (which start a shovel)."""
        if vhost not in self.vhosts:
            raise KeyError(vhost)
        self.parameters[(component, vhost, name)] = value
        self._record(PARAMETER, json.dumps([component, vhost, name]),
                     {"component": component, "vhost": vhost, "name": name, "value": value})
        for listener in list(self.parameter_listeners):
            listener(component, vhost, name, value)

    def clear_parameter(self, component: str, vhost: str, name: str) -> None:
        if self.parameters.pop((component, vhost, name), None) is None:
            return
        self._forget(PARAMETER, json.dumps([component, vhost, name]))
        for listener in list(self.parameter_listeners):
            listener(component, vhost, name, None)

    def set_vhost_limits(self, vhost: str, limits: dict[str, int]) -> None:
        if vhost not in self.vhosts:
            raise KeyError(vhost)
        merged = {**self.vhost_limits.get(vhost, {}), **{k: int(v) for k, v in limits.items()}}
        self.vhost_limits[vhost] = merged
        self.vhosts[vhost].max_queues = merged.get("max-queues")
        self._record(VHOST_LIMITS, vhost, {"vhost": vhost, "value": merged})

    def clear_vhost_limits(self, vhost: str, name: str | None = None) -> None:
        limits = self.vhost_limits.get(vhost, {})
        if name is None:
            limits.clear()
        else:
            limits.pop(name, None)
        if vhost in self.vhosts:
            self.vhosts[vhost].max_queues = limits.get("max-queues")
        if limits:
            self._record(VHOST_LIMITS, vhost, {"vhost": vhost, "value": limits})
        else:
            self.vhost_limits.pop(vhost, None)
            self._forget(VHOST_LIMITS, vhost)

    # -- users and permissions -----------------------------------------------------------

    def add_user(self, name: str, password: str | None = None, *,
                 password_hash: str | None = None,
                 hashing_algorithm: str = access.SHA256, tags: Any = ()) -> User:
        """Create or replace a user. With neither password nor hash the user cannot log
        in with a password (RabbitMQ's passwordless users)."""
        if password is not None:
            password_hash = access.hash_password(password, hashing_algorithm)
        elif password_hash is None:
            password_hash = ""
        elif hashing_algorithm not in access.HASHES:
            raise ValueError(f"unknown hashing algorithm {hashing_algorithm!r}")
        old = self.users.get(name)
        user = User(name, password_hash, hashing_algorithm, access.parse_tags(tags),
                    dict(old.limits) if old else {})
        self.users[name] = user
        self._record_user(user)
        return user

    def _record_user(self, user: User) -> None:
        self.access_version += 1
        self._record(USER, user.name, {
            "name": user.name, "password_hash": user.password_hash,
            "hashing_algorithm": user.hashing_algorithm, "tags": user.tags,
            "limits": user.limits})

    def delete_user(self, name: str) -> None:
        del self.users[name]  # KeyError if unknown
        for key in [k for k in self.permissions if k[1] == name]:
            self.clear_permissions(*key)
        for vh, user, exchange in [k for k in self.topic_permissions if k[1] == name]:
            self.clear_topic_permissions(vh, user, exchange)
        self.access_version += 1
        self._forget(USER, name)
        for conn in [c for c in self.connections if c.user == name]:
            conn.force_close(f"user '{name}' was deleted")
        for stream_conn in [c for c in self.stream_connections if c.user == name]:
            stream_conn.force_close(f"user '{name}' was deleted")

    def set_user_limits(self, user: str, limits: dict[str, int]) -> None:
        u = self.users[user]
        u.limits.update({k: int(v) for k, v in limits.items()})
        self._record_user(u)

    def clear_user_limits(self, user: str, name: str | None = None) -> None:
        u = self.users[user]
        if name is None:
            u.limits.clear()
        else:
            u.limits.pop(name, None)
        self._record_user(u)

    def set_permissions(self, vhost: str, user: str, configure: str = ".*", write: str = ".*",
                        read: str = ".*") -> None:
        if vhost not in self.vhosts:
            raise KeyError(vhost)
        if user not in self.users:
            raise KeyError(user)
        for pattern in (configure, write, read):
            access.validate_pattern(pattern)
        self.permissions[(vhost, user)] = Permission(configure, write, read)
        self.access_version += 1
        self._record(PERMISSION, f"{vhost}\0{user}", {
            "vhost": vhost, "user": user, "configure": configure, "write": write,
            "read": read})

    def clear_permissions(self, vhost: str, user: str) -> None:
        del self.permissions[(vhost, user)]
        self.access_version += 1
        self._forget(PERMISSION, f"{vhost}\0{user}")

    def set_topic_permissions(self, vhost: str, user: str, exchange: str, write: str = ".*",
                              read: str = ".*") -> None:
        if vhost not in self.vhosts:
            raise KeyError(vhost)
        if user not in self.users:
            raise KeyError(user)
        for pattern in (write, read):
            access.validate_pattern(pattern)
        self.topic_permissions[(vhost, user, exchange)] = TopicPermission(exchange, write, read)
        self.access_version += 1
        self._record(TOPIC_PERMISSION, f"{vhost}\0{user}\0{exchange}", {
            "vhost": vhost, "user": user, "exchange": exchange, "write": write,
            "read": read})

    def clear_topic_permissions(self, vhost: str, user: str,
                                exchange: str | None = None) -> None:
        keys = [k for k in self.topic_permissions
                if k[0] == vhost and k[1] == user and exchange in (None, k[2])]
        if exchange is not None and not keys:
            raise KeyError(exchange)
        for key in keys:
            del self.topic_permissions[key]
            self._forget(TOPIC_PERMISSION, "\0".join(key))
        self.access_version += 1

    @property
    def access_version(self) -> int:
        """Bumped on every change to users or permissions."""
        return self._access_version

    @access_version.setter
    def access_version(self, value: int) -> None:
        # Open connections recompile their permissions on their next check.
        self._access_version = value
        for conn in self.connections:
            conn.cached_grants = None

    def grants(self, vhost: str, user: str) -> Grants:
        if user == INTERNAL_USER and user not in self.users:
            # the broker's own shovels and federation links: like RabbitMQ's direct
            # connections, they pass on a message's user_id as it is (trust-user-id)
            return Grants(user, vhost, Permission(), {}, impersonator=True)
        u = self.users.get(user)
        topics = {k[2]: t for k, t in self.topic_permissions.items()
                  if k[0] == vhost and k[1] == user}
        return Grants(user, vhost, self.permissions.get((vhost, user)), topics,
                      impersonator=u is not None and "impersonator" in u.tags)

    def login(self, user: str, password: str, peer_host: str) -> User | Refused:
        """The user, if the password is right and they may log in from ``peer_host``."""
        if (user == INTERNAL_USER and is_loopback(peer_host)
                and hmac.compare_digest(password.encode(), self.internal_password.encode())):
            return User(INTERNAL_USER, "", tags=["administrator"])
        u = self.users.get(user)
        if u is None:
            return Refused("unknown_user", f"user '{user}' - no such user")
        if not access.check_password(u, password):
            return Refused("invalid_password", f"user '{user}' - invalid password")
        return self._check_loopback(u, peer_host)

    def login_external(self, user: str, peer_host: str) -> User | Refused:
        """EXTERNAL login: the server verified the client's TLS certificate naming ``user``,
        so no password is checked; the user must exist and may be loopback-only."""
        u = self.users.get(user)
        if u is None:
            return Refused("unknown_user", f"user '{user}' - no such user")
        return self._check_loopback(u, peer_host)

    def _check_loopback(self, u: User, peer_host: str) -> User | Refused:
        if u.name in self.loopback_users and not is_loopback(peer_host):
            return Refused("loopback_only", f"user '{u.name}' can only connect via localhost")
        return u

    def authenticate(self, user: str, password: str, peer_host: str = "127.0.0.1"
                     ) -> User | None:
        """``login`` for callers that need no reason (the management API)."""
        u = self.login(user, password, peer_host)
        return u if isinstance(u, User) else None

    # -- durable access records ----------------------------------------------------------

    def _record(self, kind: str, key: str, value: dict[str, Any]) -> None:
        if self._definitions is not None and not self._restoring:
            self._definitions.put(kind, key, value)
            self._on_definitions_changed()

    def _forget(self, kind: str, key: str) -> None:
        if self._definitions is not None and not self._restoring:
            self._definitions.delete(kind, key)
            self._on_definitions_changed()

    _restoring = False

    def restore_access(self, definitions: Definitions) -> bool:
        """Replace users, vhosts, permissions and limits with the recorded ones. False when
        the log has none yet (a new data directory): the caller records the defaults."""
        users = definitions.get(USER)
        vhosts = definitions.get(VHOST)
        if not users and not vhosts:
            return False
        self._restoring = True
        try:
            self.users.clear()
            self.permissions.clear()
            self.topic_permissions.clear()
            self.vhost_limits.clear()
            for name in [n for n in self.vhosts if n not in vhosts]:
                del self.vhosts[name]
            for v in vhosts.values():
                self.add_vhost(v["name"], v.get("description", ""), v.get("tags", ()),
                               v.get("default_queue_type"))
            for v in users.values():
                self.users[v["name"]] = User(v["name"], v["password_hash"],
                                             v["hashing_algorithm"], list(v["tags"]),
                                             dict(v.get("limits", {})))
            for v in definitions.get(PERMISSION).values():
                if v["vhost"] in self.vhosts and v["user"] in self.users:
                    self.set_permissions(v["vhost"], v["user"], v["configure"], v["write"],
                                         v["read"])
            for v in definitions.get(TOPIC_PERMISSION).values():
                if v["vhost"] in self.vhosts and v["user"] in self.users:
                    self.set_topic_permissions(v["vhost"], v["user"], v["exchange"],
                                               v["write"], v["read"])
            for v in definitions.get(VHOST_LIMITS).values():
                if v["vhost"] in self.vhosts:
                    self.set_vhost_limits(v["vhost"], v["value"])
            self.parameters.clear()
            for v in definitions.get(PARAMETER).values():
                if v["vhost"] in self.vhosts:
                    self.set_parameter(v["component"], v["vhost"], v["name"], v["value"])
        finally:
            self._restoring = False
        self.access_version += 1
        return True

    def record_access(self) -> None:
        """Record the current users, vhosts, permissions and limits (first start)."""
        for vhost in self.vhosts.values():
            self.add_vhost(vhost.name, vhost.description, vhost.tags, vhost.default_queue_type)
        for u in self.users.values():
            self._record_user(u)
        for (vh, name), p in list(self.permissions.items()):
            self.set_permissions(vh, name, p.configure, p.write, p.read)
        for (vh, name, _), t in list(self.topic_permissions.items()):
            self.set_topic_permissions(vh, name, t.exchange, t.write, t.read)
        for vh, limits in list(self.vhost_limits.items()):
            self.set_vhost_limits(vh, limits)
        for (component, vh, name), value in list(self.parameters.items()):
            self._record(PARAMETER, json.dumps([component, vh, name]),
                         {"component": component, "vhost": vh, "name": name, "value": value})

    # -- admission -----------------------------------------------------------------------

    def check_connection_allowed(self, user: str, vhost: str) -> Refused | None:
        """Why a new connection of ``user`` to ``vhost`` is refused (530), or None."""
        if vhost not in self.vhosts:
            return Refused("vhost_not_found", f"vhost {vhost} not found")
        if user == INTERNAL_USER and user not in self.users:
            return None  # the broker itself: no limits
        if (vhost, user) not in self.permissions:
            return Refused("vhost_access_refused",
                           f"access to vhost '{vhost}' refused for user '{user}'")
        opened = [(c.user, c.vhost.name) for c in self.connections] + [
            (c.user, c.vhost.name) for c in self.stream_connections if c.vhost is not None]
        limit = self.vhost_limits.get(vhost, {}).get("max-connections")
        if limit is not None and limit >= 0:
            count = sum(1 for _user, name in opened if name == vhost)
            if count >= limit:
                return Refused("vhost_connection_limit",
                               f"access to vhost '{vhost}' refused for user '{user}': "
                               f"connection limit ({limit}) is reached")
        u = self.users.get(user)
        limit = u.limits.get("max-connections") if u else None
        if limit is not None and 0 <= limit <= sum(1 for name, _vhost in opened
                                                   if name == user):
            return Refused("user_connection_limit",
                           f"connection refused for user '{user}': user connection limit "
                           f"({limit}) is reached")
        limit = self.limits.max_connections
        if limit is not None and len(opened) >= limit:
            return Refused("node_connection_limit",
                           f"connection refused: node connection limit ({limit}) is reached")
        return None

    def attach_definitions(self, definitions: Definitions,
                           on_change: Callable[[], object]) -> None:
        """Record durable entities from now on (store/base.py Definitions); ``on_change``
        makes each recorded change durable before the client hears it is done."""
        self._definitions = definitions
        def changed() -> None:
            on_change()

        self._on_definitions_changed = changed
        for vhost in self.vhosts.values():
            vhost.definitions = definitions
            vhost.on_definitions_changed = self._on_definitions_changed
        recorded = definitions.get(GLOBAL_PARAMETER).get("cluster_name")
        if isinstance(recorded, dict) and isinstance(recorded.get("value"), str):
            self.cluster_name = recorded["value"]
        else:  # a new data directory (or one from before names were kept): keep this one
            self.set_cluster_name(self.cluster_name)

    def attach_store(self, store: Store | None) -> None:
        """Keep the persistent messages of durable queues in ``store`` (store/base.py
        Store): queues declared from now on open their log there."""
        self.store = store
        for vhost in self.vhosts.values():
            vhost.store = store

    def store_synced(self) -> None:
        """A group commit finished: streams may hand the newly durable entries to their
        readers."""
        for vhost in self.vhosts.values():
            if vhost.awaiting_commit:
                waiting, vhost.awaiting_commit = vhost.awaiting_commit, set()
                for q in waiting:
                    q.synced()

    def recover_messages(self) -> int:
        """At start, after the definitions are restored: load each durable queue's live
        messages from its log, and delete the logs of queues that no longer exist."""
        total = 0
        store = self.store
        if store is None:
            return 0
        logged = set()
        for vhost in self.vhosts.values():
            for q in vhost.queues.values():
                if q.durable and not q.exclusive:  # (its log was opened at declare)
                    logged.add((vhost.name, q.name))
                    total += q.recover()
            for ex in vhost.exchanges.values():
                if isinstance(ex, DelayedExchange) and ex.log is not None:
                    logged.add((vhost.name, ex.log.name))
                    total += ex.recover(vhost)
            windows = [q.dedup for q in vhost.queues.values()]
            windows += [ex.dedup for ex in vhost.exchanges.values()]
            for window in windows:
                if window is not None and window.log is not None:
                    logged.add((vhost.name, window.log.name))
                    window.recover()
        orphans = [key for key in store.queues() if key not in logged]
        if orphans and (self.restore_incomplete
                        or getattr(store.definitions, "damaged", False)):
            # Definitions were lost to damage: these logs may belong to queues that are
            # gone from the record only. Keep them; declaring the queue again recovers them.
            log.warning("keeping the message logs of %d queues with no definition (the "
                        "definitions log was damaged): %s; declare them again (durable) to "
                        "get their messages back", len(orphans),
                        ", ".join(f"{v}/{n}" for v, n in orphans[:10]))
            return total
        for key in orphans:
            store.delete_queue(*key)
        return total

    def load_policies(self, policies: list[dict[str, Any]]) -> None:
        """Policies in RabbitMQ's definitions format (the "policies" list of an export):
        {"vhost", "name", "pattern", "apply-to", "definition", "priority"}."""
        for p in policies:
            vhost = self.vhosts.get(p.get("vhost", "/"))
            if vhost is None:
                vhost = self.add_vhost(p["vhost"])
            vhost.set_policy(p["name"], p["pattern"], p.get("definition", {}),
                             int(p.get("priority", 0)), p.get("apply-to", "all"))

    @property
    def counters(self) -> Counters:
        """The whole broker's message counters: the sum of its vhosts' (broker/stats.py)."""
        return node_counters(self)

    @property
    def memory_used(self) -> int:
        return sum(q.ready_bytes for vh in self.vhosts.values() for q in vh.queues.values())

    def server_properties(self) -> dict[str, Any]:
        return {
            "product": "leveret",
            "version": __version__,
            "platform": f"Python {platform.python_version()}",
            "copyright": "leveret contributors",
            "information": "Licensed under the MIT licence",
            "cluster_name": self.cluster_name,
            "capabilities": dict(CAPABILITIES),
        }


def default_cluster_name() -> str:
    """``leveret-<6 hex digits>@<host>``: a node-name-like identity of its own for each new
    broker (RabbitMQ's default cluster name is its node name, ``rabbit@host``; leveret's
    node name is the same on every broker of a host, so a random part tells them apart)."""
    host = platform.node().split(".")[0] or "localhost"
    return f"leveret-{secrets.token_hex(3)}@{host}"


def is_loopback(host: str) -> bool:
    return host.startswith(LOOPBACK)
