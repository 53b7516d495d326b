"""x-delayed-message: hold each message for its ``x-delay`` header (ms), then route it.

The exchange routes like the type named by its ``x-delayed-type`` argument (as the RabbitMQ
community plugin does), using its own bindings. Pending messages sit on the broker's timer
heap, indexed by due time, so millions of them cost O(log n) each. Unlike the plugin,
``mandatory`` is honoured: a message that would route nowhere is returned at once.
"""

from __future__ import annotations

from typing import Any

from leveret.broker.exchanges.base import Destination, Exchange
from leveret.broker.message import Message
from leveret.errors import CommandInvalid, PreconditionFailed

TYPE_NAME = "x-delayed-message"


class DelayedExchange(Exchange):
    TYPE = TYPE_NAME

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict[str, Any] | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        from leveret.broker.exchanges import TYPES

        inner_type = self.arguments.get("x-delayed-type")
        if not isinstance(inner_type, str):
            raise PreconditionFailed(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type")
        if inner_type == TYPE_NAME:
            raise PreconditionFailed(
                f"Invalid argument, '{TYPE_NAME}' can't be used for 'x-delayed-type'")
        cls = TYPES.get(inner_type)
        if cls is None:
            raise CommandInvalid(f"unknown exchange type '{inner_type}'")
        self.inner = cls(name)
        self.inner.bindings = self.bindings

    def bindings_changed(self) -> None:
        self.inner.queues_only = self.queues_only
        self.inner.bindings_changed()

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        return self.inner.route(message, routing_key)


def delay_of(message: Message) -> float:
    """The x-delay header in seconds (0 when absent or not a positive integer)."""
    value = message.headers.get("x-delay")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value / 1000
    return 0.0
