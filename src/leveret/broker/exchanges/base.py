"""What every exchange type shares: identity, flags, and its set of bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from leveret.amqp.fields import FieldTable
from leveret.broker.message import Message

if TYPE_CHECKING:
    from leveret.broker.dedup import DedupWindow


class Destination(Protocol):
    """Where a binding leads: a queue or an exchange."""

    kind: str  # "queue" or "exchange"
    name: str
    durable: bool


class Binding:
    __slots__ = ("arguments", "destination", "routing_key", "source")

    def __init__(self, source: str, destination: Destination, routing_key: str,
                 arguments: FieldTable) -> None:
        self.source = source
        self.destination = destination
        self.routing_key = routing_key
        self.arguments = arguments

    @property
    def key(self) -> tuple[int, str, str, str, str]:
        # Destinations of different kinds may share a name.
        d = self.destination
        return (id(d), d.kind, d.name, self.routing_key, repr(sorted(self.arguments.items())))


class Exchange:
    kind = "exchange"
    TYPE: ClassVar[str] = ""
    # Arguments of this type that a re-declaration must repeat (beyond every type's own)
    EQUIVALENT_ARGUMENTS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: FieldTable | None = None) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments: FieldTable = arguments or {}
        self.bindings: dict[tuple[int, str, str, str, str], Binding] = {}
        # True while every binding leads to a queue: routing then needs no graph walk.
        self.queues_only = True
        self.dedup: DedupWindow | None = None  # with x-message-deduplication
        self.policy: str | None = None
        self.effective_arguments: FieldTable = self.arguments
        # RabbitMQ's exchange message_stats: messages published to it, and deliveries to
        # queues of those (one per queue a message reached); counted by VirtualHost.publish
        self.publish_in = 0
        self.publish_out = 0

    @property
    def type(self) -> str:
        return self.TYPE

    @property
    def alternate_exchange(self) -> str | None:
        ae = self.effective_arguments.get("alternate-exchange")
        return ae if isinstance(ae, str) else None

    def add_binding(self, binding: Binding) -> bool:
        """Add; False if an identical binding already existed (binding is idempotent)."""
        key = binding.key
        if key in self.bindings:
            return False
        self.bindings[key] = binding
        self._changed()
        return True

    def remove_binding(self, binding: Binding) -> bool:
        if self.bindings.pop(binding.key, None) is None:
            return False
        self._changed()
        return True

    def remove_destination(self, destination: Destination) -> int:
        doomed = [k for k, b in self.bindings.items() if b.destination is destination]
        for k in doomed:
            del self.bindings[k]
        if doomed:
            self._changed()
        return len(doomed)

    def _changed(self) -> None:
        self.queues_only = all(b.destination.kind == "queue" for b in self.bindings.values())
        self.bindings_changed()

    def bindings_changed(self) -> None:
        """Hook for types that keep a routing index."""

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        raise NotImplementedError
