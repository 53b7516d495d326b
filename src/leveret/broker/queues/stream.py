"""Stream queues: a durable append-only log that consumers read without consuming.

RabbitMQ's stream queues (3.9+) over AMQP 0-9-1, on leveret's own queue log: every
message routed to a stream is appended at the next offset (0, 1, 2, ... per stream, never
reused, across restarts) and stays until retention removes it; acks remove nothing. Each
consumer has its own read position, chosen with the consumer argument ``x-stream-offset``
(``first``, ``last``, ``next``, an offset, a timestamp, an interval), and every delivery
carries its offset in the ``x-stream-offset`` header. The per-consumer prefetch is the
consumer's credit: it is required, and no-ack consumers are refused, as in RabbitMQ.

What is kept where:

- the queue's log (store/segments.py, or memory.py without a data directory) holds every
  retained entry as the bytes a consumer receives (properties already carry the
  ``x-stream-offset`` header), with its append time in the record's time slot;
- this module keeps the stream's *segments* (RabbitMQ's retention unit: whole segments of
  ``x-stream-max-segment-size-bytes`` are deleted, oldest first, never the newest) as a few
  numbers each, the newest entries as decoded messages (``TAIL_MESSAGES``), and one cursor
  per consumer. Nothing grows with the number of readers but their cursors.

Retention (``x-max-length-bytes``, ``x-max-age``, or the same in a policy) is evaluated when
a segment rolls, when the arguments change, and every ``RETENTION_INTERVAL`` seconds while
an age limit is set. Retained segments are acked in the log as one run, and the log deletes
its files once all they hold is gone.

Where leveret differs from RabbitMQ 3.10 (docs/compatibility.md): prefetch counts messages,
not chunks; filtering (``x-stream-filter``, RabbitMQ 3.13+) is exact, not a Bloom filter;
a decimal header, ``basic.recover`` and an offset string without digits are a 406 channel
error where RabbitMQ crashes the connection (541).
"""

from __future__ import annotations

import datetime
import logging
import struct
from collections import deque
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, ClassVar, Protocol, TypeGuard

from leveret.amqp.fields import FieldTable, Timestamp
from leveret.broker.arguments import as_text, erlang_term, parse_interval, wire_type
from leveret.broker.clock import Timer
from leveret.broker.entry import Entry
from leveret.broker.message import FLAG_HEADERS, Message
from leveret.broker.queues.base import Consumer, Queue, QueueHost
from leveret.broker.queues.stream_entries import (
    Amqp10Batch,
    Amqp10Entry,
    BatchPart,
    StreamItem,
    amqp10_bytes,
    stream_item,
)
from leveret.broker.stream_groups import ConsumerGroup
from leveret.broker.stream_tracking import StreamTracking
from leveret.errors import NotImplemented_, PreconditionFailed
from leveret.store.base import QueueLog
from leveret.store.codec import (
    AMQP10,
    AMQP10_BATCH,
    BATCH_PART,
    amqp10_message,
    batch_part_distance,
    is_amqp10,
    pack_amqp10,
    pack_amqp10_batch,
    pack_batch_part,
    pack_message,
    stamp_of,
    unpack_amqp10,
    unpack_many,
    unpack_message,
)

log = logging.getLogger("leveret.stream")

TYPE = "rabbit_stream_queue"
# RabbitMQ's own limits and defaults (rabbit.hrl, rabbit_stream_queue.erl).
MAX_SEGMENT_SIZE = 3_000_000_000
DEFAULT_SEGMENT_SIZE = 500_000_000
# The stream's own arguments: validated at declare, compared on redeclare.
STREAM_ARGUMENTS = ("x-max-length-bytes", "x-queue-type", "x-max-age",
                    "x-stream-max-segment-size-bytes", "x-initial-cluster-size",
                    "x-queue-leader-locator")
# Arguments of the other queue types, refused for a stream (406, RabbitMQ's text).
OTHER_TYPES_ARGUMENTS = (
    "x-expires", "x-message-ttl", "x-max-length", "x-max-priority", "x-dead-letter-exchange",
    "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-overflow",
    "x-single-active-consumer", "x-queue-mode", "x-queue-version", "x-delivery-limit",
    "x-quorum-initial-group-size", "x-max-in-memory-length", "x-max-in-memory-bytes",
    "x-queue-master-locator")
LEADER_LOCATORS = ("client-local", "balanced", "random", "least-leaders")
# Consumer arguments of other queue types, refused on a stream consumer.
OTHER_CONSUMER_ARGUMENTS = ("x-priority", "x-cancel-on-ha-failover")

TAIL_MESSAGES = 4096  # the newest entries kept decoded, for consumers that keep up
TAIL_BYTES = 16 << 20
READ_BATCH = 256  # entries read from the log at once for a consumer behind the tail
RETENTION_INTERVAL = 30.0  # seconds between age checks while x-max-age is set

