"""Transactions: tx.select / tx.commit / tx.rollback for publishes and acks."""

from __future__ import annotations

import pika
import pytest
from pamqp import commands as C

from ._util import declare_temp_queue, drain


def _count(conn, q: str) -> int:
    return conn.channel().queue_declare(q, passive=True).method.message_count


def test_select_commit_rollback_ok(raw):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Tx.Select(), C.Tx.SelectOk, 1)
    r.rpc(C.Tx.Select(), C.Tx.SelectOk, 1)  # again: fine
    r.rpc(C.Tx.Commit(), C.Tx.CommitOk, 1)  # empty transaction
    r.rpc(C.Tx.Rollback(), C.Tx.RollbackOk, 1)


def test_publishes_are_invisible_until_commit(conn, names):
    q = names.queue()
    observer = conn.channel()
    observer.queue_declare(q)
    ch = conn.channel()
    ch.tx_select()
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert observer.basic_get(q)[0] is None
    ch.tx_commit()
    assert drain(observer, q) == [b"0", b"1", b"2"]


def test_rollback_drops_publishes(conn, names):
    q = names.queue()
    observer = conn.channel()
    observer.queue_declare(q)
    ch = conn.channel()
    ch.tx_select()
    ch.basic_publish("", q, b"dropped")
    ch.tx_rollback()
    ch.basic_publish("", q, b"kept")
    ch.tx_commit()
    assert drain(observer, q) == [b"kept"]


def test_channel_stays_transactional(conn, names):
    q = names.queue()
    observer = conn.channel()
    observer.queue_declare(q)
    ch = conn.channel()
    ch.tx_select()
    for round_ in range(3):
        ch.basic_publish("", q, str(round_).encode())
        assert observer.basic_get(q)[0] is None
        ch.tx_commit()
        assert drain(observer, q) == [str(round_).encode()]


def test_closing_the_channel_discards_uncommitted_publishes(conn, names):
    q = names.queue()
    observer = conn.channel()
    observer.queue_declare(q)
    ch = conn.channel()
    ch.tx_select()
    ch.basic_publish("", q, b"never")
    ch.close()
    assert drain(observer, q) == []


def test_acks_take_effect_on_commit(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    for i in range(2):
        ch.basic_publish("", q, str(i).encode())
    ch.tx_select()
    tag = ch.basic_get(q)[0].delivery_tag
    ch.basic_ack(tag)
    ch.tx_commit()
    ch.close()  # nothing unacked: nothing comes back
    ch = conn.channel()
    assert drain(ch, q) == [b"1"]


def test_rollback_discards_acks_but_messages_stay_unacked(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    ch.basic_publish("", q, b"m")
    ch.tx_select()
    method, _p, _b = ch.basic_get(q)
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    # not requeued by the rollback: still unacked on this channel
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0
    # the ack was discarded, so the tag can be acked again
    ch.basic_ack(method.delivery_tag)
    ch.tx_commit()
    ch.close()
    assert drain(conn.channel(), q) == []


def test_rolled_back_ack_message_returns_when_channel_closes(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    ch.basic_publish("", q, b"m")
    ch.tx_select()
    method, _p, _b = ch.basic_get(q)
    ch.basic_ack(method.delivery_tag)
    ch.tx_rollback()
    ch.close()
    method, _p, body = conn.channel().basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"m", True)


def test_reject_in_transaction(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    ch.basic_publish("", q, b"m")
    ch.tx_select()
    method, _p, _b = ch.basic_get(q)
    ch.basic_reject(method.delivery_tag, requeue=True)
    other = conn.channel()
    assert other.basic_get(q)[0] is None  # the requeue waits for the commit
    ch.tx_commit()
    method, _p, body = other.basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"m", True)


def test_mandatory_return_is_sent_on_commit(raw, names):
    r = raw()
    r.open_channel(1)
    x = names.exchange()
    r.rpc(C.Exchange.Declare(exchange=x, exchange_type="direct"), C.Exchange.DeclareOk, 1)
    r.rpc(C.Tx.Select(), C.Tx.SelectOk, 1)
    r.publish(1, b"unroutable", exchange=x, routing_key="none", mandatory=True)
    with pytest.raises(TimeoutError):
        r.recv_frame(timeout=0.3)
    r.send(C.Tx.Commit(), 1)
    ret = r.expect(C.Basic.Return, 1)
    assert (ret.reply_code, ret.reply_text) == (312, "NO_ROUTE")
    assert r.read_content(1)[1] == b"unroutable"
    r.expect(C.Tx.CommitOk, 1)


def test_rollback_discards_returns(raw, names):
    r = raw()
    r.open_channel(1)
    x = names.exchange()
    r.rpc(C.Exchange.Declare(exchange=x, exchange_type="direct"), C.Exchange.DeclareOk, 1)
    r.rpc(C.Tx.Select(), C.Tx.SelectOk, 1)
    r.publish(1, b"unroutable", exchange=x, routing_key="none", mandatory=True)
    r.rpc(C.Tx.Rollback(), C.Tx.RollbackOk, 1)
    with pytest.raises(TimeoutError):
        r.recv_frame(timeout=0.3)


def test_publish_to_missing_exchange_fails_at_once(raw, names):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Tx.Select(), C.Tx.SelectOk, 1)
    x = names.exchange()
    r.publish(1, b"m", exchange=x, routing_key="k")
    close = r.expect_channel_close(1)
    assert close.reply_code == 404
    assert close.reply_text == f"NOT_FOUND - no exchange '{x}' in vhost '/'"


def test_commit_without_select(channel):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.tx_commit()
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"


def test_rollback_without_select(channel):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.tx_rollback()
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"
