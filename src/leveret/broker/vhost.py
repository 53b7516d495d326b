"""A virtual host: the registry of exchanges, queues and bindings, and their rules.

Declare, delete, bind and route follow AMQP 0-9-1 as RabbitMQ implements it, including its
reply texts, so clients that match on them keep working.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

from leveret.amqp.fields import FieldTable
from leveret.broker import definitions as defs
from leveret.broker.access import CONFIGURE, READ, WRITE, Grants
from leveret.broker.arguments import (
    EXCHANGE_EQUIVALENT,
    QUEUE_ARGUMENTS,
    QUORUM_REFUSED,
    assert_equivalent,
    erlang_term,
    validate_queue_arguments,
    wire_type,
)
from leveret.broker.clock import Clock, Timers
from leveret.broker.dedup import LOG_PREFIX as DEDUP_LOG_PREFIX
from leveret.broker.dedup import DedupWindow
from leveret.broker.exchanges import TYPES, Binding, DelayedExchange, Exchange
from leveret.broker.exchanges.delayed import LOG_PREFIX as DELAYED_LOG_PREFIX
from leveret.broker.exchanges.headers import MATCH_MODES
from leveret.broker.message import FLAG_HEADERS, Message
from leveret.broker.policy import Policy, choose, merge
from leveret.broker.queue import Queue
from leveret.broker.stats import Counters, total
from leveret.errors import (
    AccessRefused,
    CommandInvalid,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
)

DEFAULT_EXCHANGES = {
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    "amq.topic": "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
}


def server_name(prefix: str) -> str:
    """A server-generated name like RabbitMQ's ``amq.gen-<22 url-safe chars>``."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class VirtualHost:
    def __init__(self, name: str, timers: Timers | None = None) -> None:
        self.name = name
        # The broker's clock and timers: TTL, expiry and delays all read this one clock.
        self.timers = timers if timers is not None else Timers(Clock())
        self.clock = self.timers.clock
        self.policies: dict[str, Policy] = {}
        # Where durable definitions are recorded (store/base.py Definitions), if anywhere;
        # on_definitions_changed lets the server make each change durable (one commit).
        self.definitions: Any = None
        self.on_definitions_changed: Callable[[], None] = lambda: None
        # The message store (store/base.py Store), if any: durable queues keep their
        # persistent messages in a log opened from it.
        self.store: Any = None
        self.node_limits: Any = None  # the node's Limits (queues' in-memory limits, paging)
        self.restoring = False
        # Metadata shown by the management API (RabbitMQ's vhost description and tags).
        self.description = ""
        self.tags: list[str] = []
        self.default_queue_type: str | None = None
        self.max_queues: int | None = None  # the vhost limit max-queues, kept by the node
        # Every channel's message counters in this vhost, added up as they happen.
        # Message counters: live channels count their own (one increment on the hot path);
        # closed channels and the management API add theirs here. ``counters`` sums both.
        self.own_counters = Counters()
        self.channels: set[Any] = set()
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        default = TYPES["direct"]("", durable=True)
        self.exchanges[""] = default
        for ex_name, ex_type in DEFAULT_EXCHANGES.items():
            self.exchanges[ex_name] = TYPES[ex_type](ex_name, durable=True)

    @property
    def counters(self) -> Counters:
        return total([self.own_counters, *(ch.counters for ch in self.channels)])

    # -- durable definitions ------------------------------------------------------------

    def _record(self, kind: str, key: str, value: dict[str, Any]) -> None:
        if self.definitions is not None and not self.restoring:
            self.definitions.put(kind, key, value)
            self.on_definitions_changed()

    def _forget(self, kind: str, key: str) -> None:
        if self.definitions is not None and not self.restoring:
            self.definitions.delete(kind, key)
            self.on_definitions_changed()

    def _record_binding(self, b: Binding, add: bool) -> None:
        source = self.exchanges.get(b.source)
        if source is None or not source.durable or not b.destination.durable:
            return
        key, value = defs.binding_record(self.name, b)
        if add:
            self._record(defs.BINDING, key, value)
        else:
            self._forget(defs.BINDING, key)

    def _durable_window(self, window: DedupWindow | None, kind: str, name: str) -> None:
        if window is not None and self.store is not None:
            window.log = self.store.open_queue(self.name, f"{DEDUP_LOG_PREFIX}{kind}:{name}")

    def _drop_window(self, window: DedupWindow | None, kind: str, name: str) -> None:
        if window is not None and window.log is not None:
            window.log = None
            if self.store is not None:
                self.store.delete_queue(self.name, f"{DEDUP_LOG_PREFIX}{kind}:{name}")

    # -- lookups -----------------------------------------------------------------------

    def _where(self) -> str:
        return f"in vhost '{self.name}'"

    def exchange(self, name: str) -> Exchange:
        ex = self.exchanges.get(name)
        if ex is None:
            raise NotFound(f"no exchange '{name}' {self._where()}")
        return ex

    def queue(self, name: str, connection: Any = None) -> Queue:
        if not name:
            raise NotFound("no previously declared queue")
        q = self.queues.get(name)
        if q is None:
            raise NotFound(f"no queue '{name}' {self._where()}")
        if connection is not None:
            self.check_exclusive(q, connection)
        return q

    def check_exclusive(self, q: Queue, connection: Any) -> None:
        if q.exclusive_owner is not None and q.exclusive_owner is not connection:
            raise ResourceLocked(
                f"cannot obtain exclusive access to locked queue '{q.name}' {self._where()}. "
                "It could be originally declared on another connection or the exclusive "
                "property value does not match that of the original declaration."
            )

    # -- exchanges ---------------------------------------------------------------------

    def declare_exchange(self, name: str, type_: str, passive: bool, durable: bool,
                         auto_delete: bool, internal: bool, arguments: FieldTable,
                         grants: Grants | None = None) -> Exchange:
        """``grants``: the declaring user's permissions, checked where RabbitMQ checks."""
        if name == "":
            raise AccessRefused("operation not permitted on the default exchange")
        if passive:
            return self.exchange(name)
        cls = TYPES.get(type_)
        if cls is None:
            raise CommandInvalid(f"unknown exchange type '{type_}'")
        if grants is not None:
            grants.check(CONFIGURE, "exchange", name)
        existing = self.exchanges.get(name)
        if existing is None:
            if name.startswith("amq."):
                raise AccessRefused(
                    f"exchange name '{name}' contains reserved prefix 'amq.*'")
            ae = arguments.get("alternate-exchange")
            if ae is not None and not isinstance(ae, str):
                raise PreconditionFailed(f"invalid type '{wire_type(ae)}' for arg "
                                         f"'alternate-exchange' in exchange '{name}' "
                                         f"{self._where()}")
            if ae is not None and grants is not None:
                grants.check(READ, "exchange", name)
                grants.check(WRITE, "exchange", ae)
            ex = cls(name, durable=durable, auto_delete=auto_delete, internal=internal,
                     arguments=arguments)
            ex.dedup = DedupWindow.from_arguments(arguments, self.clock)
            self._apply_policy(ex)
            if durable:
                self._record(defs.EXCHANGE, *defs.exchange_record(self.name, ex))
                if self.store is not None and isinstance(ex, DelayedExchange):
                    ex.log = self.store.open_queue(self.name, DELAYED_LOG_PREFIX + name)
                if self.store is not None:
                    self._durable_window(ex.dedup, "exchange", name)
            self.exchanges[name] = ex
            return ex
        what = f"exchange '{name}' {self._where()}"
        for arg, got, have in (("type", type_, existing.type),
                               ("durable", durable, existing.durable),
                               ("auto_delete", auto_delete, existing.auto_delete),
                               ("internal", internal, existing.internal)):
            if got != have:
                raise PreconditionFailed(
                    f"inequivalent arg '{arg}' for {what}: received '{_fmt(got)}' but current "
                    f"is '{_fmt(have)}'")
        assert_equivalent(existing.arguments, arguments, EXCHANGE_EQUIVALENT, what)
        return existing

    def delete_exchange(self, name: str, if_unused: bool) -> None:
        if name == "":
            raise AccessRefused("operation not permitted on the default exchange")
        ex = self.exchanges.get(name)
        if ex is not None and name in DEFAULT_EXCHANGES:
            raise AccessRefused(f"deletion of system exchange '{name}' {self._where()} not "
                                "allowed")
        if ex is None:
            return  # deleting what is not there succeeds, as in RabbitMQ
        if if_unused and ex.bindings:
            raise PreconditionFailed(f"exchange '{name}' {self._where()} in use")
        self._drop_exchange(ex)

    def _drop_exchange(self, ex: Exchange) -> None:
        for b in list(ex.bindings.values()):
            self._record_binding(b, add=False)
        for other in self.exchanges.values():
            for b in list(other.bindings.values()):
                if b.destination is ex:
                    self._record_binding(b, add=False)
        if ex.durable:
            self._forget(defs.EXCHANGE, defs.exchange_record(self.name, ex)[0])
        self._drop_window(ex.dedup, "exchange", ex.name)
        if isinstance(ex, DelayedExchange) and ex.log is not None:
            ex.log = None
            if self.store is not None:
                self.store.delete_queue(self.name, DELAYED_LOG_PREFIX + ex.name)
        self.exchanges.pop(ex.name, None)
        for other in list(self.exchanges.values()):
            if other.remove_destination(ex):
                self._maybe_auto_delete_exchange(other)
        for q in self.queues.values():
            q.bindings = [(e, b) for e, b in q.bindings if e is not ex]
        ex.bindings.clear()

    def _maybe_auto_delete_exchange(self, ex: Exchange) -> None:
        if ex.auto_delete and not ex.bindings and ex.name in self.exchanges:
            self._drop_exchange(ex)

    # -- queues ------------------------------------------------------------------------

    def declare_queue(self, name: str, passive: bool, durable: bool, exclusive: bool,
                      auto_delete: bool, arguments: FieldTable, connection: Any,
                      grants: Grants | None = None) -> Queue:
        if passive:
            if not name:
                raise NotFound(f"no queue '' {self._where()}")
            q = self.queue(name, connection)
            q.touch()
            return q
        generated = not name
        if generated:
            name = server_name("amq.gen-")
        if grants is not None:
            grants.check(CONFIGURE, "queue", name)
        existing = self.queues.get(name)
        if existing is None:
            if not generated and name.startswith("amq."):
                raise AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
            where = f"queue '{name}' {self._where()}"
            validate_queue_arguments(arguments, where)
            self._admit_queue(name, arguments, grants)
            if arguments.get("x-queue-type") == "quorum":
                if generated:
                    raise PreconditionFailed("Cannot declare a server-named queue for type "
                                             "rabbit_quorum_queue")
                self._check_quorum(arguments, durable, exclusive, auto_delete, where)
            q = Queue(self, name, durable=durable,
                      exclusive_owner=connection if exclusive else None,
                      auto_delete=auto_delete, arguments=arguments)
            self._apply_policy(q)
            if durable and not exclusive:  # exclusive queues end with their connection
                self._record(defs.QUEUE, *defs.queue_record(self.name, q))
                if self.store is not None:
                    q.log = self.store.open_queue(self.name, name)
                    self._durable_window(q.dedup, "queue", name)
                    if not self.restoring and len(q.log):
                        # messages kept from a queue whose definition was lost to damage
                        q.recover()
            self.queues[name] = q
            return q
        self.check_exclusive(existing, connection)
        existing.touch()
        what = f"queue '{name}' {self._where()}"
        for arg, got, have in (("durable", durable, existing.durable),
                               ("exclusive", exclusive, existing.exclusive),
                               ("auto_delete", auto_delete, existing.auto_delete)):
            if got != have:
                if arg == "exclusive":
                    raise ResourceLocked(
                        f"cannot obtain exclusive access to locked queue '{name}' "
                        f"{self._where()}. It could be originally declared on another "
                        "connection or the exclusive property value does not match that of "
                        "the original declaration.")
                raise PreconditionFailed(
                    f"inequivalent arg '{arg}' for {what}: received '{_fmt(got)}' but current "
                    f"is '{_fmt(have)}'")
        assert_equivalent(existing.arguments, arguments, QUEUE_ARGUMENTS, what)
        return existing

    def _check_quorum(self, arguments: FieldTable, durable: bool, exclusive: bool,
                      auto_delete: bool, where: str) -> None:
        """A quorum queue here is a durable single-node queue with quorum semantics:
        RabbitMQ's rules and texts for what it refuses."""
        for key in QUORUM_REFUSED:
            if key in arguments:
                raise PreconditionFailed(
                    f"invalid arg '{key}' for {where} of queue type rabbit_quorum_queue")
        for bad, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                          (not durable, "non-durable")):
            if bad:
                raise PreconditionFailed(f"invalid property '{prop}' for {where}")

    def delete_queue(self, name: str, if_unused: bool, if_empty: bool, connection: Any) -> int:
        if not name:
            raise NotFound("no previously declared queue")
        q = self.queues.get(name)
        if q is None:
            return 0
        self.check_exclusive(q, connection)
        if if_unused and q.consumers:
            raise PreconditionFailed(f"queue '{name}' {self._where()} in use")
        if if_empty and q.ready:
            raise PreconditionFailed(f"queue '{name}' {self._where()} not empty")
        return self.drop_queue(q)

    def _admit_queue(self, name: str, arguments: FieldTable, grants: Grants | None) -> None:
        """A new queue: its dead-letter exchange needs write permission, and the vhost's
        max-queues limit applies (RabbitMQ checks both only when creating)."""
        dlx = arguments.get("x-dead-letter-exchange")
        if grants is not None and isinstance(dlx, str):
            grants.check(READ, "queue", name)
            grants.check(WRITE, "exchange", dlx)
        if self.max_queues is not None and 0 <= self.max_queues <= len(self.queues):
            raise PreconditionFailed(
                f"cannot declare queue '{name}': queue limit in vhost '{self.name}' "
                f"({self.max_queues}) is reached")

    def delete_all(self) -> None:
        """The vhost is being deleted: drop every queue and exchange with their records."""
        for q in list(self.queues.values()):
            self.drop_queue(q)
        for ex in list(self.exchanges.values()):
            if ex.name in self.exchanges:
                self._drop_exchange(ex)

    def drop_queue(self, q: Queue) -> int:
        """Remove a queue: cancel its consumers, drop its bindings, discard its messages."""
        if q.deleted:
            return 0
        count = len(q.ready)
        q.deleted = True
        self.queues.pop(q.name, None)
        for consumer in list(q.consumers):
            consumer.channel.cancel_by_server(consumer)
        q.consumers.clear()
        if q.durable:
            self._forget(defs.QUEUE, defs.queue_record(self.name, q)[0])
        for ex, b in q.bindings:
            self._record_binding(b, add=False)
            if ex.remove_binding(b):
                self._maybe_auto_delete_exchange(ex)
        q.bindings.clear()
        log, q.log = q.log, None
        q.purge()
        q.close()
        if log is not None and self.store is not None:
            self.store.delete_queue(self.name, q.name)
        self._drop_window(q.dedup, "queue", q.name)
        return count

    # -- bindings ----------------------------------------------------------------------

    def _check_bind_args(self, source: Exchange, arguments: FieldTable) -> None:
        if source.type == "headers" and "x-match" in arguments:
            mode = arguments["x-match"]
            if not isinstance(mode, str):
                raise PreconditionFailed(
                    f"Invalid x-match field type {wire_type(mode)} (value "
                    f"{erlang_term(mode)}); expected longstr")
            if mode not in MATCH_MODES:
                raise PreconditionFailed(
                    f"Invalid x-match field value {erlang_term(mode)}; expected all, any, "
                    "all-with-x, or any-with-x")

    def bind_queue(self, queue: str, exchange: str, routing_key: str, arguments: FieldTable,
                   connection: Any) -> None:
        if exchange == "":
            raise AccessRefused("operation not permitted on the default exchange")
        q = self.queue(queue, connection)
        ex = self.exchange(exchange)
        self._check_bind_args(ex, arguments)
        b = Binding(exchange, q, routing_key, arguments)
        if ex.add_binding(b):
            q.bindings.append((ex, b))
            self._record_binding(b, add=True)

    def unbind_queue(self, queue: str, exchange: str, routing_key: str, arguments: FieldTable,
                     connection: Any) -> None:
        if exchange == "":
            raise AccessRefused("operation not permitted on the default exchange")
        q = self.queues.get(queue)
        ex = self.exchanges.get(exchange)
        if q is None or ex is None:
            return  # unbinding what is not there succeeds, as in RabbitMQ
        self.check_exclusive(q, connection)
        b = Binding(exchange, q, routing_key, arguments)
        self._record_binding(b, add=False)
        if ex.remove_binding(b):
            q.bindings = [(e, x) for e, x in q.bindings if not (e is ex and x.key == b.key)]
            self._maybe_auto_delete_exchange(ex)

    def bind_exchange(self, destination: str, source: str, routing_key: str,
                      arguments: FieldTable, unbind: bool = False) -> None:
        if destination == "" or source == "":
            raise AccessRefused("operation not permitted on the default exchange")
        if unbind:
            dest_x, src_x = self.exchanges.get(destination), self.exchanges.get(source)
            if dest_x is None or src_x is None:
                return
            gone = Binding(source, dest_x, routing_key, arguments)
            self._record_binding(gone, add=False)
            if src_x.remove_binding(gone):
                self._maybe_auto_delete_exchange(src_x)
            return
        dest = self.exchange(destination)
        src = self.exchange(source)
        b = Binding(source, dest, routing_key, arguments)
        if unbind:
            if src.remove_binding(b):
                self._maybe_auto_delete_exchange(src)
        else:
            self._check_bind_args(src, arguments)
            if src.add_binding(b):
                self._record_binding(b, add=True)

    # -- policies ----------------------------------------------------------------------

    def set_policy(self, name: str, pattern: str, definition: dict[str, Any],
                   priority: int = 0, apply_to: str = "all") -> Policy:
        """Add or replace a policy and apply it to existing queues and exchanges now."""
        args = {k if k == "alternate-exchange" else f"x-{k}": v for k, v in definition.items()}
        validate_queue_arguments({k: v for k, v in args.items() if k in QUEUE_ARGUMENTS},
                                 f"policy '{name}' {self._where()}")
        policy = Policy(name, pattern, dict(definition), priority, apply_to)
        self.policies[name] = policy
        self._record(defs.POLICY, json.dumps([self.name, name]), {
            "vhost": self.name, "name": name, "pattern": pattern, "definition": definition,
            "priority": priority, "apply-to": apply_to})
        self._reapply_policies()
        return policy

    def clear_policy(self, name: str) -> None:
        if self.policies.pop(name, None) is not None:
            self._forget(defs.POLICY, json.dumps([self.name, name]))
            self._reapply_policies()

    def _reapply_policies(self) -> None:
        for q in list(self.queues.values()):
            self._apply_policy(q)
        for ex in list(self.exchanges.values()):
            self._apply_policy(ex)

    def _apply_policy(self, entity: Queue | Exchange) -> None:
        if entity.name == "" or entity.name.startswith("amq."):
            return  # RabbitMQ's policies never touch the default and amq.* exchanges
        policy = choose(self.policies, entity.kind, entity.name)
        if isinstance(entity, Queue):
            entity.policy = policy.name if policy else None
            entity.configure(merge(entity.arguments, policy))
        else:
            entity.policy = policy.name if policy else None
            effective = merge(entity.arguments, policy)
            entity.effective_arguments = effective

    # -- routing -----------------------------------------------------------------------

    def deliver(self, exchange: Exchange, message: Message) -> int:
        """Route and enqueue a message the broker itself publishes (delayed, retried);
        returns how many queues took it."""
        if self.exchanges.get(exchange.name) is not exchange:
            return 0  # the exchange was deleted meanwhile
        queues = self.route(exchange, message)
        if message.flags & FLAG_HEADERS and "BCC" in message.headers:
            message = message.without_bcc()
        return sum(1 for q in queues if q.push(message))

    def route(self, exchange: Exchange, message: Message,
              routing_key: str | None = None) -> list[Queue]:
        """The queues a message reaches from an exchange, following exchange-to-exchange
        bindings and alternate exchanges, each queue once."""
        rk = message.routing_key if routing_key is None else routing_key
        if routing_key is None and message.flags & FLAG_HEADERS:
            extra = message.sender_keys()
            if extra:
                # Sender-selected distribution: CC and BCC headers add routing keys.
                selected: dict[int, Queue] = {}
                for key in (rk, *extra):
                    for target in self.route(exchange, message, key):
                        selected.setdefault(id(target), target)
                return list(selected.values())
        if exchange.name == "":
            q = self.queues.get(rk)
            return [q] if q is not None else []
        if exchange.queues_only:
            found = exchange.route(message, rk)
            if found or exchange.alternate_exchange is None:
                return found
        queues: dict[int, Queue] = {}
        visited: set[int] = set()
        pending = [exchange]
        while pending:
            ex = pending.pop()
            if id(ex) in visited:
                continue
            visited.add(id(ex))
            dests = ex.route(message, rk)
            for d in dests:
                if d.kind == "queue":
                    queues.setdefault(id(d), d)
                else:
                    pending.append(d)
            ae_name = ex.alternate_exchange
            if not dests and ae_name is not None:
                ae = self.exchanges.get(ae_name)
                if ae is not None:
                    pending.append(ae)
        return list(queues.values())