_LONG = struct.Struct(">q")
_OFFSET_HEADER = b"\x0fx-stream-offsetl"  # shortstr key and the 'l' (int64) type tag
_FILTER_HEADER = "x-stream-filter-value"
# Property flag bits (amqp/spec.py Properties): where headers sit, and cluster-id.
_FLAG_CONTENT_TYPE = 0x8000
_FLAG_CONTENT_ENCODING = 0x4000
_FLAG_CLUSTER_ID = 0x0004


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class Cursor:
    """One consumer's place in the stream and what it asked to see."""

    __slots__ = ("filters", "match_unfiltered", "next")

    def __init__(self, start: int, filters: frozenset[str] | None,
                 match_unfiltered: bool) -> None:
        self.next = start  # the next offset to deliver (may lie beyond the end: wait for it)
        self.filters = filters
        self.match_unfiltered = match_unfiltered

    def wants(self, message: Message) -> bool:
        value = message.headers.get(_FILTER_HEADER) if message.flags & FLAG_HEADERS else None
        if value is None:
            return self.match_unfiltered
        text = value if isinstance(value, str) else as_text(value) \
            if isinstance(value, bytes) else str(value)
        assert self.filters is not None
        return text in self.filters


class StreamReader(Protocol):
    """A stream-protocol subscription (broker/stream_connection.py): told when more of
    the stream is durable, and when the stream is gone."""

    def wake(self) -> None: ...
    def stream_deleted(self) -> None: ...


class Chunk:
    """Entries read for a stream-protocol reader, framed as an osiris chunk holds them (the
    Deliver's data, streamproto/chunks.py): a message as its u32 size then its bytes, a
    sub-batch as the client sent it. ``first`` is the first entry's offset, ``records``
    how many offsets the entries cover, ``size`` their framed bytes. The reader's hot path:
    no object per entry, the parts are joined once."""

    __slots__ = ("entries", "first", "max_bytes", "parts", "records", "size", "timestamp")

    def __init__(self, first: int, max_bytes: int) -> None:
        self.first = first
        self.timestamp = 0.0
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.entries = 0
        self.records = 0
        self.size = 0

    def add(self, data: bytes, count: int) -> bool:
        """Add a message (``count`` 0) or a sub-batch of ``count`` records; False, and
        nothing added, when it would take the chunk past ``max_bytes`` (the first entry
        is always taken)."""
        n = len(data) if count else len(data) + 4
        if self.entries and self.size + n > self.max_bytes:
            return False
        if not count:
            self.parts.append(len(data).to_bytes(4, "big"))
        self.parts.append(data)
        self.size += n
        self.entries += 1
        self.records += count if count else 1
        return True


class StreamSegment:
    """A retention unit: entries ``first`` .. ``first + count - 1``, their bytes, and the
    append time of the newest (None until looked up, after a restart)."""

    __slots__ = ("bytes", "count", "first", "newest")

    def __init__(self, first: int) -> None:
        self.first = first
        self.count = 0
        self.bytes = 0
        self.newest: float | None = None


