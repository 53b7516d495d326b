"""The queue-type seam: what every queue type provides, and what it may ask of the rest.

A queue type (classic.py, quorum.py, and later streams) is one subclass of ``Queue``. The
vhost, channels and the management API use only what is declared here:

    messages in     push(message) -> bool
    delivery        add_consumer / remove_consumer / dispatch, to ``Consumer``s
    settlement      ack(entries), reject(entries, requeue), requeue(entries),
                    requeue_recovered(entries)
    polling         get(no_ack) -> Entry | None
    lifetime        configure(arguments) (policies), touch(), purge(), delete(), recover()
    stats           message_count, consumer_count, ready_bytes, memory_used, counters

A queue knows its surroundings only through three small Protocols, never the classes
behind them (RabbitMQ's queue process knows a channel pid and a consumer tag, lavinmq's
queue a 15-line abstract consumer):

- ``QueueHost`` (the vhost): clock, timers, store, dead-lettering, dropping the queue;
- ``ConsumerOwner`` (the channel): frame one delivery, tell the client a consumer is gone;
- ``Throttled`` (a publishing connection): resume reading once a backlog drained.

A ``Consumer`` is the queue's record of one subscription. Whether it can take a message
is two booleans its channel keeps current (``Gate.open``: flow, closing, the channel's
global prefetch; ``Output.writable``: the connection's socket) plus its own prefetch.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Protocol

from leveret.amqp.fields import FieldTable
from leveret.broker.clock import Clock, Timers
from leveret.broker.dedup import DedupWindow
from leveret.broker.entry import Entry
from leveret.broker.message import Message
from leveret.broker.stats import Counters
from leveret.errors import PreconditionFailed
from leveret.store.base import Definitions, Store

if TYPE_CHECKING:
    from leveret.broker.exchanges.base import Binding, Exchange


# Publisher flow control: a queue whose consumers cannot keep up (their sockets are full)
# pauses the connections publishing into it once this many messages are waiting, and
# resumes them when the backlog is down to the low mark. This keeps the broker's time for
# delivering, as RabbitMQ's credit flow does, instead of piling up messages in memory.
# A consumer whose socket has stayed full for STUCK_AFTER seconds no longer counts: one
# client that stopped reading must not stop the publishers for good (the backlog pages to
# disk as it does with no consumer), and a publisher is paused at most this long at a time.
# The same marks in body bytes, for large messages: below the default in-memory limit of a
# queue (64 MiB, Limits.queue_memory_bytes), so a backlog of 64 KiB messages pauses its
# publishers before it pages to disk, which would slow its consumer further.
BACKLOG_HIGH = 4096
BACKLOG_LOW = 1024
BACKLOG_HIGH_BYTES = 32 << 20
BACKLOG_LOW_BYTES = 8 << 20
STUCK_AFTER = 1.0


class PagingLimits(Protocol):
    """The node's defaults for how much of a queue stays in memory (node.py ``Limits``)."""

    queue_memory_messages: int
    queue_memory_bytes: int


class QueueHost(Protocol):
    """What a queue needs of the vhost it lives in."""

    name: str
    clock: Clock
    timers: Timers
    store: Store | None
    definitions: Definitions | None  # where durable definitions are recorded, if anywhere
    node_limits: PagingLimits | None
    awaiting_commit: set[Queue]  # queues whose ``synced`` runs after the next commit

    def dead_letter(self, queue: Queue, message: Message, reason: str) -> None:
        """Republish ``message`` to the queue's dead-letter exchange, if it has one."""

    def drop_queue(self, queue: Queue) -> int:
        """Delete the queue (x-expires): consumers cancelled, bindings and messages gone."""


class Output(Protocol):
    """The connection a consumer's deliveries are written to."""

    @property
    def writable(self) -> bool: ...  # False while the socket or the output batch is full
    @property
    def stuck(self) -> bool: ...  # its socket has been full for STUCK_AFTER seconds


