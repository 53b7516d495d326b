"""One AMQP channel: its consumers, unacked deliveries, prefetch, confirms and transactions.

Methods arrive decoded from ``ServerConnection``; replies and deliveries go out through
``connection.write``. Errors are raised as ``leveret.errors`` exceptions and turned into
channel.close / connection.close by the connection, which knows the method at fault.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from leveret.amqp import spec
from leveret.amqp.frames import encode_content, encode_deliver, encode_get_ok
from leveret.broker.access import READ, WRITE
from leveret.broker.arguments import wire_type
from leveret.broker.consumer import Consumer
from leveret.broker.exchanges.delayed import TYPE_NAME as DELAYED
from leveret.broker.exchanges.delayed import delay_of
from leveret.broker.message import (
    FLAG_EXPIRATION,
    FLAG_HEADERS,
    FLAG_REPLY_TO,
    FLAG_USER_ID,
    Message,
    parse_expiration,
)
from leveret.broker.queue import Entry, Queue
from leveret.broker.stats import Counters
from leveret.broker.vhost import server_name
from leveret.errors import (
    AccessRefused,
    InternalError,
    NotAllowed,
    NotImplemented_,
    PreconditionFailed,
)

if TYPE_CHECKING:
    from leveret.broker.connection import ServerConnection

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_TO_PREFIX = REPLY_TO + "."


class Unacked:
    __slots__ = ("consumer", "entry", "queue")

    def __init__(self, entry: Entry, queue: Queue, consumer: Consumer | None) -> None:
        self.entry = entry
        self.queue = queue
        self.consumer = consumer


class Channel:
    def __init__(self, connection: ServerConnection, number: int) -> None:
        self.connection = connection
        self.number = number
        self.vhost = connection.vhost
        self.consumers: dict[str, Consumer] = {}
        self.unacked: OrderedDict[int, Unacked] = OrderedDict()
        self.delivery_tag = 0
        self.prefetch = 0  # for consumers created from now on (basic.qos global=false)
        self.global_prefetch = 0  # shared by the whole channel (basic.qos global=true)
        self.flow_active = True
        self.closing = False
        self.confirm = False
        self.publish_seq = 0
        self.confirmed_upto = 0
        self.nacked: list[int] = []  # publish sequence numbers to nack at the next flush
        # (publish seq, store seq) of persistent messages written to a queue's log: their
        # confirms wait until the store's durable_seq reaches the store seq.
        self.unsynced: deque[tuple[int, int]] = deque()
        self.tx: list[tuple[str, Any]] | None = None
        self._refused = False
        self.reply_queue: Queue | None = None  # direct reply-to pseudo-queue
        self.last_queue = ""  # an empty queue name means the one declared last
        self.counters = Counters()  # messages through this channel, for the management API
        self.vhost.channels.add(self)

    # -- delivery --------------------------------------------------------------------

    def can_deliver(self) -> bool:
        if not (self.flow_active and self.connection.writable) or self.closing:
            return False
        return not (self.global_prefetch and len(self.unacked) >= self.global_prefetch)

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        self.delivery_tag += 1
        tag = self.delivery_tag
        msg = entry.message
        queue = consumer.queue
        if consumer.no_ack:
            if entry.offset is not None:  # persisted: acked at once
                queue.forget(entry)
            queue.counters.deliver_no_ack += 1
            self.counters.deliver_no_ack += 1
        else:
            if entry.offset is not None:  # persisted: marked delivered
                _mark(queue, entry)
            self.unacked[tag] = Unacked(entry, queue, consumer)
            consumer.unacked += 1
            queue.unacked += 1
            if queue.consumer_timeout is not None:
                self._watch_ack(tag, queue.consumer_timeout)
            queue.counters.deliver += 1
            self.counters.deliver += 1
        redelivered = entry.redelivered
        if redelivered:
            self._count("redeliver", queue)
        conn = self.connection
        conn.write(encode_deliver(self.number, consumer.tag_frame, tag, redelivered,
                                  msg.route, msg.properties_raw, msg.body, conn.frame_max))

    def redispatch(self) -> None:
        """Capacity came back (acks, flow, qos, writable socket): let queues deliver."""
        seen: set[int] = set()
        for consumer in list(self.consumers.values()):
            q = consumer.queue
            if id(q) not in seen:
                seen.add(id(q))
                q.dispatch()

    # -- publishing ------------------------------------------------------------------

    def publish(self, method: spec.BasicPublish, properties_raw: bytes, body: bytes) -> None:
        conn = self.connection
        name = method.exchange
        grants = conn._grants or conn.grants  # the property only when recompiling
        if name not in grants.writable_exchanges:
            grants.check(WRITE, "exchange", name)
        # the dict first: vhost.exchange (which raises NotFound) is one more call per message
        exchange = self.vhost.exchanges.get(name) or self.vhost.exchange(name)
        if exchange.internal:
            raise AccessRefused(
                f"cannot publish to internal exchange '{exchange.name}' in vhost "
                f"'{self.vhost.name}'")
        if exchange.TYPE == "topic":
            grants.check_topic(WRITE, exchange.name, method.routing_key)
        msg = Message(method.exchange, method.routing_key, properties_raw, body)
        try:
            msg.validate()
        except Exception:
            # RabbitMQ's channel crashes on a content header it cannot parse, and the
            # connection goes with a bare INTERNAL_ERROR.
            raise InternalError("", 0, 0) from None
        if msg.flags & FLAG_EXPIRATION:
            text = msg.properties.expiration or ""
            try:
                parse_expiration(text)
            except ValueError as exc:
                raise PreconditionFailed(f"invalid expiration '{text}': {exc}") from None
        if msg.flags & (FLAG_USER_ID | FLAG_REPLY_TO):
            self._check_properties(msg)
        if self.confirm:
            self.publish_seq += 1
        if self.tx is not None:
            self.tx.append(("publish", (exchange, msg, method.mandatory)))
            return
        store = self.vhost.store
        if store is not None and self.confirm:
            before = store.seq
            routed = self._route(exchange, msg, method.mandatory)
            if store.seq != before:
                self.unsynced.append((self.publish_seq, store.seq))
        else:
            routed = self._route(exchange, msg, method.mandatory)
        if not routed and method.mandatory:
            self._return(msg, 312, "NO_ROUTE")
        if self.confirm:
            if self._refused:
                self.nacked.append(self.publish_seq)
            conn.confirm_ready(self)

    def _check_properties(self, msg: Message) -> None:
        props = msg.properties
        user = self.connection.user
        if props.user_id is not None and props.user_id != user and not (
                self.connection.grants.impersonator):
            raise PreconditionFailed(
                f"user_id property set to '{props.user_id}' but authenticated user was "
                f"'{user}'")
        if props.reply_to == REPLY_TO:
            if self.reply_queue is None:
                raise PreconditionFailed("fast reply consumer does not exist")
            msg.replace_reply_to(self.reply_queue.name)

    def _route(self, exchange: Any, msg: Message, mandatory: bool = False) -> bool:
        """Deliver to every queue the message routes to. True if it routed anywhere;
        ``self._refused`` tells whether a full queue turned it away."""
        self._refused = False
        self.counters.publish += 1
        if exchange.name == "" and msg.routing_key.startswith(REPLY_TO_PREFIX):
            q = self.connection.node_reply_queue(msg.routing_key)
            if q is None:
                return False
            q.push(msg)
            return True
        if exchange.dedup is not None and exchange.dedup.is_duplicate(msg):
            return True  # seen within the window: dropped, and confirmed like the plugin
        if exchange.TYPE == DELAYED and (delay := delay_of(msg)):
            # Held, then routed with the bindings of when it falls due; a mandatory message
            # that routes nowhere now is returned at once instead.
            if mandatory and not self.vhost.route(exchange, msg):
                return False
            exchange.hold(self.vhost, msg, delay)
            return True
        queues = self.vhost.route(exchange, msg)
        if msg.flags & FLAG_HEADERS and "BCC" in msg.headers:
            msg = msg.without_bcc()
        for q in queues:
            if not q.push(msg):
                self._refused = True
        self.connection.last_routed = queues
        if not queues:
            self._count("return_unroutable" if mandatory else "drop_unroutable")
        return bool(queues)

    def _count(self, event: str, queue: Queue | None = None, n: int = 1) -> None:
        """Count a less frequent event on this channel and the queue (the vhost's totals
        add up its channels: broker/vhost.py ``counters``)."""
        setattr(self.counters, event, getattr(self.counters, event) + n)
        if queue is not None:
            setattr(queue.counters, event, getattr(queue.counters, event) + n)

    def _return(self, msg: Message, code: int, text: str) -> None:
        conn = self.connection
        ret = spec.BasicReturn(reply_code=code, reply_text=text, exchange=msg.exchange,
                               routing_key=msg.routing_key)
        conn.send(self.number, ret)
        conn.write(encode_content(self.number, 60, msg.properties_raw, msg.body,
                                  conn.frame_max))

    def flush_confirms(self) -> None:
        """Confirm everything published so far: one multiple ack per run of accepted
        messages, one nack per refused one. Persistent messages written to a queue's log
        are confirmed only once the store says they are durable, and the ones after them
        wait too (confirms go out in order)."""
        upto = self.publish_seq
        unsynced = self.unsynced
        if unsynced:
            durable = self.vhost.store.durable_seq
            while unsynced and unsynced[0][1] <= durable:
                unsynced.popleft()
            if unsynced:
                upto = unsynced[0][0] - 1
        if self.nacked:
            nacked = self.nacked
            i = 0
            while i < len(nacked) and nacked[i] <= upto:
                seq = nacked[i]
                self._ack_upto(seq - 1)
                self.connection.send(self.number, spec.BasicNack(delivery_tag=seq))
                self.confirmed_upto = seq
                i += 1
            del nacked[:i]
        self._ack_upto(upto)

    def _ack_upto(self, upto: int) -> None:
        if upto > self.confirmed_upto:
            self._count("confirm", n=upto - self.confirmed_upto)
            multiple = upto - self.confirmed_upto > 1
            self.confirmed_upto = upto
            self.connection.send(self.number, spec.BasicAck(delivery_tag=upto, multiple=multiple))

    # -- consuming -------------------------------------------------------------------

    def consume(self, m: spec.BasicConsume) -> None:
        tag = m.consumer_tag or server_name("amq.ctag-")
        if tag in self.consumers:
            raise NotAllowed(f"attempt to reuse consumer tag '{tag}'")
        if m.queue == REPLY_TO:
            self._consume_reply_to(m, tag)
            return
        if m.queue or self.last_queue:
            self.connection.grants.check(READ, "queue", m.queue or self.last_queue)
        q = self.vhost.queue(m.queue or self.last_queue, self.connection)
        priority = m.arguments.get("x-priority")
        if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
            raise PreconditionFailed(
                f"invalid arg 'x-priority' for queue '{q.name}' in vhost '{self.vhost.name}': "
                f'"expected integer, got {wire_type(priority)}"')
        if q.consumers and (m.exclusive or q.has_exclusive_consumer):
            raise AccessRefused(f"queue '{q.name}' in vhost '{self.vhost.name}' in exclusive use")
        consumer = Consumer(self, q, tag, m.no_ack, m.exclusive, self.prefetch, m.arguments)
        self.consumers[tag] = consumer
        if not m.nowait:
            self.connection.send(self.number, spec.BasicConsumeOk(consumer_tag=tag))
        q.add_consumer(consumer)

    def _consume_reply_to(self, m: spec.BasicConsume, tag: str) -> None:
        if not m.no_ack:
            raise PreconditionFailed("reply consumer cannot acknowledge")
        if self.reply_queue is not None:
            raise PreconditionFailed("reply consumer already set")
        q = Queue(self.vhost, server_name(REPLY_TO_PREFIX))
        self.reply_queue = q
        self.connection.register_reply_queue(q)
        consumer = Consumer(self, q, tag, True, True, 0, m.arguments)
        self.consumers[tag] = consumer
        if not m.nowait:
            self.connection.send(self.number, spec.BasicConsumeOk(consumer_tag=tag))
        q.add_consumer(consumer)

    def cancel(self, tag: str) -> None:
        consumer = self.consumers.pop(tag, None)
        if consumer is None:
            return
        q = consumer.queue
        q.remove_consumer(consumer)
        if q is self.reply_queue:
            self.connection.unregister_reply_queue(q)
            self.reply_queue = None
        elif q.auto_delete and not q.consumers and not q.deleted:
            self.vhost.drop_queue(q)

    def cancel_by_server(self, consumer: Consumer) -> None:
        """The queue went away: tell the client, if it understands basic.cancel."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        if self.connection.client_capability("consumer_cancel_notify") and not self.closing:
            self.connection.send(self.number, spec.BasicCancel(consumer_tag=consumer.tag,
                                                               nowait=True))

    def get(self, m: spec.BasicGet) -> None:
        conn = self.connection
        if m.queue or self.last_queue:
            conn.grants.check(READ, "queue", m.queue or self.last_queue)
        q = self.vhost.queue(m.queue or self.last_queue, conn)
        entry = q.get()
        if entry is None:
            self._count("get_empty", q)
            conn.send(self.number, spec.BasicGetEmpty())
            return
        self._count("get_no_ack" if m.no_ack else "get", q)
        if entry.redelivered:
            self._count("redeliver", q)
        self.delivery_tag += 1
        tag = self.delivery_tag
        if entry.offset is not None:
            if m.no_ack:
                q.forget(entry)
            else:
                _mark(q, entry)
        if not m.no_ack:
            self.unacked[tag] = Unacked(entry, q, None)
            q.unacked += 1
            if q.consumer_timeout is not None:
                self._watch_ack(tag, q.consumer_timeout)
        msg = entry.message
        conn.write(encode_get_ok(self.number, tag, entry.redelivered,
                                 msg.route, len(q.ready),
                                 msg.properties_raw, msg.body, conn.frame_max))

    def qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size:
            raise NotImplemented_(f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            self.global_prefetch = m.prefetch_count
        else:
            self.prefetch = m.prefetch_count
        self.connection.send(self.number, spec.BasicQosOk())
        self.redispatch()

    # -- acknowledgements ------------------------------------------------------------

    def _take(self, tag: int, multiple: bool) -> list[Unacked]:
        unacked = self.unacked
        if multiple and tag == 0:
            taken = list(unacked.values())
            unacked.clear()
            return taken
        if tag not in unacked:
            raise PreconditionFailed(f"unknown delivery tag {tag}")
        if not multiple:
            return [unacked.pop(tag)]
        taken = []
        while True:
            t, u = unacked.popitem(last=False)
            taken.append(u)
            if t == tag:
                return taken

    def _settle(self, records: list[Unacked]) -> None:
        for u in records:
            u.queue.unacked -= 1
            if u.consumer is not None:
                u.consumer.unacked -= 1

    def ack(self, tag: int, multiple: bool) -> None:
        if self.tx is not None:
            self._check_tags(tag, multiple)
            self.tx.append(("ack", (tag, multiple)))
            return
        records = self._take(tag, multiple)
        self._settle(records)
        self._forget(records)
        self._count_acks(records)
        self.redispatch()

    def _count_acks(self, records: list[Unacked]) -> None:
        self.counters.ack += len(records)
        for u in records:
            u.queue.counters.ack += 1

    def _forget(self, records: list[Unacked]) -> None:
        """Acknowledged: the messages leave their queues' logs."""
        for u in records:
            if u.entry.offset is not None:
                u.queue.forget(u.entry)

    def _check_tags(self, tag: int, multiple: bool) -> None:
        if not (multiple and tag == 0) and tag not in self.unacked:
            raise PreconditionFailed(f"unknown delivery tag {tag}")

    def nack(self, tag: int, multiple: bool, requeue: bool) -> None:
        if self.tx is not None:
            self._check_tags(tag, multiple)
            self.tx.append(("nack", (tag, multiple, requeue)))
            return
        records = self._take(tag, multiple)
        self._settle(records)
        self._settle_rejected(records, requeue)
        self.redispatch()

    def _settle_rejected(self, records: list[Unacked], requeue: bool) -> None:
        """Nacked or rejected: back to the queue, or dead-lettered / dropped."""
        if requeue:
            for u in records:
                if u.queue.retry_delay is not None and not u.queue.deleted:
                    u.queue.retry_later(u.entry)
            self._requeue([u for u in records if u.queue.retry_delay is None])
            return
        for u in records:
            if not u.queue.deleted:
                u.queue.discard(u.entry)

    def _watch_ack(self, tag: int, timeout: float) -> None:
        """x-consumer-timeout: a delivery not acknowledged in time closes the channel,
        with RabbitMQ's reply text (opt-in per queue, never a surprise default)."""
        def check() -> None:
            if tag in self.unacked and not self.closing:
                self.connection.channel_error(self, PreconditionFailed(
                    f"delivery acknowledgement on channel {self.number} timed out. Timeout "
                    f"value used: {int(timeout * 1000)} ms. This timeout value can be "
                    "configured, see consumers doc guide to learn more", 0, 0))
        self.vhost.timers.call_later(timeout, check)

    def _requeue(self, records: list[Unacked]) -> None:
        by_queue: dict[int, tuple[Queue, list[Entry]]] = {}
        for u in records:
            if u.queue.deleted:
                continue
            by_queue.setdefault(id(u.queue), (u.queue, []))[1].append(u.entry)
        for q, entries in by_queue.values():
            q.requeue(entries)

    def recover(self, requeue: bool) -> None:
        if not requeue:
            raise NotImplemented_("requeue=false")
        records = list(self.unacked.values())
        self.unacked.clear()
        self._settle(records)
        self._requeue(records)

    # -- transactions and confirms ---------------------------------------------------

    def tx_select(self) -> None:
        if self.confirm:
            raise PreconditionFailed("cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = []

    def tx_commit(self) -> None:
        if self.tx is None:
            raise PreconditionFailed("channel is not transactional")
        ops, self.tx = self.tx, []
        for op, args in ops:
            if op == "publish":
                exchange, msg, mandatory = args
                if not self._route(exchange, msg, mandatory) and mandatory:
                    self._return(msg, 312, "NO_ROUTE")
            elif op == "ack":
                records = self._take(*args)
                self._settle(records)
                self._forget(records)
                self._count_acks(records)
            else:
                tag, multiple, requeue = args
                records = self._take(tag, multiple)
                self._settle(records)
                self._settle_rejected(records, requeue)
        store = self.vhost.store
        if store is not None and store.seq > store.durable_seq:
            store.commit()  # commit-ok means the published messages and acks are durable
        self.redispatch()

    def tx_rollback(self) -> None:
        if self.tx is None:
            raise PreconditionFailed("channel is not transactional")
        self.tx = []

    def confirm_select(self) -> None:
        if self.tx is not None:
            raise PreconditionFailed("cannot switch from tx to confirm mode")
        self.confirm = True

    def flow(self, active: bool) -> None:
        self.flow_active = active
        if active:
            self.redispatch()

    # -- lifetime --------------------------------------------------------------------

    def release(self) -> None:
        """The channel is gone: cancel consumers and requeue what was never acked."""
        self.closing = True
        # Requeue first, then cancel: the next consumer (single-active-consumer) then gets
        # the returned messages in their original order.
        records = list(self.unacked.values())
        self.unacked.clear()
        self._settle(records)
        self._requeue(records)
        queues = {id(c.queue): c.queue for c in self.consumers.values()}
        for tag in list(self.consumers):
            self.cancel(tag)
        # Unlike a basic.cancel, a channel going away lets the queue deliver at once to the
        # consumer that takes over (RabbitMQ's handling of a channel's death).
        for q in queues.values():
            if not q.deleted:
                q.dispatch()
        if self in self.vhost.channels:
            self.vhost.channels.discard(self)
            self.vhost.own_counters.add(self.counters)


def _mark(q: Queue, entry: Entry) -> None:
    """Delivered, awaiting an ack: recorded, so it comes back redelivered after a crash."""
    if q.log is not None and entry.offset is not None:
        q.log.mark_delivered(entry.offset)