class StreamQueue(Queue):
    TYPE_NAME = "stream"
    EQUIVALENT_ARGUMENTS: ClassVar[tuple[str, ...] | None] = STREAM_ARGUMENTS

    def __init__(self, host: QueueHost, name: str, durable: bool = True,
                 exclusive_owner: object = None, auto_delete: bool = False,
                 arguments: FieldTable | None = None) -> None:
        super().__init__(host, name, durable, exclusive_owner, auto_delete, arguments)
        self.log: QueueLog | None = None
        self.first = 0  # the oldest retained offset
        self.segments: list[StreamSegment] = [StreamSegment(0)]
        self.tail: deque[StreamItem] = deque()  # entries tail_first .. next - 1, decoded
        self.tail_stamps: deque[float] = deque()  # their append times
        self.tail_first = 0
        self.tail_bytes = 0
        self.last_chunk = 0  # first offset of the newest chunk (x-stream-offset "last")
        self._chunk_seq = 0  # the store's seq after the newest append (see push)
        self.cursors: dict[Consumer, Cursor] = {}
        # Readers get only what is durable, so an offset a reader saw can never be lost to
        # a crash and reused: entries below ``committed`` are on disk; ``_commits`` holds
        # (store seq, offset + 1) of the newer ones, released by ``synced``.
        self.committed = 0
        self._commits: deque[tuple[int, int]] = deque()
        self._dispatching = False
        self._retention_timer: Timer | None = None
        # Stream-protocol subscriptions, and the producers' and consumers' tracking.
        self.readers: set[StreamReader] = set()
        self.tracking = StreamTracking(self.vhost.name, name)
        # Single active consumer groups by name (broker/stream_groups.py).
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        # The sub-batch an AMQP 0-9-1 reader read last, its records decoded once: such a
        # reader goes through a batch of up to 65,535 records over many reads.
        self._batch: Amqp10Batch | None = None
        self._batch_offset = -1
        self.configure(self.arguments)

    # -- declaration -----------------------------------------------------------------

    @classmethod
    def check_foreign_arguments(cls, arguments: FieldTable, where: str) -> None:
        for key in OTHER_TYPES_ARGUMENTS:
            if key in arguments:
                raise PreconditionFailed(f"invalid arg '{key}' for {where} of queue type {TYPE}")

    @classmethod
    def check_declare(cls, arguments: FieldTable, durable: bool, exclusive: bool,
                      auto_delete: bool, server_named: bool, where: str) -> None:
        cls.check_foreign_arguments(arguments, where)
        check_stream_arguments(arguments, where)
        if server_named:
            raise PreconditionFailed(f"Cannot declare a server-named queue for type {TYPE}")
        for bad, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                          (not durable, "non-durable")):
            if bad:
                raise PreconditionFailed(f"invalid property '{prop}' for {where}")
        size = arguments.get("x-stream-max-segment-size-bytes")
        if _is_int(size) and size > MAX_SEGMENT_SIZE:
            raise PreconditionFailed("Exceeded max value for x-stream-max-segment-size-bytes")

    def check_delete(self, if_unused: bool, if_empty: bool) -> None:
        return None  # if-unused and if-empty are ignored, as RabbitMQ does

    def configure(self, arguments: FieldTable) -> None:
        self.effective_arguments = arguments
        self.queue_type = self.TYPE_NAME
        max_bytes = arguments.get("x-max-length-bytes")
        self.max_length_bytes: int | None = max_bytes if _is_int(max_bytes) else None
        age = arguments.get("x-max-age")
        self.max_age: float | None = parse_interval(as_text(age) or "") \
            if isinstance(age, str | bytes) else None
        size = arguments.get("x-stream-max-segment-size-bytes")
        # (0 would roll before every entry: RabbitMQ 3.10 then stops confirming; one entry
        # per segment is the nearest sane reading)
        self.segment_size: int = size if _is_int(size) and size > 0 else DEFAULT_SEGMENT_SIZE
        if self.max_age is not None and self._retention_timer is None and not self.deleted:
            self._retention_timer = self.vhost.timers.call_later(RETENTION_INTERVAL,
                                                                 self._on_retention_timer)
        if self.log is not None:
            self.apply_retention()

    # -- counts ------------------------------------------------------------------------

    @property
    def next_offset(self) -> int:
        return self.log.next_offset if self.log is not None else 0

    @property
    def message_count(self) -> int:
        """Entries retained (first to last): reads and acks never lower it."""
        return self.next_offset - self.first

    @property
    def ready_bytes(self) -> int:
        return sum(s.bytes for s in self.segments)

    @property
    def memory_used(self) -> int:
        return self.tail_bytes

    @property
    def messages_in_memory(self) -> int:
        return len(self.tail)

    def declare_ok_counts(self) -> tuple[int, int]:
        return self.message_count, 0  # RabbitMQ's stream stat: consumers always 0

    def delete_ok_count(self) -> int:
        return 0

    def congested(self) -> bool:
        return False  # readers go at their own pace; a stream never pauses a publisher

    def behind(self) -> bool:
        return False  # its message count is what it retains, not a backlog

    @property
    def has_exclusive_consumer(self) -> bool:
        return False

    def refuses_consumer(self, exclusive: bool) -> bool:
        return False  # basic.consume exclusive=true is accepted and not enforced

    # -- the log -----------------------------------------------------------------------

    def open_log(self) -> int:
        store = self.vhost.store
        if store is None or self.log is not None:
            return self.message_count
        self.log = store.open_queue(self.vhost.name, self.name)
        return len(self.log)

    def _log(self) -> QueueLog:
        if self.log is None:  # a broker without a store: the stream lives in memory
            from leveret.store.memory import MemoryStore
            self.log = MemoryStore().open_queue(self.vhost.name, self.name)
        return self.log

    def recover(self) -> int:
        """Rebuild the segments from the entries still in the log (greedily, as they were
        cut while running: the first retained entry always starts a segment)."""
        log = self._log()
        segments: list[StreamSegment] = []
        first: int | None = None
        limit = self.segment_size
        seg: StreamSegment | None = None
        for batch in log.live_batches():
            for offset, size in zip(batch.offsets, batch.sizes, strict=True):
                if first is None:
                    first = offset
                if seg is None or (seg.count and seg.bytes + size > limit):
                    seg = StreamSegment(offset)
                    segments.append(seg)
                seg.count += 1
                seg.bytes += size
        nxt = log.next_offset
        self.first = nxt if first is None else first
        self.segments = segments or [StreamSegment(nxt)]
        self.tail.clear()
        self.tail_stamps.clear()
        self.tail_first = nxt
        self.tail_bytes = 0
        self.last_chunk = max(nxt - 1, self.first)
        self.committed = nxt
        self._commits.clear()
        self.apply_retention()
        self._recover_tracking()
        return self.message_count

    def _recover_tracking(self) -> None:
        """The snapshot, then the producers of the entries appended after it."""
        tracking = self.tracking
        tracking.load(self.vhost.definitions)
        start = max(tracking.covered, self.first)
        log = self.log
        if log is None or start >= self.next_offset:
            return
        for batch in log.live_batches(start):
            offsets = list(batch.offsets)
            for i in range(0, len(offsets), READ_BATCH):
                for record in log.read_many(offsets[i:i + READ_BATCH]):
                    if record and record[0] in (AMQP10, AMQP10_BATCH):
                        _stamp, producer, publishing_id, _data = unpack_amqp10(record)
                        if producer:
                            tracking.producers[producer] = publishing_id

    def delete(self) -> None:
        self.deleted = True
        if self._retention_timer is not None:
            self._retention_timer.cancel()
            self._retention_timer = None
        self.cursors.clear()
        self.tail.clear()
        self.tail_stamps.clear()
        self._batch = None
        self.tracking.forget(self.vhost.definitions)
        for reader in list(self.readers):
            reader.stream_deleted()
        self.readers.clear()
        if self.log is not None:
            store = self.vhost.store
            if store is not None:
                store.delete_queue(self.vhost.name, self.name)
            else:
                self.log.delete()

    # -- appending -------------------------------------------------------------------

    def check_message(self, message: Message) -> None:
        """A publish routed here: a decimal header is refused with a clear 406 (RabbitMQ
        3.10's conversion to AMQP 1.0 crashes on it and closes the connection, 541)."""
        for key, value in message.headers.items():
            if isinstance(value, Decimal):
                raise PreconditionFailed(f"stream queues cannot store decimal header values "
                                         f"(header '{key}')")

    def push(self, message: Message) -> bool:
        offset = self._log().next_offset
        stored = _as_stored(message, offset)
        now = self.vhost.clock.now()
        self._append([(pack_message(stored.exchange, stored.routing_key,
                                    stored.properties_raw, stored.body, now), stored)], now)
        return True

    def push_amqp10(self, data: bytes, producer: str = "", publishing_id: int = 0) -> int:
        """Append an AMQP 1.0 message published over the stream protocol (by ``producer``
        with ``publishing_id``, when named); returns its offset."""
        now = self.vhost.clock.now()
        offset = self._append([(pack_amqp10(data, now, producer, publishing_id),
                                Amqp10Entry(data, producer, publishing_id))], now)
        if producer and self.tracking.published(producer, publishing_id):
            self.save_tracking()
        return offset

    def push_amqp10_batch(self, entry: bytes, producer: str = "", publishing_id: int = 0
                          ) -> int:
        """Append a sub-entry batch as the client sent it: one offset per record (the batch
        at the first, a small ``BatchPart`` record at each other, appended in one call:
        a batch may hold 65,535 records), all in one segment; returns the first."""
        now = self.vhost.clock.now()
        batch = Amqp10Batch(entry, producer, publishing_id)
        parts = [pack_batch_part(now, i)[0] for i in range(1, batch.records)]
        offset = self._append([(pack_amqp10_batch(entry, now, producer, publishing_id),
                                batch)], now, parts)
        if producer and self.tracking.published(producer, publishing_id):
            self.save_tracking()
        return offset

    def save_tracking(self) -> None:
        self.tracking.save(self.vhost.definitions, self.next_offset)

    def store_offset(self, reference: str, offset: int) -> None:
        """A consumer's StoreOffset: kept, and durable with the next group commit."""
        self.tracking.offsets[reference] = offset
        self.save_tracking()

    def _append(self, records: list[tuple[list[bytes], StreamItem]], now: float,
                parts: list[bytes] | None = None) -> int:
        """Append entries written together (one, or a sub-batch: its first record, then
        ``parts``, the records of its further offsets); returns the first one's offset."""
        log = self._log()
        offset = log.next_offset
        size = 0
        for data, _item in records:
            for part in data:
                size += len(part)
        count = len(records)
        if parts:
            count += len(parts)
            for part in parts:
                size += len(part)
        seg = self.segments[-1]
        rolled = bool(seg.count) and seg.bytes + size > self.segment_size
        if rolled:
            seg = StreamSegment(offset)
            self.segments.append(seg)
            log.new_segment()
        for data, item in records:
            log.append(data)
            self._remember(item, now)
        if parts:
            log.append_many(parts)
            self._remember_parts(len(parts), now)
        seg.count += count
        seg.bytes += size
        seg.newest = now
        # A chunk is what is written together (osiris writes what its writer received at
        # once): here the entries one group commit covers. An append after the store
        # committed the previous chunk starts the next one.
        store = self.vhost.store
        if store is None or store.durable_seq >= self._chunk_seq:
            self.last_chunk = offset
        self._chunk_seq = store.seq if store is not None else 0
        self.counters.publish += count
        if rolled:
            self.apply_retention()
        end = offset + count
        if store is None or store.durable_seq >= store.seq:
            self.committed = end
            if self.cursors or self.readers:
                self.dispatch()
        else:
            self._commits.append((store.seq, end))
            self.vhost.awaiting_commit.add(self)
        return offset

    def synced(self) -> None:
        store = self.vhost.store
        if store is None or self.deleted:
            return
        durable, commits = store.durable_seq, self._commits
        while commits and commits[0][0] <= durable:
            self.committed = commits.popleft()[1]
        if commits:
            self.vhost.awaiting_commit.add(self)
        if self.cursors or self.readers:
            self.dispatch()

    def _remember_parts(self, count: int, now: float) -> None:
        """``_remember`` of a batch's ``count`` further offsets, just appended after its
        first: only the newest ``TAIL_MESSAGES`` make objects (a batch may hold 65,535)."""
        keep = min(count, TAIL_MESSAGES)
        if keep < count:  # everything before the kept ones falls out of the tail
            self.tail.clear()
            self.tail_stamps.clear()
            self.tail_bytes = 0
            self.tail_first = self._log().next_offset - keep
        for index in range(count - keep + 1, count + 1):
            self._remember(BatchPart(index), now)

    def _remember(self, item: StreamItem, now: float) -> None:
        tail = self.tail
        tail.append(item)
        self.tail_stamps.append(now)
        self.tail_bytes += len(item.body)
        while len(tail) > TAIL_MESSAGES or (self.tail_bytes > TAIL_BYTES and len(tail) > 1):
            self.tail_bytes -= len(tail.popleft().body)
            self.tail_stamps.popleft()
            self.tail_first += 1

    # -- retention -------------------------------------------------------------------

    def apply_retention(self) -> int:
        """Delete whole segments, oldest first and never the newest, beyond
        x-max-length-bytes or older than x-max-age. Returns how many entries went."""
        segments = self.segments
        drop = 0
        if self.max_length_bytes is not None:
            total = segments[-1].bytes
            for i in range(len(segments) - 2, -1, -1):
                total += segments[i].bytes
                if total > self.max_length_bytes:
                    drop = i + 1
                    break
        if self.max_age is not None:
            cutoff = self.vhost.clock.now() - self.max_age
            for i in range(drop, len(segments) - 1):
                if self._newest(segments[i]) >= cutoff:
                    break
                drop = i + 1
        if not drop:
            return 0
        gone = segments[:drop]
        del segments[:drop]
        first, end = gone[0].first, segments[0].first
        if self.log is not None:
            self.log.ack_runs([(first, end - first)])
        self.first = end
        if self._batch_offset < end:
            self._batch, self._batch_offset = None, -1
        while self.tail and self.tail_first < end:
            self.tail_bytes -= len(self.tail.popleft().body)
            self.tail_stamps.popleft()
            self.tail_first += 1
        self.tail_first = max(self.tail_first, end)
        if self.tracking.producers:
            self.save_tracking()  # the deleted records' producers live on in the snapshot
        return end - first

    def _newest(self, seg: StreamSegment) -> float:
        if seg.newest is None:
            stamps = self._stamps(seg.first + seg.count - 1)
            seg.newest = stamps if stamps is not None else self.vhost.clock.now()
        return seg.newest

    def _on_retention_timer(self) -> None:
        self._retention_timer = None
        if self.deleted or self.max_age is None:
            return
        self.apply_retention()
        self._retention_timer = self.vhost.timers.call_later(RETENTION_INTERVAL,
                                                             self._on_retention_timer)

    # -- reading ---------------------------------------------------------------------

    def _stamps(self, offset: int) -> float | None:
        """When the entry at ``offset`` was appended (None if it is gone)."""
        if self.log is None:
            return None
        try:
            return stamp_of(self.log.read(offset))
        except KeyError:
            return None

    def _first_at(self, when: float) -> int:
        """The first offset appended at ``when`` or later (the end if none): a binary
        search over the log, whose append times never decrease."""
        lo, hi = self.first, self.next_offset
        while lo < hi:
            mid = (lo + hi) // 2
            stamp = self._stamps(mid)
            if stamp is None or stamp < when:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _read(self, start: int, count: int, end: int | None = None) -> list[StreamItem]:
        """Entries ``start`` .. up to ``start + count - 1`` (fewer at the end)."""
        end = min(start + count, self.next_offset if end is None else end)
        if start >= end:
            return []
        if start >= self.tail_first:
            i = start - self.tail_first
            return [self.tail[k] for k in range(i, i + end - start)]
        stop = min(end, self.tail_first)
        assert self.log is not None
        records = self.log.read_many(range(start, stop))
        if not any(is_amqp10(r) for r in records):
            return _messages(records)
        items: list[StreamItem] = []
        for record in records:  # mixed: each run of 0-9-1 records decoded at once
            if is_amqp10(record):
                items.append(stream_item(record))
            else:
                items.extend(_messages([record]))
        return items

    def _read_messages(self, start: int, count: int, end: int | None = None
                       ) -> list[Message | None]:
        """``_read`` for AMQP 0-9-1 readers: every entry as a 0-9-1 message, a sub-batch's
        records one by one (None for one leveret cannot read: see Amqp10Batch)."""
        items = self._read(start, count, end)
        out: list[Message | None] = []
        for i, item in enumerate(items):
            if isinstance(item, Message):
                out.append(item)
            elif isinstance(item, Amqp10Entry):
                out.append(item.message(self.name, start + i))
            elif isinstance(item, Amqp10Batch):
                batch = self._decoded_batch(start + i, item)
                out.append(batch.message(self.name, start + i, 0) if batch is not None
                           else None)
            else:
                head = self._decoded_batch(start + i - item.index)
                out.append(head.message(self.name, start + i, item.index)
                           if head is not None else None)
        return out

    def _decoded_batch(self, offset: int, batch: Amqp10Batch | None = None
                       ) -> Amqp10Batch | None:
        """The sub-batch whose first record is at ``offset`` (``batch``, when the caller
        read it), the same object while readers stay in it: its records are decoded once,
        not on every read (a gzip batch of 65,535 records takes ~10 ms to decode)."""
        if self._batch is not None and self._batch_offset == offset:
            return self._batch
        if batch is None:
            head = next(iter(self._read(offset, 1)), None) if offset >= self.first else None
            if not isinstance(head, Amqp10Batch):
                return None
            batch = head
        self._batch = batch
        self._batch_offset = offset
        return batch

    def read_chunk(self, start: int, max_entries: int, max_bytes: int) -> Chunk | None:
        """Durable entries from ``start`` on for a stream-protocol reader, as AMQP 1.0:
        at most ``max_entries`` offsets, and past the first entry at most ``max_bytes``. A
        start inside a sub-batch gets the whole batch (as RabbitMQ sends the whole chunk).
        Records published over the stream protocol are cut out of the log as they are."""
        start = self._entry_start(max(start, self.first))
        end = min(start + max_entries, self.committed)
        if start >= end:
            return None
        chunk = Chunk(start, max_bytes)
        if start < self.tail_first:
            assert self.log is not None
            for record in self.log.read_many(range(start, min(end, self.tail_first))):
                kind = record[0]
                if kind == BATCH_PART:
                    continue  # (in the batch before it)
                if kind == AMQP10:
                    taken = chunk.add(amqp10_message(record), 0)
                elif kind == AMQP10_BATCH:
                    entry = amqp10_message(record)
                    taken = chunk.add(entry, entry[1] << 8 | entry[2])  # (its record count)
                else:  # published over AMQP 0-9-1: converted
                    ex, rk, props, body, _stamp = unpack_message(record)
                    taken = chunk.add(amqp10_bytes(Message(ex, rk, props, body)), 0)
                if not taken:
                    return self._stamped(chunk)
        if end > self.tail_first:
            begin = max(start, self.tail_first)
            for item in self._read(begin, end - begin):
                if isinstance(item, BatchPart):
                    continue
                if isinstance(item, Amqp10Batch):
                    taken = chunk.add(item.body, item.records)
                else:
                    taken = chunk.add(amqp10_bytes(item), 0)
                if not taken:
                    break
        return self._stamped(chunk) if chunk.entries else None

    def _stamped(self, chunk: Chunk) -> Chunk:
        chunk.timestamp = self._stamp_at(chunk.first)
        return chunk

    def _entry_start(self, offset: int) -> int:
        """Where the entry holding ``offset`` starts: a sub-batch's first offset when
        ``offset`` is one of its further records, else ``offset``."""
        while offset < self.committed:
            distance = self._part_distance(offset)
            if not distance:
                return offset
            if offset - distance >= self.first:
                return offset - distance
            offset += 1  # (its batch is gone: retention never splits one, but be safe)
        return offset

    def _part_distance(self, offset: int) -> int:
        """How far the entry at ``offset`` is from its sub-batch's first (0: not a
        further record of one)."""
        if offset >= self.tail_first:
            item = self.tail[offset - self.tail_first]
            return item.index if isinstance(item, BatchPart) else 0
        assert self.log is not None
        record = self.log.read(offset)
        return batch_part_distance(record) if record[0] == BATCH_PART else 0

    def _stamp_at(self, offset: int) -> float:
        if offset >= self.tail_first and offset - self.tail_first < len(self.tail_stamps):
            return self.tail_stamps[offset - self.tail_first]
        stamp = self._stamps(offset)
        return stamp if stamp is not None else self.vhost.clock.now()

    def reader_start(self, kind: int, value: int) -> int:
        """Where a stream-protocol subscription starts: offset spec ``kind`` 1 first, 2
        last, 3 next, 4 offset ``value``, 5 timestamp ``value`` (ms since the epoch)."""
        nxt = self.next_offset
        if kind == 1:
            return self.first
        if kind == 2:
            return max(self.last_chunk, self.first) if nxt > self.first else nxt
        if kind == 3:
            return nxt
        if kind == 4:
            return max(value, self.first)
        if kind == 5:
            return self._first_at(value / 1000)
        raise ValueError(f"unknown offset specification {kind}")

    def ready_messages(self) -> Iterator[tuple[Message, bool]]:
        """The retained entries, oldest first (the management API's peek)."""
        offset = self.first
        while offset < self.next_offset:
            batch = self._read_messages(offset, READ_BATCH)
            if not batch:
                return
            for message in batch:
                if message is not None:
                    yield message, False
            offset += len(batch)

    # -- consumers -------------------------------------------------------------------

    def check_consume(self, arguments: FieldTable, no_ack: bool, exclusive: bool,
                      prefetch: int, global_prefetch: int) -> None:
        """RabbitMQ's rules for a stream consumer, in its order: the arguments, a
        per-consumer prefetch, manual acks, no global prefetch."""
        where = f"queue '{self.name}' in vhost '{self.vhost.name}'"
        for key in OTHER_CONSUMER_ARGUMENTS:
            if key in arguments:
                raise PreconditionFailed(f"invalid arg '{key}' for {where} of queue type {TYPE}")
        self.start_offset(arguments)  # (a bad x-stream-offset is refused here)
        _filters(arguments, where)
        if not prefetch:
            raise PreconditionFailed(f"consumer prefetch count is not set for '{where}'")
        if no_ack:
            raise NotImplemented_(f"automatic acknowledgement not supported by stream "
                                  f"queues {where}")
        if global_prefetch:
            raise NotImplemented_(f"{where} does not support global qos")

    def start_offset(self, arguments: FieldTable) -> int:
        """Where a consumer starts, from its ``x-stream-offset``."""
        value = arguments.get("x-stream-offset")
        nxt = self.next_offset
        if value is None:
            return nxt
        text = as_text(value) if isinstance(value, str | bytes) else None
        if text == "next":
            return nxt
        if text == "first":
            return self.first
        if text == "last":
            return max(self.last_chunk, self.first) if nxt > self.first else nxt
        if isinstance(value, datetime.datetime | Timestamp):
            seconds = value.timestamp() if isinstance(value, datetime.datetime) else float(value)
            return self._first_at(seconds)
        if text is not None:
            interval = parse_interval(text)
            if interval is None:
                raise PreconditionFailed(
                    f"invalid arg 'x-stream-offset' for queue '{self.name}' in vhost "
                    f"'{self.vhost.name}': {{invalid_stream_offset_arg,"
                    f"{{longstr,{erlang_term(value)}}}}}")
            return self._first_at(self.vhost.clock.now() - interval)
        if _is_int(value):
            return max(int(value), self.first)
        raise PreconditionFailed(
            f"invalid arg 'x-stream-offset' for queue '{self.name}' in vhost "
            f"'{self.vhost.name}': {{invalid_stream_offset_arg,{{{wire_type(value)},"
            f"{erlang_term(value)}}}}}")

    def add_consumer(self, consumer: Consumer) -> None:
        where = f"queue '{self.name}' in vhost '{self.vhost.name}'"
        filters, match_unfiltered = _filters(consumer.arguments, where)
        self.cursors[consumer] = Cursor(self.start_offset(consumer.arguments), filters,
                                        match_unfiltered)
        self.consumers.append(consumer)
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        self.cursors.pop(consumer, None)
        if consumer in self.consumers:
            self.consumers.remove(consumer)

    def dispatch(self) -> None:
        if self._dispatching or self.deleted:
            return
        self._dispatching = True
        try:
            for consumer, cursor in list(self.cursors.items()):
                self._feed(consumer, cursor)
            for reader in list(self.readers):
                reader.wake()
        finally:
            self._dispatching = False

    def _feed(self, consumer: Consumer, cursor: Cursor) -> None:
        """Deliver to one consumer from its cursor while its credit (prefetch) and its
        connection allow."""
        deliver = consumer.channel.deliver
        counters = self.counters
        while consumer.can_take():
            nxt = self.committed
            if cursor.next < self.first:
                cursor.next = self.first
            if cursor.next >= nxt:
                return
            room = consumer.prefetch - consumer.unacked
            batch = self._read_messages(cursor.next, max(1, min(room, READ_BATCH)), nxt)
            if not batch:
                return
            for message in batch:
                offset = cursor.next
                if message is None:
                    self._cancel_unreadable(consumer, offset)
                    return
                cursor.next = offset + 1
                if cursor.filters is not None and not cursor.wants(message):
                    continue
                self.unacked += 1
                counters.deliver += 1
                deliver(consumer, Entry(offset, message))
                if not consumer.can_take():
                    return

    def _cancel_unreadable(self, consumer: Consumer, offset: int) -> None:
        """An AMQP 0-9-1 consumer reached a sub-batch record leveret cannot read (snappy,
        lz4 or zstd): it is cancelled (basic.cancel) rather than skip it in silence.
        RabbitMQ 3.10 closes the consumer's connection (541) on any compressed batch."""
        log.warning("stream '%s' in vhost '%s': consumer '%s' cancelled at offset %d, a "
                    "compressed sub-entry batch AMQP 0-9-1 readers cannot read", self.name,
                    self.vhost.name, consumer.tag, offset)
        self.remove_consumer(consumer)
        consumer.channel.cancel_by_server(consumer)

    # -- settlement ------------------------------------------------------------------

    def ack(self, entries: list[Entry]) -> None:
        """An ack is credit for its consumer (the channel counts it); nothing is removed."""
        self.unacked -= len(entries)
        self.counters.ack += len(entries)

    def check_reject(self) -> None:
        raise NotImplemented_(f"basic.nack and basic.reject not supported by stream queues "
                              f"queue '{self.name}' in vhost '{self.vhost.name}'")

    def reject(self, entries: list[Entry], requeue: bool) -> None:
        self.check_reject()

    def requeue(self, entries: list[Entry]) -> None:
        """The channel closed or the consumer went: nothing comes back (re-subscribing
        reads the entries again)."""
        self.unacked -= len(entries)

    def check_recover(self) -> None:
        raise PreconditionFailed("basic.recover is not supported by stream queues")

    def requeue_recovered(self, entries: list[Entry]) -> None:
        self.check_recover()

    def get(self, no_ack: bool) -> Entry | None:
        raise NotImplemented_(f"basic.get not supported by stream queues queue "
                              f"'{self.name}' in vhost '{self.vhost.name}'")

    def purge(self) -> int:
        raise NotImplemented_(f"queue.purge not supported by stream queues queue "
                              f"'{self.name}' in vhost '{self.vhost.name}'")

    def touch(self) -> None:
        return None  # streams never expire



