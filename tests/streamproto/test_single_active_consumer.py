"""Single active consumer for streams: Subscribe with ``single-active-consumer=true`` and a
``name``; one member of each group reads, the others wait for a ConsumerUpdate.

The rules are RabbitMQ 3.11+'s (its sac coordinator as of 3.13). RabbitMQ 3.10.8, the oracle
here, does not have the feature: it ignores the property and delivers to every member
(``test_members_on_rabbitmq_3_10_all_read`` pins that down), so the rest runs on leveret."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from raw_client import (
    Frame,
    RawClient,
    amqp_message,
    consumer_update_answer,
    publish,
    subscribe_body,
)
from rstream import (
    AMQPMessage,
    Consumer,
    ConsumerOffsetSpecification,
    OffsetSpecification,
    OffsetType,
    RouteType,
    SuperStreamConsumer,
    SuperStreamProducer,
    exceptions,
)
from rstream.superstream import SuperStreamCreationOption
from streamproto_helpers import consumer, producer, unique, wait_for

from leveret.broker import stream_session
from leveret.streamproto import frames as f

SAC = {"single-active-consumer": "true", "name": "group"}


def _updates(client: RawClient) -> list[Frame]:
    return [fr for fr in client.frames if fr.key == f.CONSUMER_UPDATE]


def _delivers(client: RawClient) -> list[Frame]:
    return [fr for fr in client.frames if fr.key == f.DELIVER]


def _first_offset(deliver: Frame) -> int:
    return int.from_bytes(deliver.body[1 + 24:1 + 32], "big")  # the chunk's first offset


async def _stream_with(port: int, count: int) -> str:
    stream = unique()
    client = await RawClient.connect(port)
    try:
        assert (await client.request(f.CREATE, f.string(stream) + f.properties({}))).code \
            == f.OK
        answer = await client.request(f.DECLARE_PUBLISHER, bytes((1,)) + f.string("") +
                                      f.string(stream))
        assert answer.code == f.OK
        client.send(publish(1, [(i, amqp_message(f"m{i}")) for i in range(count)]))
        await client.wait_for(lambda fr: fr.key == f.PUBLISH_CONFIRM)
    finally:
        await client.close()
    return stream


async def test_members_on_rabbitmq_3_10_all_read(target) -> None:
    stream = await _stream_with(target.stream_port, 2)
    a = await RawClient.connect(target.stream_port)
    b = await RawClient.connect(target.stream_port)
    try:
        assert (await a.request(f.SUBSCRIBE, subscribe_body(1, stream, SAC))).code == f.OK
        assert (await b.request(f.SUBSCRIBE, subscribe_body(1, stream, SAC))).code == f.OK
        if target.kind == "rabbitmq":  # no such feature in 3.10: both read, nobody is told
            await wait_for(lambda: bool(_delivers(a)) and bool(_delivers(b)))
            assert not _updates(a) and not _updates(b)
            return
        update = await a.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        assert not update.response and update.body[4:] == bytes((1, 1))  # sub 1, active
        update_b = await b.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        assert update_b.body[4:] == bytes((1, 0))  # sub 1, inactive
        await asyncio.sleep(0.3)
        assert not _delivers(a)  # nothing before the client says where to start
        a.send(consumer_update_answer(update.correlation, kind=1))
        b.send(consumer_update_answer(update_b.correlation, kind=3))
        await a.wait_for(lambda fr: fr.key == f.DELIVER)
        await asyncio.sleep(0.3)
        assert not _delivers(b)
    finally:
        await a.close()
        await b.close()


async def test_a_member_needs_a_name(leveret) -> None:
    stream = await _stream_with(leveret.stream_port, 0)
    client = await RawClient.connect(leveret.stream_port)
    try:
        answer = await client.request(f.SUBSCRIBE, subscribe_body(
            1, stream, {"single-active-consumer": "true"}))
        assert answer.code == f.PRECONDITION_FAILED  # (RabbitMQ 3.11+'s answer)
    finally:
        await client.close()


async def test_failover_resumes_from_the_stored_offset(leveret) -> None:
    """rstream's consumer_update_listener: the member that becomes active starts after the
    offset its predecessor stored, so nothing is read twice or lost."""
    stream = unique()
    async with producer(leveret) as p:
        await p.create_stream(stream)
        for i in range(10):
            await p.send_wait(stream, AMQPMessage(body=f"m{i}".encode()))
    got: dict[str, list[int]] = {"A": [], "B": []}
    events: list[tuple[str, bool]] = []
    consumers: dict[str, Consumer] = {}

    async def member(tag: str) -> None:
        c = consumer(leveret)
        await c.start()

        async def on_message(message: bytes, ctx: Any) -> None:
            got[tag].append(ctx.offset)
            await c.store_offset(stream, "group", ctx.offset)

        async def on_update(active: bool, ctx: Any) -> OffsetSpecification:
            events.append((tag, active))
            if not active:
                return OffsetSpecification(OffsetType.NEXT, 0)
            try:
                stored = await c.query_offset(stream, "group")
            except exceptions.OffsetNotFound:
                return OffsetSpecification(OffsetType.FIRST, 0)
            return OffsetSpecification(OffsetType.OFFSET, stored + 1)

        await c.subscribe(stream, on_message, properties=SAC, consumer_update_listener=on_update,
                          offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST))
        consumers[tag] = c

    await member("A")
    await wait_for(lambda: len(got["A"]) == 10)
    await member("B")
    await wait_for(lambda: ("B", False) in events)
    await asyncio.sleep(0.3)
    assert got["B"] == [] and events == [("A", True), ("B", False)]
    await consumers["A"].close()
    await wait_for(lambda: ("B", True) in events)
    async with producer(leveret) as p:
        for i in range(10, 15):
            await p.send_wait(stream, AMQPMessage(body=f"m{i}".encode()))
    await wait_for(lambda: len(got["B"]) == 5)
    await consumers["B"].close()
    assert got == {"A": list(range(10)), "B": list(range(10, 15))}


async def test_failover_when_the_active_connection_dies(leveret) -> None:
    stream = await _stream_with(leveret.stream_port, 3)
    a = await RawClient.connect(leveret.stream_port)
    b = await RawClient.connect(leveret.stream_port)
    try:
        await a.request(f.SUBSCRIBE, subscribe_body(1, stream, SAC))
        update = await a.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        a.send(consumer_update_answer(update.correlation, kind=1))
        await b.request(f.SUBSCRIBE, subscribe_body(7, stream, SAC))
        update_b = await b.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        assert update_b.body[4:] == bytes((7, 0))
        b.send(consumer_update_answer(update_b.correlation, kind=3))
        a.abort()  # no Unsubscribe, no Close
        activation = await b.wait_for(
            lambda fr: fr.key == f.CONSUMER_UPDATE and fr.body[4:] == bytes((7, 1)))
        b.send(consumer_update_answer(activation.correlation, kind=4, offset=2))
        deliver = await b.wait_for(lambda fr: fr.key == f.DELIVER)
        assert _first_offset(deliver) == 2
    finally:
        await a.close()
        await b.close()


async def test_answer_without_offset_and_credit_while_inactive(leveret) -> None:
    """An answer with offset type 0 (none) starts at Subscribe's offset specification; an
    inactive member's Credit is kept and answered "precondition failed", as in RabbitMQ."""
    stream = await _stream_with(leveret.stream_port, 4)
    a = await RawClient.connect(leveret.stream_port)
    b = await RawClient.connect(leveret.stream_port)
    try:
        await a.request(f.SUBSCRIBE, subscribe_body(1, stream, SAC, kind=4, offset=3))
        update = await a.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        a.send(consumer_update_answer(update.correlation, kind=0))
        assert _first_offset(await a.wait_for(lambda fr: fr.key == f.DELIVER)) == 3
        await b.request(f.SUBSCRIBE, subscribe_body(1, stream, SAC))
        await b.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        b.send(f.command(f.CREDIT, 1, bytes((1,)) + f.u16(5)))
        refused = await b.wait_for(lambda fr: fr.key == f.CREDIT)
        assert refused.response and refused.body == f.u16(f.PRECONDITION_FAILED) + b"\x01"
    finally:
        await a.close()
        await b.close()


