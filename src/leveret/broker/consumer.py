"""A consumer: a subscription of one channel to one queue, with its prefetch window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leveret.amqp.fields import FieldTable

if TYPE_CHECKING:
    from leveret.broker.channel import Channel
    from leveret.broker.queue import Entry, Queue


class Consumer:
    __slots__ = ("arguments", "channel", "exclusive", "no_ack", "prefetch", "priority", "queue",
                 "tag", "tag_frame", "unacked")

    def __init__(self, channel: Channel, queue: Queue, tag: str, no_ack: bool, exclusive: bool,
                 prefetch: int, arguments: FieldTable) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch  # 0 = unlimited
        self.arguments = arguments
        priority = arguments.get("x-priority")
        self.priority = priority if isinstance(priority, int) and not isinstance(priority, bool) \
            else 0
        self.unacked = 0
        # The consumer tag as a short string, encoded once for every basic.deliver.
        raw = tag.encode("utf-8", "surrogateescape")
        self.tag_frame = bytes([len(raw)]) + raw

    def can_take(self) -> bool:
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        # Channel.can_deliver, inlined: this runs once per delivery.
        ch = self.channel
        if not (ch.flow_active and ch.connection.writable) or ch.closing:
            return False
        return not (ch.global_prefetch and len(ch.unacked) >= ch.global_prefetch)

    def deliver(self, entry: Entry) -> None:
        self.channel.deliver(self, entry)
