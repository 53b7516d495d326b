"""Publisher confirms: confirm.select, basic.ack (single and multiple), mandatory + confirms,
with raw frames, pika BlockingConnection and aio-pika."""

from __future__ import annotations

import asyncio

import aio_pika
import pika
import pytest
from pamqp import commands as C

from ._util import declare_temp_queue, drain


def _collect_acks(r, channel: int, count: int) -> set[int]:
    """Read basic.ack frames until every tag 1..count is confirmed; returns the acked set."""
    acked: set[int] = set()
    last = 0
    while len(acked) < count:
        ack = r.expect(C.Basic.Ack, channel)
        assert ack.delivery_tag > last, "acks arrive in increasing tag order"
        if ack.multiple:
            acked.update(range(1, ack.delivery_tag + 1))
        else:
            acked.add(ack.delivery_tag)
        last = ack.delivery_tag
    return acked


def test_confirm_select_raw(raw):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)  # again: fine


def test_confirm_select_nowait(raw):
    r = raw()
    r.open_channel(1)
    r.send(C.Confirm.Select(nowait=True), 1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.publish(1, b"m", routing_key=q)
    ack = r.expect(C.Basic.Ack, 1)
    assert (ack.delivery_tag, ack.multiple) == (1, False)


def test_confirm_delivery_tags_count_from_one(raw):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    for i in range(3):
        r.publish(1, str(i).encode(), routing_key=q)
        ack = r.expect(C.Basic.Ack, 1)
        assert ack.delivery_tag == i + 1


def test_confirms_for_many_publishes(raw):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    n = 500
    for i in range(n):
        r.publish(1, str(i).encode(), routing_key=q)
    assert _collect_acks(r, 1, n) == set(range(1, n + 1))


def test_unroutable_is_confirmed(raw, names):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    x = names.exchange()
    r.rpc(C.Exchange.Declare(exchange=x, exchange_type="direct"), C.Exchange.DeclareOk, 1)
    r.publish(1, b"nowhere", exchange=x, routing_key="none")
    ack = r.expect(C.Basic.Ack, 1)
    assert ack.delivery_tag == 1


def test_mandatory_return_comes_before_ack(raw, names):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    x = names.exchange()
    r.rpc(C.Exchange.Declare(exchange=x, exchange_type="direct"), C.Exchange.DeclareOk, 1)
    r.publish(1, b"nowhere", exchange=x, routing_key="none", mandatory=True)
    ret = r.expect(C.Basic.Return, 1)
    assert (ret.reply_code, ret.reply_text) == (312, "NO_ROUTE")
    _header, body = r.read_content(1)
    assert body == b"nowhere"
    ack = r.expect(C.Basic.Ack, 1)
    assert (ack.delivery_tag, ack.multiple) == (1, False)


def test_confirm_counts_publishes_to_all_destinations(raw, names):
    """A message routed to several queues is confirmed once."""
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    x = names.exchange()
    r.rpc(C.Exchange.Declare(exchange=x, exchange_type="fanout"), C.Exchange.DeclareOk, 1)
    for _ in range(3):
        q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
        r.rpc(C.Queue.Bind(queue=q, exchange=x), C.Queue.BindOk, 1)
    r.publish(1, b"fan", exchange=x)
    r.publish(1, b"fan2", exchange=x)
    assert _collect_acks(r, 1, 2) == {1, 2}
    with pytest.raises(TimeoutError):
        r.recv_frame(timeout=0.3)


def test_persistent_message_to_durable_queue_is_confirmed(raw, names):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    q = names.queue()
    r.rpc(C.Queue.Declare(queue=q, durable=True), C.Queue.DeclareOk, 1)
    r.publish(1, b"persistent", routing_key=q, properties={"delivery_mode": 2})
    assert r.expect(C.Basic.Ack, 1).delivery_tag == 1


def test_publish_to_missing_exchange_in_confirm_mode(raw, names):
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    x = names.exchange()
    r.publish(1, b"m", exchange=x, routing_key="k")
    close = r.expect_channel_close(1)
    assert (close.reply_code, close.class_id, close.method_id) == (404, 60, 40)
    assert close.reply_text == f"NOT_FOUND - no exchange '{x}' in vhost '/'"


def test_reject_publish_overflow_nacks(raw, names):
    """x-overflow=reject-publish: the publish that does not fit is nacked."""
    r = raw()
    r.open_channel(1)
    r.rpc(C.Confirm.Select(), C.Confirm.SelectOk, 1)
    q = names.queue()
    r.rpc(
        C.Queue.Declare(queue=q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}),
        C.Queue.DeclareOk,
        1,
    )
    r.publish(1, b"fits", routing_key=q)
    assert r.expect(C.Basic.Ack, 1).delivery_tag == 1
    r.publish(1, b"rejected", routing_key=q)
    nack = r.expect(C.Basic.Nack, 1)
    # (RabbitMQ sets multiple and requeue here: tag 1 was acked already, and requeue keeps the
    # method's default; neither means anything more to the publisher)
    assert nack.delivery_tag == 2
    assert r.drain(1, q) == [b"fits"]


# -- pika ------------------------------------------------------------------------------------------


def test_pika_confirm_delivery(channel):
    channel.confirm_delivery()
    q = declare_temp_queue(channel)
    for i in range(10):
        channel.basic_publish("", q, str(i).encode())  # raises unless acked
    assert channel.queue_declare(q, passive=True).method.message_count == 10


def test_pika_confirm_mandatory_unroutable(channel, names):
    channel.confirm_delivery()
    x = names.exchange()
    channel.exchange_declare(x, "direct")
    with pytest.raises(pika.exceptions.UnroutableError) as ei:
        channel.basic_publish(x, "none", b"m", mandatory=True)
    [returned] = ei.value.messages
    assert returned.method.reply_code == 312
    assert returned.body == b"m"
    # non-mandatory unroutable is simply acked
    channel.basic_publish(x, "none", b"m2")


def test_pika_confirm_nack(channel, names):
    channel.confirm_delivery()
    q = names.queue()
    channel.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.basic_publish("", q, b"fits")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", q, b"rejected")


# -- aio-pika --------------------------------------------------------------------------------------


async def test_aio_pika_publisher_confirms(amqp_url, names):
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        queue = await ch.declare_queue(names.queue())
        confirmations = await asyncio.gather(
            *[
                ch.default_exchange.publish(aio_pika.Message(body=str(i).encode()), queue.name)
                for i in range(50)
            ]
        )
        assert all(type(c).__name__ == "Ack" for c in confirmations)
        declared = await ch.declare_queue(queue.name, passive=True)
        assert declared.declaration_result.message_count == 50
    finally:
        await conn.close()


async def test_aio_pika_mandatory_with_confirms(amqp_url, names):
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await ch.declare_exchange(names.exchange(), aio_pika.ExchangeType.DIRECT)
        with pytest.raises(aio_pika.exceptions.DeliveryError) as ei:
            await exchange.publish(aio_pika.Message(body=b"lost"), "none", mandatory=True)
        assert ei.value.message.body == b"lost"
        assert ei.value.frame.reply_code == 312
    finally:
        await conn.close()


def test_confirms_and_get(channel):
    channel.confirm_delivery()
    q = declare_temp_queue(channel)
    channel.basic_publish("", q, b"confirmed")
    assert drain(channel, q) == [b"confirmed"]