async def test_an_unanswered_consumer_update_closes_the_connection(
        leveret, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_session, "REQUEST_TIMEOUT", 0.5)  # RabbitMQ's is 60 s
    stream = await _stream_with(leveret.stream_port, 0)
    client = await RawClient.connect(leveret.stream_port)
    try:
        await client.request(f.SUBSCRIBE, subscribe_body(1, stream, SAC))
        await client.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        await asyncio.wait_for(client.closed.wait(), 20)
    finally:
        await client.close()


async def test_super_stream_groups_spread_over_the_consumers(leveret) -> None:
    """Three partitions, two consumers: partition i's group activates member i % 2, so the
    second consumer takes partition 1 once the first has stepped down there; when the first
    leaves, the second takes all three."""
    name = unique("orders")
    kw: dict[str, Any] = {"port": leveret.stream_port, "username": "guest",
                          "password": "guest", "super_stream": name}
    events: list[tuple[str, str, bool]] = []
    got: dict[str, set[str]] = {}
    consumers: dict[str, SuperStreamConsumer] = {}

    async def key(message: AMQPMessage) -> str:
        return str(message.application_properties["id"])

    async def send(first: int, count: int) -> None:
        async with SuperStreamProducer(leveret.host, routing=RouteType.Hash,
                                       routing_extractor=key, **kw) as p:
            for i in range(first, first + count):
                await p.send(AMQPMessage(body=b"x", application_properties={"id": str(i)}))

    async def member(tag: str) -> None:
        c = SuperStreamConsumer(leveret.host, **kw)

        async def on_message(message: bytes, ctx: Any) -> None:
            got.setdefault(tag, set()).add(ctx.stream)

        async def on_update(active: bool, ctx: Any) -> OffsetSpecification:
            events.append((tag, ctx.stream, active))
            return OffsetSpecification(OffsetType.NEXT, 0)

        await c.start()
        await c.subscribe(on_message, consumer_update_listener=on_update, properties={
            "single-active-consumer": "true", "name": "billing", "super-stream": name})
        consumers[tag] = c

    async with SuperStreamProducer(
            leveret.host, routing_extractor=key,
            super_stream_creation_option=SuperStreamCreationOption(n_partitions=3), **kw):
        pass
    partitions = [f"{name}-{i}" for i in range(3)]
    try:
        await member("A")
        await wait_for(lambda: len(events) == 3)
        assert sorted(events) == [("A", p, True) for p in partitions]
        events.clear()
        await member("B")
        await wait_for(lambda: ("B", partitions[1], True) in events)
        await wait_for(lambda: len(events) == 5)
        assert events.index(("A", partitions[1], False)) < \
            events.index(("B", partitions[1], True))  # the former steps down first
        assert sorted(events) == sorted([("A", partitions[1], False),
                                         ("B", partitions[0], False),
                                         ("B", partitions[1], False),
                                         ("B", partitions[1], True),
                                         ("B", partitions[2], False)])
        await send(0, 60)
        await wait_for(lambda: got.get("A") == {partitions[0], partitions[2]}
                       and got.get("B") == {partitions[1]})
        events.clear()
        got.clear()
        await consumers.pop("A").close()
        await wait_for(lambda: len(events) == 2)
        assert sorted(events) == [("B", partitions[0], True), ("B", partitions[2], True)]
        await send(60, 60)
        await wait_for(lambda: got.get("B") == set(partitions))
        assert "A" not in got
    finally:
        for c in consumers.values():
            await c.close()


async def test_an_answer_with_an_unknown_offset_type_closes_the_connection(leveret) -> None:
    stream = await _stream_with(leveret.stream_port, 0)
    client = await RawClient.connect(leveret.stream_port)
    try:
        await client.request(f.SUBSCRIBE, subscribe_body(1, stream, SAC))
        update = await client.wait_for(lambda fr: fr.key == f.CONSUMER_UPDATE)
        client.send(consumer_update_answer(999, kind=1))  # not asked: ignored
        client.send(consumer_update_answer(update.correlation, kind=9))
        close = await client.wait_for(lambda fr: fr.key == f.CLOSE)
        assert close.code == f.UNKNOWN_FRAME
    finally:
        await client.close()
