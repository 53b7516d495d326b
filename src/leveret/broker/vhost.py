"""A virtual host: the registry of exchanges, queues and bindings, and the one operation
API every adapter uses on them.

AMQP channels, the management HTTP API, delayed-message release, dead-lettering (and later
shovels and streams) all go through these methods, so a rule lives in one place:

    declare_exchange / delete_exchange / declare_queue / delete_queue / purge_queue
    bind_queue / unbind_queue / bind_exchange       permission checks, then the change
    authorize_publish(grants, exchange, key)        the checks before a publish
    publish(exchange, message) -> PublishResult     reply-to, dedup, delay, route, BCC, push
    get(queue, no_ack)                              basic.get and the HTTP get
    release_delayed / dead_letter                   the broker republishing a message

``grants`` is the acting user's permissions (broker/access.py), checked where RabbitMQ
checks them; None means the broker itself (restoring definitions, internal queues).
Declare, delete, bind and route follow AMQP 0-9-1 as RabbitMQ implements it, including its
reply texts, so clients that match on them keep working.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

from leveret.amqp.fields import FieldTable
from leveret.broker import deadletter
from leveret.broker import definitions as defs
from leveret.broker.access import CONFIGURE, READ, WRITE, Grants
from leveret.broker.arguments import (
    EXCHANGE_EQUIVALENT,
    QUEUE_ARGUMENTS,
    as_text,
    assert_equivalent,
    erlang_term,
    validate_queue_arguments,
    wire_type,
)
from leveret.broker.clock import Clock, Timers
from leveret.broker.dedup import LOG_PREFIX as DEDUP_LOG_PREFIX
from leveret.broker.dedup import DedupWindow
from leveret.broker.entry import Entry
from leveret.broker.exchanges import TYPES, Binding, DelayedExchange, Exchange
from leveret.broker.exchanges.delayed import LOG_PREFIX as DELAYED_LOG_PREFIX
from leveret.broker.exchanges.delayed import TYPE_NAME as DELAYED
from leveret.broker.exchanges.delayed import delay_of
from leveret.broker.exchanges.headers import MATCH_MODES
from leveret.broker.message import (
    FLAG_EXPIRATION,
    FLAG_HEADERS,
    FLAG_USER_ID,
    Message,
    parse_expiration,
)
from leveret.broker.policy import Policy, choose, merge
from leveret.broker.queues import Queue, queue_type
from leveret.broker.queues.base import PagingLimits
from leveret.broker.stats import Counters, total
from leveret.errors import (
    AccessRefused,
    CommandInvalid,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
)
from leveret.store.base import Definitions, Store

REPLY_TO: Final = "amq.rabbitmq.reply-to"
REPLY_TO_PREFIX: Final = REPLY_TO + "."

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


class CountingChannel(Protocol):
    """A live channel of this vhost, as far as the vhost's message totals go."""

    counters: Counters


# What became of one published message: (queues, routed, refused, sync_seq).
#   queues    the queues it was routed to (empty when held, deduplicated or unroutable)
#   routed    False only when it went nowhere (mandatory -> basic.return)
#   refused   a queue turned it away (x-overflow reject-publish -> basic.nack)
#   sync_seq  the store sequence number its confirm waits for (0: confirm at once)
# A plain tuple, unpacked by the caller: one is made per message, and a named tuple's
# constructor costs as much again as the rest of the result handling.
PublishResult = tuple[list[Queue], bool, bool, int]


def _unroutable() -> PublishResult:
    return [], False, False, 0


