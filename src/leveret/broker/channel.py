"""One AMQP channel: its consumers, unacked deliveries, prefetch, confirms and transactions.

Methods arrive decoded from the connection; replies and deliveries go out through
``connection.write``. What to do with a message (checks, routing, queues) is the vhost's
operation API (vhost.py); the channel keeps what is the channel's own: delivery tags and
unacked deliveries, prefetch, publisher confirms, transactions, direct reply-to. Errors are
raised as ``leveret.errors`` exceptions and turned into channel.close / connection.close by
the connection, which knows the method at fault.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Protocol

from leveret.amqp import spec
from leveret.amqp.frames import (
    LARGE_BODY,
    encode_content,
    encode_deliver,
    encode_deliver_head,
    encode_get_ok,
)
from leveret.broker.access import READ, Grants
from leveret.broker.arguments import wire_type
from leveret.broker.entry import Entry
from leveret.broker.exchanges import Exchange
from leveret.broker.message import FLAG_EXPIRATION, FLAG_REPLY_TO, FLAG_USER_ID, Message
from leveret.broker.queues import ClassicQueue, Consumer, Gate, Queue
from leveret.broker.stats import Counters
from leveret.broker.vhost import (
    REPLY_TO,
    REPLY_TO_PREFIX,
    VirtualHost,
    check_properties,
    server_name,
)
from leveret.errors import (
    AccessRefused,
    AMQPError,
    NotAllowed,
    NotImplemented_,
    PreconditionFailed,
)

__all__ = ["REPLY_TO", "REPLY_TO_PREFIX", "Channel", "ChannelConnection", "Unacked"]


class ChannelConnection(Protocol):
    """What a channel needs of the connection it is multiplexed on."""

    vhost: VirtualHost
    frame_max: int
    last_routed: list[Queue]  # the queues the last publish went to (flow control)
    cached_grants: Grants | None  # the compiled permissions; None until (re)compiled

    @property
    def writable(self) -> bool: ...
    @property
    def stuck(self) -> bool: ...
    @property
    def grants(self) -> Grants: ...
    def write(self, data: bytes) -> None: ...
    def write_body(self, head: bytes, body: bytes) -> None: ...
    def send(self, channel: int, method: spec.Method) -> None: ...
    def client_capability(self, name: str) -> bool: ...
    def channel_error(self, ch: Channel, exc: AMQPError) -> None: ...
    def confirm_ready(self, ch: Channel) -> None: ...


class Unacked:
    __slots__ = ("consumer", "entry", "queue")

    def __init__(self, entry: Entry, queue: Queue, consumer: Consumer | None) -> None:
        self.entry = entry
        self.queue = queue
        self.consumer = consumer


class Channel:
    def __init__(self, connection: ChannelConnection, number: int) -> None:
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
        # Open unless closing, flow-stopped or at the global prefetch: what this channel's
        # consumers ask before each delivery (queues/base.py Consumer.can_take).
        self.gate = Gate()
        self.reply_queue: Queue | None = None  # direct reply-to pseudo-queue
        self.last_queue = ""  # an empty queue name means the one declared last
        self.counters = Counters()  # messages through this channel, for the management API
        self.vhost.channels.add(self)

    # -- delivery --------------------------------------------------------------------

    def _update_gate(self) -> None:
        self.gate.open = self.flow_active and not self.closing and not (
            self.global_prefetch and len(self.unacked) >= self.global_prefetch)

    def deliver(self, consumer: Consumer, entry: Entry) -> None:
        """Frame one delivery (the queue has settled its log and counters)."""
        self.delivery_tag += 1
        tag = self.delivery_tag
        msg = entry.message
        if consumer.no_ack:
            self.counters.deliver_no_ack += 1
        else:
            queue = consumer.queue
            unacked = self.unacked
            unacked[tag] = Unacked(entry, queue, consumer)
            consumer.unacked += 1
            if self.global_prefetch and len(unacked) >= self.global_prefetch:
                self.gate.open = False
            if queue.consumer_timeout is not None:
                self._watch_ack(tag, queue.consumer_timeout)
            self.counters.deliver += 1
        redelivered = entry.redelivered
        if redelivered:
            self.counters.redeliver += 1
        conn = self.connection
        body = msg.body
        if len(body) >= LARGE_BODY and len(body) <= conn.frame_max - 8:
            conn.write_body(encode_deliver_head(self.number, consumer.tag_frame, tag,
                                                redelivered, msg.route, msg.properties_raw,
                                                len(body)), body)
            return
        conn.write(encode_deliver(self.number, consumer.tag_frame, tag, redelivered,
                                  msg.route, msg.properties_raw, body, conn.frame_max))

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
        grants = conn.cached_grants or conn.grants  # the property only when recompiling
        exchange = self.vhost.authorize_publish(grants, method.exchange, method.routing_key)
        msg = Message(method.exchange, method.routing_key, properties_raw, body)
        msg.validate()
        if msg.flags & (FLAG_EXPIRATION | FLAG_USER_ID | FLAG_REPLY_TO):
            check_properties(msg, grants)
            if msg.properties.reply_to == REPLY_TO:
                if self.reply_queue is None:
                    raise PreconditionFailed("fast reply consumer does not exist")
                msg.replace_reply_to(self.reply_queue.name)
        if self.confirm:
            self.publish_seq += 1
        if self.tx is not None:
            self.tx.append(("publish", (exchange, msg, method.mandatory)))
            return
        self._publish(exchange, msg, method.mandatory)

    def _publish(self, exchange: Exchange, msg: Message, mandatory: bool) -> None:
        """Hand the message to the vhost, then what the channel owes the client: a
        basic.return for an unroutable mandatory message, a confirm (after the store
        has synced what the publish wrote), a nack if a queue refused it."""
        queues, routed, refused, sync_seq = self.vhost.publish(exchange, msg, mandatory,
                                                                self.counters)
        self.connection.last_routed = queues
        if not routed and mandatory:
            self._return(msg, 312, "NO_ROUTE")
        if self.confirm:
            if sync_seq:
                self.unsynced.append((self.publish_seq, sync_seq))
            if refused:
                self.nacked.append(self.publish_seq)
            self.connection.confirm_ready(self)

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
            store = self.vhost.store
            assert store is not None  # something was written to it
            durable = store.durable_seq
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
            self.counters.confirm += upto - self.confirmed_upto
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
        q.check_consume(m.arguments, m.no_ack, m.exclusive, self.prefetch, self.global_prefetch)
        priority = m.arguments.get("x-priority")
        if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
            raise PreconditionFailed(
                f"invalid arg 'x-priority' for queue '{q.name}' in vhost '{self.vhost.name}': "
                f'"expected integer, got {wire_type(priority)}"')
        if q.refuses_consumer(m.exclusive):
            raise AccessRefused(f"queue '{q.name}' in vhost '{self.vhost.name}' in exclusive use")
        consumer = Consumer(self, self.gate, self.connection, q, tag, m.no_ack, m.exclusive,
                            self.prefetch, m.arguments)
        self.consumers[tag] = consumer
        if not m.nowait:
            self.connection.send(self.number, spec.BasicConsumeOk(consumer_tag=tag))
        q.add_consumer(consumer)

    def _consume_reply_to(self, m: spec.BasicConsume, tag: str) -> None:
        if not m.no_ack:
            raise PreconditionFailed("reply consumer cannot acknowledge")
        if self.reply_queue is not None:
            raise PreconditionFailed("reply consumer already set")
        q = ClassicQueue(self.vhost, server_name(REPLY_TO_PREFIX))
        self.reply_queue = q
        self.vhost.reply_queues[q.name] = q
        consumer = Consumer(self, self.gate, self.connection, q, tag, True, True, 0,
                            m.arguments)
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
            self.vhost.reply_queues.pop(q.name, None)
            self.reply_queue = None
        elif q.auto_delete and not q.consumers and not q.deleted:
            self.vhost.drop_queue(q)

    def cancel_by_server(self, consumer: Consumer) -> None:
        """The queue went away: tell the client, if it understands basic.cancel."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        later = self.vhost.after_reply
        if later is not None:
            later.append(lambda: self._notify_cancel(consumer.tag))
        else:
            self._notify_cancel(consumer.tag)

    def _notify_cancel(self, tag: str) -> None:
        if self.connection.client_capability("consumer_cancel_notify") and not self.closing:
            self.connection.send(self.number, spec.BasicCancel(consumer_tag=tag, nowait=True))

    def get(self, m: spec.BasicGet) -> None:
        conn = self.connection
        q, entry = self.vhost.get(m.queue or self.last_queue, m.no_ack, conn, conn.grants,
                                  self.counters)
        if entry is None:
            conn.send(self.number, spec.BasicGetEmpty())
            return
        self.delivery_tag += 1
        tag = self.delivery_tag
        if not m.no_ack:
            self.unacked[tag] = Unacked(entry, q, None)
            if self.global_prefetch:
                self._update_gate()
            if q.consumer_timeout is not None:
                self._watch_ack(tag, q.consumer_timeout)
        msg = entry.message
        conn.write(encode_get_ok(self.number, tag, entry.redelivered,
                                 msg.route, q.message_count,
                                 msg.properties_raw, msg.body, conn.frame_max))

    def qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size:
            raise NotImplemented_(f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            self.global_prefetch = m.prefetch_count
            self._update_gate()
        else:
            self.prefetch = m.prefetch_count
            # RabbitMQ's channel lifts the global limit on any per-consumer qos
            # (rabbit_channel: "if default was set to true, the limiter is deactivated").
            if self.global_prefetch:
                self.global_prefetch = 0
                self._update_gate()
        self.connection.send(self.number, spec.BasicQosOk())
        self.redispatch()

    # -- acknowledgements ------------------------------------------------------------

    def _take(self, tag: int, multiple: bool) -> list[Unacked]:
        """Take deliveries out of the unacked set (one, or all up to ``tag``), releasing
        their consumers' prefetch."""
        unacked = self.unacked
        if multiple and tag == 0:
            taken = list(unacked.values())
            unacked.clear()
        elif tag not in unacked:
            raise PreconditionFailed(f"unknown delivery tag {tag}")
        elif not multiple:
            taken = [unacked.pop(tag)]
        else:
            taken = []
            while True:
                t, u = unacked.popitem(last=False)
                taken.append(u)
                if t == tag:
                    break
        for u in taken:
            if u.consumer is not None:
                u.consumer.unacked -= 1
        if self.global_prefetch:
            self._update_gate()
        return taken

    def ack(self, tag: int, multiple: bool) -> None:
        if self.tx is not None:
            self._check_tags(tag, multiple)
            self.tx.append(("ack", (tag, multiple)))
            return
        self._ack(self._take(tag, multiple))
        self.redispatch()

    def _ack(self, records: list[Unacked]) -> None:
        """Acknowledged: each queue lets its messages go (and acks them in its log)."""
        self.counters.ack += len(records)
        for q, entries in _by_queue(records):
            q.ack(entries)

    def _check_tags(self, tag: int, multiple: bool) -> None:
        if not (multiple and tag == 0) and tag not in self.unacked:
            raise PreconditionFailed(f"unknown delivery tag {tag}")

    def _pending(self, tag: int, multiple: bool) -> list[Unacked]:
        """The deliveries an ack of (tag, multiple) would take, left in place."""
        unacked = self.unacked
        if multiple and tag == 0:
            return list(unacked.values())
        if tag not in unacked:
            return []
        if not multiple:
            return [unacked[tag]]
        found = []
        for t, u in unacked.items():
            found.append(u)
            if t == tag:
                break
        return found

    def nack(self, tag: int, multiple: bool, requeue: bool) -> None:
        for u in self._pending(tag, multiple):  # (a stream refuses: nothing taken)
            u.queue.check_reject()
        if self.tx is not None:
            self._check_tags(tag, multiple)
            self.tx.append(("nack", (tag, multiple, requeue)))
            return
        for q, entries in _by_queue(self._take(tag, multiple)):
            q.reject(entries, requeue)
        self.redispatch()

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

    def _requeue_all(self) -> None:
        """Every unacknowledged delivery goes back to its queue, redelivered."""
        for q, entries in _by_queue(self._take(0, True)):
            q.requeue(entries)

    def recover(self, requeue: bool) -> None:
        if not requeue:
            raise NotImplemented_("requeue=false")
        for u in self.unacked.values():  # (a stream refuses: nothing taken)
            u.queue.check_recover()
        for q, entries in _by_queue(self._take(0, True)):
            q.requeue_recovered(entries)

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
                self._publish(*args)
            elif op == "ack":
                self._ack(self._take(*args))
            else:
                tag, multiple, requeue = args
                for q, entries in _by_queue(self._take(tag, multiple)):
                    q.reject(entries, requeue)
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
        self._update_gate()
        if active:
            self.redispatch()

    # -- lifetime --------------------------------------------------------------------

    def release(self) -> None:
        """The channel is gone: cancel consumers and requeue what was never acked."""
        self.closing = True
        self.gate.open = False
        # Requeue first, then cancel: the next consumer (single-active-consumer) then gets
        # the returned messages in their original order.
        self._requeue_all()
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


def _by_queue(records: list[Unacked]) -> list[tuple[Queue, list[Entry]]]:
    """Deliveries grouped by queue, in order: each queue settles its batch at once."""
    groups: dict[Queue, list[Entry]] = {}
    last: Queue | None = None
    entries: list[Entry] = []
    for u in records:  # (a multiple ack's run of deliveries is mostly from one queue)
        if u.queue is not last:
            last = u.queue
            entries = groups.setdefault(last, [])
        entries.append(u.entry)
    return list(groups.items())
