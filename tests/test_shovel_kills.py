"""Shovels under ``on-confirm`` when one side is killed with SIGKILL in the middle of a
transfer and restarted (a leveret from its data directory): every message arrives, and a
message arrives twice only when the source delivered it again with ``redelivered`` set.

Each source delivery the shovel sees — the body (the message's sequence number) and the
``redelivered`` flag — is recorded: by wrapping ``_Transfer.deliver`` when the shovel runs
in this process, by ``tests/shovel_recorder.py`` when it runs in a ``leveret serve`` child
that is itself killed (it must then start the shovel again from its durable parameter).
Combinations here: leveret -> leveret with the source killed (the shovel in the
destination, or in a third broker) or the destination killed (the shovel in the source);
leveret -> RabbitMQ with the source leveret, which hosts the shovel, killed; RabbitMQ ->
leveret with RabbitMQ, the source, killed (the shovel in the destination). RabbitMQ is the
session's private node (``plugin_rabbit``): killed, it is restarted and left running. All
six combinations at 100,000 messages are ``bench/shovel.py kills``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import leveret
from leveret.amqp import spec
from leveret.client import connect
from leveret.runtime import shovels as runtime_shovels
from tests.rabbit_node import PluginRabbit
from tests.shovel_recorder import read_record
from tests.test_shovels import (
    Http,
    _free_port,
    _serve,
    broker,
    count,
    eventually,
    http,
    publish,
    value,
)


def record_source_deliveries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bool]]:
    """Every delivery the shovel receives from its source: (body, redelivered)."""
    seen: list[tuple[bytes, bool]] = []
    original = runtime_shovels._Transfer.deliver

    def deliver(self: Any, tag: int, redelivered: bool, exchange: str, key: str,
                props: bytes, body: bytes) -> None:
        seen.append((body, redelivered))
        original(self, tag, redelivered, exchange, key, props, body)

    monkeypatch.setattr(runtime_shovels._Transfer, "deliver", deliver)
    return seen


def check_duplicates(seen: list[tuple[bytes, bool]], arrived: list[bytes], n: int
                     ) -> tuple[int, int]:
    """None lost; every message the source delivered more than once was redelivered with
    the flag set; nothing arrives twice unless the source delivered it twice. Returns
    (duplicates at the destination, redelivered deliveries at the source)."""
    ids = [int(b) for b in arrived]
    assert set(ids) == set(range(n)), f"lost: {sorted(set(range(n)) - set(ids))[:20]}"
    first: set[bytes] = set()
    for body, redelivered in seen:
        if body in first:
            assert redelivered, f"message {body!r} delivered again without redelivered"
        first.add(body)
    delivered = Counter(body for body, _ in seen)
    for body, times in Counter(arrived).items():
        assert times <= delivered[body], f"{body!r} arrived {times}x, delivered " \
                                          f"{delivered[body]}x by the source"
    return len(ids) - len(set(ids)), sum(1 for _, r in seen if r)


async def test_kill_9_source_mid_transfer_loses_nothing(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    n = 15_000
    seen = record_source_deliveries(monkeypatch)
    port = _free_port()
    src_url = f"amqp://guest:guest@127.0.0.1:{port}/"
    proc = _serve(port, tmp_path / "src")
    try:
        await publish(src_url, "q", n)
        async with broker(data_dir=tmp_path / "dest") as dst:
            await http(dst).call("PUT", "/api/parameters/shovel/%2f/k", {"value": value(
                src_uri=src_url, src_queue="q", dest_uri="amqp://", dest_queue="q",
                ack_mode="on-confirm", reconnect_delay=0.5, src_prefetch_count=200)})

            async def some() -> bool:
                return await count(dst.url, "q") >= 3000
            await eventually(some, 60)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            moved = await count(dst.url, "q")
            assert moved < n, "the transfer was over before the kill"
            await asyncio.sleep(0.5)
            proc = _serve(port, tmp_path / "src")  # from its data directory

            async def emptied() -> bool:
                return await count(src_url, "q") == 0
            await eventually(emptied, 60)
            await asyncio.sleep(0.3)  # the last confirms reach the source
            got = await drain_all(dst.url, "q", n)
            dupes, redelivered = check_duplicates(seen, [b for _, b, _ in got], n)
            assert dupes <= redelivered
            print(f"source killed with {moved} of {n} at the destination; "
                  f"{redelivered} redelivered by the source, {dupes} duplicates")
    finally:
        proc.kill()
        proc.wait()


async def test_kill_9_source_with_the_shovel_in_a_third_broker(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """The shovel runs in neither side: source and destination are both child processes,
    the source is killed twice."""
    n = 10_000
    seen = record_source_deliveries(monkeypatch)
    sport, dport = _free_port(), _free_port()
    src_url = f"amqp://guest:guest@127.0.0.1:{sport}/"
    dest_url = f"amqp://guest:guest@127.0.0.1:{dport}/"
    src = _serve(sport, tmp_path / "src")
    dst = _serve(dport, tmp_path / "dest")
    try:
        await publish(src_url, "q", n)
        async with broker() as third:
            await http(third).call("PUT", "/api/parameters/shovel/%2f/k", {"value": value(
                src_uri=src_url, src_queue="q", dest_uri=dest_url, dest_queue="q",
                reconnect_delay=0.3, src_prefetch_count=500)})
            for threshold in (2000, 6000):
                async def some(threshold: int = threshold) -> bool:
                    return await count(dest_url, "q") >= threshold
                await eventually(some, 60)
                src.send_signal(signal.SIGKILL)
                src.wait()
                await asyncio.sleep(0.3)
                src = _serve(sport, tmp_path / "src")

            async def emptied() -> bool:
                return await count(src_url, "q") == 0
            await eventually(emptied, 60)
            await asyncio.sleep(0.3)
            got = await drain_all(dest_url, "q", n)
            dupes, redelivered = check_duplicates(seen, [b for _, b, _ in got], n)
            print(f"source killed twice; {redelivered} redelivered, {dupes} duplicates")
    finally:
        for p in (src, dst):
            p.kill()
            p.wait()


# -- the other sides killed ----------------------------------------------------------------


def _serve_recording(port: int, mport: int, data: Path, record: Path
                     ) -> subprocess.Popen[bytes]:
    """``leveret serve`` on fixed ports (a restart comes back where the shovel looks) whose
    shovels record their source deliveries in ``record``."""
    env = {**os.environ, "PYTHONPATH": str(Path(leveret.__file__).parent.parent)}
    p = subprocess.Popen([sys.executable, str(Path(__file__).parent / "shovel_recorder.py"),
                          str(record), "serve", "--port", str(port), "--management-port",
                          str(mport), "--data-dir", str(data)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", mport), 0.2):
            return p
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("the broker did not start")


def check_arrivals(seen: list[tuple[bytes, bool]],
                   got: list[tuple[bool, bytes, spec.Properties]], n: int) -> tuple[int, int]:
    """check_duplicates, and the shovel saw each message and marked each arrival."""
    assert {body for body, _ in seen} == {str(i).encode() for i in range(n)}
    assert all(p.headers and p.headers.get("x-shovelled") for _, _, p in got)
    return check_duplicates(seen, [body for _, body, _ in got], n)


async def drain_all(url: str, queue: str, n: int, timeout: float = 90
                    ) -> list[tuple[bool, bytes, spec.Properties]]:
    """Consume ``queue`` until each of the n messages arrived at least once (a count is not
    enough: duplicates make it up while the last messages are still on their way), then
    a second more for late duplicates. A message lost shows as the timeout's shortfall."""
    got: list[tuple[bool, bytes, spec.Properties]] = []
    distinct: set[bytes] = set()
    async with await connect(url) as c:
        ch = await c.channel()
        await ch.basic_qos(2000)
        complete = asyncio.get_running_loop().create_future()

        def on(tag: int, red: bool, ex: str, key: str, props: bytes, body: bytes) -> None:
            got.append((red, body, spec.Properties.decode(props) if props else
                        spec.Properties()))
            distinct.add(body)
            ch.ack(tag)
            if len(distinct) >= n and not complete.done():
                complete.set_result(None)

        await ch.basic_consume(queue, on)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(complete, timeout)
        await asyncio.sleep(1.0)
    return got


