"""fanout: deliver to every binding, whatever the routing key."""

from __future__ import annotations

from leveret.amqp.fields import FieldTable
from leveret.broker.exchanges.base import Destination, Exchange
from leveret.broker.message import Message


class FanoutExchange(Exchange):
    TYPE = "fanout"

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: FieldTable | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        self._all: list[Destination] = []

    def bindings_changed(self) -> None:
        seen: dict[int, Destination] = {}
        for b in self.bindings.values():
            seen.setdefault(id(b.destination), b.destination)
        self._all = list(seen.values())

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        return self._all
