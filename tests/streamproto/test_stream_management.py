"""The management API's view of stream-protocol connections, against RabbitMQ 3.10.8 with
rabbitmq_stream_management: the same clients (a plain producer, a TLS consumer) on both,
then the same requests, comparing what each answers (status, keys, JSON types, and the
values that must agree: names, users, counts, TLS details). Also /api/connections and
/api/consumers, which list stream connections and subscriptions too, a stream queue's
consumers and consumer_details, which count its subscriptions, and DELETE, which closes
the socket without a Close frame."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import aiohttp
import pytest
from raw_client import RawClient, subscribe_body
from rstream import AMQPMessage, ConsumerOffsetSpecification, OffsetType
from streamproto_helpers import client_context, consumer, producer, tls_broker, unique
from tls_certificates import Certs

from leveret.streamproto import frames as f

# Erlang VM internals RabbitMQ shows and leveret has no counterpart for.
ERLANG = {"garbage_collection", "reductions", "reductions_details"}
ENDPOINTS = ("/api/stream/connections", "/api/stream/connections/%2F",
             "/api/stream/publishers", "/api/stream/publishers/%2F",
             "/api/stream/consumers", "/api/stream/consumers/%2F")


@dataclass
class Side:
    """One broker with the same clients connected: where to ask, what to compare."""

    kind: str
    http: str
    stream_port: int
    tls_port: int
    stream: str = ""
    amqp_url: str = ""


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape(value: Any, path: str = "") -> dict[str, str]:
    """Each key path's JSON type; lists by their first item, client properties and
    consumer properties as opaque maps."""
    if isinstance(value, list):
        return shape(value[0], path + "[]") if value else {path: "array"}
    if isinstance(value, dict) and not path.endswith(("client_properties", "properties")):
        found: dict[str, str] = {}
        for key, item in value.items():
            if key not in ERLANG:
                found.update(shape(item, f"{path}.{key}"))
        return found
    return {path: json_type(value)}


def shape_problems(ours: dict[str, str], theirs: dict[str, str]) -> list[str]:
    return [f"{k}: {ours.get(k)} here, {theirs.get(k)} in RabbitMQ"
            for k in sorted(set(ours) | set(theirs))
            if ours.get(k) != theirs.get(k) and "null" not in (ours.get(k), theirs.get(k))]


async def get(session: aiohttp.ClientSession, side: Side, path: str) -> tuple[int, Any]:
    async with session.get(side.http + path) as reply:
        return reply.status, await reply.json(content_type=None)


async def wait_for_rows(session: aiohttp.ClientSession, side: Side, path: str,
                        wanted: Any, timeout: float = 30.0) -> Any:
    """The answer once ``wanted(rows)`` holds (RabbitMQ shows statistics after its next
    emission, every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        status, rows = await get(session, side, path)
        if status == 200 and wanted(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{side.kind} {path}: {status} {rows}")
        await asyncio.sleep(0.25)


@pytest.fixture
async def leveret_side(tmp_path: Path, stream_certs: Certs) -> AsyncIterator[Side]:
    broker = tls_broker(stream_certs, tmp_path / "data")
    broker.management_port = 0
    await broker.start()
    try:
        yield Side("leveret", (broker.management_url or "").rstrip("/"),
                   broker.stream_port or 0, broker.stream_tls_port or 0,
                   amqp_url=broker.url)
    finally:
        await broker.stop()


@pytest.fixture
def rabbit_side(stream_rabbit: Any) -> Side:
    return Side("rabbitmq", stream_rabbit.http, stream_rabbit.stream_port,
                stream_rabbit.port + 2, amqp_url=stream_rabbit.url)


def auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}


async def with_clients(side: Side, certs: Certs) -> dict[str, Any]:
    """A named plain producer that publishes 10 confirmed messages, a TLS consumer that
    reads them, both left open; then every endpoint's answer."""
    side.stream = unique("mgmt")
    t = type("T", (), {"host": "127.0.0.1", "stream_port": side.stream_port})()
    tls = type("T", (), {"host": "localhost", "stream_port": side.tls_port})()
    p = producer(t, connection_name="mgmt-producer")
    await p.start()
    c = consumer(tls, ssl_context=client_context(certs), connection_name="mgmt-consumer")
    got: list[int] = []
    try:
        await p.create_stream(side.stream)
        for i in range(10):
            await p.send_wait(side.stream, AMQPMessage(body=f"m{i}".encode()),
                              publisher_name="mgmt-pub")
        await c.start()

        async def on_message(msg: bytes, ctx: Any) -> None:
            got.append(ctx.offset)

        await c.subscribe(side.stream, on_message, subscriber_name="mgmt-sub",
                          offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST))
        async with aiohttp.ClientSession(headers=auth()) as session:
            await wait_for_rows(session, side, "/api/stream/consumers",
                                lambda rows: any(r["consumed"] >= 10 for r in rows))
            await wait_for_rows(session, side, "/api/stream/publishers",
                                lambda rows: any(r["confirmed"] >= 10 for r in rows))
            await wait_for_rows(session, side, "/api/stream/connections",
                                lambda rows: len(rows) >= 2 and all(
                                    "recv_oct" in r for r in rows))
            answers = {path: await get(session, side, path) for path in ENDPOINTS}
            for row in answers["/api/stream/connections"][1]:
                name = quote(row["name"], safe="")
                label = row["client_properties"].get("connection_name")
                for tail in ("", "/publishers", "/consumers"):
                    answers[f"{{{label}}}{tail}"] = await get(
                        session, side, f"/api/stream/connections/%2F/{name}{tail}")
                answers[f"/api/connections/{{{label}}}"] = await get(
                    session, side, f"/api/connections/{name}")
            for path in ("/api/connections", "/api/consumers",
                         "/api/stream/connections/%2F/nosuch",
                         "/api/stream/connections/no-vhost",
                         "/api/stream/publishers/%2F/no-such-stream"):
                answers[path] = await get(session, side, path)
            answers["disable_stats"] = await get(
                session, side, "/api/stream/publishers?disable_stats=true")
    finally:
        await c.close()
        await p.delete_stream(side.stream)
        await p.close()
    return answers


