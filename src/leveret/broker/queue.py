"""A queue: ready messages in order, the consumers it feeds, and requeue semantics.

Ready messages are a deque of ``Entry`` in publication order. Each entry carries a
queue-local sequence number so that requeued messages go back to their original position,
as RabbitMQ's classic queues do. Unacked messages are tracked by the channel that holds
them; the queue only counts them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from leveret.amqp.fields import FieldTable
from leveret.broker.message import Message

if TYPE_CHECKING:
    from leveret.broker.consumer import Consumer
    from leveret.broker.exchanges.base import Binding, Exchange


# Publisher flow control: a queue whose consumers cannot keep up (their sockets are full)
# pauses the connections publishing into it once this many messages are waiting, and
# resumes them when the backlog is down to the low mark. This keeps the broker's time for
# delivering, as RabbitMQ's credit flow does, instead of piling up messages in memory.
BACKLOG_HIGH = 4096
BACKLOG_LOW = 1024


class Entry:
    __slots__ = ("message", "redelivered", "seq")

    def __init__(self, seq: int, message: Message, redelivered: bool = False) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = redelivered


class Queue:
    kind = "queue"

    def __init__(self, vhost: str, name: str, durable: bool = False, exclusive_owner: Any = None,
                 auto_delete: bool = False, arguments: FieldTable | None = None) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner  # the owning connection, or None
        self.auto_delete = auto_delete
        self.arguments: FieldTable = arguments or {}
        self.ready: deque[Entry] = deque()
        self.consumers: list[Consumer] = []
        self.bindings: list[tuple[Exchange, Binding]] = []
        self.unacked = 0
        self.deleted = False
        self.ready_bytes = 0
        self._seq = 0
        self._rr = 0
        self._dispatching = False
        self.waiting_publishers: set[Any] = set()
        args = self.arguments
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.reject_publish = args.get("x-overflow") in ("reject-publish", "reject-publish-dlx")

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    # -- messages in -----------------------------------------------------------------

    def push(self, message: Message) -> bool:
        """Enqueue; False if the queue refused it (full, with x-overflow reject-publish)."""
        limited = self.max_length is not None or self.max_length_bytes is not None
        if limited and not self._make_room(len(message.body)):
            return False
        self._seq += 1
        self.ready.append(Entry(self._seq, message))
        self.ready_bytes += len(message.body)
        if self.consumers:
            self.dispatch()
        return True

    def _make_room(self, size: int) -> bool:
        """Apply x-max-length / x-max-length-bytes to the ready messages, as RabbitMQ
        does: refuse the newcomer (reject-publish) or drop from the head (drop-head)."""
        max_n, max_b = self.max_length, self.max_length_bytes
        ready = self.ready

        def over(extra_n: int, extra_b: int) -> bool:
            return ((max_n is not None and len(ready) + extra_n > max_n) or
                    (max_b is not None and self.ready_bytes + extra_b > max_b))

        if self.reject_publish:
            return not over(1, size)
        while ready and over(1, size):
            dropped = ready.popleft()
            self.ready_bytes -= len(dropped.message.body)
        return not over(1, size)  # False: bigger than the byte limit on its own

    def requeue(self, entries: Iterable[Entry]) -> None:
        """Put unacked entries back at their original positions, marked redelivered."""
        back = sorted(entries, key=lambda e: e.seq)
        if not back:
            return
        for e in back:
            e.redelivered = True
            self.ready_bytes += len(e.message.body)
        ready = self.ready
        if not ready or back[-1].seq < ready[0].seq:
            ready.extendleft(reversed(back))
        else:
            merged = sorted([*ready, *back], key=lambda e: e.seq)
            ready.clear()
            ready.extend(merged)
        self.dispatch()

    # -- messages out ----------------------------------------------------------------

    def get(self) -> Entry | None:
        if not self.ready:
            return None
        entry = self.ready.popleft()
        self.ready_bytes -= len(entry.message.body)
        return entry

    def dispatch(self) -> None:
        """Deliver ready messages round-robin to consumers that have capacity."""
        if self._dispatching or self.deleted:
            return
        self._dispatching = True
        try:
            ready = self.ready
            consumers = self.consumers
            if len(consumers) == 1:
                # The common case, without the round-robin bookkeeping.
                consumer = consumers[0]
                while ready and consumer.can_take():
                    entry = ready.popleft()
                    self.ready_bytes -= len(entry.message.body)
                    consumer.deliver(entry)
                return
            while ready and consumers:
                n = len(consumers)
                for _ in range(n):
                    consumer = consumers[self._rr % n]
                    self._rr += 1
                    if consumer.can_take():
                        entry = ready.popleft()
                        self.ready_bytes -= len(entry.message.body)
                        consumer.deliver(entry)
                        break
                else:
                    return
        finally:
            self._dispatching = False
            if self.waiting_publishers and len(self.ready) <= BACKLOG_LOW:
                self.wake_publishers()

    def congested(self) -> bool:
        """Too many ready messages for consumers whose connections are not draining."""
        return len(self.ready) > BACKLOG_HIGH and any(
            not c.channel.connection.writable for c in self.consumers)

    def wake_publishers(self) -> None:
        waiting, self.waiting_publishers = self.waiting_publishers, set()
        for connection in waiting:
            connection.flow_resume()

    def purge(self) -> int:
        count = len(self.ready)
        self.ready.clear()
        self.ready_bytes = 0
        if self.waiting_publishers:
            self.wake_publishers()
        return count

    # -- consumers -------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        if self.waiting_publishers:
            self.wake_publishers()

    @property
    def has_exclusive_consumer(self) -> bool:
        return any(c.exclusive for c in self.consumers)