async def test_kill_9_source_leveret_hosting_the_shovel_to_rabbitmq(
        tmp_path: Path, plugin_rabbit: PluginRabbit) -> None:
    """leveret -> RabbitMQ, the shovel in the source leveret (where a user runs it), which
    is killed: restarted from its data directory it starts the shovel again from its
    durable parameter, and redelivers with ``redelivered`` what was in flight."""
    n, queue = 12_000, "kill-lr-src"
    port, mport = _free_port(), _free_port()
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    record = tmp_path / "deliveries"
    rabbit = Http(plugin_rabbit.http)
    await rabbit.call("DELETE", f"/api/queues/%2f/{queue}")
    proc = _serve_recording(port, mport, tmp_path / "src", record)
    try:
        await publish(url, queue, n)
        status, _ = await Http(f"http://127.0.0.1:{mport}").call(
            "PUT", "/api/parameters/shovel/%2f/k", {"value": value(
                src_uri="amqp://", src_queue=queue, dest_uri=plugin_rabbit.url,
                dest_queue=queue, ack_mode="on-confirm", reconnect_delay=0.5,
                src_prefetch_count=500, dest_add_forward_headers=True)})
        assert status == 201

        async def some() -> bool:
            return await count(plugin_rabbit.url, queue) >= 3000
        await eventually(some, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        moved = await count(plugin_rabbit.url, queue)
        assert moved < n, "the transfer was over before the kill"
        proc = _serve_recording(port, mport, tmp_path / "src", record)

        async def emptied() -> bool:
            return await count(url, queue) == 0
        await eventually(emptied, 60)
        got = await drain_all(plugin_rabbit.url, queue, n)
        dupes, redelivered = check_arrivals(read_record(record), got, n)
        print(f"source (hosting the shovel) killed with {moved} of {n} at RabbitMQ; "
              f"{redelivered} redelivered by the source, {dupes} duplicates")
    finally:
        proc.kill()
        proc.wait()
        await rabbit.call("DELETE", f"/api/queues/%2f/{queue}")


async def test_kill_9_rabbitmq_source_with_the_shovel_in_the_destination_leveret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_rabbit: PluginRabbit) -> None:
    """RabbitMQ -> leveret, the shovel in the destination (where a user runs it), RabbitMQ
    killed and restarted. RabbitMQ 3.10.8 loses the acks it had not yet written to its
    queue index and, after an unclean stop, delivers every recovered message with
    ``redelivered`` set: many duplicates, each flagged."""
    n, queue = 10_000, "kill-rl-src"
    seen = record_source_deliveries(monkeypatch)
    rabbit = Http(plugin_rabbit.http)
    await rabbit.call("DELETE", f"/api/queues/%2f/{queue}")
    try:
        await publish(plugin_rabbit.url, queue, n)
        async with broker(data_dir=tmp_path / "dest") as dst:
            await http(dst).call("PUT", "/api/parameters/shovel/%2f/k", {"value": value(
                src_uri=plugin_rabbit.url, src_queue=queue, dest_uri="amqp://",
                dest_queue=queue, ack_mode="on-confirm", reconnect_delay=0.5,
                src_prefetch_count=500, dest_add_forward_headers=True)})

            async def some() -> bool:
                return await count(dst.url, queue) >= 3000
            await eventually(some, 60)
            await asyncio.to_thread(plugin_rabbit.kill9)
            moved = await count(dst.url, queue)
            assert moved < n, "the transfer was over before the kill"
            await asyncio.to_thread(plugin_rabbit.restart)

            async def emptied() -> bool:
                with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                    return await count(plugin_rabbit.url, queue) == 0
                return False
            await eventually(emptied, 90)
            got = await drain_all(dst.url, queue, n)
            dupes, redelivered = check_arrivals(seen, got, n)
            print(f"RabbitMQ (the source) killed with {moved} of {n} moved; {redelivered} "
                  f"redelivered by RabbitMQ, {dupes} duplicates")
    finally:
        if not plugin_rabbit.running():  # shared by the session: leave it running
            await asyncio.to_thread(plugin_rabbit.restart)
        await rabbit.call("DELETE", f"/api/queues/%2f/{queue}")