async def test_the_api_answers_as_rabbitmq(leveret_side: Side, rabbit_side: Side,
                                           stream_certs: Certs) -> None:
    ours = await with_clients(leveret_side, stream_certs)
    theirs = await with_clients(rabbit_side, stream_certs)
    problems = []
    for path in sorted(theirs):
        (status, body), (their_status, their_body) = ours.get(path, (None, None)), \
            theirs[path]
        if status != their_status:
            problems.append(f"{path}: {status} here, {their_status} in RabbitMQ")
        elif status == 200:
            problems += [f"{path} {p}" for p in shape_problems(shape(body), shape(their_body))]
    assert not problems, "\n".join(problems)

    def the(answers: dict[str, Any], path: str, key: str) -> list[Any]:
        return sorted(str(row[key]) for row in answers[path][1])

    for path, key in (("/api/stream/publishers", "published"),
                      ("/api/stream/publishers", "confirmed"),
                      ("/api/stream/publishers", "reference"),
                      ("/api/stream/consumers", "consumed"),
                      ("/api/stream/connections", "protocol"),
                      ("/api/stream/connections", "user_provided_name"),
                      ("/api/stream/connections", "ssl"),
                      ("/api/stream/connections", "ssl_protocol"),
                      ("/api/stream/connections", "peer_cert_subject"),
                      ("/api/stream/connections", "auth_mechanism"),
                      ("/api/consumers", "consumer_tag")):
        assert the(ours, path, key) == the(theirs, path, key), (path, key)
    for answers in (ours, theirs):  # (rstream's consumer has a locator connection too)
        listed = [r for r in answers["/api/connections"][1] if r["protocol"] == "stream"]
        assert len(listed) == len(answers["/api/stream/connections"][1]) >= 2


