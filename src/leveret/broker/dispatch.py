"""Channel methods -> what the broker does with them, one small function each.

The table is data: method index (class id << 16 | method id) to handler. A handler raises
``leveret.errors`` exceptions; the connection turns them into the right close method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from leveret.amqp import spec
from leveret.broker.access import CONFIGURE, READ, WRITE
from leveret.broker.channel import REPLY_TO, Channel
from leveret.errors import ChannelErrorHard, NotImplemented_

if TYPE_CHECKING:
    from leveret.broker.connection import ServerConnection

Handler = Callable[["ServerConnection", Channel, Any], None]


def channel_close(conn: ServerConnection, ch: Channel, m: spec.ChannelClose) -> None:
    conn.close_channel(ch)
    conn.send(ch.number, spec.ChannelCloseOk())


def channel_close_ok(conn: ServerConnection, ch: Channel, m: spec.ChannelCloseOk) -> None:
    """A close-ok we never asked for: ignore it, as RabbitMQ does."""


def channel_open(conn: ServerConnection, ch: Channel, m: spec.ChannelOpen) -> None:
    raise ChannelErrorHard("second 'channel.open' seen", 20, 10)


def channel_flow(conn: ServerConnection, ch: Channel, m: spec.ChannelFlow) -> None:
    if not m.active:
        # RabbitMQ refuses client-side flow control: consumers use basic.qos instead.
        raise NotImplemented_("active=false", 20, 20)
    ch.flow(m.active)
    conn.send(ch.number, spec.ChannelFlowOk(active=m.active))


def channel_flow_ok(conn: ServerConnection, ch: Channel, m: spec.ChannelFlowOk) -> None:
    """leveret never sends channel.flow, so there is nothing to confirm."""


def exchange_declare(conn: ServerConnection, ch: Channel, m: spec.ExchangeDeclare) -> None:
    ch.vhost.declare_exchange(m.exchange, m.type, m.passive, m.durable, m.auto_delete,
                              m.internal, m.arguments, conn.grants)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeDeclareOk())


def exchange_delete(conn: ServerConnection, ch: Channel, m: spec.ExchangeDelete) -> None:
    if m.exchange:
        conn.grants.check(CONFIGURE, "exchange", m.exchange)
    ch.vhost.delete_exchange(m.exchange, m.if_unused)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeDeleteOk())


def _check_binding(conn: ServerConnection, ch: Channel, kind: str, destination: str,
                   source: str, routing_key: str) -> None:
    """RabbitMQ's order: write on the destination, read on the source, then the topic
    permission on the routing key when the source is a topic exchange."""
    grants = conn.grants
    grants.check(WRITE, kind, destination)
    if source == "" or (kind == "exchange" and destination == ""):
        return  # the vhost refuses bindings to or from the default exchange
    grants.check(READ, "exchange", source)
    ex = ch.vhost.exchanges.get(source)
    if ex is not None and ex.type == "topic":
        grants.check_topic(READ, source, routing_key)


def exchange_bind(conn: ServerConnection, ch: Channel, m: spec.ExchangeBind) -> None:
    _check_binding(conn, ch, "exchange", m.destination, m.source, m.routing_key)
    ch.vhost.bind_exchange(m.destination, m.source, m.routing_key, m.arguments)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeBindOk())


def exchange_unbind(conn: ServerConnection, ch: Channel, m: spec.ExchangeUnbind) -> None:
    _check_binding(conn, ch, "exchange", m.destination, m.source, m.routing_key)
    ch.vhost.bind_exchange(m.destination, m.source, m.routing_key, m.arguments, unbind=True)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeUnbindOk())


def queue_declare(conn: ServerConnection, ch: Channel, m: spec.QueueDeclare) -> None:
    if m.queue == REPLY_TO:
        # The direct reply-to pseudo-queue always "exists", empty, with one consumer.
        if not m.nowait:
            conn.send(ch.number, spec.QueueDeclareOk(queue=REPLY_TO, message_count=0,
                                                     consumer_count=1))
        return
    q = ch.vhost.declare_queue(m.queue, m.passive, m.durable, m.exclusive, m.auto_delete,
                               m.arguments, conn, conn.grants)
    ch.last_queue = q.name
    if not m.nowait:
        conn.send(ch.number, spec.QueueDeclareOk(queue=q.name, message_count=q.message_count,
                                                 consumer_count=q.consumer_count))


def queue_bind(conn: ServerConnection, ch: Channel, m: spec.QueueBind) -> None:
    if m.queue or ch.last_queue:
        _check_binding(conn, ch, "queue", m.queue or ch.last_queue, m.exchange, m.routing_key)
    ch.vhost.bind_queue(m.queue or ch.last_queue, m.exchange, m.routing_key, m.arguments, conn)
    if not m.nowait:
        conn.send(ch.number, spec.QueueBindOk())


def queue_unbind(conn: ServerConnection, ch: Channel, m: spec.QueueUnbind) -> None:
    if m.queue or ch.last_queue:
        _check_binding(conn, ch, "queue", m.queue or ch.last_queue, m.exchange, m.routing_key)
    ch.vhost.unbind_queue(m.queue or ch.last_queue, m.exchange, m.routing_key, m.arguments,
                          conn)
    conn.send(ch.number, spec.QueueUnbindOk())


def queue_purge(conn: ServerConnection, ch: Channel, m: spec.QueuePurge) -> None:
    if m.queue or ch.last_queue:
        conn.grants.check(READ, "queue", m.queue or ch.last_queue)
    count = ch.vhost.queue(m.queue or ch.last_queue, conn).purge()
    if not m.nowait:
        conn.send(ch.number, spec.QueuePurgeOk(message_count=count))


def queue_delete(conn: ServerConnection, ch: Channel, m: spec.QueueDelete) -> None:
    if m.queue or ch.last_queue:
        conn.grants.check(CONFIGURE, "queue", m.queue or ch.last_queue)
    count = ch.vhost.delete_queue(m.queue or ch.last_queue, m.if_unused, m.if_empty, conn)
    if not m.nowait:
        conn.send(ch.number, spec.QueueDeleteOk(message_count=count))


def basic_qos(conn: ServerConnection, ch: Channel, m: spec.BasicQos) -> None:
    ch.qos(m)


def basic_consume(conn: ServerConnection, ch: Channel, m: spec.BasicConsume) -> None:
    ch.consume(m)


def basic_cancel(conn: ServerConnection, ch: Channel, m: spec.BasicCancel) -> None:
    ch.cancel(m.consumer_tag)
    if not m.nowait:
        conn.send(ch.number, spec.BasicCancelOk(consumer_tag=m.consumer_tag))


def basic_get(conn: ServerConnection, ch: Channel, m: spec.BasicGet) -> None:
    ch.get(m)


def basic_ack(conn: ServerConnection, ch: Channel, m: spec.BasicAck) -> None:
    ch.ack(m.delivery_tag, m.multiple)


def basic_reject(conn: ServerConnection, ch: Channel, m: spec.BasicReject) -> None:
    ch.nack(m.delivery_tag, False, m.requeue)


def basic_nack(conn: ServerConnection, ch: Channel, m: spec.BasicNack) -> None:
    ch.nack(m.delivery_tag, m.multiple, m.requeue)


def basic_recover_async(conn: ServerConnection, ch: Channel, m: spec.BasicRecoverAsync) -> None:
    ch.recover(m.requeue)


def basic_recover(conn: ServerConnection, ch: Channel, m: spec.BasicRecover) -> None:
    ch.recover(m.requeue)
    conn.send(ch.number, spec.BasicRecoverOk())


def tx_select(conn: ServerConnection, ch: Channel, m: spec.TxSelect) -> None:
    ch.tx_select()
    conn.send(ch.number, spec.TxSelectOk())


def tx_commit(conn: ServerConnection, ch: Channel, m: spec.TxCommit) -> None:
    ch.tx_commit()
    conn.send(ch.number, spec.TxCommitOk())


def tx_rollback(conn: ServerConnection, ch: Channel, m: spec.TxRollback) -> None:
    ch.tx_rollback()
    conn.send(ch.number, spec.TxRollbackOk())


def confirm_select(conn: ServerConnection, ch: Channel, m: spec.ConfirmSelect) -> None:
    ch.confirm_select()
    if not m.nowait:
        conn.send(ch.number, spec.ConfirmSelectOk())


def access_request(conn: ServerConnection, ch: Channel, m: spec.AccessRequest) -> None:
    conn.send(ch.number, spec.AccessRequestOk(ticket=1))


HANDLERS: dict[int, Handler] = {
    spec.ChannelClose.INDEX: channel_close,
    spec.ChannelCloseOk.INDEX: channel_close_ok,
    spec.ChannelOpen.INDEX: channel_open,
    spec.ChannelFlow.INDEX: channel_flow,
    spec.ChannelFlowOk.INDEX: channel_flow_ok,
    spec.AccessRequest.INDEX: access_request,
    spec.ExchangeDeclare.INDEX: exchange_declare,
    spec.ExchangeDelete.INDEX: exchange_delete,
    spec.ExchangeBind.INDEX: exchange_bind,
    spec.ExchangeUnbind.INDEX: exchange_unbind,
    spec.QueueDeclare.INDEX: queue_declare,
    spec.QueueBind.INDEX: queue_bind,
    spec.QueueUnbind.INDEX: queue_unbind,
    spec.QueuePurge.INDEX: queue_purge,
    spec.QueueDelete.INDEX: queue_delete,
    spec.BasicQos.INDEX: basic_qos,
    spec.BasicConsume.INDEX: basic_consume,
    spec.BasicCancel.INDEX: basic_cancel,
    spec.BasicGet.INDEX: basic_get,
    spec.BasicAck.INDEX: basic_ack,
    spec.BasicReject.INDEX: basic_reject,
    spec.BasicNack.INDEX: basic_nack,
    spec.BasicRecoverAsync.INDEX: basic_recover_async,
    spec.BasicRecover.INDEX: basic_recover,
    spec.TxSelect.INDEX: tx_select,
    spec.TxCommit.INDEX: tx_commit,
    spec.TxRollback.INDEX: tx_rollback,
    spec.ConfirmSelect.INDEX: confirm_select,
}