# -- helpers ------------------------------------------------------------------------


def _messages(records: list[bytes]) -> list[StreamItem]:
    out = unpack_many(records)
    return [Message(ex, rk, props, body) for ex, rk, props, body in
            zip(out.exchanges, out.routing_keys, out.properties, out.bodies, strict=True)]


def check_stream_arguments(arguments: FieldTable, where: str) -> None:
    """The checks of RabbitMQ's for a stream's own arguments that the generic validation
    (arguments.py) does not make."""
    age = arguments.get("x-max-age")
    if isinstance(age, str | bytes) and parse_interval(as_text(age) or "") is None:
        raise PreconditionFailed(f"invalid arg 'x-max-age' for {where}: invalid_max_age")
    for key in ("x-stream-max-segment-size-bytes", "x-initial-cluster-size"):
        value = arguments.get(key)
        if value is None:
            continue
        if not _is_int(value):
            problem: str | None = f'"expected integer, got {wire_type(value)}"'
        elif value < 0:
            problem = f"{{value_negative,{value}}}"
        elif key == "x-initial-cluster-size" and value == 0:
            problem = "{value_zero,0}"
        else:
            problem = None
        if problem is not None:
            raise PreconditionFailed(f"invalid arg '{key}' for {where}: {problem}")
    locator = arguments.get("x-queue-leader-locator")
    if locator is not None and (not isinstance(locator, str | bytes) or
                                as_text(locator) not in LEADER_LOCATORS):
        raise PreconditionFailed(f"invalid arg 'x-queue-leader-locator' for {where}: "
                                 "invalid_queue_locator_arg")


