"""The classic queue: ready messages in order, the consumers it feeds, what its arguments ask.

Ready messages keep publication order (per priority with ``x-max-priority``); each entry
carries a queue-local sequence number so requeued messages go back to their original
position, as RabbitMQ's classic queues do. Unacked messages are tracked by the channel
holding them; the queue counts them and settles them in its log.

Arguments, with RabbitMQ's semantics: ``x-message-ttl`` and per-message ``expiration``
(expired messages leave from the head and are never delivered), ``x-expires`` (an unused
queue deletes itself), ``x-dead-letter-exchange`` / ``-routing-key``, ``x-max-length`` /
``-bytes`` with ``x-overflow``, ``x-single-active-consumer``, consumer priorities
(``x-priority`` on basic.consume), ``x-delivery-limit`` with the ``x-delivery-count``
header, and an opt-in ``x-consumer-timeout``. Time comes from the vhost's clock.

Where the messages are kept (memory, the durable log, paged out to disk) is backing.py's
business; this module only asks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from leveret.amqp.fields import FieldTable, Long
from leveret.broker import deadletter
from leveret.broker.arguments import as_text
from leveret.broker.clock import Timer
from leveret.broker.dedup import DedupWindow
from leveret.broker.entry import Entry
from leveret.broker.message import FLAG_EXPIRATION, FLAG_PRIORITY, Message
from leveret.broker.queues.backing import MEMORY_BYTES, MEMORY_MESSAGES, Backing
from leveret.broker.queues.base import (
    BACKLOG_LOW,
    BACKLOG_LOW_BYTES,
    Consumer,
    Queue,
    QueueHost,
)
from leveret.broker.queues.ready import FifoReady

# Expired messages dropped per expiry-timer run; the rest go EXPIRY_PAUSE seconds later.
EXPIRY_BUDGET = 10_000
EXPIRY_PAUSE = 0.001
# Direct reply-to pseudo-queues are never paged (they are not declared, never deleted).
_REPLY_TO: Final = "amq.rabbitmq.reply-to."


class ClassicQueue(Queue):
    TYPE_NAME = "classic"

    def __init__(self, host: QueueHost, name: str, durable: bool = False,
                 exclusive_owner: object = None, auto_delete: bool = False,
                 arguments: FieldTable | None = None) -> None:
        super().__init__(host, name, durable, exclusive_owner, auto_delete, arguments)
        self._rr = 0
        self._dispatching = False
        # The consumer push may hand a message straight to (see _update_direct), or None.
        self._direct: Consumer | None = None
        self._expiry_timer: Timer | None = None
        self._idle_timer: Timer | None = None
        self._groups: list[list[Consumer]] = []
        max_priority = self.arguments.get("x-max-priority")
        self.max_priority: int = int(max_priority) if max_priority else 0
        self.backing = Backing(host.store, host.name, name, self.max_priority,
                               pageable=not name.startswith(_REPLY_TO),
                               on_expiring=self._expiring)
        # The backing's ready list, held here too for the hot paths (push, dispatch).
        self.ready = self.backing.ready
        # Sticky: once any message carried a TTL the head must be checked for expiry.
        self.has_ttl = False
        self.configure(self.arguments)

    def configure(self, args: FieldTable) -> None:
        self.effective_arguments = args
        ttl = args.get("x-message-ttl")
        self.message_ttl: float | None = ttl / 1000 if ttl is not None else None
        self.has_ttl = ttl is not None or self.has_ttl
        expires = args.get("x-expires")
        self.expires: float | None = expires / 1000 if expires is not None else None
        self.dead_letter_exchange = as_text(args.get("x-dead-letter-exchange"))
        self.dead_letter_routing_key = as_text(args.get("x-dead-letter-routing-key"))
        self.max_length: int | None = args.get("x-max-length")
        self.max_length_bytes: int | None = args.get("x-max-length-bytes")
        self.limited = self.max_length is not None or self.max_length_bytes is not None
        self.overflow = as_text(args.get("x-overflow")) or "drop-head"
        self.single_active = args.get("x-single-active-consumer") is True
        self.queue_type = as_text(args.get("x-queue-type")) or self.TYPE_NAME
        limit = args.get("x-delivery-limit")
        self.delivery_limit: int | None = limit
        retry = args.get("x-retry-delay")
        self.retry_delay: float | None = retry / 1000 if retry is not None else None
        cap = args.get("x-retry-max-delay")
        self.retry_max_delay: float | None = cap / 1000 if cap is not None else None
        self.retry_multiplier: int = args.get("x-retry-multiplier", 2)
        self.count_deliveries = self.counts_deliveries() or limit is not None or (
            retry is not None)
        window = DedupWindow.from_arguments(args, self.vhost.clock)
        old = self.dedup
        if window is not None and old is not None:  # a policy change keeps what was seen
            old.size, old.ttl = window.size, window.ttl
            window = old
        self.dedup = window
        timeout = args.get("x-consumer-timeout")
        self.consumer_timeout = timeout / 1000 if timeout else None
        limits = self.vhost.node_limits
        in_memory = args.get("x-max-in-memory-length")
        if in_memory is None and as_text(args.get("x-queue-mode")) == "lazy":
            in_memory = 0  # RabbitMQ's lazy queues: to disk as early as possible
        memory_messages: int = in_memory if in_memory is not None else (
            limits.queue_memory_messages if limits is not None else MEMORY_MESSAGES)
        in_memory = args.get("x-max-in-memory-bytes")
        memory_bytes: int = in_memory if in_memory is not None else (
            limits.queue_memory_bytes if limits is not None else MEMORY_BYTES)
        self.backing.set_limits(memory_messages, memory_bytes)
        self._update_direct()
        self.touch()
        if self.has_ttl and self.ready:
            self._expire_and_arm()

    def counts_deliveries(self) -> bool:
        """Whether every redelivery is counted (``x-delivery-count``), whatever the
        arguments say: quorum queues do."""
        return False

    def _expiring(self) -> None:
        self.has_ttl = True  # a message read back from the log has an expiry time

    @property
    def message_count(self) -> int:
        return len(self.ready)

    @property
    def ready_bytes(self) -> int:
        return self.backing.ready_bytes

    @property
    def memory_used(self) -> int:
        return self.backing.memory_used

    @property
    def messages_in_memory(self) -> int:
        return self.ready.in_memory

    @property
    def memory_messages(self) -> int:
        return self.backing.memory_messages

    @property
    def memory_bytes(self) -> int:
        return self.backing.memory_bytes

    # -- messages in -----------------------------------------------------------------

    def push(self, message: Message) -> bool:  # noqa: C901 - once per message, kept flat
        size = len(message.body)
        if self.dedup is not None and self.dedup.is_duplicate(message):
            return True  # seen within the window: dropped, and confirmed like the plugin
        if self.limited and self.overflow != "drop-head" and self._over_limit(1, size):
            if self.overflow == "reject-publish-dlx":
                self.vhost.dead_letter(self, message, deadletter.MAXLEN)
            return False
        backing = self.backing
        backing.seq += 1
        entry = Entry(backing.seq, message)
        flags = message.flags
        if flags:
            if self.max_priority and flags & FLAG_PRIORITY:
                entry.priority = min(message.properties.priority or 0, self.max_priority)
            if self.has_ttl or flags & FLAG_EXPIRATION:
                self._set_expiry(entry, message, flags)
        elif self.has_ttl:
            self._set_expiry(entry, message, flags)
        expires_at = entry.expires_at
        if (backing.log is not None or backing.pageable) and backing.accept(entry, size):
            if self.consumers:  # paged out: to the index, delivered in its turn
                self.dispatch()
        elif expires_at is not None and expires_at <= self.vhost.clock.now():
            # TTL 0: delivered if a consumer can take it right now, else it expires.
            entry.expires_at = None
            self.ready.append(entry)
            backing.ready_bytes += size
            if self.consumers:
                self.dispatch()
            entry.expires_at = expires_at
        else:
            consumer = self._direct
            ready = self.ready
            if (consumer is None or self.has_ttl or self._dispatching or self.deleted
                    or self.waiting_publishers):
                ready.append(entry)
                backing.ready_bytes += size
                if self.consumers:
                    self.dispatch()
            # One consumer served from a FIFO (see _update_direct): what append + dispatch
            # would do, without the trip through the ready list or through dispatch.
            elif not consumer.can_take():
                ready.append(entry)  # (dispatch would stop at once)
                backing.ready_bytes += size
            elif not ready.window and not ready.paged.count:  # type: ignore[union-attr]
                # Nothing ahead of it. (Delivering only buffers output, so nothing
                # re-enters the queue here.) _deliver, inlined for a new entry:
                if consumer.no_ack:
                    if entry.offset is not None:
                        backing.forget(entry)
                    self.counters.deliver_no_ack += 1
                else:
                    if entry.offset is not None:
                        backing.mark_delivered(entry)
                    self.counters.deliver += 1
                    self.unacked += 1
                consumer.channel.deliver(consumer, entry)
            else:
                ready.append(entry)
                backing.ready_bytes += size
                self.dispatch()
        if self.limited and self.overflow == "drop-head":
            self._drop_head()
        if self.has_ttl:
            self._expire_and_arm()
        self.counters.publish += 1
        return True

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
                 self.backing.ready_bytes + extra_bytes > self.max_length_bytes))

    def _drop_head(self) -> None:
        """x-overflow drop-head: trim the oldest (highest-priority) ready messages until
        within x-max-length / x-max-length-bytes, dead-lettering them (reason maxlen)."""
        while self.ready and self._over_limit():
            dropped = self.backing.pop()
            self.vhost.dead_letter(self, dropped.message, deadletter.MAXLEN)
            self.backing.forget(dropped)

    # -- settlement ------------------------------------------------------------------

    def ack(self, entries: list[Entry]) -> None:
        self.unacked -= len(entries)
        self.counters.ack += len(entries)
        self.backing.forget_all(entries)

    def reject(self, entries: list[Entry], requeue: bool) -> None:
        self.unacked -= len(entries)
        if self.deleted:
            return
        if not requeue:
            for entry in entries:
                self._discard(entry, deadletter.REJECTED)
        elif self.retry_delay is not None:
            for entry in entries:
                self._retry_later(entry)
        else:
            self._return(entries)

    def requeue(self, entries: list[Entry]) -> None:
        self.unacked -= len(entries)
        if not self.deleted:
            self._return(entries)

    def _discard(self, entry: Entry, reason: str) -> None:
        """Gone without requeue: dead-letter it if the queue says so."""
        self.vhost.dead_letter(self, entry.original or entry.message, reason)
        self.backing.forget(entry)

    def _retry_later(self, entry: Entry) -> None:
        """A nack with requeue on a queue with x-retry-delay: the message comes back after
        an exponential backoff (x-retry-delay * x-retry-multiplier ** (attempt - 1), capped
        by x-retry-max-delay), so applications never republish to retry."""
        entry.delivery_count += 1
        if self.delivery_limit is not None and entry.delivery_count > self.delivery_limit:
            self._discard(entry, deadletter.DELIVERY_LIMIT)
            return
        self.backing.save_count(entry)
        assert self.retry_delay is not None
        delay = self.retry_delay * self.retry_multiplier ** (entry.delivery_count - 1)
        if self.retry_max_delay is not None:
            delay = min(delay, self.retry_max_delay)
        self.vhost.timers.call_later(delay, lambda: self._retry_due(entry))

    def _retry_due(self, entry: Entry) -> None:
        if not self.deleted:
            self._return([entry], counted=True)

    def _return(self, entries: list[Entry], counted: bool = False,
                at_tail: bool = False) -> None:
        """Put entries back at their original positions (``at_tail``: after every ready
        message, in the order given), marked redelivered; past x-delivery-limit they are
        dead-lettered instead."""
        back = []
        for e in entries:
            e.redelivered = True
            if self.count_deliveries and not counted:
                e.delivery_count += 1
                if self.delivery_limit is not None and e.delivery_count > self.delivery_limit:
                    self._discard(e, deadletter.DELIVERY_LIMIT)
                    continue
                self.backing.save_count(e)
            back.append(e)
        if back:
            if at_tail:
                self.backing.append_returned(back)
            else:
                self.backing.requeue(back)
        if self.has_ttl:
            self._expire_and_arm()
        self.dispatch()
        if self.limited and self.overflow == "drop-head":
            self._drop_head()

    # -- messages out ----------------------------------------------------------------

    def get(self, no_ack: bool) -> Entry | None:
        self.touch()
        counters = self.counters
        if self.ready and self.has_ttl:  # (reads the head back if it was paged)
            # checked after: the head just read may be the first with a TTL
            self._expire_and_arm()
        if not self.ready:
            counters.get_empty += 1
            return None
        entry = self._prepare(self.backing.pop(), polled=True)
        if self.has_ttl:
            self._expire_and_arm()  # so get-ok's message_count leaves out an expired head
        if entry.redelivered:
            counters.redeliver += 1
        if no_ack:
            counters.get_no_ack += 1
            self.backing.forget(entry)
        else:
            counters.get += 1
            self.unacked += 1
            self.backing.mark_delivered(entry)
        return entry

    def _prepare(self, entry: Entry, polled: bool = False) -> Entry:
        """Stamp x-delivery-count on a redelivery from a queue that counts them (and, as
        RabbitMQ's quorum queues do, on every basic.get)."""
        if self.count_deliveries and (entry.delivery_count or
                                      (polled and self.counts_deliveries())):
            original = entry.original or entry.message
            props = original.fresh_properties()
            count = Long(entry.delivery_count)
            props.headers = {**(props.headers or {}), "x-delivery-count": count}
            entry.original = original
            entry.message = Message(original.exchange, original.routing_key, props.encode(),
                                    original.body)
        return entry

    def _deliver(self, consumer: Consumer, entry: Entry) -> None:
        """Hand one entry to a consumer: settle the queue's side (the log, the counters),
        then the channel frames it. dispatch's hot loop inlines this."""
        if consumer.no_ack:
            if entry.offset is not None:  # persisted: acked at once
                self.backing.forget(entry)
            self.counters.deliver_no_ack += 1
        else:
            if entry.offset is not None:  # persisted: marked delivered
                self.backing.mark_delivered(entry)
            self.counters.deliver += 1
            self.unacked += 1
        if entry.redelivered:
            self.counters.redeliver += 1
        consumer.channel.deliver(consumer, entry)

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
                    self._drain_fifo(consumer)
                    return
                while ready and consumer.can_take():
                    # has_ttl read each time: paging in may bring the first expiring message
                    if self.has_ttl and self._expire_head():
                        continue
                    entry = self.backing.pop()
                    self._deliver(consumer, self._prepare(entry) if counting else entry)
                return
            while ready and consumers:
                if self.has_ttl and self._expire_head():
                    continue
                chosen = self._next_consumer()
                if chosen is None:
                    return
                self._deliver(chosen, self._prepare(self.backing.pop()))
        finally:
            self._dispatching = False
            if self.waiting_publishers and len(self.ready) <= BACKLOG_LOW and (
                    self.backing.ready_bytes <= BACKLOG_LOW_BYTES):
                self.wake_publishers()

    def _drain_fifo(self, consumer: Consumer) -> None:
        """The hot loop (a backlog drained as the consumer's socket takes it) for a FIFO
        with no durable log, ``_deliver`` inlined: the window deque's truth test runs in C,
        and the ready list's Python-level __bool__ (which pages in) only once the window
        is empty and something is paged; after it said yes, the window has the head."""
        ready = self.ready
        assert isinstance(ready, FifoReady)
        window, paged, backing, counters = ready.window, ready.paged, self.backing, self.counters
        deliver = consumer.channel.deliver
        no_ack = consumer.no_ack
        while (window or (paged.count and ready)) and consumer.can_take():
            if self.has_ttl and self._expire_head():
                continue
            entry = window.popleft()
            backing.ready_bytes -= len(entry.message.body)
            if no_ack:
                if entry.offset is not None:  # persisted: acked at once
                    backing.forget(entry)
                counters.deliver_no_ack += 1
            else:
                if entry.offset is not None:  # persisted: marked delivered
                    backing.mark_delivered(entry)
                counters.deliver += 1
                self.unacked += 1
            if entry.redelivered:
                counters.redeliver += 1
            deliver(consumer, entry)

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
        count = self.backing.purge(acked_in_log=not self.deleted)
        if self.waiting_publishers:
            self.wake_publishers()
        return count

    def ready_messages(self) -> Iterator[tuple[Message, bool]]:
        """The ready messages in delivery order with their redelivered flags, left where
        they are and as they are (the management API's peek)."""
        return self.backing.messages()

    # -- expiry ----------------------------------------------------------------------

    def _expire_head(self) -> bool:
        """Dead-letter the head if it has expired; True if it did."""
        head = self.ready.peek()
        if head.expires_at is None or head.expires_at > self.vhost.clock.now():
            return False
        self.backing.pop()
        self.vhost.dead_letter(self, head.message, deadletter.EXPIRED)
        self.backing.forget(head)
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
        clock = self.vhost.clock
        due = self.ready.peek().expires_at if self.ready else None
        if budget and expired == budget and due is not None and due <= clock.now():
            due = clock.now() + EXPIRY_PAUSE
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

    # -- lifetime --------------------------------------------------------------------

    def open_log(self) -> int:
        qlog = self.backing.open_log()
        return len(qlog) if qlog is not None else 0

    def recover(self) -> int:
        n = self.backing.recover(self.max_priority)
        if n:
            self._expire_and_arm()  # reads the head: arms its expiry timer if it has one
        return n

    def delete(self) -> None:
        self.deleted = True
        self.backing.delete()
        if self.waiting_publishers:
            self.wake_publishers()
        for timer in (self._expiry_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._expiry_timer = self._idle_timer = None

