"""Where a classic queue's ready messages live: in memory, in its log, or paged out.

The queue (classic.py) decides what its messages mean (TTL, dead-lettering, limits,
consumers); this module decides where they are kept, as RabbitMQ splits
``rabbit_amqqueue_process`` from its backing queue and lavinmq its queue from its
``message_store``:

- the ready list (ready.py): a window of ``Entry`` objects per priority level, followed by a
  ``PagedIndex`` (paging.py) of messages whose bodies are only on disk;
- the queue's durable log (store/base.py ``QueueLog``), where persistent messages of a
  durable queue are appended, marked delivered, counted and acked;
- the scratch log a queue without a durable log pages to (transient, deleted with it);
- paging out past ``x-max-in-memory-length`` / ``-bytes`` and reading back in batches;
- recovery of the ready list from the log at start.

docs/storage.md ("Paging") has the design and the figures.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from leveret.broker.entry import Entry
from leveret.broker.message import Message
from leveret.broker.queues.paging import PagedIndex, marks_of, priority_of
from leveret.broker.queues.ready import FifoReady, PriorityReady
from leveret.store.base import CorruptRecord, LiveBatch, QueueLog, Store
from leveret.store.codec import pack_message, properties_of, unpack_many, unpack_message

if TYPE_CHECKING:
    from array import array

log = logging.getLogger("leveret.broker")

# Ready messages a queue keeps in memory by default, above which further ones wait on disk
# (Limits.queue_memory_messages / _bytes and the queue's arguments override these).
MEMORY_MESSAGES = 100_000
MEMORY_BYTES = 64 << 20
# Messages read back from the log at a time when the in-memory head runs dry.
PAGE_IN_MESSAGES = 1024
PAGE_IN_BYTES = 4 << 20


class Backing:
    """The ready messages of one classic queue and the logs they are kept in.

    ``ready`` and ``ready_bytes`` are public for the queue's hot paths (push and dispatch
    test and pop the window directly); everything that touches a log goes through here."""

    __slots__ = ("_room_bytes", "_room_messages", "_scratch", "log", "memory_bytes",
                 "memory_messages", "name", "on_expiring", "pageable", "ready", "ready_bytes",
                 "seq", "store", "vhost")

    def __init__(self, store: Store | None, vhost: str, name: str, max_priority: int,
                 pageable: bool, on_expiring: Callable[[], None]) -> None:
        self.store = store
        self.vhost = vhost
        self.name = name
        self.ready: FifoReady | PriorityReady = (
            PriorityReady(max_priority, self._page_in) if max_priority
            else FifoReady(self._page_in))
        self.ready_bytes = 0  # bodies of every ready message, in memory and paged out
        self.seq = 0  # the last queue-local sequence number given to an entry
        # The durable log (persistent messages of a durable queue), if any.
        self.log: QueueLog | None = None
        # Where messages of a queue without a durable log are paged to: opened on first
        # use, deleted with the queue.
        self._scratch: QueueLog | None = None
        self.pageable = pageable and store is not None
        self.memory_messages = MEMORY_MESSAGES
        self.memory_bytes = MEMORY_BYTES
        # Messages / bytes that certainly still fit in memory (see _must_page).
        self._room_messages = 0
        self._room_bytes = 0
        # Called when a message read back from the log has an expiry time: the queue must
        # check its head for expiry from then on.
        self.on_expiring = on_expiring

    def set_limits(self, memory_messages: int, memory_bytes: int) -> None:
        self.memory_messages = memory_messages
        self.memory_bytes = memory_bytes
        self.no_room()  # the limits may have changed

    def open_log(self) -> QueueLog | None:
        """Open the durable log (a durable queue with a store); returns it."""
        if self.store is not None and self.log is None:
            self.log = self.store.open_queue(self.vhost, self.name)
        return self.log

    # -- messages in -----------------------------------------------------------------

    def accept(self, entry: Entry, size: int) -> bool:
        """A new message: write it to the durable log if it is persistent, and page it
        out if the in-memory limits say so. True if it was paged out (the caller must
        not also hold it in memory); False: the caller places it in the window."""
        message = entry.message
        if self.log is not None and message.persistent:
            entry.offset = self.log.append(pack_message(
                message.exchange, message.routing_key, message.properties_raw,
                message.body, entry.expires_at), True)
        if not self.pageable:
            return False
        if self._room_messages > 0 and self._room_bytes > 0:
            # Certainly fits in memory: no should_page call (see _must_page).
            self._room_messages -= 1
            self._room_bytes -= size
            return False
        if not self._must_page(entry.priority, size):
            return False
        offset = entry.offset
        if offset is None:
            offset = self._paging_log().append(pack_message(
                message.exchange, message.routing_key, message.properties_raw,
                message.body, entry.expires_at), False)
        self.ready.page_out(entry.priority, offset, size)
        self.ready_bytes += size
        return True

    def _must_page(self, priority: int, size: int) -> bool:
        """Whether a new message of ``size`` bytes goes to the paged index (the ready
        list's ``should_page``). When it does not and nothing at all is paged, also grant
        the room left below both in-memory limits, which ``accept`` spends without asking
        again: while ``_room_messages`` and ``_room_bytes`` are both positive, the window
        is below both limits and nothing is paged, so ``should_page`` would say no.
        Whatever else can grow the window or page a message (requeue, recovery, a limit
        change) takes the room back with ``no_room``; taking messages out only makes the
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

    def no_room(self) -> None:
        """Make the next ``accept`` ask ``should_page`` (see ``_must_page``)."""
        self._room_messages = self._room_bytes = 0

    def _paging_log(self) -> QueueLog:
        if self.log is not None:
            return self.log
        if self._scratch is None:
            assert self.store is not None  # pageable implies a store
            self._scratch = self.store.open_queue(self.vhost, self.name, transient=True)
        return self._scratch

    def _page_in(self, index: PagedIndex, window: deque[Entry], priority: int) -> None:
        """Move the next batch of paged messages into the window: bodies are read from
        the log (nearby records with one pread), each gets its ``Entry`` and its place in
        requeue order (``seq``) now. A record that fails its checksum is logged and
        dropped (acked), as in recovery."""
        offsets, sizes, marks = index.take(PAGE_IN_MESSAGES, PAGE_IN_BYTES)
        qlog = self.paging_log
        assert qlog is not None  # something was paged out to it
        try:
            records: list[bytes | None] = list(qlog.read_many(offsets))
        except CorruptRecord:
            records = [self._read_or_drop(qlog, o) for o in offsets]
            kept = [i for i, r in enumerate(records) if r is not None]
            self.ready_bytes -= sum(sizes) - sum(sizes[i] for i in kept)
            offsets, sizes, marks = ([col[i] for i in kept] for col in (offsets, sizes, marks))
            records = [records[i] for i in kept]
        batch = unpack_many([r for r in records if r is not None])
        seq = self.seq
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
        self.seq = seq
        # paged sizes were body sizes, or record sizes for messages recovered at start
        self.ready_bytes += sum(map(len, batch.bodies)) - sum(sizes)
        if batch.expires_at.count(None) != len(offsets):
            self.on_expiring()

    def _read_or_drop(self, qlog: QueueLog, offset: int) -> bytes | None:
        try:
            return qlog.read(offset)
        except CorruptRecord as exc:
            log.warning("%s: message dropped", exc)
            qlog.ack(offset)
            return None

    # -- messages out and back -------------------------------------------------------

    def pop(self) -> Entry:
        entry = self.ready.popleft()
        self.ready_bytes -= len(entry.message.body)
        return entry

    def requeue(self, entries: list[Entry]) -> None:
        """Back into the window at their original positions."""
        self.ready_bytes += sum(len(e.message.body) for e in entries)
        self.ready.requeue(entries)
        self.no_room()

    def append_returned(self, entries: list[Entry]) -> None:
        """Back after every ready message, in the order given, each taking the next place
        in requeue order. Behind paged messages an entry is paged out too (the window only
        holds messages older than the paged ones), as a new record: paging reads a log in
        offset order."""
        ready = self.ready
        for entry in entries:
            self.seq += 1
            entry.seq = self.seq
            size = len(entry.message.body)
            self.ready_bytes += size
            if ready.paged_count:
                ready.page_out(entry.priority, self._rewrite(entry), size,
                               entry.delivery_count << 1 | 1)
            else:
                ready.append(entry)
        self.no_room()

    def _rewrite(self, entry: Entry) -> int:
        """The entry's message appended to the log again, marked as it was; the old record
        is acked. Returns the new offset."""
        message = entry.message
        durable = self.log is not None and message.persistent
        offset = self._paging_log().append(pack_message(
            message.exchange, message.routing_key, message.properties_raw, message.body,
            entry.expires_at), durable)
        self.forget(entry)
        if durable:
            entry.offset = offset
            self.mark_delivered(entry)
            if entry.delivery_count:
                self.save_count(entry)
        return offset

    def forget(self, entry: Entry) -> None:
        """The message left the queue for good: ack it in the log."""
        if entry.offset is not None:
            qlog = self.log if self.log is not None else self._scratch
            if qlog is not None:
                qlog.ack(entry.offset)
                entry.offset = None

    def forget_all(self, entries: list[Entry]) -> None:
        """``forget`` for each (a multiple ack): one call for the batch."""
        qlog = self.log if self.log is not None else self._scratch
        if qlog is None:
            return
        ack = qlog.ack
        for entry in entries:
            if entry.offset is not None:
                ack(entry.offset)
                entry.offset = None

    def mark_delivered(self, entry: Entry) -> None:
        """Delivered, awaiting an ack: recorded, so it comes back redelivered after a
        crash."""
        if self.log is not None and entry.offset is not None:
            self.log.mark_delivered(entry.offset)

    def save_count(self, entry: Entry) -> None:
        """Keep the entry's delivery count across a restart."""
        if entry.offset is not None and self.log is not None:
            self.log.set_delivery_count(entry.offset, entry.delivery_count)

    def purge(self, acked_in_log: bool = True) -> int:
        """Drop every ready message; with ``acked_in_log``, ack them in their log (a
        deleted queue's log goes whole instead). Returns how many."""
        count = len(self.ready)
        qlog = self.paging_log
        if qlog is not None and acked_in_log:
            for entry in self.ready:  # the in-memory ones
                self.forget(entry)
            runs = [run for _, index in self.ready.indexes() for run in index.runs()]
            if runs:
                qlog.ack_runs(runs)  # the paged ones: a few slices of the log's index
        self.ready.clear()
        self.ready_bytes = 0
        return count

    def delete(self) -> None:
        """The queue is gone: its messages and logs with it."""
        self.purge(acked_in_log=False)
        if self._scratch is not None:
            self._scratch.delete()
            self._scratch = None
        if self.log is not None:
            self.log = None
            if self.store is not None:
                self.store.delete_queue(self.vhost, self.name)

    # -- recovery and inspection -----------------------------------------------------

    def recover(self, max_priority: int) -> int:
        """Rebuild the ready list from the durable log (at start): the live messages in
        offset order, redelivered and delivery counts as recorded. No body is read: the
        messages go to the paged index, and the first batch is read when something looks
        at the head (a priority queue reads each message's properties once, for its
        priority). Returns how many."""
        qlog = self.log
        if qlog is None:
            return 0
        ready = self.ready
        before = ready.paged_bytes
        self.no_room()
        for batch in qlog.live_batches():
            marks = marks_of(batch.redelivered, batch.counts, batch.offsets)
            if isinstance(ready, FifoReady):
                ready.paged.extend(batch.offsets, batch.sizes, marks)
            else:
                self._recover_priorities(qlog, ready, batch, marks, max_priority)
        self.ready_bytes += ready.paged_bytes - before
        return len(ready)

    def _recover_priorities(self, qlog: QueueLog, ready: PriorityReady, batch: LiveBatch,
                            marks: array[int] | None, top: int) -> None:
        offsets, sizes = batch.offsets, batch.sizes
        for i in range(0, len(offsets), PAGE_IN_MESSAGES):
            part = offsets[i:i + PAGE_IN_MESSAGES]
            try:
                records: list[bytes | None] = list(qlog.read_many(part))
            except CorruptRecord:
                records = [self._read_or_drop(qlog, o) for o in part]
            for k, data in enumerate(records, i):
                if data is not None:
                    level = min(priority_of(properties_of(data)), top)
                    ready.page_out(level, offsets[k], sizes[k],
                                   marks[k] if marks is not None else 0)

    @property
    def paging_log(self) -> QueueLog | None:
        """The log paged messages are in (the durable log, or the scratch log), if any."""
        return self.log if self.log is not None else self._scratch

    @property
    def memory_used(self) -> int:
        """Bytes of ready message bodies held in memory (the paged ones are on disk)."""
        return self.ready_bytes - self.ready.paged_bytes

    def messages(self) -> Iterator[tuple[Message, bool]]:
        """The ready messages in delivery order with their redelivered flags, left where
        they are: per priority level (highest first), the ones held in memory, then those
        paged out (read from the log here, and left there). An unreadable record is
        skipped (the queue drops it when it reaches the head)."""
        ready = self.ready
        window = list(ready)
        indexes = dict(ready.indexes())
        qlog = self.paging_log
        for level in sorted(indexes, reverse=True):
            for entry in window:
                if entry.priority == level or len(indexes) == 1:
                    yield entry.message, entry.redelivered
            if qlog is None:
                continue
            for log_offset, _size, mark in indexes[level]:
                try:
                    exchange, routing_key, props, body, _ = unpack_message(
                        qlog.read(log_offset))
                except (CorruptRecord, ValueError):
                    continue
                yield Message(exchange, routing_key, props, body), bool(mark & 1)