class Gate:
    """One bool a channel keeps current for all its consumers: open unless the channel is
    closing, flow-stopped, or at its global (per-channel) prefetch."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


class ConsumerOwner(Protocol):
    """The channel side of a consumer."""

    number: int

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        """Frame one message for the client; the queue has settled its own side."""

    def cancel_by_server(self, consumer: Consumer) -> None:
        """The queue went away: drop the consumer and tell the client if it listens."""


class Throttled(Protocol):
    """A publishing connection paused while a queue it publishes to is congested (for at
    most STUCK_AFTER seconds at a time)."""

    def flow_resume(self) -> None: ...


class Consumer:
    """A subscription of one channel to one queue, with its prefetch window."""

    __slots__ = ("arguments", "channel", "exclusive", "gate", "no_ack", "output", "prefetch",
                 "priority", "queue", "tag", "tag_frame", "unacked")

    def __init__(self, channel: ConsumerOwner, gate: Gate, output: Output, queue: Queue,
                 tag: str, no_ack: bool, exclusive: bool, prefetch: int,
                 arguments: FieldTable) -> None:
        self.channel = channel
        self.gate = gate
        self.output = output
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
        """Runs once per delivery: three attribute tests."""
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return self.gate.open and self.output.writable


class Queue:
    """What every queue type is to the vhost, channels and the management API.

    Not an ``abc.ABC``: compiled by mypyc (leveret/build.py), a native class hierarchy under
    ABCMeta shares one isinstance cache between its subclasses, so a quorum queue would pass
    for a stream. mypy still refuses to instantiate a class with an abstract method left."""

    kind = "queue"  # a binding destination is a queue or an exchange
    TYPE_NAME: ClassVar[str] = ""  # the x-queue-type that selects it
    # The arguments compared when the queue is declared again (None: every one RabbitMQ
    # knows, arguments.QUEUE_ARGUMENTS).
    EQUIVALENT_ARGUMENTS: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, host: QueueHost, name: str, durable: bool = False,
                 exclusive_owner: object = None, auto_delete: bool = False,
                 arguments: FieldTable | None = None) -> None:
        self.vhost = host
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner  # the owning connection, or None
        self.auto_delete = auto_delete
        self.arguments: FieldTable = arguments or {}
        self.effective_arguments: FieldTable = self.arguments  # merged with its policy
        self.policy: str | None = None
        self.consumers: list[Consumer] = []
        self.bindings: list[tuple[Exchange, Binding]] = []
        self.unacked = 0  # delivered to consumers or basic.get, not settled yet
        self.deleted = False
        self.counters = Counters()  # messages in and out, for the management API
        self.waiting_publishers: set[Throttled] = set()
        # What the arguments (and policy) say, read by the vhost, channels and management;
        # each type sets them in ``configure``.
        self.queue_type = self.TYPE_NAME
        self.single_active = False  # x-single-active-consumer
        self.dead_letter_exchange: str | None = None
        self.dead_letter_routing_key: str | None = None
        self.consumer_timeout: float | None = None  # seconds (x-consumer-timeout)
        self.dedup: DedupWindow | None = None  # x-message-deduplication

    @classmethod
    def check_declare(cls, arguments: FieldTable, durable: bool, exclusive: bool,
                      auto_delete: bool, server_named: bool, where: str) -> None:
        """Refuse a declaration this type does not allow (PreconditionFailed, with
        RabbitMQ's text); every type accepts what the classic queue accepts by default."""
        return None

    @classmethod
    def check_foreign_arguments(cls, arguments: FieldTable, where: str) -> None:
        """Refuse arguments that belong to other queue types (checked before any value)."""
        return None

    def check_delete(self, if_unused: bool, if_empty: bool) -> None:
        """Refuse a queue.delete whose if-unused / if-empty condition fails, or that this
        type does not support (RabbitMQ's errors)."""
        where = f"queue '{self.name}' in vhost '{self.vhost.name}'"
        if if_unused and self.consumers:
            raise PreconditionFailed(f"{where} in use")
        if if_empty and self.message_count:
            raise PreconditionFailed(f"{where} not empty")

    def check_consume(self, arguments: FieldTable, no_ack: bool, exclusive: bool,
                      prefetch: int, global_prefetch: int) -> None:
        """Refuse a basic.consume this type does not allow; a stream's consumer argument
        is refused elsewhere, as RabbitMQ does."""
        if "x-stream-offset" in arguments:
            raise PreconditionFailed(
                f"invalid arg 'x-stream-offset' for queue '{self.name}' in vhost "
                f"'{self.vhost.name}' of queue type rabbit_{self.TYPE_NAME}_queue")

    def check_message(self, message: Message) -> None:
        """Refuse a published message (with headers) this type cannot keep."""
        return None

    def check_reject(self) -> None:
        """Refuse basic.nack / basic.reject of this queue's deliveries."""
        return None

    def check_recover(self) -> None:
        """Refuse basic.recover of this queue's deliveries."""
        return None

    def declare_ok_counts(self) -> tuple[int, int]:
        """message_count and consumer_count in queue.declare-ok."""
        return self.message_count, self.consumer_count

    def delete_ok_count(self) -> int:
        """message_count in queue.delete-ok."""
        return self.message_count

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    @property
    def has_exclusive_consumer(self) -> bool:
        return any(c.exclusive for c in self.consumers)

    def refuses_consumer(self, exclusive: bool) -> bool:
        """basic.consume exclusive=true, or a consumer beside an exclusive one (403)."""
        return bool(self.consumers) and (exclusive or self.has_exclusive_consumer)

    @property
    @abstractmethod
    def message_count(self) -> int:
        """Ready messages (not the unacknowledged ones)."""

    @property
    @abstractmethod
    def ready_bytes(self) -> int:
        """Body bytes of the ready messages."""

    @property
    @abstractmethod
    def memory_used(self) -> int:
        """Body bytes of the ready messages held in memory."""

    @property
    @abstractmethod
    def messages_in_memory(self) -> int:
        """Ready messages held in memory (the others are paged out to disk)."""

    # -- arguments and lifetime ------------------------------------------------------

    @abstractmethod
    def configure(self, arguments: FieldTable) -> None:
        """Apply the effective arguments (its own merged with its policy); called again
        when a policy changes, without touching the messages."""

    @abstractmethod
    def touch(self) -> None:
        """The queue was used (declared, consumed from, polled): restart x-expires."""

    @abstractmethod
    def purge(self) -> int:
        """Drop the ready messages; returns how many."""

    @abstractmethod
    def delete(self) -> None:
        """The vhost dropped the queue: its timers, messages and logs go."""

    @abstractmethod
    def open_log(self) -> int:
        """A durable queue in a broker with a store: open its log; returns how many live
        messages are already in it."""

    @abstractmethod
    def recover(self) -> int:
        """At start: rebuild the ready messages from the durable log; returns how many."""

    # -- messages --------------------------------------------------------------------

    @abstractmethod
    def push(self, message: Message) -> bool:
        """Enqueue a routed message; False if the queue refused it (x-overflow
        reject-publish)."""

    @abstractmethod
    def dispatch(self) -> None:
        """Deliver ready messages to consumers that can take them."""

    @abstractmethod
    def add_consumer(self, consumer: Consumer) -> None: ...

    @abstractmethod
    def remove_consumer(self, consumer: Consumer) -> None: ...

    @abstractmethod
    def get(self, no_ack: bool) -> Entry | None:
        """basic.get: the head, settled at once with ``no_ack``, else unacknowledged."""

    @abstractmethod
    def ack(self, entries: list[Entry]) -> None:
        """Delivered messages were acknowledged: they leave for good."""

    @abstractmethod
    def reject(self, entries: list[Entry], requeue: bool) -> None:
        """Nacked or rejected: back to the queue with ``requeue``, else dead-lettered or
        dropped."""

    @abstractmethod
    def requeue(self, entries: list[Entry]) -> None:
        """Unacknowledged messages come back (their channel closed): to their original
        positions, marked redelivered."""

    def synced(self) -> None:
        """The store committed what the queue asked to wait for (``awaiting_commit``)."""
        return None

    def requeue_recovered(self, entries: list[Entry]) -> None:
        """basic.recover returned them: as ``requeue``, unless the type says otherwise."""
        self.requeue(entries)

    @abstractmethod
    def ready_messages(self) -> Iterator[tuple[Message, bool]]:
        """The ready messages in delivery order with their redelivered flags, left where
        they are and as they are (the management API's peek)."""

    # -- publisher flow control ------------------------------------------------------

    def congested(self) -> bool:
        """Too many ready messages for consumers whose connections are not draining."""
        return (self.message_count > BACKLOG_HIGH
                or self.ready_bytes > BACKLOG_HIGH_BYTES) and any(
            not c.output.writable and not c.output.stuck for c in self.consumers)

    def behind(self) -> bool:
        """A backlog its consumers are not keeping up with, though they read: each publisher
        into it then gets a smaller share of the event loop per turn (``INPUT_FRAMES_BEHIND``)
        so that consumers' acks, and the deliveries they allow, come round sooner. Unlike
        ``congested`` this never stops a publisher: on an idle loop turns are quick and it
        goes as fast as before; it only loses to consumers where they compete for the CPU,
        as RabbitMQ's credit flow slows a publisher whose queue process is busy."""
        return self.message_count > BACKLOG_HIGH and bool(self.consumers)

    def wake_publishers(self) -> None:
        waiting, self.waiting_publishers = self.waiting_publishers, set()
        for connection in waiting:
            connection.flow_resume()
