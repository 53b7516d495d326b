"""Clients that break the rules on purpose or by dying: the broker's memory stays bounded,
a dead consumer is let go, and nobody else is held up by them.

Each test runs against ``leveret serve`` in a subprocess, so the broker's RSS can be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pika
import pytest
from served import serve

from leveret.amqp import frames, spec

HANDSHAKE = frames.PROTOCOL_HEADER + b"".join(frames.encode_method(0, m) for m in (
    spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                           response=b"\x00guest\x00guest"),
    spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=0),
    spec.ConnectionOpen(virtual_host="/"),
))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    proc, port = serve(Path(tmp_path_factory.mktemp("hostile")))
    try:
        yield proc.pid, f"amqp://guest:guest@127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def test_frame_error_then_flood_is_not_buffered(broker: tuple[int, str]) -> None:
    """After a framing error the broker stops reading: a client that keeps writing gets
    only as far as the kernel's socket buffers, and is cut off after the close timeout."""
    pid, url = broker
    before = rss(pid)
    s = socket.create_connection(("127.0.0.1", _port(url)))
    s.sendall(HANDSHAKE)
    s.sendall(b"\x01\x00\x00\x00\x00\x00\x04abcd\x00")  # frame-end octet 0, not 0xCE
    chunk = b"\x01\x00\x01\x7f\xff\xff\xff" * (1 << 16)  # "frames" that claim 2 GiB each
    s.settimeout(15)
    sent, start = 0, time.monotonic()
    with pytest.raises(OSError):  # reset or broken pipe once the broker hangs up
        while sent < 1 << 30:
            s.sendall(chunk)
            sent += len(chunk)
    elapsed = time.monotonic() - start
    s.close()
    assert sent < 64 << 20, f"the broker read {sent >> 20} MiB after the error"
    assert elapsed < 10, f"the socket stayed open {elapsed:.1f} s"
    grown = rss(pid) - before
    assert grown < 32 << 20, f"the broker grew {grown >> 20} MiB"
    _assert_healthy(url)


def _assert_healthy(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", q, b"still here")
        assert ch.basic_get(q, auto_ack=True)[2] == b"still here"
    finally:
        conn.close()


def _stuck_consumer(url: str, queue: str, heartbeat: int) -> pika.BlockingConnection:
    """A no-ack consumer that then never reads its socket nor sends a heartbeat again."""
    conn = pika.BlockingConnection(pika.URLParameters(f"{url}?heartbeat={heartbeat}"))
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_consume(queue, lambda *args: None, auto_ack=True)
    return conn


async def _publish_confirmed(url: str, queue: str, count: int, size: int) -> float:
    """Publish ``count`` messages with confirms, 500 in flight; seconds until all confirmed."""
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        body = b"x" * size
        start = time.monotonic()
        for i in range(0, count, 500):
            await asyncio.gather(*(ch.default_exchange.publish(aio_pika.Message(body), queue)
                                   for _ in range(min(500, count - i))))
        return time.monotonic() - start
    finally:
        await conn.close()


def _consumers(url: str, queue: str, delete: bool = False) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        count: int = ch.queue_declare(queue, passive=True).method.consumer_count
        if delete:
            ch.queue_delete(queue)
        return count
    finally:
        conn.close()


def test_stuck_consumer_does_not_stop_confirms(broker: tuple[int, str]) -> None:
    """A consumer that stops reading (heartbeats off, so it is never closed) fills its
    socket; its publisher goes on being confirmed while the backlog pages out."""
    _, url = broker
    stuck = _stuck_consumer(url, "hostile-stuck", heartbeat=0)
    try:
        seconds = asyncio.run(asyncio.wait_for(
            _publish_confirmed(url, "hostile-stuck", 20_000, 2048), 60))
        assert _consumers(url, "hostile-stuck") == 1  # still attached: it is only stuck
    finally:
        stuck.close()
        _consumers(url, "hostile-stuck", delete=True)
    assert seconds < 60


def test_silent_consumer_is_closed_on_missed_heartbeats(broker: tuple[int, str]) -> None:
    """Not reading, so not read from: the broker still notices its missing heartbeats."""
    _, url = broker
    silent = _stuck_consumer(url, "hostile-silent", heartbeat=1)
    try:
        asyncio.run(asyncio.wait_for(
            _publish_confirmed(url, "hostile-silent", 20_000, 2048), 60))
        deadline = time.monotonic() + 10
        while _consumers(url, "hostile-silent") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _consumers(url, "hostile-silent", delete=True) == 0
    finally:
        with contextlib.suppress(Exception):  # the broker closed it
            silent.close()
