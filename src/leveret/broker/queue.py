"""A queue: its ready messages, the consumers it feeds, and what its arguments ask for.

Ready messages keep publication order (per priority with ``x-max-priority``); each entry
carries a queue-local sequence number so requeued messages go back to their original
position, as RabbitMQ's classic queues do. Unacked messages are tracked by the channel
holding them; the queue only counts them.

Arguments, with RabbitMQ's semantics: ``x-message-ttl`` and per-message ``expiration``
(expired messages leave from the head and are never delivered), ``x-expires`` (an unused
queue deletes itself), ``x-dead-letter-exchange`` / ``-routing-key``, ``x-max-length`` /
``-bytes`` with ``x-overflow``, ``x-single-active-consumer``, consumer priorities
(``x-priority`` on basic.consume), ``x-delivery-limit`` with the ``x-delivery-count``
header, and an opt-in ``x-consumer-timeout``. Time comes from the vhost's clock.

Paging: when the broker has a store, a queue holds at most ``x-max-in-memory-length``
messages / ``x-max-in-memory-bytes`` of bodies in memory (defaults from the node's
``Limits``; ``x-queue-mode=lazy``: none). Later messages are appended to the queue's log
(its durable log, or a transient scratch log for a non-durable queue) and only a compact
index entry stays in memory (paging.py); they are read back in batches when the
in-memory head runs dry. docs/storage.md ("Paging") has the details.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from leveret.amqp.fields import FieldTable, Long
from leveret.broker import deadletter
from leveret.broker.clock import Timer
from leveret.broker.dedup import DedupWindow
from leveret.broker.message import FLAG_EXPIRATION, FLAG_PRIORITY, Message
from leveret.broker.paging import PagedIndex, marks_of, priority_of
from leveret.broker.ready import FifoReady, PriorityReady
from leveret.broker.stats import Counters
from leveret.store.base import CorruptRecord, LiveBatch
from leveret.store.codec import pack_message, properties_of, unpack_many

if TYPE_CHECKING:
    from leveret.broker.consumer import Consumer
    from leveret.broker.exchanges.base import Binding, Exchange
    from leveret.broker.vhost import VirtualHost


# Publisher flow control: a queue whose consumers cannot keep up (their sockets are full)
# pauses the connections publishing into it once this many messages are waiting, and
# resumes them when the backlog is down to the low mark. This keeps the broker's time for
# delivering, as RabbitMQ's credit flow does, instead of piling up messages in memory.
BACKLOG_HIGH = 4096
BACKLOG_LOW = 1024

# Paging (with a store): ready messages a queue keeps in memory by default, above which
# further ones wait on disk (Limits.queue_memory_messages / _bytes override these).
MEMORY_MESSAGES = 100_000
MEMORY_BYTES = 64 << 20
# Messages read back from the log at a time when the in-memory head runs dry.
PAGE_IN_MESSAGES = 1024
PAGE_IN_BYTES = 4 << 20
# Expired messages dropped per expiry-timer run; the rest go EXPIRY_PAUSE seconds later.
EXPIRY_BUDGET = 10_000
EXPIRY_PAUSE = 0.001
# Direct reply-to pseudo-queues are never paged (they are not declared, never deleted).
_REPLY_TO = "amq.rabbitmq.reply-to."

log = logging.getLogger("leveret.broker")


class Entry:
    __slots__ = ("delivery_count", "expires_at", "message", "offset", "original", "priority",
                 "redelivered", "seq")

    def __init__(self, seq: int, message: Message, redelivered: bool = False,
                 priority: int = 0, expires_at: float | None = None) -> None:
        self.seq = seq
        self.message = message
        self.redelivered = redelivered
        self.priority = priority
        self.expires_at = expires_at
        self.delivery_count = 0  # times returned to the queue unacknowledged
        self.original: Message | None = None  # as published, when message carries a stamp
        self.offset: int | None = None  # its offset in the queue's log, if persisted


class Queue:
    kind = "queue"

    def __init__(self, vhost: VirtualHost, name: str, durable: bool = False,
                 exclusive_owner: Any = None, auto_delete: bool = False,
                 arguments: FieldTable | None = None) -> None:
        self.vhost = vhost
        self.name = name
        self.durable = durable
        self.exclusive_owner = exclusive_owner  # the owning connection, or None
        self.auto_delete = auto_delete
        self.arguments: FieldTable = arguments or {}
        self.consumers: list[Consumer] = []
        self.bindings: list[tuple[Exchange, Binding]] = []
        self.unacked = 0
        self.deleted = False
        self.ready_bytes = 0
        self._seq = 0
        self._rr = 0
        self._dispatching = False
        # The consumer push may hand a message straight to (see _update_direct), or None.
        self._direct: Consumer | None = None
        # Messages / bytes that certainly still fit in memory (paging; see _must_page).
        self._room_messages = 0
        self._room_bytes = 0
        self.waiting_publishers: set[Any] = set()
        self.counters = Counters()  # messages in and out, for the management API
        # The queue's log (store/base.py QueueLog) when durable and the broker has a store:
        # persistent messages are appended to it, and acked there when they leave.
        self.log: Any = None
        # Where messages of a queue without a durable log are paged to: a transient log
        # opened from the store on first use, deleted with the queue.
        self._scratch: Any = None
        self._expiry_timer: Timer | None = None
        self._idle_timer: Timer | None = None
        self._groups: list[list[Consumer]] = []
        max_priority = self.arguments.get("x-max-priority")
        self.max_priority: int = int(max_priority) if max_priority else 0
        self.ready: FifoReady | PriorityReady = (
            PriorityReady(self.max_priority, self._page_in) if self.max_priority
            else FifoReady(self._page_in))
        self.policy: str | None = None
        self.effective_arguments: FieldTable = self.arguments
        self.configure(self.arguments)

    def configure(self, args: FieldTable) -> None:
        """Apply the effective arguments (the queue's own, merged with its policy); called
        again when a policy changes, without touching the messages."""
        self.effective_arguments = args
        ttl = args.get("x-message-ttl")
        self.message_ttl: float | None = ttl / 1000 if ttl is not None else None
        # Sticky: once any message carried a TTL the head must be checked for expiry.
        self.has_ttl = ttl is not None or getattr(self, "has_ttl", False)
        expires = args.get("x-expires")
        self.expires: float | None = expires / 1000 if expires is not None else None
        self.dlx: str | None = _text(args.get("x-dead-letter-exchange"))
        self.dlrk: str | None = _text(args.get("x-dead-letter-routing-key"))
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.limited = self.max_length is not None or self.max_length_bytes is not None
        self.overflow = _text(args.get("x-overflow")) or "drop-head"
        self.single_active = args.get("x-single-active-consumer") is True
        self.queue_type = _text(args.get("x-queue-type")) or "classic"
        limit = args.get("x-delivery-limit")
        self.delivery_limit: int | None = limit
        self.count_deliveries = self.queue_type == "quorum" or limit is not None
        retry = args.get("x-retry-delay")
        self.retry_delay: float | None = retry / 1000 if retry is not None else None
        cap = args.get("x-retry-max-delay")
        self.retry_max_delay: float | None = cap / 1000 if cap is not None else None
        self.retry_multiplier: int = args.get("x-retry-multiplier", 2)
        self.count_deliveries = self.count_deliveries or retry is not None
        window = DedupWindow.from_arguments(args, self.vhost.clock)
        old = getattr(self, "dedup", None)
        if window is not None and old is not None:  # a policy change keeps what was seen
            old.size, old.ttl = window.size, window.ttl
            window = old
        self.dedup = window
        timeout = args.get("x-consumer-timeout")
        self.consumer_timeout: float | None = timeout / 1000 if timeout else None
        limits = getattr(self.vhost, "node_limits", None)
        in_memory = args.get("x-max-in-memory-length")
        if in_memory is None and _text(args.get("x-queue-mode")) == "lazy":
            in_memory = 0  # RabbitMQ's lazy queues: to disk as early as possible
        self.memory_messages: int = in_memory if in_memory is not None else (
            limits.queue_memory_messages if limits is not None else MEMORY_MESSAGES)
        in_memory = args.get("x-max-in-memory-bytes")
        self.memory_bytes: int = in_memory if in_memory is not None else (
            limits.queue_memory_bytes if limits is not None else MEMORY_BYTES)
        self.pageable = (self.vhost.store is not None and
                         not self.name.startswith(_REPLY_TO))
        self._no_room()  # the limits may have changed
        self._update_direct()
        self.touch()
        if self.has_ttl and self.ready:
            self._expire_and_arm()

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

    def push(self, message: Message) -> bool:  # noqa: C901 - once per message, kept flat
        """Enqueue; False if the queue refused it (full, with x-overflow reject-publish)."""
        size = len(message.body)
        if self.dedup is not None and self.dedup.is_duplicate(message):
            return True  # seen within the window: dropped, and confirmed like the plugin
        if self.limited and self.overflow != "drop-head" and self._over_limit(1, size):
            if self.overflow == "reject-publish-dlx":
                self._dead_letter(message, deadletter.MAXLEN)
            return False
        self._seq += 1
        entry = Entry(self._seq, message)
        flags = message.flags
        if flags:
            if self.max_priority and flags & FLAG_PRIORITY:
                entry.priority = min(message.properties.priority or 0, self.max_priority)
            if self.has_ttl or flags & FLAG_EXPIRATION:
                self._set_expiry(entry, message, flags)
        elif self.has_ttl:
            self._set_expiry(entry, message, flags)
        expires_at = entry.expires_at
        if self.log is not None and message.persistent:
            entry.offset = self.log.append(pack_message(
                message.exchange, message.routing_key, message.properties_raw,
                message.body, expires_at), True)
        page = False
        if self.pageable:
            if self._room_messages > 0 and self._room_bytes > 0:
                # Certainly fits in memory: no should_page call (see _must_page).
                self._room_messages -= 1
                self._room_bytes -= size
            else:
                page = self._must_page(entry.priority, size)
        if page:
            self._page_out(entry, size)
        elif expires_at is not None and expires_at <= self.vhost.clock.now():
            # TTL 0: delivered if a consumer can take it right now, else it expires.
            entry.expires_at = None
            self.ready.append(entry)
            self.ready_bytes += size
            if self.consumers:
                self.dispatch()
            entry.expires_at = expires_at
        else:
            consumer = self._direct
            ready = self.ready
            if (consumer is None or self.has_ttl or self._dispatching or self.deleted
                    or self.waiting_publishers):
                ready.append(entry)
                self.ready_bytes += size
                if self.consumers:
                    self.dispatch()
            # One consumer served from a FIFO (see _update_direct): what append + dispatch
            # would do, without the trip through the ready list or through dispatch.
            elif not consumer.can_take():
                ready.append(entry)  # (dispatch would stop at once)
                self.ready_bytes += size
            elif not ready.window and not ready.paged.count:  # type: ignore[union-attr]
                # Nothing ahead of it. (Delivering only buffers output, so nothing
                # re-enters the queue here.)
                consumer.channel.deliver(consumer, entry)
            else:
                ready.append(entry)
                self.ready_bytes += size
                self.dispatch()
        if self.limited and self.overflow == "drop-head":
            self._drop_head()
        if self.has_ttl:
            self._expire_and_arm()
        self.counters.publish += 1
        return True

    def _must_page(self, priority: int, size: int) -> bool:
        """Whether a new message of ``size`` bytes goes to the paged index (the ready
        list's ``should_page``). When it does not and nothing at all is paged, also grant
        the room left below both in-memory limits, which ``push`` spends without asking
        again: while ``_room_messages`` and ``_room_bytes`` are both positive, the window
        is below both limits and nothing is paged, so ``should_page`` would say no.
        Whatever else can grow the window or page a message (requeue, recovery, a policy
        change) takes the room back with ``_no_room``; taking messages out only makes the
        grant more conservative."""
        ready = self.ready
        if ready.should_page(priority, self.memory_messages, self.memory_bytes,
                             self.ready_bytes):
            return True
        if not ready.paged_count:
            # counts and bytes before this message is appended, which takes its share
            self._room_messages = self.memory_messages - ready.in_memory - 1
            self._room_bytes = self.memory_bytes - self.ready_bytes - size
        return False

    def _no_room(self) -> None:
        """Make the next push ask ``should_page`` (see ``_must_page``)."""
        self._room_messages = self._room_bytes = 0

    def _page_out(self, entry: Entry, size: int) -> None:
        """Past the in-memory limit: the message waits in the log (appended now unless it
        already is), and the index keeps its offset and size; dispatch pages it in."""
        offset = entry.offset
        if offset is None:
            message = entry.message
            offset = self._paging_log().append(pack_message(
                message.exchange, message.routing_key, message.properties_raw,
                message.body, entry.expires_at), False)
        self.ready.page_out(entry.priority, offset, size)
        self.ready_bytes += size
        if self.consumers:
            self.dispatch()

    def _paging_log(self) -> Any:
        if self.log is not None:
            return self.log
        if self._scratch is None:
            self._scratch = self.vhost.store.open_queue(self.vhost.name, self.name,
                                                        transient=True)
        return self._scratch

    def _page_in(self, index: PagedIndex, window: deque[Entry], priority: int) -> None:
        """Move the next batch of paged messages into the window: bodies are read from
        the log (nearby records with one pread), each gets its ``Entry`` and its place in
        requeue order (``seq``) now. A record that fails its checksum is logged and
        dropped (acked), as in recovery."""
        offsets, sizes, marks = index.take(PAGE_IN_MESSAGES, PAGE_IN_BYTES)
        qlog = self.log if self.log is not None else self._scratch
        try:
            records: list[Any] = qlog.read_many(offsets)
        except CorruptRecord:
            records = [self._read_or_drop(qlog, o) for o in offsets]
            kept = [i for i, r in enumerate(records) if r is not None]
            self.ready_bytes -= sum(sizes) - sum(sizes[i] for i in kept)
            offsets, sizes, marks = ([col[i] for i in kept] for col in (offsets, sizes, marks))
            records = [records[i] for i in kept]
        batch = unpack_many(records)
        seq = self._seq
        append = window.append
        for offset, mark, exchange, routing_key, props, body, expires_at in zip(
                offsets, marks, *batch, strict=True):
            seq += 1
            entry = Entry(seq, Message(exchange, routing_key, props, body), mark & 1 == 1,
                          priority, expires_at)
            if mark:
                entry.delivery_count = mark >> 1
            entry.offset = offset
            append(entry)
        self._seq = seq
        # paged sizes were body sizes, or record sizes for messages recovered at start
        self.ready_bytes += sum(map(len, batch.bodies)) - sum(sizes)
        if batch.expires_at.count(None) != len(offsets):
            self.has_ttl = True

    def _read_or_drop(self, qlog: Any, offset: int) -> Any:
        try:
            return qlog.read(offset)
        except CorruptRecord as exc:
            log.warning("%s: message dropped", exc)
            qlog.ack(offset)
            return None

    @property
    def paging_log(self) -> Any:
        """The log the paged messages are in (the durable log, or the scratch log), if
        any: ``read(offset)`` of an offset from ``ready.indexes()`` gives a message."""
        return self.log if self.log is not None else self._scratch

    @property
    def memory_used(self) -> int:
        """Bytes of ready message bodies held in memory (the paged ones are on disk)."""
        return self.ready_bytes - self.ready.paged_bytes

    def _set_expiry(self, entry: Entry, message: Message, flags: int) -> None:
        ttl = self.message_ttl
        if flags & FLAG_EXPIRATION:
            per_message = message.expiration_ms
            if per_message is not None:
                ttl = per_message / 1000 if ttl is None else min(ttl, per_message / 1000)
        if ttl is not None:
            self.has_ttl = True
            entry.expires_at = self.vhost.clock.now() + ttl

    def _over_limit(self, extra: int = 0, extra_bytes: int = 0) -> bool:
        return ((self.max_length is not None and len(self.ready) + extra > self.max_length) or
                (self.max_length_bytes is not None and
                 self.ready_bytes + extra_bytes > self.max_length_bytes))

    def _drop_head(self) -> None:
        """x-overflow drop-head: trim the oldest (highest-priority) ready messages until
        within x-max-length / x-max-length-bytes, dead-lettering them (reason maxlen)."""
        while self.ready and self._over_limit():
            dropped = self._pop()
            self._dead_letter(dropped.message, deadletter.MAXLEN)
            self.forget(dropped)

    def retry_later(self, entry: Entry) -> None:
        """A nack with requeue on a queue with x-retry-delay: the message comes back after
        an exponential backoff (x-retry-delay * x-retry-multiplier ** (attempt - 1), capped
        by x-retry-max-delay), so applications never republish to retry."""
        entry.delivery_count += 1
        if self.delivery_limit is not None and entry.delivery_count > self.delivery_limit:
            self._dead_letter(entry.original or entry.message, deadletter.DELIVERY_LIMIT)
            self.forget(entry)
            return
        self._log_count(entry)
        assert self.retry_delay is not None
        delay = self.retry_delay * self.retry_multiplier ** (entry.delivery_count - 1)
        if self.retry_max_delay is not None:
            delay = min(delay, self.retry_max_delay)
        self.vhost.timers.call_later(delay, lambda: self._retry_due(entry))

    def _retry_due(self, entry: Entry) -> None:
        if not self.deleted:
            self.requeue([entry], counted=True)

    def requeue(self, entries: Iterable[Entry], counted: bool = False) -> None:
        """Put unacked entries back at their original positions, marked redelivered;
        past x-delivery-limit they are dead-lettered instead."""
        back = []
        for e in entries:
            e.redelivered = True
            if self.count_deliveries and not counted:
                e.delivery_count += 1
                if self.delivery_limit is not None and e.delivery_count > self.delivery_limit:
                    self._dead_letter(e.original or e.message, deadletter.DELIVERY_LIMIT)
                    self.forget(e)
                    continue
                self._log_count(e)
            back.append(e)
            self.ready_bytes += len(e.message.body)
        if back:
            self.ready.requeue(back)
            self._no_room()
        if self.has_ttl:
            self._expire_and_arm()
        self.dispatch()
        if self.limited and self.overflow == "drop-head":
            self._drop_head()

    def discard(self, entry: Entry, reason: str = deadletter.REJECTED) -> None:
        """A message rejected without requeue: dead-letter it if the queue says so."""
        self._dead_letter(entry.original or entry.message, reason)
        self.forget(entry)

    # -- the log ---------------------------------------------------------------------

    def forget(self, entry: Entry) -> None:
        """The message left the queue for good: ack it in the log."""
        if entry.offset is not None:
            qlog = self.log if self.log is not None else self._scratch
            if qlog is not None:
                qlog.ack(entry.offset)
                entry.offset = None

    def _log_count(self, entry: Entry) -> None:
        if entry.offset is not None and self.log is not None:
            self.log.set_delivery_count(entry.offset, entry.delivery_count)

    def recover(self) -> int:
        """Rebuild the ready list from the log (at start): the live messages in offset
        order, redelivered and delivery counts as recorded. No body is read: the messages
        go to the paged index, and the first batch is read when something looks at the
        head (a priority queue reads each message's properties once, for its priority).
        Returns how many."""
        qlog = self.log
        if qlog is None:
            return 0
        ready = self.ready
        before = ready.paged_bytes
        self._no_room()
        for batch in qlog.live_batches():
            marks = marks_of(batch.redelivered, batch.counts, batch.offsets)
            if isinstance(ready, FifoReady):
                ready.paged.extend(batch.offsets, batch.sizes, marks)
            else:
                self._recover_priorities(qlog, ready, batch, marks)
        self.ready_bytes += ready.paged_bytes - before
        n = len(ready)
        if n:
            self._expire_and_arm()  # reads the head: arms its expiry timer if it has one
        return n

    def _recover_priorities(self, qlog: Any, ready: PriorityReady, batch: LiveBatch,
                            marks: Any) -> None:
        offsets, sizes = batch.offsets, batch.sizes
        top = self.max_priority
        for i in range(0, len(offsets), PAGE_IN_MESSAGES):
            part = offsets[i:i + PAGE_IN_MESSAGES]
            try:
                records: list[Any] = qlog.read_many(part)
            except CorruptRecord:
                records = [self._read_or_drop(qlog, o) for o in part]
            for k, data in enumerate(records, i):
                if data is not None:
                    level = min(priority_of(properties_of(data)), top)
                    ready.page_out(level, offsets[k], sizes[k],
                                   marks[k] if marks is not None else 0)

    # -- messages out ----------------------------------------------------------------

    def _pop(self) -> Entry:
        entry = self.ready.popleft()
        self.ready_bytes -= len(entry.message.body)
        return entry

    def get(self) -> Entry | None:
        self.touch()
        if not self.ready:  # (reads the head back if it was paged)
            return None
        if self.has_ttl:  # checked after: the head just read may be the first with a TTL
            self._expire_and_arm()
            if not self.ready:
                return None
        entry = self._prepare(self._pop(), polled=True)
        if self.has_ttl:
            self._expire_and_arm()  # so get-ok's message_count leaves out an expired head
        return entry

    def _prepare(self, entry: Entry, polled: bool = False) -> Entry:
        """Stamp x-delivery-count on a redelivery from a queue that counts them (and, as
        RabbitMQ's quorum queues do, on every basic.get)."""
        if self.count_deliveries and (entry.delivery_count or
                                      (polled and self.queue_type == "quorum")):
            original = entry.original or entry.message
            props = original.fresh_properties()
            count = Long(entry.delivery_count)
            props.headers = {**(props.headers or {}), "x-delivery-count": count}
            entry.original = original
            entry.message = Message(original.exchange, original.routing_key, props.encode(),
                                    original.body)
        return entry

    def dispatch(self) -> None:
        """Deliver ready messages to consumers with capacity: round-robin, highest consumer
        priority first, only the active one under single-active-consumer."""
        if self._dispatching or self.deleted:
            return
        self._dispatching = True
        try:
            if self.has_ttl:
                self._expire_and_arm()
            ready = self.ready
            consumers = self.consumers
            if len(consumers) == 1 or (self.single_active and consumers):
                # The common case, without the round-robin bookkeeping.
                consumer = consumers[0]
                counting = self.count_deliveries
                if not counting and self.max_priority == 0:
                    # The hot loop (a backlog drained as the consumer's socket takes it):
                    # for a FIFO the window deque's truth test runs in C, and the ready
                    # list's Python-level __bool__ (which pages in) only once the window is
                    # empty and something is paged; after it said yes, the window has the
                    # head.
                    window, paged = ready.window, ready.paged  # type: ignore[union-attr]
                    deliver = consumer.channel.deliver
                    while (window or (paged.count and ready)) and consumer.can_take():
                        if self.has_ttl and self._expire_head():
                            continue
                        entry = window.popleft()
                        self.ready_bytes -= len(entry.message.body)
                        deliver(consumer, entry)
                    return
                while ready and consumer.can_take():
                    # has_ttl read each time: paging in may bring the first expiring message
                    if self.has_ttl and self._expire_head():
                        continue
                    entry = ready.popleft()
                    self.ready_bytes -= len(entry.message.body)
                    consumer.deliver(self._prepare(entry) if counting else entry)
                return
            while ready and consumers:
                if self.has_ttl and self._expire_head():
                    continue
                chosen = self._next_consumer()
                if chosen is None:
                    return
                chosen.deliver(self._prepare(self._pop()))
        finally:
            self._dispatching = False
            if self.waiting_publishers and len(self.ready) <= BACKLOG_LOW:
                self.wake_publishers()

    def _next_consumer(self) -> Consumer | None:
        for group in self._groups or [self.consumers]:
            n = len(group)
            for _ in range(n):
                consumer = group[self._rr % n]
                self._rr += 1
                if consumer.can_take():
                    return consumer
        return None

    def purge(self) -> int:
        count = len(self.ready)
        qlog = self.log if self.log is not None else self._scratch
        if qlog is not None and not self.deleted:  # (a deleted queue's log goes whole)
            for entry in self.ready:  # the in-memory ones
                self.forget(entry)
            runs = [run for _, index in self.ready.indexes() for run in index.runs()]
            if runs:
                qlog.ack_runs(runs)  # the paged ones: a few slices of the log's index
        self.ready.clear()
        self.ready_bytes = 0
        if self.waiting_publishers:
            self.wake_publishers()
        return count

    # -- expiry ----------------------------------------------------------------------

    def _expire_head(self) -> bool:
        """Dead-letter the head if it has expired; True if it did."""
        head = self.ready.peek()
        if head.expires_at is None or head.expires_at > self.vhost.clock.now():
            return False
        self._pop()
        self._dead_letter(head.message, deadletter.EXPIRED)
        self.forget(head)
        return True

    def _expire_and_arm(self, budget: int = 0) -> None:
        """Expire from the head, then wake up when the new head expires. With a
        ``budget`` (the timer's call) at most that many go now and the rest a moment
        later, so a large expired backlog (read back from disk) does not hold the event
        loop for seconds."""
        expired = 0
        while self.ready and self._expire_head():
            expired += 1
            if expired == budget:
                break
        due = self.ready.peek().expires_at if self.ready else None
        if budget and expired == budget and due is not None and due <= self.vhost.clock.now():
            due = self.vhost.clock.now() + EXPIRY_PAUSE
        timer = self._expiry_timer
        if timer is not None and (due is None or timer.when != due):
            timer.cancel()
            self._expiry_timer = timer = None
        if due is not None and timer is None and not self.deleted:
            self._expiry_timer = self.vhost.timers.call_at(due, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        if not self.deleted:
            self._expire_and_arm(EXPIRY_BUDGET)

    def touch(self) -> None:
        """The queue was used (declared, consumed from, polled): restart x-expires."""
        if self.expires is None or self.deleted:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if not self.consumers:
            self._idle_timer = self.vhost.timers.call_later(self.expires, self._on_idle)

    def _on_idle(self) -> None:
        self._idle_timer = None
        if not self.consumers and not self.deleted:
            self.vhost.drop_queue(self)

    def _dead_letter(self, message: Message, reason: str) -> None:
        dlx = self.dlx
        if dlx is None:
            return
        exchange = self.vhost.exchanges.get(dlx)
        if exchange is None:
            return  # dead-lettering to a missing exchange drops the message, as in RabbitMQ
        out, keys = deadletter.dead_letter_message(message, reason, self.name, dlx, self.dlrk,
                                                   self.vhost.clock.now())
        targets: dict[int, Queue] = {}
        for key in keys:
            for q in self.vhost.route(exchange, out, key):
                targets.setdefault(id(q), q)
        for q in targets.values():
            if reason != deadletter.REJECTED and deadletter.is_cycle(out, q.name):
                continue
            q.push(out)

    # -- consumers -------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)
        self._regroup()
        self.touch()
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            was_active = self.consumers[0] is consumer
            self.consumers.remove(consumer)
            if self.single_active and was_active and self.consumers:
                # Failover goes to the highest-priority waiting consumer (the first one
                # registered among equals); the first choice ignored priorities.
                best = max(self.consumers, key=lambda c: c.priority)
                self.consumers.remove(best)
                self.consumers.insert(0, best)
            self._regroup()
            self.touch()
        if self.waiting_publishers:
            self.wake_publishers()
        # No dispatch here, as in RabbitMQ: under single-active-consumer the next consumer
        # is activated, and receives at the next event (a publish, a requeue, an ack).

    def _regroup(self) -> None:
        """Consumers by x-priority, highest first (empty when all share one priority)."""
        self._update_direct()
        priorities = {c.priority for c in self.consumers}
        if len(priorities) <= 1:
            self._groups = []
            return
        self._groups = [[c for c in self.consumers if c.priority == p]
                        for p in sorted(priorities, reverse=True)]

    def _update_direct(self) -> None:
        """When one consumer is served (the only one, or the active one under
        single-active-consumer) from a FIFO that does not count deliveries, ``push`` hands
        a message straight to it while the ready list is empty and it has capacity,
        exactly as ``dispatch`` would. Recomputed when consumers or arguments change."""
        consumers = self.consumers
        one = len(consumers) == 1 or (self.single_active and bool(consumers))
        self._direct = (consumers[0] if one and not self.count_deliveries and
                        not self.max_priority else None)

    @property
    def has_exclusive_consumer(self) -> bool:
        return any(c.exclusive for c in self.consumers)

    def congested(self) -> bool:
        """Too many ready messages for consumers whose connections are not draining."""
        return len(self.ready) > BACKLOG_HIGH and any(
            not c.channel.connection.writable for c in self.consumers)

    def wake_publishers(self) -> None:
        waiting, self.waiting_publishers = self.waiting_publishers, set()
        for connection in waiting:
            connection.flow_resume()

    def close(self) -> None:
        """The queue is gone: stop its timers."""
        for timer in (self._expiry_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_timer = self._idle_timer = None
        if self._scratch is not None:
            self._scratch.delete()
            self._scratch = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
