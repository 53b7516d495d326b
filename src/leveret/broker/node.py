"""The broker's shared state: virtual hosts, users, and what it says about itself."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leveret.broker.clock import Clock, Timers
from leveret.broker.exchanges import DelayedExchange
from leveret.broker.vhost import VirtualHost

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
    # Bytes of message bodies held in memory above which publishers are paused.
    memory_high_watermark: int = 1 << 30


@dataclass
class Node:
    """Everything connections share. One per broker process (or embedded broker)."""

    users: dict[str, str] = field(default_factory=lambda: {"guest": "guest"})
    limits: Limits = field(default_factory=Limits)
    vhosts: dict[str, VirtualHost] = field(default_factory=dict)
    connections: set[Any] = field(default_factory=set)
    # direct reply-to pseudo-queues by their amq.rabbitmq.reply-to.<id> name
    reply_queues: dict[str, Any] = field(default_factory=dict)
    cluster_name: str = "leveret"
    clock: Clock = field(default_factory=Clock)
    timers: Timers = field(init=False)

    def __post_init__(self) -> None:
        self.timers = Timers(self.clock)
        self._definitions: Any = None
        self._on_definitions_changed: Callable[[], None] = lambda: None
        self.store: Any = None
        if not self.vhosts:
            self.add_vhost("/")

    def add_vhost(self, name: str) -> VirtualHost:
        vhost = VirtualHost(name, self.timers)
        vhost.definitions = self._definitions
        vhost.on_definitions_changed = self._on_definitions_changed
        vhost.store = self.store
        self.vhosts[name] = vhost
        return vhost

    def attach_definitions(self, definitions: Any, on_change: Callable[[], object]) -> None:
        """Record durable entities from now on (store/base.py Definitions); ``on_change``
        makes each recorded change durable before the client hears it is done."""
        self._definitions = definitions
        def changed() -> None:
            on_change()

        self._on_definitions_changed = changed
        for vhost in self.vhosts.values():
            vhost.definitions = definitions
            vhost.on_definitions_changed = self._on_definitions_changed

    def attach_store(self, store: Any) -> None:
        """Keep the persistent messages of durable queues in ``store`` (store/base.py
        Store): queues declared from now on open their log there."""
        self.store = store
        for vhost in self.vhosts.values():
            vhost.store = store

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
                if q.log is not None:
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
        for key in store.queues():
            if key not in logged:
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

    def authenticate(self, user: str, password: str) -> bool:
        expected = self.users.get(user)
        return expected is not None and expected == password

    @property
    def memory_used(self) -> int:
        return sum(q.ready_bytes for vh in self.vhosts.values() for q in vh.queues.values())

    def server_properties(self) -> dict[str, Any]:
        from leveret import __version__

        return {
            "product": "leveret",
            "version": __version__,
            "platform": f"Python {platform.python_version()}",
            "copyright": "leveret contributors",
            "information": "Licensed under the MIT licence",
            "cluster_name": self.cluster_name,
            "capabilities": dict(CAPABILITIES),
        }
