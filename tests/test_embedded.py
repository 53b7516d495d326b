"""The embeddable broker: ``async with leveret.Broker(port=0)`` in the current loop."""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest

import leveret


async def test_async_with_broker_round_trip() -> None:
    async with leveret.Broker(port=0) as broker:
        assert broker.port != 0
        assert broker.url == f"amqp://guest:guest@127.0.0.1:{broker.port}/"
        connection = await aio_pika.connect(broker.url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("", exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"hi"), queue.name)
            message = await queue.get(timeout=5)
            assert message is not None and message.body == b"hi"
            await message.ack()


async def test_stop_closes_clients_with_connection_forced() -> None:
    broker = leveret.Broker(port=0)
    await broker.start()
    connection = await aiormq.connect(broker.url)
    await broker.stop()
    with pytest.raises(aiormq.exceptions.ConnectionClosed) as info:
        await asyncio.wait_for(connection.closing, 5)
    assert info.value.args[0] == 320
    assert "CONNECTION_FORCED" in info.value.args[1]


def test_public_api_is_pinned() -> None:
    assert sorted(leveret.__all__) == ["Broker", "__version__"]
