"""A broker killed with SIGKILL while a consumer takes messages at full speed: every message
the consumer had received comes back with ``redelivered`` set, none without it.

This is what a shovel under ``on-confirm`` relies on at its source (a duplicate must be
recognisable), probed with the fastest consumer there is: prefetch 1000, each delivery
acked at once. Regression: a delivery's delivered mark waited in the store's buffer while
a commit's fsync ran (server/commit.py), but the delivery went out at once; a kill during
a long fsync (a busy disk) brought back up to thousands of messages the consumer already
had, unflagged. The test keeps the disk busy, as other work on a machine does, so that
fsyncs are long.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from pathlib import Path

from leveret.client import connect
from tests.test_shovels import _free_port, _serve, count, eventually, publish


def _keep_the_disk_busy(path: Path, stop: threading.Event) -> None:
    """Another writer on the same file system: 4 MiB written and fdatasync'd in a loop
    (within 64 MiB), which makes the broker's own fsyncs wait."""
    chunk = os.urandom(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while not stop.is_set():
            for _ in range(4):
                os.write(fd, chunk)
            os.fdatasync(fd)
            if os.lseek(fd, 0, os.SEEK_CUR) >= 64 << 20:
                os.lseek(fd, 0, os.SEEK_SET)
    finally:
        os.close(fd)
        path.unlink()


async def test_kill_9_while_consuming_brings_back_what_was_received_redelivered(
        tmp_path: Path) -> None:
    n = 30_000
    port = _free_port()
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    proc = _serve(port, tmp_path / "data")
    stop = threading.Event()
    busy = threading.Thread(target=_keep_the_disk_busy, args=(tmp_path / "busy", stop))
    received: set[bytes] = set()
    unflagged: list[int] = []
    again = 0
    try:
        await publish(url, "q", n)
        busy.start()
        for threshold in (6_000, 14_000, 22_000, None):
            reached = asyncio.get_running_loop().create_future()
            conn = await connect(url)
            ch = await conn.channel()
            await ch.basic_qos(1000)

            def on(tag: int, redelivered: bool, exchange: str, key: str, props: bytes,
                   body: bytes, ch: object = ch, reached: asyncio.Future[None] = reached,
                   threshold: int | None = threshold) -> None:
                nonlocal again
                if body in received:
                    again += 1
                    if not redelivered:
                        unflagged.append(int(body))
                received.add(body)
                ch.ack(tag)  # type: ignore[attr-defined]
                if threshold is not None and len(received) >= threshold and \
                        not reached.done():
                    reached.set_result(None)

            await ch.basic_consume("q", on)
            if threshold is None:
                async def drained() -> bool:
                    return len(received) == n and await count(url, "q") == 0
                await eventually(drained, 120)
                await conn.close()
                break
            await asyncio.wait_for(reached, 120)
            proc.send_signal(signal.SIGKILL)  # mid-flow: deliveries and acks in flight
            proc.wait()
            with contextlib.suppress(Exception):
                await conn.close()
            proc = _serve(port, tmp_path / "data")
        assert not unflagged, (f"{len(unflagged)} received messages came back without "
                               f"redelivered, e.g. {sorted(unflagged)[:10]}")
        assert len(received) == n
        print(f"3 kills: {again} messages delivered again, all with redelivered")
    finally:
        stop.set()
        if busy.is_alive():
            busy.join()
        proc.kill()
        proc.wait()
