"""Every way a message enters the broker goes through one operation (``VirtualHost.publish``),
so every path treats it the same way. Checked over real sockets, path by path:

- AMQP basic.publish (aio-pika),
- the management API's POST /api/exchanges/{vhost}/{name}/publish (aiohttp),
- the release of a message held by an x-delayed-message exchange,
- dead-lettering (a message expiring into its queue's dead-letter exchange),

for: the BCC header (adds routing keys, never reaches a consumer; CC stays, as in
RabbitMQ), deduplication windows, permission checks (same reply codes and texts), and the
message counters the management API reports.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import aiohttp
import aiormq
import pytest

from leveret import Broker
from leveret.broker.clock import ManualClock

HEADERS = {"CC": ["cc"], "BCC": ["bcc"]}
Publish = Callable[[str, str, dict[str, Any], bytes], Awaitable[None]]


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    async with Broker(port=0, management_port=0, clock=ManualClock()) as b:
        yield b


@pytest.fixture
async def http(broker: Broker) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(broker.management_url,
                                     headers=basic_auth("guest", "guest")) as session:
        yield session


@pytest.fixture
async def channel(broker: Broker) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(broker.url)
    async with connection:
        yield await connection.channel()


async def http_publish(http: aiohttp.ClientSession, exchange: str, routing_key: str,
                       headers: dict[str, Any], body: bytes, *,
                       user: tuple[str, str] | None = None,
                       properties: dict[str, Any] | None = None) -> tuple[int, Any]:
    props = {"headers": headers, **(properties or {})}
    async with http.post(f"api/exchanges/%2F/{exchange or 'amq.default'}/publish", json={
            "properties": props, "routing_key": routing_key,
            "payload": base64.b64encode(body).decode(), "payload_encoding": "base64"},
            headers=basic_auth(*user) if user else None) as reply:
        return reply.status, await reply.json()


async def amqp_publish(channel: aio_pika.abc.AbstractChannel, exchange: str,
                       routing_key: str, headers: dict[str, Any], body: bytes) -> None:
    target = (channel.default_exchange if exchange == "" else
              await channel.get_exchange(exchange, ensure=False))
    await target.publish(aio_pika.Message(body, headers=headers), routing_key, mandatory=False)


async def drain(channel: aio_pika.abc.AbstractChannel, queue: str) -> list[dict[str, Any]]:
    """The headers of every message in ``queue`` (taken with no-ack)."""
    q = await channel.declare_queue(queue, passive=True)
    found = []
    while (message := await q.get(no_ack=True, fail=False)) is not None:
        found.append(dict(message.headers))
    return found


async def bind_targets(channel: aio_pika.abc.AbstractChannel, exchange: str) -> None:
    for name in ("main", "cc", "bcc"):
        q = await channel.declare_queue(name)
        if exchange:
            await q.bind(exchange, name)


@pytest.mark.parametrize("path", ["amqp", "http", "delayed", "dead-letter"])
async def test_bcc_adds_routes_and_is_stripped_on_every_path(
        broker: Broker, channel: aio_pika.abc.AbstractChannel, http: aiohttp.ClientSession,
        path: str) -> None:
    if path in ("amqp", "http"):
        await bind_targets(channel, "")
        if path == "amqp":
            await amqp_publish(channel, "", "main", HEADERS, b"x")
        else:
            assert await http_publish(http, "", "main", HEADERS, b"x") == (
                200, {"routed": True})
    elif path == "delayed":
        await channel.declare_exchange("later", "x-delayed-message",
                                       arguments={"x-delayed-type": "direct"})
        await bind_targets(channel, "later")
        await amqp_publish(channel, "later", "main", {**HEADERS, "x-delay": 5000}, b"x")
        await asyncio.sleep(0.05)
        assert await drain(channel, "main") == []  # held
        broker.node.clock.advance(6)  # type: ignore[attr-defined]
    else:
        await channel.declare_exchange("dlx", "direct")
        await channel.declare_queue("dying", arguments={
            "x-message-ttl": 1000, "x-dead-letter-exchange": "dlx"})
        await amqp_publish(channel, "", "dying", {**HEADERS, "CC": ["main", "cc"]}, b"x")
        await bind_targets(channel, "dlx")  # (not before: the CC keys would route now)
        broker.node.clock.advance(2)  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    for queue in ("main", "cc", "bcc"):
        if path == "dead-letter" and queue == "bcc":
            # The queue never held the BCC header, so dead-lettering cannot route by it
            # (RabbitMQ's x-death routing-keys list the routing key and CC only).
            assert await drain(channel, queue) == []
            continue
        headers = await drain(channel, queue)
        assert len(headers) == 1, (queue, headers)
        assert "BCC" not in headers[0] and "CC" in headers[0], (queue, headers)


async def test_one_dedup_window_for_amqp_and_http(
        channel: aio_pika.abc.AbstractChannel, http: aiohttp.ClientSession) -> None:
    await channel.declare_exchange("once", "direct",
                                   arguments={"x-message-deduplication": True})
    q = await channel.declare_queue("once-q")
    await q.bind("once", "k")
    await amqp_publish(channel, "once", "k", {"x-deduplication-header": "a"}, b"1")
    assert await http_publish(http, "once", "k", {"x-deduplication-header": "a"}, b"2") == (
        200, {"routed": True})  # dropped as a duplicate, and reported as routed
    assert await http_publish(http, "once", "k", {"x-deduplication-header": "b"}, b"3") == (
        200, {"routed": True})
    await amqp_publish(channel, "once", "k", {"x-deduplication-header": "b"}, b"4")
    assert [h["x-deduplication-header"] for h in await drain(channel, "once-q")] == ["a", "b"]


async def amqp_error(broker: Broker, user: tuple[str, str], exchange: str, routing_key: str,
                     **properties: Any) -> str:
    """Publish as ``user`` (aiormq: properties as given, unchecked) and return the text
    of the channel.close that follows."""
    url = broker.url.replace("guest:guest", f"{user[0]}:{user[1]}")
    connection = await aiormq.connect(url)
    try:
        ch = await connection.channel(publisher_confirms=False)
        await ch.basic_publish(b"x", exchange=exchange, routing_key=routing_key,
                               properties=aiormq.spec.Basic.Properties(**properties))
        with pytest.raises(aiormq.exceptions.ChannelClosed) as info:
            # a round trip that sees the close
            await ch.exchange_declare("amq.topic", passive=True)
        return str(info.value.args[0])
    finally:
        await connection.close()


async def test_permission_checks_are_the_same_over_amqp_and_http(
        broker: Broker, channel: aio_pika.abc.AbstractChannel,
        http: aiohttp.ClientSession) -> None:
    node = broker.node
    node.add_user("writer", "pw", tags=["management"])
    node.set_permissions("/", "writer", configure="", write="^(amq\\.topic|inside)$",
                         read=".*")
    node.set_topic_permissions("/", "writer", "amq.topic", write="^allowed\\.")
    await channel.declare_exchange("inside", "direct", internal=True)
    await channel.declare_exchange("elsewhere", "direct")
    user = ("writer", "pw")
    cases = [
        ("elsewhere", "k", {}, 403),  # no write permission
        ("amq.topic", "denied.key", {}, 403),  # topic permission
        ("inside", "k", {}, 403),  # internal exchange
        ("amq.topic", "allowed.key", {"user_id": "someone-else"}, 406),  # user_id
        ("amq.topic", "allowed.key", {"expiration": "soon"}, 406),  # expiration
    ]
    for exchange, key, props, code in cases:
        over_amqp = await amqp_error(broker, user, exchange, key, **props)
        status, reply = await http_publish(http, exchange, key, {}, b"x", user=user,
                                           properties=props)
        assert status == 400, (exchange, key, props, reply)
        # the channel's close (code, text) is the HTTP reason
        assert reply["reason"] == f"{code} {over_amqp}", (exchange, key, props)


async def test_counters_are_the_same_over_amqp_and_http(
        broker: Broker, channel: aio_pika.abc.AbstractChannel,
        http: aiohttp.ClientSession) -> None:
    vhost = broker.node.vhosts["/"]
    q = await channel.declare_queue("counted")
    before = vhost.counters
    await amqp_publish(channel, "", "counted", {}, b"a")
    await amqp_publish(channel, "", "nowhere", {}, b"b")
    await http_publish(http, "", "counted", {}, b"c")
    await http_publish(http, "", "nowhere", {}, b"d")
    await asyncio.sleep(0.05)
    after = vhost.counters
    assert after.publish - before.publish == 4
    assert after.drop_unroutable - before.drop_unroutable == 2
    assert vhost.queues[q.name].counters.publish == 2