async def test_delete_closes_the_socket_without_a_close_frame(
        leveret_side: Side, rabbit_side: Side) -> None:
    for side in (leveret_side, rabbit_side):
        for route in ("/api/stream/connections/%2F/", "/api/connections/"):
            doomed = f"doomed-{side.kind}"
            reader, writer = await _open(side.stream_port, name=doomed)

            def named(row: dict[str, Any], doomed: str = doomed) -> bool:
                return bool(row["client_properties"].get("connection_name") == doomed)

            async with aiohttp.ClientSession(headers=auth()) as session:
                rows = await wait_for_rows(session, side, "/api/stream/connections",
                                           lambda rows: any(named(r) for r in rows))
                name = next(r["name"] for r in rows if named(r))
                async with session.delete(side.http + route + quote(name, safe=""),
                                          headers={"X-Reason": "bye"}) as reply:
                    assert reply.status == 204, (side.kind, route)
            assert await reader.read() == b"", (side.kind, route)  # closed, no frame
            writer.close()


async def _open(port: int, name: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection through Open, one step at a time (RabbitMQ wants its Tune
    answered before anything else)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def frame() -> int:
        size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 10), "big")
        return int.from_bytes((await reader.readexactly(size))[:2], "big")

    plain = b"\0guest\0guest"
    for key, body in ((f.PEER_PROPERTIES, f.properties({"connection_name": name})),
                      (f.SASL_HANDSHAKE, b""),
                      (f.SASL_AUTHENTICATE, f.string("PLAIN") + f.bytes_field(plain))):
        writer.write(f.request(key, 1, body))
        assert await frame() == key | f.RESPONSE
    assert await frame() == f.TUNE
    writer.write(f.command(f.TUNE, 1, f.u32(1 << 20) + f.u32(0)))
    writer.write(f.request(f.OPEN, 2, f.string("/")))
    assert await frame() == f.OPEN | f.RESPONSE
    return reader, writer


async def _queue_consumers(session: aiohttp.ClientSession, side: Side, stream: str,
                           count: int) -> dict[str, Any]:
    """What /api/queues says of ``stream``'s consumers once it counts ``count`` (RabbitMQ
    shows a subscription after its next statistics emission)."""
    path = f"/api/queues/%2F/{quote(stream, safe='')}"
    item = await wait_for_rows(session, side, path, lambda q: q.get("consumers") == count
                               and len(q.get("consumer_details", [])) == count)
    rows = await wait_for_rows(session, side, "/api/queues/%2F",
                               lambda rows: [r.get("consumers") for r in rows
                                             if r["name"] == stream] == [count])
    [row] = [r for r in rows if r["name"] == stream]
    # (RabbitMQ 3.10 shows an AMQP 0-9-1 consumer of a stream inactive, "active": false
    # with activity_status "up", as its rabbit_stream_queue registers it; leveret shows it
    # active, which it is: compared for subscriptions only)
    details = sorted(
        (d["consumer_tag"], d["ack_required"], d["prefetch_count"], d["exclusive"],
         d["active"] if d["consumer_tag"].startswith("stream.") else None,
         d["activity_status"], str(sorted(d["arguments"].items())),
         sorted(d["channel_details"]), d["queue"]["name"] == stream)
        for d in item["consumer_details"])
    return {"consumers": item["consumers"], "listed": row["consumers"],
            "readers": sum(item["readers"].values()), "details": details}