def _filters(arguments: FieldTable, where: str) -> tuple[frozenset[str] | None, bool]:
    """``x-stream-filter`` (a string or a list of them) and ``x-stream-match-unfiltered``."""
    raw = arguments.get("x-stream-filter")
    unfiltered = arguments.get("x-stream-match-unfiltered") is True
    if raw is None:
        return None, unfiltered
    values = raw if isinstance(raw, list) else [raw]
    texts = []
    for v in values:
        if not isinstance(v, str | bytes):
            raise PreconditionFailed(f"invalid arg 'x-stream-filter' for {where}: "
                                     f"{{unacceptable_type,{wire_type(v)}}}")
        texts.append(as_text(v) or "")
    return frozenset(texts), unfiltered


def _as_stored(message: Message, offset: int) -> Message:
    """The message as a stream keeps and delivers it: what RabbitMQ 3.10 gives back after
    its round trip through AMQP 1.0 (no cluster-id; no array, table or decimal header
    values; an unsigned 64-bit ``L`` header read back as signed ``l``; every other value
    byte for byte), plus the ``x-stream-offset`` header. Done on the raw property list, so
    no value changes its wire type on the way."""
    raw = message.properties_raw
    flags = message.flags
    pos = 2
    for bit in (_FLAG_CONTENT_TYPE, _FLAG_CONTENT_ENCODING):
        if flags & bit:
            pos += 1 + raw[pos]
    entry = _OFFSET_HEADER + _LONG.pack(offset)
    if flags & FLAG_HEADERS:
        size = int.from_bytes(raw[pos:pos + 4], "big")
        kept = _kept_headers(raw, pos + 4, pos + 4 + size)
        after = pos + 4 + size
    else:
        kept, after = b"", pos
    body = kept + entry
    props = bytearray((flags | FLAG_HEADERS).to_bytes(2, "big"))
    props += raw[2:pos]
    props += len(body).to_bytes(4, "big")
    props += body
    rest = raw[after:]
    if flags & _FLAG_CLUSTER_ID:  # the last property: cut it off
        props[1] &= ~_FLAG_CLUSTER_ID & 0xFF
        rest = rest[:len(rest) - 1 - _cluster_id_length(raw, flags, after)]
    props += rest
    return Message(message.exchange, message.routing_key, bytes(props), message.body)


