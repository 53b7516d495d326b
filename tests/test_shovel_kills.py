"""Shovels under ``on-confirm`` when the *source* broker is killed with SIGKILL in the
middle of a transfer and restarted from its data directory: every message arrives, and a
message arrives twice only when the source delivered it again with ``redelivered`` set.

The shovel runs in the destination broker (in this process), so each source delivery it
sees — the body (the message's sequence number) and the ``redelivered`` flag — is recorded
by wrapping ``_Transfer.deliver``. The source is a ``leveret serve`` child process.
(Kills of RabbitMQ, and the 100,000-message runs, are in ``bench/shovel.py``.)
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from leveret.runtime import shovels as runtime_shovels
from tests.test_shovels import (
    _free_port,
    _serve,
    broker,
    count,
    drain,
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
            got = await drain(dst.url, "q", n, timeout=30)
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
            got = await drain(dest_url, "q", n, timeout=30)
            dupes, redelivered = check_duplicates(seen, [b for _, b, _ in got], n)
            print(f"source killed twice; {redelivered} redelivered, {dupes} duplicates")
    finally:
        for p in (src, dst):
            p.kill()
            p.wait()
