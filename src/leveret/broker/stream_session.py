"""What an open stream-protocol connection does: its publishers, subscriptions, confirms
and the commands that manage streams (see stream_connection.py for the whole picture)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol

from leveret.amqp.fields import FieldTable, Long
from leveret.broker import super_streams
from leveret.broker.access import CONFIGURE, READ, WRITE, Grants
from leveret.broker.queues.stream import StreamQueue
from leveret.broker.stream_groups import ConsumerGroup
from leveret.broker.stream_stats import StreamTotals
from leveret.broker.stream_tracking import MAX_REFERENCE
from leveret.errors import AMQPError, FrameError
from leveret.streamproto import chunks
from leveret.streamproto import frames as f

if TYPE_CHECKING:
    from leveret.broker.clock import Timer
    from leveret.broker.node import Node
    from leveret.broker.vhost import VirtualHost

log = logging.getLogger("leveret.stream")

CHUNK_ENTRIES = 512  # the most entries one Deliver carries
# Offsets a connection appends in one turn of the event loop before it lets the others
# run (a sub-entry batch of 65,535 records is a few hundred bytes on the wire).
TURN_OFFSETS = 16_384
REQUEST_TIMEOUT = 60.0  # a ConsumerUpdate unanswered this long closes the connection
# Create's arguments and the queue arguments they stand for (integers, or text).
CREATE_ARGUMENTS = {"max-length-bytes": ("x-max-length-bytes", int),
                    "max-age": ("x-max-age", str),
                    "stream-max-segment-size-bytes": ("x-stream-max-segment-size-bytes", int),
                    "initial-cluster-size": ("x-initial-cluster-size", int),
                    "queue-leader-locator": ("x-queue-leader-locator", str)}
# The commands and versions this server speaks (ExchangeCommandVersions), in key order.
COMMAND_VERSIONS = ((f.DECLARE_PUBLISHER, 1, 1), (f.PUBLISH, 1, 2),
                    (f.QUERY_PUBLISHER_SEQUENCE, 1, 1), (f.DELETE_PUBLISHER, 1, 1),
                    (f.SUBSCRIBE, 1, 1), (f.DELIVER, 1, 2), (f.CREDIT, 1, 1),
                    (f.STORE_OFFSET, 1, 1), (f.QUERY_OFFSET, 1, 1), (f.UNSUBSCRIBE, 1, 1),
                    (f.CREATE, 1, 1), (f.DELETE, 1, 1), (f.METADATA, 1, 1),
                    (f.METADATA_UPDATE, 1, 1), (f.PEER_PROPERTIES, 1, 1),
                    (f.SASL_HANDSHAKE, 1, 1), (f.SASL_AUTHENTICATE, 1, 1), (f.TUNE, 1, 1),
                    (f.OPEN, 1, 1), (f.CLOSE, 1, 1), (f.HEARTBEAT, 1, 1), (f.ROUTE, 1, 1),
                    (f.PARTITIONS, 1, 1), (f.CONSUMER_UPDATE, 1, 1),
                    (f.EXCHANGE_COMMAND_VERSIONS, 1, 1), (f.STREAM_STATS, 1, 1),
                    (f.CREATE_SUPER_STREAM, 1, 1), (f.DELETE_SUPER_STREAM, 1, 1))


class SessionHost(Protocol):
    """What a session needs of its connection (stream_connection.py's StreamConnection)."""

    node: Node
    vhost: VirtualHost | None
    advertised: tuple[str, int]
    frame_max: int
    totals: StreamTotals

    @property
    def writable(self) -> bool: ...
    @property
    def grants(self) -> Grants: ...
    def write(self, data: bytes) -> None: ...
    def write_parts(self, parts: list[bytes]) -> None: ...
    def allowed(self, action: str, stream: str) -> bool: ...
    def stream(self, name: str) -> StreamQueue | None: ...
    def close(self, code: int, reason: str, hang_up: bool = False) -> None: ...
    def update_reading(self) -> None: ...
    def next_correlation(self) -> int: ...


class StreamLink:
    """This connection's interest in one stream (its publishers and subscriptions there):
    the stream wakes it when more is durable and tells it when the stream is gone."""

    __slots__ = ("queue", "session")

    def __init__(self, session: StreamSession, queue: StreamQueue) -> None:
        self.session = session
        self.queue = queue

    def wake(self) -> None:
        self.session.deliver_stream(self.queue)

    def stream_deleted(self) -> None:
        self.session.stream_gone(self.queue)


class Publisher:
    __slots__ = ("confirmed", "errored", "id", "published", "queue", "reference")

    def __init__(self, publisher_id: int, queue: StreamQueue, reference: str) -> None:
        self.id = publisher_id
        self.queue = queue
        self.reference = reference
        # The management API's counts (RabbitMQ's messages_published/confirmed/errored).
        self.published = self.confirmed = self.errored = 0


class Subscription:
    __slots__ = ("consumed", "credit", "id", "next", "offset", "properties", "queue")
    delivering = True  # (a single active consumer's is False while it is not active)

    def __init__(self, subscription_id: int, queue: StreamQueue, start: int,
                 credit: int) -> None:
        self.id = subscription_id
        self.queue = queue
        self.next = start
        self.credit = credit
        # The management API's view (RabbitMQ's): entries sent, the first offset of the
        # last chunk sent (the start until then), Subscribe's properties.
        self.consumed = 0
        self.offset = start
        self.properties: dict[str, str] = {}


class GroupSubscription(Subscription):
    """A single active consumer's subscription (stream_groups.py): it reads only while its
    group has it active, from where the client's answer to the ConsumerUpdate says
    (``spec``, Subscribe's offset specification, when the answer names none)."""

    __slots__ = ("delivering", "group", "name", "session", "spec", "update")

    def __init__(self, session: StreamSession, subscription_id: int, queue: StreamQueue,
                 spec: tuple[int, int], credit: int, name: str, group: ConsumerGroup
                 ) -> None:
        super().__init__(subscription_id, queue, queue.next_offset, credit)
        self.session = session
        self.spec = spec
        self.name = name
        self.group = group
        self.delivering = False
        self.update = 0  # the correlation id of the newest ConsumerUpdate sent to it

    def consumer_update(self, active: bool) -> None:
        self.session.consumer_update(self, active)


class StreamSession:
    def __init__(self, conn: SessionHost) -> None:
        self.conn = conn
        self.publishers: dict[int, Publisher] = {}
        self.subscriptions: dict[int, Subscription] = {}
        self.links: dict[StreamQueue, StreamLink] = {}
        # Publishing ids waiting for their entries to be durable: (store seq, publisher
        # id, ids); and the ones to confirm after this batch of input.
        self.pending: deque[tuple[int, int, list[int]]] = deque()
        self.ready: dict[int, list[int]] = {}
        self.unconfirmed = 0
        self.deliver_v2 = False  # the client said it reads Deliver v2
        # ConsumerUpdate requests awaiting their answer: correlation id -> (subscription,
        # the state it was told, the timer that closes the connection if none comes).
        self.updates: dict[int, tuple[GroupSubscription, bool, Timer]] = {}
        self.released = False
        # Fairness: offsets appended this turn, and a Publish's entries left for the next.
        self.turn_offsets = 0
        self.deferred: tuple[int, list[chunks.Published]] | None = None

    # -- dispatch ------------------------------------------------------------------------

    def command(self, key: int, version: int, fields: f.Fields) -> None:
        handler = self.COMMANDS.get(key)
        if handler is None:
            raise FrameError(f"unknown command 0x{key:04x}")
        if key == f.PUBLISH:
            self.publish(fields, version)
        else:
            handler(self, fields)

    def after_input(self) -> None:
        """End of a batch of input: confirm what needs no commit, flush the rest later."""
        store = self.conn.node.store
        if self.pending and (store is None or store.durable_seq >= self.pending[-1][0]):
            self.store_synced()
        self._send_confirms()

    def store_synced(self) -> None:
        store = self.conn.node.store
        durable = store.durable_seq if store is not None else 1 << 62
        pending = self.pending
        while pending and pending[0][0] <= durable:
            _seq, publisher_id, ids = pending.popleft()
            self.ready.setdefault(publisher_id, []).extend(ids)
        self._send_confirms()

    def _send_confirms(self) -> None:
        if not self.ready:
            return
        conn = self.conn
        for publisher_id, ids in self.ready.items():
            self.unconfirmed -= len(ids)
            publisher = self.publishers.get(publisher_id)
            if publisher is not None:  # (a deleted publisher's are dropped)
                publisher.confirmed += len(ids)
                conn.totals.confirmed += len(ids)
                conn.write(f.command(f.PUBLISH_CONFIRM, 1, bytes((publisher_id,)) +
                                     f.array(f.u64(i) for i in ids)))
        self.ready.clear()
        conn.update_reading()

    # -- streams -------------------------------------------------------------------------

    def _link(self, queue: StreamQueue) -> None:
        if queue not in self.links:
            link = self.links[queue] = StreamLink(self, queue)
            queue.readers.add(link)

    def _unlink_if_unused(self, queue: StreamQueue) -> None:
        if any(p.queue is queue for p in self.publishers.values()) or any(
                s.queue is queue for s in self.subscriptions.values()):
            return
        link = self.links.pop(queue, None)
        if link is not None:
            queue.readers.discard(link)

    def stream_gone(self, queue: StreamQueue) -> None:
        """The stream was deleted: its publishers and subscriptions on this connection
        end, and the client hears of it (MetadataUpdate, stream not available)."""
        for pid in [p.id for p in self.publishers.values() if p.queue is queue]:
            del self.publishers[pid]
        for sid in [s.id for s in self.subscriptions.values() if s.queue is queue]:
            del self.subscriptions[sid]
        queue.consumer_groups.clear()  # (its groups go with it: no member is told)
        for correlation in [c for c, u in self.updates.items() if u[0].queue is queue]:
            self.updates.pop(correlation)[2].cancel()
        self.links.pop(queue, None)
        self.conn.write(f.command(f.METADATA_UPDATE, 1, f.u16(f.STREAM_NOT_AVAILABLE) +
                                  f.string(queue.name)))

    def create(self, fields: f.Fields) -> None:
        """Create: RabbitMQ's answers (checked on 3.10.8): a name that is empty or starts
        with ``amq.`` and an invalid argument are "precondition failed"; an existing
        stream is "already exists" when the arguments match, else "precondition failed"
        (so a client's exists-ok does not hide different settings)."""
        correlation = fields.u32()
        name = fields.text()
        arguments = fields.properties()
        conn = self.conn
        assert conn.vhost is not None
        table = _queue_arguments(arguments)
        existing = conn.vhost.queues.get(name)
        code = f.OK
        if not name or name.startswith("amq.") or table is None:
            code = f.PRECONDITION_FAILED
        elif not conn.allowed(CONFIGURE, name):
            code = f.ACCESS_REFUSED
        elif existing is not None and not isinstance(existing, StreamQueue):
            code = f.PRECONDITION_FAILED
        else:
            try:
                conn.vhost.declare_queue(name, False, True, False, False, table, None,
                                         conn.grants)
            except AMQPError as exc:
                log.info("stream %r not created: %s", name, exc)
                code = f.ACCESS_REFUSED if exc.reply_code == 403 else f.PRECONDITION_FAILED
            else:
                if existing is not None:
                    code = f.STREAM_ALREADY_EXISTS
            conn.node.store_changed()
        conn.write(f.response(f.CREATE, correlation, code))

    def delete(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        name = fields.text()
        conn = self.conn
        assert conn.vhost is not None
        code = f.OK
        if not conn.allowed(CONFIGURE, name):
            code = f.ACCESS_REFUSED
        elif conn.stream(name) is None:
            code = f.STREAM_DOES_NOT_EXIST
        else:
            conn.vhost.delete_queue(name, False, False, None, conn.grants)
            conn.node.store_changed()
        conn.write(f.response(f.DELETE, correlation, code))

    def metadata(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        names = fields.strings()
        fields.done()
        host, port = self.conn.advertised
        rows = []
        for name in names:
            found = self.conn.stream(name) is not None
            rows.append(f.string(name) + f.u16(f.OK if found else f.STREAM_DOES_NOT_EXIST)
                        + f.u16(0 if found else 0xFFFF) + f.array([]))
        broker = f.u16(0) + f.string(host) + f.u32(port)
        body = f.u32(correlation) + f.array([broker]) + f.array(rows)
        self.conn.write(f.command(f.METADATA | f.RESPONSE, 1, body))

    def stream_stats(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        queue = self._readable(fields.text())
        if isinstance(queue, int):
            self.conn.write(f.response(f.STREAM_STATS, correlation, queue, f.array([])))
            return
        empty = queue.committed <= queue.first
        first = -1 if empty else queue.first
        committed = -1 if empty else min(queue.last_chunk, queue.committed - 1)
        stats = {"first_chunk_id": first, "committed_chunk_id": committed}
        self.conn.write(f.response(f.STREAM_STATS, correlation, f.OK, f.array(
            f.string(k) + f.i64(v) for k, v in stats.items())))

    def exchange_command_versions(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        for _ in range(fields.count(6)):
            key, _low, high = fields.u16(), fields.u16(), fields.u16()
            if key == f.DELIVER and high >= 2:
                self.deliver_v2 = True
        self.conn.write(f.response(f.EXCHANGE_COMMAND_VERSIONS, correlation, f.OK, f.array(
            f.u16(k) + f.u16(low) + f.u16(high) for k, low, high in COMMAND_VERSIONS)))

    def route(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        routing_key = fields.text()
        name = fields.text()
        fields.done()
        assert self.conn.vhost is not None
        streams = super_streams.route(self.conn.vhost, name, routing_key)
        self._streams_response(f.ROUTE, correlation, streams)

    def partitions(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        name = fields.text()
        fields.done()
        assert self.conn.vhost is not None
        self._streams_response(f.PARTITIONS, correlation,
                               super_streams.partitions(self.conn.vhost, name))

    def _streams_response(self, key: int, correlation: int, streams: list[str] | None
                          ) -> None:
        """Route's and Partitions' answer (no permission is needed for either, as in
        RabbitMQ). RabbitMQ 3.10 sends it without the response bit in the key, which no
        client reads; 3.11+ and leveret set it."""
        code = f.STREAM_DOES_NOT_EXIST if streams is None else f.OK
        self.conn.write(f.response(key, correlation, code,
                                   f.array(f.string(s) for s in streams or ())))

    def create_super_stream(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        name = fields.text()
        streams = fields.strings()
        binding_keys = fields.strings()
        arguments = fields.properties()
        fields.done()
        conn = self.conn
        assert conn.vhost is not None
        code = super_streams.create(conn.vhost, conn.grants, name, streams, binding_keys,
                                    _queue_arguments(arguments))
        conn.node.store_changed()
        conn.write(f.response(f.CREATE_SUPER_STREAM, correlation, code))

    def delete_super_stream(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        name = fields.text()
        fields.done()
        conn = self.conn
        assert conn.vhost is not None
        code = super_streams.delete(conn.vhost, conn.grants, name)
        conn.node.store_changed()
        conn.write(f.response(f.DELETE_SUPER_STREAM, correlation, code))

    def _readable(self, name: str, action: str = READ) -> StreamQueue | int:
        """The stream, or the response code that says why not."""
        queue = self.conn.stream(name)
        if queue is None:
            return f.STREAM_DOES_NOT_EXIST
        if not self.conn.allowed(action, name):
            return f.ACCESS_REFUSED
        return queue

    # -- publishing ----------------------------------------------------------------------

    def declare_publisher(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        publisher_id = fields.u8()
        reference = fields.string() or ""
        name = fields.text()
        queue = self._readable(name, WRITE)
        if "disk" in self.conn.node.alarms:  # RabbitMQ's answer while the disk alarm is set
            code = f.PRECONDITION_FAILED
        elif isinstance(queue, int):
            code = queue
        elif publisher_id in self.publishers or len(reference) > MAX_REFERENCE or (
                reference and any(p.reference == reference and p.queue is queue
                                  for p in self.publishers.values())):
            code = f.PRECONDITION_FAILED
        else:
            self.publishers[publisher_id] = Publisher(publisher_id, queue, reference)
            self._link(queue)
            code = f.OK
        self.conn.write(f.response(f.DECLARE_PUBLISHER, correlation, code))

    def delete_publisher(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        publisher = self.publishers.pop(fields.u8(), None)
        if publisher is not None:
            if publisher.reference:
                publisher.queue.save_tracking()
            self._unlink_if_unused(publisher.queue)
        self.conn.write(f.response(f.DELETE_PUBLISHER, correlation,
                                   f.OK if publisher is not None
                                   else f.PUBLISHER_DOES_NOT_EXIST))

    def query_publisher_sequence(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        reference = fields.string() or ""
        queue = self._readable(fields.text())
        if isinstance(queue, int):
            self.conn.write(f.response(f.QUERY_PUBLISHER_SEQUENCE, correlation, queue,
                                       f.u64(0)))
            return
        sequence = queue.tracking.producers.get(reference, 0)
        self.conn.write(f.response(f.QUERY_PUBLISHER_SEQUENCE, correlation, f.OK,
                                   f.u64(sequence)))

    def publish(self, fields: f.Fields, version: int) -> None:
        publisher_id, items = chunks.parse_publish(fields, version)
        fields.done()
        self._publish(publisher_id, items)

    @property
    def busy(self) -> bool:
        """This turn's share of appends is used up (the connection yields to the others)."""
        return self.deferred is not None or self.turn_offsets >= TURN_OFFSETS

    def continue_publish(self) -> None:
        """Append the entries of a Publish left over from an earlier turn."""
        if self.deferred is not None:
            publisher_id, items = self.deferred
            self.deferred = None
            self._publish(publisher_id, items)

    def _publish(self, publisher_id: int, items: list[chunks.Published]) -> None:
        """Append ``items`` in order until this turn's share is used up; the rest wait in
        ``deferred`` (the connection reads nothing more meanwhile, so order holds)."""
        publisher = self.publishers.get(publisher_id)
        queue = publisher.queue if publisher is not None else None
        if publisher is None or queue is None or queue.deleted:
            code = f.PUBLISHER_DOES_NOT_EXIST if publisher is None else \
                f.STREAM_DOES_NOT_EXIST
            if publisher is not None:
                publisher.errored += len(items)
            self.conn.totals.publish_errors += len(items)
            for _ in items:
                self.conn.totals.answered(code)
            self.conn.write(f.command(f.PUBLISH_ERROR, 1, bytes((publisher_id,)) + f.array(
                f.u64(item.publishing_id) + f.u16(code) for item in items)))
            return
        reference = publisher.reference
        tracking = queue.tracking
        ids = []
        for i, item in enumerate(items):
            if self.turn_offsets >= TURN_OFFSETS:
                self.deferred = (publisher_id, items[i:])
                break
            ids.append(item.publishing_id)
            if reference and tracking.is_duplicate(reference, item.publishing_id):
                continue  # confirmed, not stored again (RabbitMQ's de-duplication)
            if item.records:  # a sub-batch: kept whole, one offset per record
                queue.push_amqp10_batch(item.data, reference, item.publishing_id)
                self.turn_offsets += item.records
            else:
                queue.push_amqp10(item.data, reference, item.publishing_id)
                self.turn_offsets += 1
        publisher.published += len(ids)
        self.conn.totals.published += len(ids)
        store = self.conn.node.store
        self.unconfirmed += len(ids)
        self.pending.append((store.seq if store is not None else 0, publisher_id, ids))

    # -- consuming -----------------------------------------------------------------------

    def subscribe(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        subscription_id = fields.u8()
        name = fields.text()
        kind = fields.u16()
        value = fields.u64() if kind == 4 else fields.i64() if kind == 5 else 0
        credit = fields.u16()
        properties = fields.properties() if fields.pos < fields.end else {}
        fields.done()
        queue = self._readable(name)
        single_active = properties.get("single-active-consumer") == "true"
        group_name = properties.get("name")
        if isinstance(queue, int):
            code = queue
        elif subscription_id in self.subscriptions:
            code = f.SUBSCRIPTION_ID_ALREADY_EXISTS
        elif kind not in (1, 2, 3, 4, 5) or (single_active and not group_name):
            code = f.PRECONDITION_FAILED  # (a single active consumer needs a name)
        else:
            code = f.OK
        self.conn.write(f.response(f.SUBSCRIBE, correlation, code))
        if code != f.OK or isinstance(queue, int):
            return
        self._link(queue)
        if single_active and group_name:
            self._join_group(queue, subscription_id, (kind, value), credit, group_name,
                             properties.get("super-stream"))
            self.subscriptions[subscription_id].properties = properties
            return
        sub = Subscription(subscription_id, queue, queue.reader_start(kind, value), credit)
        sub.properties = properties
        self.subscriptions[subscription_id] = sub
        self.deliver_stream(queue)

    # -- single active consumer --------------------------------------------------------

    def _join_group(self, queue: StreamQueue, subscription_id: int, spec: tuple[int, int],
                    credit: int, name: str, super_stream: str | None) -> None:
        group = queue.consumer_groups.get(name)
        if group is None:
            assert self.conn.vhost is not None
            index = -1 if super_stream is None else super_streams.partition_index(
                self.conn.vhost, super_stream, queue.name)
            group = queue.consumer_groups[name] = ConsumerGroup(index)
        sub = GroupSubscription(self, subscription_id, queue, spec, credit, name, group)
        self.subscriptions[subscription_id] = sub
        group.register(sub)

    def _leave_group(self, sub: Subscription) -> None:
        if isinstance(sub, GroupSubscription):
            group = sub.group
            group.unregister(sub)
            if group.empty and sub.queue.consumer_groups.get(sub.name) is group:
                del sub.queue.consumer_groups[sub.name]

    def consumer_update(self, sub: GroupSubscription, active: bool) -> None:
        """Tell the client its subscription ``sub`` is now (in)active; it stops reading at
        once, and starts again when the client answers an activation."""
        sub.delivering = False
        if self.released:
            return  # (the connection is closing: its members are leaving their groups)
        correlation = self.conn.next_correlation()
        sub.update = correlation
        timer = self.conn.node.timers.call_later(
            REQUEST_TIMEOUT, partial(self._update_unanswered, correlation))
        self.updates[correlation] = (sub, active, timer)
        self.conn.write(f.request(f.CONSUMER_UPDATE, correlation,
                                  bytes((sub.id, 1 if active else 0))))

    def consumer_update_answered(self, fields: f.Fields) -> None:
        """The client's answer to a ConsumerUpdate: where an activated subscription starts
        (offset type 0, or none, stands for Subscribe's), or that one has stepped down."""
        correlation = fields.u32()
        code = fields.u16()
        spec: tuple[int, int] | None = None
        if fields.end - fields.pos >= 2:
            kind = fields.u16()
            if kind in (4, 5):
                spec = (kind, fields.u64() if kind == 4 else fields.i64())
            elif kind in (1, 2, 3):
                spec = (kind, 0)  # (any offset sent with these means nothing)
            elif kind != 0:
                raise FrameError(f"unknown offset type {kind} in a ConsumerUpdate answer")
        pending = self.updates.pop(correlation, None)
        if pending is None:
            return  # not asked, or for a subscription that is gone: ignored, as RabbitMQ
        sub, active, timer = pending
        timer.cancel()
        if code != f.OK:
            log.info("ConsumerUpdate answered with code 0x%02x", code)
        if sub.update != correlation or self.subscriptions.get(sub.id) is not sub:
            return  # a newer request superseded this one
        if not active:
            sub.group.stepped_down(sub)
        elif sub.group.active is sub:
            kind, value = spec or sub.spec
            sub.next = sub.queue.reader_start(kind, value)
            sub.delivering = True
            self._deliver(sub)

    def _update_unanswered(self, correlation: int) -> None:
        if self.updates.pop(correlation, None) is not None:
            self.conn.close(f.INTERNAL_ERROR, "request timeout (ConsumerUpdate unanswered)",
                            hang_up=True)

    # -- consuming (continued) -----------------------------------------------------------

    def unsubscribe(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        sub = self.subscriptions.pop(fields.u8(), None)
        if sub is not None:
            self._unlink_if_unused(sub.queue)
        self.conn.write(f.response(f.UNSUBSCRIBE, correlation,
                                   f.OK if sub is not None
                                   else f.SUBSCRIPTION_ID_DOES_NOT_EXIST))
        if sub is not None:
            self._leave_group(sub)  # (the group's news after the answer, as in RabbitMQ)

    def credit(self, fields: f.Fields) -> None:
        subscription_id = fields.u8()
        credit = fields.u16()
        fields.done()
        sub = self.subscriptions.get(subscription_id)
        if sub is None:  # the only answer Credit ever gets
            self.conn.write(f.command(f.CREDIT | f.RESPONSE, 1, f.u16(
                f.SUBSCRIPTION_ID_DOES_NOT_EXIST) + bytes((subscription_id,))))
            return
        sub.credit = min(sub.credit + credit, 0xFFFF)
        if not sub.delivering:  # an inactive single active consumer: RabbitMQ keeps the
            # credit and answers "precondition failed"
            self.conn.write(f.command(f.CREDIT | f.RESPONSE, 1, f.u16(
                f.PRECONDITION_FAILED) + bytes((subscription_id,))))
            return
        self._deliver(sub)

    def store_offset(self, fields: f.Fields) -> None:
        reference = fields.string() or ""
        name = fields.text()
        offset = fields.u64()
        fields.done()
        queue = self._readable(name)
        if isinstance(queue, int) or not reference or len(reference) > MAX_REFERENCE:
            return  # StoreOffset has no answer: a refused one is dropped, as in RabbitMQ
        queue.store_offset(reference, offset)

    def query_offset(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        reference = fields.string() or ""
        queue = self._readable(fields.text())
        if isinstance(queue, int):
            code, offset = queue, 0
        else:
            stored = queue.tracking.offsets.get(reference)
            code, offset = (f.NO_OFFSET, 0) if stored is None else (f.OK, stored)
        self.conn.write(f.response(f.QUERY_OFFSET, correlation, code, f.u64(offset)))

    def deliver_stream(self, queue: StreamQueue) -> None:
        for sub in list(self.subscriptions.values()):
            if sub.queue is queue:
                self._deliver(sub)

    def deliver_all(self) -> None:
        for sub in list(self.subscriptions.values()):
            self._deliver(sub)

    def _deliver(self, sub: Subscription) -> None:
        """Chunks of durable entries while the subscription has credit and the
        connection's output has room."""
        conn = self.conn
        queue = sub.queue
        max_bytes = conn.frame_max - 64
        while sub.delivering and sub.credit > 0 and conn.writable and sub.next < queue.committed:
            chunk = queue.read_chunk(sub.next, CHUNK_ENTRIES, max_bytes)
            if chunk is None:
                return
            committed = min(queue.last_chunk, queue.committed - 1) if self.deliver_v2 \
                else None
            conn.write_parts(chunks.deliver(sub.id, chunk.first, int(chunk.timestamp * 1000),
                                            chunk.parts, chunk.entries, chunk.records,
                                            committed))
            sub.next = chunk.first + chunk.records
            sub.credit -= 1
            sub.offset = chunk.first
            sub.consumed += chunk.records
            conn.totals.delivered += chunk.records

    def release(self) -> None:
        """The connection ends: nothing it held stays attached to a stream."""
        self.released = True
        for queue in {p.queue for p in self.publishers.values() if p.reference}:
            if not queue.deleted:
                queue.save_tracking()
        for _sub, _active, timer in self.updates.values():
            timer.cancel()
        self.updates.clear()
        members = [s for s in self.subscriptions.values() if isinstance(s, GroupSubscription)]
        self.subscriptions.clear()  # (so that no group's news comes back to this session)
        for sub in members:
            self._leave_group(sub)
        for queue, link in self.links.items():
            queue.readers.discard(link)
        self.links.clear()
        self.publishers.clear()
        self.subscriptions.clear()

    COMMANDS: dict[int, Callable[[StreamSession, f.Fields], None]] = {
        f.DECLARE_PUBLISHER: declare_publisher, f.PUBLISH: lambda s, fields: None,
        f.QUERY_PUBLISHER_SEQUENCE: query_publisher_sequence,
        f.DELETE_PUBLISHER: delete_publisher, f.SUBSCRIBE: subscribe, f.CREDIT: credit,
        f.STORE_OFFSET: store_offset, f.QUERY_OFFSET: query_offset,
        f.UNSUBSCRIBE: unsubscribe, f.CREATE: create, f.DELETE: delete,
        f.METADATA: metadata, f.EXCHANGE_COMMAND_VERSIONS: exchange_command_versions,
        f.STREAM_STATS: stream_stats, f.ROUTE: route, f.PARTITIONS: partitions,
        f.CREATE_SUPER_STREAM: create_super_stream, f.DELETE_SUPER_STREAM: delete_super_stream}


def _queue_arguments(arguments: dict[str, str]) -> FieldTable | None:
    """Create's arguments as a stream queue's x-arguments (None if one is not valid)."""
    table: FieldTable = {"x-queue-type": "stream"}
    for key, value in arguments.items():
        known = CREATE_ARGUMENTS.get(key)
        if known is None:
            continue  # unknown arguments are ignored, as RabbitMQ does
        name, kind = known
        if kind is int:
            try:
                table[name] = Long(int(value))
            except ValueError:
                return None
        else:
            table[name] = value
    return table