# Bytes after the type tag of each fixed-size field value; S x A F carry a u32 length.
_FIXED = {ord(t): n for t, n in (("t", 1), ("b", 1), ("B", 1), ("s", 2), ("u", 2), ("I", 4),
                                 ("i", 4), ("f", 4), ("l", 8), ("L", 8), ("d", 8), ("T", 8),
                                 ("D", 5), ("V", 0))}
_DROPPED = {ord("A"), ord("F"), ord("D")}


def _kept_headers(raw: bytes, pos: int, end: int) -> bytes:
    """The header table's entries a stream keeps, as raw bytes."""
    out = bytearray()
    while pos < end:
        start = pos
        key = raw[pos + 1:pos + 1 + raw[pos]]
        pos += 1 + raw[pos]
        tag = raw[pos]
        fixed = _FIXED.get(tag)
        pos += 1 + (fixed if fixed is not None else 4 + int.from_bytes(raw[pos + 1:pos + 5], "big"))
        if tag in _DROPPED or key == b"x-stream-offset":
            continue
        if tag == 0x4C:  # L: RabbitMQ hands it back as l, the same bits read as signed
            out += raw[start:start + 1 + len(key)]
            out += b"l"
            out += raw[start + 2 + len(key):pos]
        else:
            out += raw[start:pos]
    return bytes(out)


def _cluster_id_length(raw: bytes, flags: int, pos: int) -> int:
    """The length of the cluster-id shortstr, walking the properties after the headers."""
    for bit, size in ((0x1000, 1), (0x0800, 1), (0x0400, -1), (0x0200, -1), (0x0100, -1),
                      (0x0080, -1), (0x0040, 8), (0x0020, -1), (0x0010, -1), (0x0008, -1)):
        if flags & bit:
            pos += size if size > 0 else 1 + raw[pos]
    return raw[pos]
