"""Message counters: how many messages each queue, channel and vhost has seen, by event.

They are cumulative, never reset, and cost one slotted attribute increment per event on the
publish/deliver path. Rates are not kept here: whoever reports them (the management API,
a Prometheus exporter) samples the counters and divides by the time between samples.

Events, as RabbitMQ names them in its ``message_stats``:
publish, confirm, return_unroutable, drop_unroutable (publishing side); deliver (with ack),
deliver_no_ack, get, get_no_ack, get_empty, redeliver (delivery side); ack.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PUBLISHING = ("publish", "confirm", "return_unroutable", "drop_unroutable")
DELIVERING = ("deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "redeliver", "ack")
EVENTS = PUBLISHING + DELIVERING


class Counters:
    __slots__ = EVENTS

    def __init__(self) -> None:
        self.publish = 0
        self.confirm = 0
        self.return_unroutable = 0
        self.drop_unroutable = 0
        self.deliver = 0
        self.deliver_no_ack = 0
        self.get = 0
        self.get_no_ack = 0
        self.get_empty = 0
        self.redeliver = 0
        self.ack = 0

    @property
    def deliver_get(self) -> int:
        """Every message handed out, as RabbitMQ sums it."""
        return self.deliver + self.deliver_no_ack + self.get + self.get_no_ack

    def as_dict(self) -> dict[str, int]:
        values = {name: getattr(self, name) for name in EVENTS}
        values["deliver_get"] = self.deliver_get
        return values

    def add(self, other: Counters) -> None:
        for name in EVENTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def __repr__(self) -> str:
        nonzero = ", ".join(f"{k}={v}" for k, v in self.as_dict().items() if v)
        return f"Counters({nonzero})"


def total(counters: Iterable[Counters]) -> Counters:
    summed = Counters()
    for c in counters:
        summed.add(c)
    return summed


def node_counters(node: Any) -> Counters:
    """The whole broker's counters: the sum over its vhosts (deleted vhosts included
    only while they exist, as in RabbitMQ's overview)."""
    return total(vhost.counters for vhost in node.vhosts.values())
