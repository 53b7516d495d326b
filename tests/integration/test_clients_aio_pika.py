"""aio-pika: robust connection, exchanges, async iteration, RPC-style patterns."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest


async def test_robust_connection_topic_and_iterator(amqp_url, names):
    conn = await aio_pika.connect_robust(amqp_url)
    try:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=10)
        exchange = await ch.declare_exchange(
            names.exchange(), aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await ch.declare_queue(names.queue(), durable=True)
        await queue.bind(exchange, "logs.#")
        for i in range(15):
            await exchange.publish(
                aio_pika.Message(
                    f"line {i}".encode(),
                    headers={"i": i},
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=f"logs.app{i % 3}.info",
            )
        await exchange.publish(aio_pika.Message(b"not a log"), routing_key="metrics.cpu")

        got = []
        async with queue.iterator() as it:
            async for message in it:
                async with message.process():
                    got.append((message.routing_key, message.headers["i"], message.body))
                if len(got) == 15:
                    break
        assert [i for _k, i, _b in got] == list(range(15))
        assert got[4] == ("logs.app1.info", 4, b"line 4")
        await queue.unbind(exchange, "logs.#")
        await queue.delete()
        await exchange.delete()
    finally:
        await conn.close()


async def test_consume_callback_with_reject_and_redelivery(amqp_url):
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        queue = await ch.declare_queue("", exclusive=True)
        done = asyncio.get_running_loop().create_future()
        seen = []

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append((message.body, message.redelivered))
            if not message.redelivered:
                await message.reject(requeue=True)
            else:
                await message.ack()
                if not done.done():
                    done.set_result(None)

        await queue.consume(on_message)
        await ch.default_exchange.publish(aio_pika.Message(b"retry me"), routing_key=queue.name)
        await asyncio.wait_for(done, 5)
        assert seen == [(b"retry me", False), (b"retry me", True)]
    finally:
        await conn.close()


async def test_exchange_to_exchange_and_get(amqp_url, names):
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        src = await ch.declare_exchange(names.exchange(), aio_pika.ExchangeType.FANOUT)
        dst = await ch.declare_exchange(names.exchange(), aio_pika.ExchangeType.DIRECT)
        await dst.bind(src)
        queue = await ch.declare_queue("", exclusive=True)
        await queue.bind(dst, routing_key="")
        await src.publish(aio_pika.Message(b"hop"), routing_key="")
        message = await queue.get(timeout=5, fail=True)
        await message.ack()
        assert message.body == b"hop"
        assert await queue.get(fail=False) is None
    finally:
        await conn.close()


async def test_channel_error_is_raised_and_connection_survives(amqp_url, names):
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity) as ei:
            await ch.declare_queue(names.queue(), passive=True)
        assert "NOT_FOUND - no queue" in str(ei.value)
        ch2 = await conn.channel()
        q = await ch2.declare_queue("", exclusive=True)
        assert q.name.startswith("amq.gen-")
    finally:
        await conn.close()


async def test_many_channels_concurrently(amqp_url):
    conn = await aio_pika.connect(amqp_url)
    try:

        async def work(i: int) -> bytes:
            ch = await conn.channel()
            q = await ch.declare_queue("", exclusive=True)
            await ch.default_exchange.publish(aio_pika.Message(str(i).encode()), q.name)
            m = await q.get(timeout=5)
            await m.ack()
            await ch.close()
            return m.body

        results = await asyncio.gather(*(work(i) for i in range(20)))
        assert results == [str(i).encode() for i in range(20)]
    finally:
        await conn.close()
