"""rstream against leveret's stream listener and against RabbitMQ's rabbitmq_stream plugin:
the same client-side scenarios, the same answers."""

from __future__ import annotations

import asyncio
import time

import pytest
from rstream import AMQPMessage, OffsetType, RawMessage, exceptions
from streamproto_helpers import (
    CLIENT_LEAKS_REFUSED_SOCKET,
    consumer,
    producer,
    read,
    unique,
    wait_for,
)

from leveret.streamproto import amqp10


@CLIENT_LEAKS_REFUSED_SOCKET
async def test_connect_and_bad_password(target) -> None:
    async with producer(target) as p:
        stream = unique()
        await p.create_stream(stream)
        assert await p.stream_exists(stream)
        await p.delete_stream(stream)
        assert not await p.stream_exists(stream)
    with pytest.raises(exceptions.AuthenticationFailure):
        async with producer(target, password="wrong"):
            pass


@CLIENT_LEAKS_REFUSED_SOCKET
async def test_unknown_vhost_is_refused(target) -> None:
    with pytest.raises(exceptions.VirtualHostAccessFailure):
        async with producer(target, vhost="no-such-vhost"):
            pass


async def test_create_twice_and_delete_missing(target) -> None:
    stream = unique()
    async with producer(target) as p:
        await p.create_stream(stream, arguments={"max-length-bytes": 10_000_000,
                                                 "max-age": "1h"})
        with pytest.raises(exceptions.StreamAlreadyExists):
            await p.create_stream(stream, arguments={"max-length-bytes": 10_000_000,
                                                     "max-age": "1h"})
        with pytest.raises(exceptions.PreconditionFailed):  # different arguments
            await p.create_stream(stream, exists_ok=True)
        for bad in ("", "amq.stream"):
            with pytest.raises(exceptions.PreconditionFailed):
                await p.create_stream(bad)
        with pytest.raises(exceptions.PreconditionFailed):
            await p.create_stream(unique(), arguments={"initial-cluster-size": "0"})
        await p.delete_stream(stream)
        with pytest.raises(exceptions.StreamDoesNotExist):
            await p.delete_stream(stream)


async def test_publish_with_confirms_then_read_every_offset_spec(target) -> None:
    stream = unique()
    async with producer(target) as p:
        await p.create_stream(stream)
        confirmed: list[int] = []
        for i in range(10):
            await p.send_wait(stream, AMQPMessage(body=f"m{i}".encode()))
        await asyncio.sleep(0.01)  # (timestamps are compared in whole milliseconds)
        before_last = int(time.time() * 1000)
        await asyncio.sleep(0.05)
        for i in range(10, 20):
            await p.send(stream, AMQPMessage(body=f"m{i}".encode()),
                         on_publish_confirm=lambda c: confirmed.append(c.message_id))
        await wait_for(lambda: len(confirmed) == 10)
    first = await read(target, stream, OffsetType.FIRST, count=20)
    assert [o for o, _ in first] == list(range(20))
    assert [amqp10.decode(m)[-1].value[1].value for _, m in first] == \
        [f"m{i}".encode() for i in range(20)]
    at = await read(target, stream, OffsetType.OFFSET, 15, count=5)
    assert [o for o, _ in at][:5] == [15, 16, 17, 18, 19]
    stamped = await read(target, stream, OffsetType.TIMESTAMP, before_last, count=10)
    assert [o for o, _ in stamped] == list(range(10, 20))
    last = await read(target, stream, OffsetType.LAST, count=1)
    assert last[-1][0] == 19  # the last chunk holds the newest entry
    assert last[0][0] >= 10


async def test_next_gets_only_new_entries(target) -> None:
    stream = unique()
    got: list[int] = []
    async with producer(target) as p:
        await p.create_stream(stream)
        await p.send_wait(stream, AMQPMessage(body=b"old"))
        async with consumer(target) as c:
            async def on_message(msg, ctx) -> None:
                got.append(ctx.offset)
            from rstream import ConsumerOffsetSpecification
            await c.subscribe(stream, on_message, decoder=lambda b: b,
                              offset_specification=ConsumerOffsetSpecification(
                                  OffsetType.NEXT, None))
            await asyncio.sleep(0.3)
            await p.send_wait(stream, AMQPMessage(body=b"new"))
            await wait_for(lambda: got == [1])


async def test_deduplication_across_a_reconnect(target) -> None:
    stream = unique()
    async with producer(target) as p:
        await p.create_stream(stream)
    for round_ in range(2):  # the second connection re-sends ids 1..5 and adds 6..8
        async with producer(target) as p:
            ids = range(1, 6) if round_ == 0 else range(1, 9)
            for i in ids:
                await p.send_wait(stream, RawMessage(f"m{i}".encode(), publishing_id=i),
                                  publisher_name="producer-1")
            client = await p.default_client
            assert await client.query_publisher_sequence(stream, "producer-1") == ids[-1]
    got = await read(target, stream, OffsetType.FIRST, count=8, settle=0.3)
    assert [m for _, m in got] == [f"m{i}".encode() for i in range(1, 9)]


async def test_store_and_query_offset(target) -> None:
    stream = unique()
    async with producer(target) as p:
        await p.create_stream(stream)
    async with consumer(target) as c:
        with pytest.raises(exceptions.OffsetNotFound):
            await c.query_offset(stream, "reader-1")
        await c.store_offset(stream, "reader-1", 42)
        await wait_for_offset(c, stream, "reader-1", 42)
        await c.store_offset(stream, "reader-1", 43)
        await wait_for_offset(c, stream, "reader-1", 43)
    async with consumer(target) as c:  # another connection sees it
        assert await c.query_offset(stream, "reader-1") == 43


async def wait_for_offset(c, stream: str, name: str, offset: int) -> None:
    for _ in range(200):  # StoreOffset has no answer: ask until it shows
        try:
            if await c.query_offset(stream, name) == offset:
                return
        except exceptions.OffsetNotFound:
            pass
        await asyncio.sleep(0.02)
    raise AssertionError("stored offset never showed")


async def test_credit_flow_paces_the_deliveries(target) -> None:
    """rstream credits one chunk per chunk handled: a slow handler is sent no more than
    its credit ahead, and everything arrives in order."""
    stream = unique()
    async with producer(target) as p:
        await p.create_stream(stream)
        for i in range(30):
            await p.send_wait(stream, AMQPMessage(body=f"m{i}".encode()))
    got: list[int] = []

    async def slow(msg, ctx) -> None:
        got.append(ctx.offset)
        await asyncio.sleep(0.005)

    from rstream import ConsumerOffsetSpecification
    async with consumer(target) as c:
        await c.subscribe(stream, slow, decoder=lambda b: b, initial_credit=1,
                          offset_specification=ConsumerOffsetSpecification(
                              OffsetType.FIRST, None))
        await wait_for(lambda: len(got) >= 30)
    assert got[:30] == list(range(30))


async def test_publish_to_a_missing_stream_is_refused(target) -> None:
    async with producer(target) as p:
        with pytest.raises(exceptions.StreamDoesNotExist):
            await p.send_wait(unique("missing"), AMQPMessage(body=b"x"))