async def stream_queue_consumers(side: Side) -> list[dict[str, Any]]:
    """A stream read by an AMQP 0-9-1 consumer and two subscriptions (one with
    properties), then by one subscription fewer: /api/queues' view each time."""
    stream = unique("qcons")
    t = type("T", (), {"host": "127.0.0.1", "stream_port": side.stream_port})()
    p = producer(t)
    await p.start()
    readers = [consumer(t, connection_name=f"reader-{i}") for i in range(2)]
    amqp = await aio_pika.connect(side.amqp_url)
    seen = []
    try:
        await p.create_stream(stream)
        for i in range(3):
            await p.send_wait(stream, AMQPMessage(body=f"m{i}".encode()))
        channel = await amqp.channel()
        await channel.set_qos(10)
        queue = await channel.get_queue(stream, ensure=False)

        async def on_delivery(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()

        tag = await queue.consume(on_delivery, consumer_tag="amqp-reader",
                                  arguments={"x-stream-offset": "first"})

        async def on_message(msg: bytes, ctx: Any) -> None:
            pass

        first = ConsumerOffsetSpecification(OffsetType.FIRST)
        for reader, properties in zip(readers, ({"purpose": "audit"}, {}), strict=True):
            await reader.start()
            await reader.subscribe(stream, on_message, offset_specification=first,
                                   properties=properties)
        async with aiohttp.ClientSession(headers=auth()) as session:
            seen.append(await _queue_consumers(session, side, stream, 3))
            await readers.pop(0).close()
            seen.append(await _queue_consumers(session, side, stream, 2))
            # (RabbitMQ 3.10 keeps listing a stream's AMQP 0-9-1 consumer whose channel
            # closed, in /api/consumers too; cancelled, it goes)
            await queue.cancel(tag)
            seen.append(await _queue_consumers(session, side, stream, 1))
    finally:
        for reader in readers:
            await reader.close()
        await amqp.close()
        await p.delete_stream(stream)
        await p.close()
    return seen


async def test_a_stream_queue_counts_its_subscriptions_as_rabbitmq(
        leveret_side: Side, rabbit_side: Side) -> None:
    ours = await stream_queue_consumers(leveret_side)
    theirs = await stream_queue_consumers(rabbit_side)
    # (RabbitMQ 3.10's readers, osiris's count, does not drop when a stream-protocol
    # reader's connection closes: compared while all three read)
    assert [r.pop("readers") for r in ours] == [3, 2, 1]
    their_readers = [r.pop("readers") for r in theirs]
    assert their_readers[0] == 3
    assert ours == theirs
    assert [d[0] for d in ours[0]["details"]] == ["amqp-reader", "stream.subid-0",
                                                  "stream.subid-0"]


async def test_overview_and_single_active_subscriptions(leveret_side: Side) -> None:
    """Each subscription counts once in the overview's and /metrics' totals; a single
    active consumer's waiting members are shown inactive (RabbitMQ 3.11's statuses)."""
    side = leveret_side
    stream = unique("sac")
    sac = {"single-active-consumer": "true", "name": "group"}
    t = type("T", (), {"host": "127.0.0.1", "stream_port": side.stream_port})()
    p = producer(t)
    await p.start()
    members = [await RawClient.connect(side.stream_port) for _ in range(2)]
    try:
        await p.create_stream(stream)
        for client in members:
            answer = await client.request(f.SUBSCRIBE, subscribe_body(1, stream, sac))
            assert answer.code == f.OK
        async with aiohttp.ClientSession(headers=auth()) as session:
            item = await wait_for_rows(session, side, f"/api/queues/%2F/{stream}",
                                       lambda q: q["consumers"] == 2)
            states = [(d["active"], d["activity_status"], d["arguments"])
                      for d in item["consumer_details"]]
            assert sorted(states, key=str) == [(False, "waiting", sac),
                                               (True, "single_active", sac)]
            _, overview = await get(session, side, "/api/overview")
            assert overview["object_totals"]["consumers"] == 2
            async with session.get(side.http + "/metrics") as reply:
                text = await reply.text()
            assert "\nrabbitmq_consumers 2.0\n" in text
            assert f'rabbitmq_queue_consumers{{queue="{stream}",vhost="/"}} 2.0' in text
    finally:
        for client in members:
            await client.close()
        await p.delete_stream(stream)
        await p.close()
