"""The asyncio client against a real broker (leveret in-process, or LEVERET_TEST_URL)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from leveret.amqp import spec
from leveret.client import (
    ChannelClosed,
    ConnectionClosed,
    connect,
    parse_url,
)

pytestmark = pytest.mark.timeout(60)


class Inbox:
    """Collects deliveries; ``await inbox.wait(n)`` until n have arrived."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, bool, str, str, bytes, bytes]] = []
        self._event = asyncio.Event()
        self._want = 0

    def __call__(self, tag: int, redelivered: bool, exchange: str, rk: str,
                 props: bytes, body: bytes) -> None:  # fmt: skip
        self.messages.append((tag, redelivered, exchange, rk, props, body))
        if len(self.messages) >= self._want:
            self._event.set()

    async def wait(self, n: int, timeout: float = 10) -> None:
        self._want = n
        if len(self.messages) < n:
            self._event.clear()
            await asyncio.wait_for(self._event.wait(), timeout)


def test_parse_url() -> None:
    p = parse_url("amqp://u%40x:p%2Fw@example.org:5999/%2f?heartbeat=5&frame_max=8192")
    assert (p.host, p.port, p.username, p.password, p.vhost) == (
        "example.org", 5999, "u@x", "p/w", "/")  # fmt: skip
    assert (p.heartbeat, p.frame_max) == (5, 8192)
    assert parse_url("amqp://localhost").vhost == "/"
    assert parse_url("amqp://localhost/prod").vhost == "prod"
    assert parse_url("amqps://h/").port == 5671
    with pytest.raises(ValueError):
        parse_url("http://localhost/")


async def test_connect_negotiates_and_closes(amqp_url: str) -> None:
    conn = await connect(amqp_url)
    assert conn.server_properties.get("product")
    assert 4096 <= conn.frame_max <= 131072
    assert conn.heartbeat > 0
    ch = await conn.channel()
    assert ch.number == 1
    await ch.close()
    assert ch.is_closed
    await conn.close()
    assert conn.is_closed
    with pytest.raises(ConnectionClosed):
        await conn.channel()


@pytest.mark.parametrize("size", [0, 1, 16, 131064, 131065, 400_000])
async def test_roundtrip_body_sizes_and_properties(amqp_url: str, name: str, size: int) -> None:
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        q = (await ch.queue_declare(name, exclusive=True)).queue
        assert q == name
        inbox = Inbox()
        await ch.basic_consume(q, inbox, no_ack=True)
        props = spec.Properties(content_type="application/octet-stream", headers={"k": "v"},
                                delivery_mode=2, message_id="m1")  # fmt: skip
        body = bytes(i % 251 for i in range(size))
        ch.publish(body, "", q, props)
        await inbox.wait(1)
        _tag, redelivered, exchange, rk, raw, got = inbox.messages[0]
        assert (redelivered, exchange, rk) == (False, "", q)
        assert got == body
        assert spec.Properties.decode(raw) == props


async def test_many_messages_with_confirms_in_order(amqp_url: str, name: str) -> None:
    n = 20_000
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        await ch.queue_declare(name, exclusive=True)
        await ch.confirm_select()
        publish = ch.publisher("", name)
        seqs = [publish(i.to_bytes(4, "big")) for i in range(n)]
        assert seqs == list(range(1, n + 1))
        await ch.wait_for_confirms()
        assert (ch.acked, ch.nacked, ch.unconfirmed) == (n, 0, 0)
        inbox = Inbox()
        consumer = await conn.channel()
        await consumer.basic_consume(name, inbox, no_ack=True)
        await inbox.wait(n)
        assert [int.from_bytes(m[5], "big") for m in inbox.messages] == list(range(n))
        assert [m[0] for m in inbox.messages] == list(range(1, n + 1))