async def test_kill_9_destination_leveret_with_the_shovel_in_the_source(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """leveret -> leveret, the shovel in the source (this process), the destination killed:
    what it had not confirmed is redelivered by the source with the flag set."""
    n = 12_000
    seen = record_source_deliveries(monkeypatch)
    port = _free_port()
    dest_url = f"amqp://guest:guest@127.0.0.1:{port}/"
    proc = _serve(port, tmp_path / "dest")
    try:
        async with broker(data_dir=tmp_path / "src") as src:
            await publish(src.url, "q", n)
            await http(src).call("PUT", "/api/parameters/shovel/%2f/k", {"value": value(
                src_uri="amqp://", src_queue="q", dest_uri=dest_url, dest_queue="q",
                ack_mode="on-confirm", reconnect_delay=0.3, src_prefetch_count=500,
                dest_add_forward_headers=True)})

            async def some() -> bool:
                return await count(dest_url, "q") >= 3000
            await eventually(some, 60)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            left = await count(src.url, "q")
            assert left > 0, "the transfer was over before the kill"
            proc = _serve(port, tmp_path / "dest")

            async def emptied() -> bool:
                return await count(src.url, "q") == 0
            await eventually(emptied, 60)
            got = await drain_all(dest_url, "q", n)
            dupes, redelivered = check_arrivals(seen, got, n)
            print(f"destination killed with {left} left at the source; {redelivered} "
                  f"redelivered by the source, {dupes} duplicates")
    finally:
        proc.kill()
        proc.wait()
