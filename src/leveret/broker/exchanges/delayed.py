"""x-delayed-message: hold each message for its ``x-delay`` header (ms), then route it.

The exchange routes like the type named by its ``x-delayed-type`` argument (as the RabbitMQ
community plugin does), using its own bindings. Pending messages sit on the broker's timer
heap, indexed by due time, so millions of them cost O(log n) each. Unlike the plugin,
``mandatory`` is honoured: a message that would route nowhere is returned at once.

On a durable exchange with a data directory, persistent messages wait in a log of their own
(store/base.py QueueLog, named ``amq.leveret.delayed:<exchange>``) with their due time, so
they survive a restart; each is acknowledged there once routed.
"""

from __future__ import annotations

from typing import Any, Protocol

from leveret.broker.clock import Clock, Timers
from leveret.broker.exchanges.base import Destination, Exchange
from leveret.broker.exchanges.direct import DirectExchange
from leveret.broker.exchanges.fanout import FanoutExchange
from leveret.broker.exchanges.headers import HeadersExchange
from leveret.broker.exchanges.topic import TopicExchange
from leveret.broker.message import Message
from leveret.errors import CommandInvalid, PreconditionFailed
from leveret.store.base import QueueLog
from leveret.store.codec import pack_message, unpack_message

TYPE_NAME = "x-delayed-message"
LOG_PREFIX = "amq.leveret.delayed:"  # "amq." names cannot be declared by clients


# The types that can route for a delayed exchange (x-delayed-type).
ROUTING_TYPES: dict[str, type[Exchange]] = {
    t.TYPE: t for t in (DirectExchange, FanoutExchange, TopicExchange, HeadersExchange)
}


class DelayHost(Protocol):
    """What a delayed exchange needs of its vhost: time, and the publish of a message
    that fell due (vhost.py ``release_delayed``)."""

    clock: Clock
    timers: Timers

    def release_delayed(self, exchange: DelayedExchange, message: Message) -> object: ...


class DelayedExchange(Exchange):
    TYPE = TYPE_NAME

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict[str, Any] | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        inner_type = self.arguments.get("x-delayed-type")
        if not isinstance(inner_type, str):
            raise PreconditionFailed(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type")
        if inner_type == TYPE_NAME:
            raise PreconditionFailed(
                f"Invalid argument, '{TYPE_NAME}' can't be used for 'x-delayed-type'")
        cls = ROUTING_TYPES.get(inner_type)
        if cls is None:
            raise CommandInvalid(f"unknown exchange type '{inner_type}'")
        self.inner = cls(name)
        self.inner.bindings = self.bindings
        self.log: QueueLog | None = None  # where persistent pending messages wait (durable)

    def bindings_changed(self) -> None:
        self.inner.queues_only = self.queues_only
        self.inner.bindings_changed()

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        return self.inner.route(message, routing_key)

    def hold(self, vhost: DelayHost, message: Message, delay: float) -> None:
        """Keep the message until it is due, then route it with the bindings of then."""
        due = vhost.clock.now() + delay
        offset = None
        if self.log is not None and message.persistent:
            offset = self.log.append(pack_message(self.name, message.routing_key,
                                                  message.properties_raw, message.body, due))
        self._arm(vhost, message, offset, due)

    def _arm(self, vhost: DelayHost, message: Message, offset: int | None, due: float) -> None:
        vhost.timers.call_at(due, lambda: self._release(vhost, message, offset))

    def _release(self, vhost: DelayHost, message: Message, offset: int | None) -> None:
        vhost.release_delayed(self, message)  # into the queues' logs first: at least once
        if offset is not None and self.log is not None:
            self.log.ack(offset)

    def recover(self, vhost: DelayHost) -> int:
        """At start: re-arm every pending message recorded in the log."""
        if self.log is None:
            return 0
        n = 0
        for live in self.log.live():
            try:
                _ex, routing_key, props, body, due = unpack_message(self.log.read(live.offset))
            except Exception:
                self.log.ack(live.offset)  # unreadable: dropped (the store logged why)
                continue
            self._arm(vhost, Message(self.name, routing_key, props, body), live.offset,
                      due if due is not None else vhost.clock.now())
            n += 1
        return n


def delay_of(message: Message) -> float:
    """The x-delay header in seconds (0 when absent or not a positive integer)."""
    value = message.headers.get("x-delay")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value / 1000
    return 0.0
