"""Channel methods -> what the broker does with them, one small function each.

The table is data: method index (class id << 16 | method id) to handler. A handler raises
``leveret.errors`` exceptions; the connection turns them into the right close method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leveret.amqp import spec
from leveret.broker.channel import REPLY_TO, Channel, ChannelConnection
from leveret.errors import NotImplemented_

Handler = Callable[[ChannelConnection, Channel, Any], None]


def channel_flow(conn: ChannelConnection, ch: Channel, m: spec.ChannelFlow) -> None:
    if not m.active:
        # RabbitMQ refuses client-side flow control: consumers use basic.qos instead.
        raise NotImplemented_("active=false", 20, 20)
    ch.flow(m.active)
    conn.send(ch.number, spec.ChannelFlowOk(active=m.active))


def exchange_declare(conn: ChannelConnection, ch: Channel, m: spec.ExchangeDeclare) -> None:
    ch.vhost.declare_exchange(m.exchange, m.type, m.passive, m.durable, m.auto_delete,
                              m.internal, m.arguments, conn.grants)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeDeclareOk())


def exchange_delete(conn: ChannelConnection, ch: Channel, m: spec.ExchangeDelete) -> None:
    ch.vhost.delete_exchange(m.exchange, m.if_unused, conn.grants)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeDeleteOk())


def exchange_bind(conn: ChannelConnection, ch: Channel, m: spec.ExchangeBind) -> None:
    ch.vhost.bind_exchange(m.destination, m.source, m.routing_key, m.arguments,
                           grants=conn.grants)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeBindOk())


def exchange_unbind(conn: ChannelConnection, ch: Channel, m: spec.ExchangeUnbind) -> None:
    ch.vhost.bind_exchange(m.destination, m.source, m.routing_key, m.arguments, unbind=True,
                           grants=conn.grants)
    if not m.nowait:
        conn.send(ch.number, spec.ExchangeUnbindOk())


def queue_declare(conn: ChannelConnection, ch: Channel, m: spec.QueueDeclare) -> None:
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
        messages, consumers = q.declare_ok_counts()
        conn.send(ch.number, spec.QueueDeclareOk(queue=q.name, message_count=messages,
                                                 consumer_count=consumers))


def queue_bind(conn: ChannelConnection, ch: Channel, m: spec.QueueBind) -> None:
    ch.vhost.bind_queue(m.queue or ch.last_queue, m.exchange, m.routing_key, m.arguments, conn,
                        conn.grants)
    if not m.nowait:
        conn.send(ch.number, spec.QueueBindOk())


def queue_unbind(conn: ChannelConnection, ch: Channel, m: spec.QueueUnbind) -> None:
    ch.vhost.unbind_queue(m.queue or ch.last_queue, m.exchange, m.routing_key, m.arguments,
                          conn, conn.grants)
    conn.send(ch.number, spec.QueueUnbindOk())


def queue_purge(conn: ChannelConnection, ch: Channel, m: spec.QueuePurge) -> None:
    count = ch.vhost.purge_queue(m.queue or ch.last_queue, conn, conn.grants)
    if not m.nowait:
        conn.send(ch.number, spec.QueuePurgeOk(message_count=count))


def queue_delete(conn: ChannelConnection, ch: Channel, m: spec.QueueDelete) -> None:
    # The queue's consumers hear basic.cancel after the delete-ok, as from RabbitMQ (its
    # channels learn of the queue's end only once the queue has answered): py-amqp, waiting
    # for the delete-ok, raises ConsumerCancelled on a cancel that comes first for a
    # consumer of that connection without an on_cancel callback (kombu's, for one).
    vhost = ch.vhost
    later: list[Callable[[], None]] = []
    vhost.after_reply = later
    try:
        count = vhost.delete_queue(m.queue or ch.last_queue, m.if_unused, m.if_empty, conn,
                                   conn.grants)
        if not m.nowait:
            conn.send(ch.number, spec.QueueDeleteOk(message_count=count))
    finally:
        vhost.after_reply = None
        for notice in later:
            notice()


def basic_qos(conn: ChannelConnection, ch: Channel, m: spec.BasicQos) -> None:
    ch.qos(m)


def basic_consume(conn: ChannelConnection, ch: Channel, m: spec.BasicConsume) -> None:
    ch.consume(m)


def basic_cancel(conn: ChannelConnection, ch: Channel, m: spec.BasicCancel) -> None:
    ch.cancel(m.consumer_tag)
    if not m.nowait:
        conn.send(ch.number, spec.BasicCancelOk(consumer_tag=m.consumer_tag))


def basic_get(conn: ChannelConnection, ch: Channel, m: spec.BasicGet) -> None:
    ch.get(m)


def basic_ack(conn: ChannelConnection, ch: Channel, m: spec.BasicAck) -> None:
    ch.ack(m.delivery_tag, m.multiple)


def basic_reject(conn: ChannelConnection, ch: Channel, m: spec.BasicReject) -> None:
    ch.nack(m.delivery_tag, False, m.requeue)


def basic_nack(conn: ChannelConnection, ch: Channel, m: spec.BasicNack) -> None:
    ch.nack(m.delivery_tag, m.multiple, m.requeue)


def basic_recover_async(conn: ChannelConnection, ch: Channel, m: spec.BasicRecoverAsync) -> None:
    ch.recover(m.requeue)


def basic_recover(conn: ChannelConnection, ch: Channel, m: spec.BasicRecover) -> None:
    ch.recover(m.requeue)
    conn.send(ch.number, spec.BasicRecoverOk())


def tx_select(conn: ChannelConnection, ch: Channel, m: spec.TxSelect) -> None:
    ch.tx_select()
    conn.send(ch.number, spec.TxSelectOk())


def tx_commit(conn: ChannelConnection, ch: Channel, m: spec.TxCommit) -> None:
    ch.tx_commit()
    conn.send(ch.number, spec.TxCommitOk())


def tx_rollback(conn: ChannelConnection, ch: Channel, m: spec.TxRollback) -> None:
    ch.tx_rollback()
    conn.send(ch.number, spec.TxRollbackOk())


def confirm_select(conn: ChannelConnection, ch: Channel, m: spec.ConfirmSelect) -> None:
    ch.confirm_select()
    if not m.nowait:
        conn.send(ch.number, spec.ConfirmSelectOk())


def access_request(conn: ChannelConnection, ch: Channel, m: spec.AccessRequest) -> None:
    conn.send(ch.number, spec.AccessRequestOk(ticket=1))


HANDLERS: dict[int, Handler] = {
    spec.ChannelFlow.INDEX: channel_flow,
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