class VirtualHost:
    def __init__(self, name: str, timers: Timers | None = None, *,
                 store: Store | None = None, definitions: Definitions | None = None,
                 on_definitions_changed: Callable[[], None] = lambda: None,
                 limits: PagingLimits | None = None,
                 reply_queues: dict[str, Queue] | None = None) -> None:
        self.name = name
        # The broker's clock and timers: TTL, expiry and delays all read this one clock.
        self.timers = timers if timers is not None else Timers(Clock())
        self.clock = self.timers.clock
        self.policies: dict[str, Policy] = {}
        # Where durable definitions are recorded, if anywhere; on_definitions_changed lets
        # the server make each change durable (one commit).
        self.definitions = definitions
        self.on_definitions_changed = on_definitions_changed
        # The message store, if any: durable queues keep their persistent messages in a
        # log opened from it.
        self.store = store
        self.node_limits = limits  # the node's Limits (queues' in-memory limits, paging)
        # Direct reply-to pseudo-queues by their amq.rabbitmq.reply-to.<id> name: shared
        # by the whole node, as the names are.
        self.reply_queues: dict[str, Queue] = reply_queues if reply_queues is not None else {}
        # Streams holding entries back from their readers until the store has made them
        # durable (queues/stream.py): told by the node after each commit.
        self.awaiting_commit: set[Queue] = set()
        self.restoring = False
        # Metadata shown by the management API (RabbitMQ's vhost description and tags).
        self.description = ""
        self.tags: list[str] = []
        self.default_queue_type: str | None = None
        self.max_queues: int | None = None  # the vhost limit max-queues, kept by the node
        # Message counters: live channels count their own (one increment on the hot path);
        # closed channels and the management API add theirs here. ``counters`` sums both.
        self.own_counters = Counters()
        self.channels: set[CountingChannel] = set()
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        # While a queue.delete is being answered: the basic.cancel notices it causes, sent
        # once its delete-ok is (RabbitMQ's order; see dispatch.queue_delete).
        self.after_reply: list[Callable[[], None]] | None = None
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
        assert_equivalent(existing.arguments, arguments,
                          EXCHANGE_EQUIVALENT + existing.EQUIVALENT_ARGUMENTS, what)
        return existing

    def delete_exchange(self, name: str, if_unused: bool, grants: Grants | None = None) -> None:
        if name and grants is not None:
            grants.check(CONFIGURE, "exchange", name)
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
            kind = queue_type(as_text(arguments.get("x-queue-type")))
            kind.check_foreign_arguments(arguments, where)  # before the values, as RabbitMQ
            validate_queue_arguments(arguments, where)
            self._admit_queue(name, arguments, grants)
            kind.check_declare(arguments, durable, exclusive, auto_delete, generated, where)
            q = kind(self, name, durable=durable,
                     exclusive_owner=connection if exclusive else None,
                     auto_delete=auto_delete, arguments=arguments)
            self._apply_policy(q)
            if durable and not exclusive:  # exclusive queues end with their connection
                self._record(defs.QUEUE, *defs.queue_record(self.name, q))
                if self.store is not None:
                    found = q.open_log()
                    self._durable_window(q.dedup, "queue", name)
                    if not self.restoring and found:
                        # messages kept from a queue whose definition was lost to damage
                        q.recover()
            self.queues[name] = q
            return q
        self.check_exclusive(existing, connection)
        existing.touch()
        what = f"queue '{name}' {self._where()}"
        # RabbitMQ's order (rabbit_amqqueue:assert_equivalence): exclusive, then the rest
        for arg, got, have in (("exclusive", exclusive, existing.exclusive),
                               ("durable", durable, existing.durable),
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
        assert_equivalent(existing.arguments, arguments,
                          existing.EQUIVALENT_ARGUMENTS or QUEUE_ARGUMENTS, what)
        return existing

    def delete_queue(self, name: str, if_unused: bool, if_empty: bool, connection: Any,
                     grants: Grants | None = None) -> int:
        if name and grants is not None:
            grants.check(CONFIGURE, "queue", name)
        if not name:
            raise NotFound("no previously declared queue")
        q = self.queues.get(name)
        if q is None:
            return 0
        self.check_exclusive(q, connection)
        q.check_delete(if_unused, if_empty)
        return self.drop_queue(q)

    def purge_queue(self, name: str, connection: Any, grants: Grants | None = None) -> int:
        """queue.purge: the ready messages go (not the unacknowledged ones)."""
        if name and grants is not None:
            grants.check(READ, "queue", name)
        return self.queue(name, connection).purge()

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
        count = q.delete_ok_count()
        q.deleted = True  # first: nothing below may route to it or drop it again
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
        q.delete()
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

    def _check_binding(self, grants: Grants | None, kind: str, destination: str, source: str,
                       routing_key: str) -> None:
        """RabbitMQ's order: write on the destination, read on the source, then the topic
        permission on the routing key when the source is a topic exchange."""
        if grants is None or (kind == "queue" and not destination):
            return  # (no queue named: the lookup says "no previously declared queue")
        grants.check(WRITE, kind, destination)
        if source == "" or (kind == "exchange" and destination == ""):
            return  # refused below: bindings to or from the default exchange
        grants.check(READ, "exchange", source)
        ex = self.exchanges.get(source)
        if ex is not None and ex.type == "topic":
            grants.check_topic(READ, source, routing_key)

    def bind_queue(self, queue: str, exchange: str, routing_key: str, arguments: FieldTable,
                   connection: Any, grants: Grants | None = None) -> None:
        self._check_binding(grants, "queue", queue, exchange, routing_key)
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
                     connection: Any, grants: Grants | None = None) -> None:
        self._check_binding(grants, "queue", queue, exchange, routing_key)
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
                      arguments: FieldTable, unbind: bool = False,
                      grants: Grants | None = None) -> None:
        self._check_binding(grants, "exchange", destination, source, routing_key)
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
        self._check_bind_args(src, arguments)
        b = Binding(source, dest, routing_key, arguments)
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

    # -- publishing -------------------------------------------------------------------

    def authorize_publish(self, grants: Grants, name: str, routing_key: str) -> Exchange:
        """The exchange a user may publish to, checked as RabbitMQ's channel does: write
        permission (before the exchange need exist), existence, internal, then the topic
        permission for topic exchanges."""
        if name not in grants.writable_exchanges:
            grants.check(WRITE, "exchange", name)
        # the dict first: exchange() (which raises NotFound) is one more call per message
        exchange = self.exchanges.get(name) or self.exchange(name)
        if exchange.internal:
            raise AccessRefused(f"cannot publish to internal exchange '{exchange.name}' in "
                                f"vhost '{self.name}'")
        if exchange.TYPE == "topic":
            grants.check_topic(WRITE, exchange.name, routing_key)
        return exchange

    def publish(self, exchange: Exchange, message: Message, mandatory: bool = False,
                counters: Counters | None = None) -> PublishResult:
        """Publish a message, whoever publishes it (AMQP, HTTP, shovels): direct reply-to,
        deduplication, delayed exchanges, routing, CC/BCC, enqueueing and the
        publisher's counters (``counters``: its channel's, or the vhost's own)."""
        if counters is not None:
            counters.publish += 1
        exchange.publish_in += 1
        store = self.store
        before = store.seq if store is not None else 0
        if exchange.name == "" and message.routing_key.startswith(REPLY_TO_PREFIX):
            reply_queue = self.reply_queues.get(message.routing_key)
            if reply_queue is None:
                return _unroutable()
            reply_queue.push(message)
            exchange.publish_out += 1
            return [reply_queue], True, False, 0
        if exchange.dedup is not None and exchange.dedup.is_duplicate(message):
            # seen within the window: dropped, and confirmed like the plugin
            return [], True, False, _changed(store, before)
        if exchange.TYPE == DELAYED and (delay := delay_of(message)):
            # Held, then routed with the bindings of when it falls due; a mandatory message
            # that routes nowhere now is returned at once instead.
            if mandatory and not self.route(exchange, message):
                result = _unroutable()
            else:
                assert isinstance(exchange, DelayedExchange)
                exchange.hold(self, message, delay)
                result = [], True, False, _changed(store, before)
        else:
            queues = self.route(exchange, message)
            # _enqueue, inlined: this is every message's path
            if message.flags & FLAG_HEADERS:
                for q in queues:  # before any queue takes it: all or none
                    q.check_message(message)
                if "BCC" in message.headers:
                    message = message.without_bcc()
            refused = False
            for q in queues:
                if not q.push(message):
                    refused = True
            exchange.publish_out += len(queues)
            if queues:
                return queues, True, refused, (0 if store is None or store.seq == before
                                               else store.seq)
            result = _unroutable()
        if not result[1] and counters is not None:
            if mandatory:
                counters.return_unroutable += 1
            else:
                counters.drop_unroutable += 1
        return result

    def _enqueue(self, queues: list[Queue], message: Message) -> bool:
        """Push a routed message to its queues, without its BCC header (which no consumer
        may see, as in RabbitMQ). False if a queue refused it."""
        if message.flags & FLAG_HEADERS and "BCC" in message.headers:
            message = message.without_bcc()
        accepted = True
        for q in queues:
            if not q.push(message):
                accepted = False
        return accepted

    def release_delayed(self, exchange: DelayedExchange, message: Message) -> PublishResult:
        """A delayed message fell due: route it with the bindings of now (its dedup and
        delay were applied when it was published)."""
        if self.exchanges.get(exchange.name) is not exchange:
            return _unroutable()  # the exchange was deleted meanwhile
        queues = self.route(exchange, message)
        exchange.publish_out += len(queues)
        return queues, bool(queues), not self._enqueue(queues, message), 0

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Republish a message a queue let go (rejected, expired, over its length or
        delivery limit) to the queue's dead-letter exchange, with RabbitMQ's x-death
        headers; a cycle with no rejection in it drops the message, as RabbitMQ does."""
        dlx = queue.dead_letter_exchange
        if dlx is None:
            return
        exchange = self.exchanges.get(dlx)
        if exchange is None:
            return  # dead-lettering to a missing exchange drops the message, as in RabbitMQ
        out, keys = deadletter.dead_letter_message(message, reason, queue.name, dlx,
                                                   queue.dead_letter_routing_key,
                                                   self.clock.now())
        targets: dict[int, Queue] = {}
        for key in keys:
            for q in self.route(exchange, out, key):
                targets.setdefault(id(q), q)
        self._enqueue([q for q in targets.values()
                       if reason == deadletter.REJECTED or not deadletter.is_cycle(out, q.name)],
                      out)

    # -- polling -----------------------------------------------------------------------

    def get(self, name: str, no_ack: bool, connection: Any, grants: Grants | None = None,
            counters: Counters | None = None) -> tuple[Queue, Entry | None]:
        """basic.get (and the HTTP get): the head of a queue the user may read, settled
        at once with ``no_ack``; counted on the queue and on ``counters``."""
        if name and grants is not None:
            grants.check(READ, "queue", name)
        q = self.queue(name, connection)
        entry = q.get(no_ack)
        if counters is not None:
            if entry is None:
                counters.get_empty += 1
            else:
                if no_ack:
                    counters.get_no_ack += 1
                else:
                    counters.get += 1
                if entry.redelivered:
                    counters.redeliver += 1
        return q, entry

    # -- routing -----------------------------------------------------------------------

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
                return found  # type: ignore[return-value]  # (queues only, as it says)
        queues: dict[int, Queue] = {}
        visited: set[int] = set()
        pending = [exchange]
        while pending:
            ex = pending.pop()
            if id(ex) in visited:
                continue
            visited.add(id(ex))
            dests = ex.route(message, rk)
            for d in dests:  # (the kind test, not isinstance: once per destination)
                if d.kind == "queue":
                    queues.setdefault(id(d), cast(Queue, d))
                else:
                    pending.append(cast(Exchange, d))
            ae_name = ex.alternate_exchange
            if not dests and ae_name is not None:
                ae = self.exchanges.get(ae_name)
                if ae is not None:
                    pending.append(ae)
        return list(queues.values())


def _changed(store: Store | None, before: int) -> int:
    """The store's sequence number if something was written since ``before``, else 0."""
    if store is None:
        return 0
    seq = store.seq
    return seq if seq != before else 0



def check_properties(message: Message, grants: Grants) -> None:
    """What RabbitMQ checks of a published message's properties: a parseable expiration,
    and a user_id that names the publishing user (unless they may impersonate)."""
    if message.flags & FLAG_EXPIRATION:
        text = message.properties.expiration or ""
        try:
            parse_expiration(text)
        except ValueError as exc:
            raise PreconditionFailed(f"invalid expiration '{text}': {exc}") from None
    user_id = message.properties.user_id if message.flags & FLAG_USER_ID else None
    if user_id is not None and user_id != grants.user and not grants.impersonator:
        raise PreconditionFailed(f"user_id property set to '{user_id}' but authenticated "
                                 f"user was '{grants.user}'")