async def test_prefetch_multiple_ack_and_redelivery(amqp_url: str, name: str) -> None:
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        await ch.queue_declare(name, exclusive=True)
        for i in range(30):
            ch.publish(b"%d" % i, "", name)
        await conn.drain()
        await ch.basic_qos(10)
        inbox = Inbox()
        await ch.basic_consume(name, inbox)
        await inbox.wait(10)
        await asyncio.sleep(0.2)
        assert len(inbox.messages) == 10  # prefetch holds the rest back
        ch.ack(inbox.messages[9][0], multiple=True)
        await inbox.wait(20)
        await ch.close()  # 10 unacked: requeued
        ch2 = await conn.channel()
        again = Inbox()
        await ch2.basic_consume(name, again, no_ack=True)
        await again.wait(20)
        assert [m[1] for m in again.messages[:10]] == [True] * 10
        assert sorted(m[5] for m in again.messages) == sorted(b"%d" % i for i in range(10, 30))


async def test_cancel_stops_deliveries(amqp_url: str, name: str) -> None:
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        await ch.queue_declare(name, exclusive=True)
        inbox = Inbox()
        tag = await ch.basic_consume(name, inbox, no_ack=True, consumer_tag="my-tag")
        assert tag == "my-tag"
        ch.publish(b"one", "", name)
        await inbox.wait(1)
        await ch.basic_cancel(tag)
        ch.publish(b"two", "", name)
        await asyncio.sleep(0.2)
        assert len(inbox.messages) == 1
        assert (await ch.queue_declare(name, passive=True)).message_count == 1


async def test_server_channel_close_raises_with_code(amqp_url: str, name: str) -> None:
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        with pytest.raises(ChannelClosed) as info:
            await ch.queue_declare(name, passive=True)
        assert info.value.reply_code == 404
        assert info.value.reply_text.startswith("NOT_FOUND")
        assert (info.value.class_id, info.value.method_id) == (50, 10)
        assert ch.is_closed
        with pytest.raises(ChannelClosed):
            ch.publish(b"x", "", name)
        reason = await ch.wait_closed()
        assert reason.reply_code == 404
        # the connection survives a channel error
        ch2 = await conn.channel()
        await ch2.queue_declare(name, exclusive=True)


async def test_unknown_delivery_tag_closes_channel_406(amqp_url: str) -> None:
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        ch.ack(12345)
        reason = await asyncio.wait_for(ch.wait_closed(), 5)
        assert reason.reply_code == 406


async def test_server_connection_close_raises_with_code(amqp_url: str) -> None:
    conn = await connect(amqp_url)
    # a method on a channel that was never opened is a hard error (504 CHANNEL_ERROR)
    conn._send_method(77, spec.QueueDeclare(queue="x"))
    reason = await asyncio.wait_for(conn.wait_closed(), 5)
    assert reason.reply_code == 504
    assert isinstance(reason, ConnectionClosed)
    with pytest.raises(ConnectionClosed) as info:
        await conn.channel()
    assert info.value.reply_code == 504
    await conn.close()  # harmless after the server closed it


async def test_bad_password_is_refused(amqp_url: str) -> None:
    bad = amqp_url.replace("guest:guest@", "guest:wrong@")
    with pytest.raises(ConnectionClosed) as info:
        await connect(bad)
    assert info.value.reply_code in (403, 0)  # 0: a server that just hangs up


async def test_heartbeats_keep_idle_connection_alive(amqp_url: str, name: str) -> None:
    async with await connect(amqp_url, heartbeat=1) as conn:
        assert conn.heartbeat == 1
        ch = await conn.channel()
        await asyncio.sleep(3.5)  # a silent client would be dropped after ~2 s
        assert not conn.is_closed
        await ch.queue_declare(name, exclusive=True)


async def test_mandatory_unroutable_is_returned(amqp_url: str) -> None:
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        returned: list[Any] = []
        got = asyncio.Event()

        def on_return(code: int, text: str, exchange: str, rk: str, props: bytes,
                      body: bytes) -> None:  # fmt: skip
            returned.append((code, text, exchange, rk, body))
            got.set()

        ch.on_return = on_return
        ch.publish(b"lost", "", "no-such-queue-anywhere", mandatory=True)
        await asyncio.wait_for(got.wait(), 5)
        assert returned == [(312, "NO_ROUTE", "", "no-such-queue-anywhere", b"lost")]


