"""direct: deliver to bindings whose key equals the routing key exactly."""

from __future__ import annotations

from leveret.amqp.fields import FieldTable
from leveret.broker.exchanges.base import Destination, Exchange
from leveret.broker.message import Message


class DirectExchange(Exchange):
    TYPE = "direct"

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: FieldTable | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        self._index: dict[str, list[Destination]] = {}

    def bindings_changed(self) -> None:
        index: dict[str, list[Destination]] = {}
        for b in self.bindings.values():
            dests = index.setdefault(b.routing_key, [])
            if b.destination not in dests:
                dests.append(b.destination)
        self._index = index

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        return self._index.get(routing_key, [])
