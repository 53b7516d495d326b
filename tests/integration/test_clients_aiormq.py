"""aiormq: the low-level asyncio client, method by method."""

from __future__ import annotations

import asyncio

import aiormq
import pytest


async def test_round_trip(amqp_url, names):
    conn = await aiormq.connect(amqp_url)
    try:
        ch = await conn.channel()
        exchange, queue = names.exchange(), names.queue()
        await ch.exchange_declare(exchange, exchange_type="direct")
        ok = await ch.queue_declare(queue)
        assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
        await ch.queue_bind(queue, exchange, routing_key="rk")
        await ch.confirm_delivery()
        for i in range(10):
            confirmation = await ch.basic_publish(
                str(i).encode(),
                exchange=exchange,
                routing_key="rk",
                properties=aiormq.spec.Basic.Properties(message_id=str(i)),
            )
            assert isinstance(confirmation, aiormq.spec.Basic.Ack)

        got = []
        done = asyncio.get_running_loop().create_future()

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            got.append((message.header.properties.message_id, message.body))
            await message.channel.basic_ack(message.delivery.delivery_tag)
            if len(got) == 10 and not done.done():
                done.set_result(None)

        await ch.basic_qos(prefetch_count=2)
        consume_ok = await ch.basic_consume(queue, on_message)
        assert consume_ok.consumer_tag
        await asyncio.wait_for(done, 5)
        assert got == [(str(i), str(i).encode()) for i in range(10)]
        cancel_ok = await ch.basic_cancel(consume_ok.consumer_tag)
        assert cancel_ok.consumer_tag == consume_ok.consumer_tag
        delete_ok = await ch.queue_delete(queue)
        assert delete_ok.message_count == 0
        await ch.exchange_delete(exchange)
    finally:
        await conn.close()


async def test_get_and_get_empty(amqp_url):
    conn = await aiormq.connect(amqp_url)
    try:
        ch = await conn.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        await ch.basic_publish(b"one", routing_key=q)
        await ch.basic_publish(b"two", routing_key=q)
        m = await ch.basic_get(q)
        assert m.body == b"one"
        assert m.delivery.message_count == 1
        await ch.basic_reject(m.delivery.delivery_tag, requeue=True)
        m = await ch.basic_get(q, no_ack=True)
        assert (m.body, m.delivery.redelivered) == (b"one", True)
        m = await ch.basic_get(q, no_ack=True)
        assert m.body == b"two"
        empty = await ch.basic_get(q)
        assert isinstance(empty.delivery, aiormq.spec.Basic.GetEmpty)
    finally:
        await conn.close()


async def test_channel_close_by_broker(amqp_url):
    conn = await aiormq.connect(amqp_url)
    try:
        ch = await conn.channel()
        with pytest.raises(aiormq.exceptions.ChannelNotFoundEntity) as ei:
            await ch.exchange_declare("it.aiormq.no-such-exchange", passive=True)
        assert ei.value.args[0] == (
            "NOT_FOUND - no exchange 'it.aiormq.no-such-exchange' in vhost '/'"
        )
        assert ch.is_closed
        assert not conn.is_closed
        ch2 = await conn.channel()
        await ch2.queue_declare("", exclusive=True)
    finally:
        await conn.close()


async def test_mandatory_return(amqp_url, names):
    conn = await aiormq.connect(amqp_url)
    try:
        ch = await conn.channel(on_return_raises=False)
        returned = asyncio.get_running_loop().create_future()
        ch.on_return_callbacks.add(lambda message: returned.done() or returned.set_result(message))
        x = names.exchange()
        await ch.exchange_declare(x, exchange_type="fanout")
        await ch.basic_publish(b"lost", exchange=x, routing_key="", mandatory=True)
        message = await asyncio.wait_for(returned, 5)
        assert message.body == b"lost"
        assert (message.delivery.reply_code, message.delivery.reply_text) == (312, "NO_ROUTE")
    finally:
        await conn.close()