async def test_nacks_are_tracked(amqp_url: str, name: str) -> None:
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        args = {"x-max-length": 1, "x-overflow": "reject-publish"}
        await ch.queue_declare(name, exclusive=True, arguments=args)
        await ch.confirm_select()
        for _ in range(3):
            ch.publish(b"m", "", name)
        await ch.wait_for_confirms()
        if ch.nacked == 0 and conn.server_properties.get("product") != "RabbitMQ":
            pytest.skip("broker does not implement x-overflow reject-publish")
        assert (ch.acked, ch.nacked) == (1, 2)


async def test_drain_respects_transport_backpressure(amqp_url: str, name: str) -> None:
    n, body = 50, b"x" * 262144
    async with await connect(amqp_url) as conn:
        assert conn._transport is not None
        conn._transport.set_write_buffer_limits(high=8192)
        # A small kernel send buffer makes one send() take at most ~64 KB, so a 256 KB message
        # leaves the rest in the transport's buffer, past its high mark, however fast the broker
        # reads (with the default buffers a fast broker drained 2.5 MB batches without a pause).
        # After the first batch the buffer grows again: with 4 KB every send waits for a
        # delayed ACK, and 50 messages would take half a minute.
        sock = conn._transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        pauses = 0
        original = conn.pause_writing

        def counting_pause() -> None:
            nonlocal pauses
            pauses += 1
            original()

        conn.pause_writing = counting_pause  # type: ignore[method-assign]
        ch = await conn.channel()
        await ch.queue_declare(name, auto_delete=True)  # consumed from another connection
        inbox = Inbox()
        receiver = await connect(amqp_url)
        try:
            rch = await receiver.channel()
            await rch.basic_consume(name, inbox, no_ack=True)
            publish = ch.publisher("", name)
            for batch in range(n // 5):
                for _ in range(5):
                    publish(body)
                await conn.drain()
                if batch == 0:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            await inbox.wait(n, timeout=30)
        finally:
            await receiver.close()
        assert pauses > 0
        assert len(inbox.messages) == n


def test_works_under_uvloop(amqp_url: str, name: str) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[bytes]:
        async with await connect(amqp_url) as conn:
            ch = await conn.channel()
            await ch.queue_declare(name, exclusive=True)
            inbox = Inbox()
            await ch.basic_consume(name, inbox, no_ack=True)
            for i in range(1000):
                ch.publish(b"%d" % i, "", name)
            await inbox.wait(1000)
            return [m[5] for m in inbox.messages]

    assert uvloop.run(scenario()) == [b"%d" % i for i in range(1000)]


async def test_many_large_bodies_through_the_publisher_and_the_fast_lane(
        amqp_url: str, name: str) -> None:
    """64 KiB-class bodies of varying sizes, published in batches (each body written beside
    the frames, not copied into the buffer), delivered (the broker writes them the same
    way) and read back in reads that end inside frames: all intact and in order."""
    sizes = [65536, 16 << 10, 100, 70001, 131064, (16 << 10) - 1, 65535] * 30
    async with await connect(amqp_url) as conn:
        ch = await conn.channel()
        await ch.queue_declare(name, exclusive=True)
        inbox = Inbox()
        await ch.basic_consume(name, inbox, no_ack=True)
        publish = ch.publisher("", name)
        bodies = [bytes([i % 256]) * 8 + bytes(n - 8) if n >= 8 else b"x" * n
                  for i, n in enumerate(sizes)]
        for i in range(0, len(bodies), 20):
            for body in bodies[i : i + 20]:
                publish(body)
            await conn.drain()
        await inbox.wait(len(bodies), timeout=30)
        assert [m[5] for m in inbox.messages] == bodies
