"""Crash loop for a stream queue: a confirming publisher and a reader from ``first`` run
against a real broker process that is SIGKILLed at random moments and restarted; after
every restart the whole stream is read from ``first`` and checked.

    python bench/crashloop_stream.py                  # 30 cycles
    python bench/crashloop_stream.py --minutes 10 --seed 7
    python bench/crashloop.py --stream --minutes 10   # the same, from the classic loop

Exit status 1 if a rule below is broken (the violations are listed), 0 otherwise.
tests/test_crash_loop.py runs a few cycles of it.

Every message carries its sequence number (message-id, and derived body). After each
restart a verifying consumer reads the stream from ``first`` up to its end (the
declare-ok count) and checks:

* **offsets strictly increasing**, from 0 with no gap (no retention is set), and every
  delivery has an ``x-stream-offset`` header equal to its place;
* **each confirmed sequence number present exactly once**, and no sequence number twice
  (an unconfirmed one may be there or not), bodies intact, and sequence numbers in
  publish order (one publisher, one channel);
* **offsets never change**: every offset -> sequence number seen by an earlier verifying
  read is the same now (what a read after a restart saw came from the files: it stays);
* **new entries go after the old ones**: what was published in a cycle sits at offsets
  above every offset a verifying read saw before that cycle.

Also checked, during the cycles: what the live reader (a consumer beside the publisher,
from ``first`` in even cycles, from the verified end in odd ones) received agrees with
what is found after the restart. A reader may have been handed an entry that a kill then
lost (in the broker's buffer, not yet written); if that offset later holds another entry,
a client that remembers offsets would be misled. Such cases are counted as "phantom
reads" and are violations unless ``--allow-phantoms``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crashloop import BrokerProcess, _connection_lost

STREAM = "crashloop.stream"
STREAM_ARGS: dict[str, Any] = {"x-queue-type": "stream"}


def body_of(n: int) -> bytes:
    """Message ``n``'s body: its number and a filler derived from it."""
    return b"%d|" % n + bytes([n % 251]) * ((n * 2654435761) % 200 + 8)


def seq_of(msg: DeliveredMessage) -> int:
    try:
        n = int(msg.header.properties.message_id or "")
    except ValueError:
        return -1
    return n if msg.body == body_of(n) else -1


def offset_of(msg: DeliveredMessage) -> int | None:
    headers = msg.header.properties.headers or {}
    value = headers.get("x-stream-offset")
    return value if isinstance(value, int) else None


@dataclass
class Config:
    cycles: int = 30
    minutes: float = 0.0
    min_up: float = 0.3
    max_up: float = 1.5
    startup_kill_rate: float = 0.15
    startup_window: float = 0.8
    window: int = 256
    prefetch: int = 200
    max_entries: int = 0  # > 0: the publisher stops once this many were handed to it
    fsync: str = "always"
    allow_phantoms: bool = False
    seed: int | None = None
    workdir: Path | None = None
    keep: bool = False
    start_timeout: float = 60.0
    verify_timeout: float = 120.0
    verbose: bool = False


@dataclass
class Report:
    cycles: int = 0
    startup_kills: int = 0
    seconds: float = 0.0
    published: int = 0
    confirmed: int = 0
    entries: int = 0  # in the stream at the end
    unconfirmed_kept: int = 0  # published, never confirmed, yet in the stream
    verify_reads: int = 0
    entries_verified: int = 0  # deliveries checked by verifying reads, all rounds
    live_deliveries: int = 0
    phantom_reads: int = 0
    phantoms: list[str] = field(default_factory=list)
    broker_warnings: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    kept: str = ""

    def render(self) -> str:
        lines = [
            f"cycles (SIGKILL + restart)      {self.cycles} ({self.startup_kills} killed "
            f"while starting) in {self.seconds:.0f} s",
            f"published / confirmed           {self.published} / {self.confirmed}",
            f"entries in the stream at the end {self.entries} ({self.unconfirmed_kept} "
            f"published but not confirmed)",
            f"verifying reads from first      {self.verify_reads} ({self.entries_verified} "
            f"deliveries checked)",
            f"live reader deliveries          {self.live_deliveries}, phantom reads: "
            f"{self.phantom_reads}",
            f"broker warnings                 {len(self.broker_warnings)}",
        ]
        lines += [f"    {w}" for w in self.broker_warnings[:10]]
        lines.append(f"violations                      {len(self.violations)}")
        lines += [f"    {v}" for v in self.violations[:50]]
        if self.kept:
            lines.append(f"data directory and broker log kept in {self.kept}")
        return "\n".join(lines)


@dataclass
class Ledger:
    next_seq: int = 0
    confirmed: set[int] = field(default_factory=set)
    offsets: dict[int, int] = field(default_factory=dict)  # offset -> seq, verified
    # what live readers were handed: offset -> (seq, cycle)
    live: dict[int, tuple[int, int]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)


async def _declare(ch: aiormq.abc.AbstractChannel) -> int:
    ok = await ch.queue_declare(STREAM, durable=True, arguments=STREAM_ARGS)
    return ok.message_count or 0


class Publisher:
    def __init__(self, ledger: Ledger, cfg: Config) -> None:
        self.ledger = ledger
        self.cfg = cfg
        self.conn: aiormq.abc.AbstractConnection | None = None
        self.broken = False

    async def run(self, url: str) -> None:
        self.conn = await aiormq.connect(url)
        ch = cast(aiormq.Channel, await self.conn.channel(publisher_confirms=True))
        await _declare(ch)
        window = asyncio.Semaphore(self.cfg.window)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self.broken:
                if self.cfg.max_entries and self.ledger.next_seq >= self.cfg.max_entries:
                    await asyncio.sleep(3600)
                await window.acquire()
                if self.broken or ch.is_closed:
                    break
                n = self.ledger.next_seq
                self.ledger.next_seq += 1
                task = asyncio.create_task(self._publish(ch, n, window))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish(self, ch: aiormq.Channel, n: int, window: asyncio.Semaphore) -> None:
        try:
            result = await ch.basic_publish(
                body_of(n), routing_key=STREAM, wait=False,
                properties=spec.Basic.Properties(message_id=str(n)))
        except Exception:
            self.broken = True
            return
        finally:
            window.release()
        if isinstance(result, spec.Basic.Ack):
            self.ledger.confirmed.add(n)

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 2)


class LiveReader:
    """A consumer beside the publisher: records what it was handed."""

    def __init__(self, ledger: Ledger, cfg: Config, cycle: int) -> None:
        self.ledger = ledger
        self.cfg = cfg
        self.cycle = cycle
        self.conn: aiormq.abc.AbstractConnection | None = None
        self.count = 0
        self.last = -1

    async def run(self, url: str) -> None:
        self.conn = await aiormq.connect(url)
        ch = await self.conn.channel()
        await _declare(ch)
        await ch.basic_qos(prefetch_count=self.cfg.prefetch)
        every = max(1, self.cfg.prefetch // 4)

        async def on_message(msg: DeliveredMessage) -> None:
            self.count += 1
            offset, n = offset_of(msg), seq_of(msg)
            if offset is None or n < 0:
                self.ledger.bad.append(f"cycle {self.cycle}: live read of a bad entry "
                                       f"(offset {offset}, message-id "
                                       f"{msg.header.properties.message_id!r})")
            else:
                if offset <= self.last:
                    self.ledger.bad.append(f"cycle {self.cycle}: live reader got offset "
                                           f"{offset} after {self.last}")
                self.last = offset
                self.ledger.live.setdefault(offset, (n, self.cycle))
            if self.count % every == 0:
                assert msg.delivery_tag is not None
                await ch.basic_ack(msg.delivery_tag, multiple=True)

        # every other cycle from the end the last verifying read saw: a reader at the tail
        start: Any = "first" if self.cycle % 2 == 0 else len(self.ledger.offsets)
        await ch.basic_consume(STREAM, on_message, arguments={"x-stream-offset": start})
        await asyncio.Event().wait()  # until cancelled (the broker dies under it)

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 2)


async def read_all(url: str, prefetch: int, timeout: float) -> list[tuple[int | None, int]]:
    """The whole stream from ``first``: (offset header, seq) per delivery, in order."""
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel()
        total = await _declare(ch)
        out: list[tuple[int | None, int]] = []
        if total == 0:
            return out
        await ch.basic_qos(prefetch_count=prefetch)
        done = asyncio.get_running_loop().create_future()
        every = max(1, prefetch // 4)

        async def on_message(msg: DeliveredMessage) -> None:
            out.append((offset_of(msg), seq_of(msg)))
            if len(out) % every == 0:
                assert msg.delivery_tag is not None
                await ch.basic_ack(msg.delivery_tag, multiple=True)
            if len(out) >= total and not done.done():
                done.set_result(None)

        await ch.basic_consume(STREAM, on_message, arguments={"x-stream-offset": "first"})
        await asyncio.wait_for(done, timeout)
        return out[:total]
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 5)


class StreamCrashLoop:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.ledger = Ledger()
        self.report = Report()
        self.own_dir = cfg.workdir is None
        self.workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="leveret-streamcrash-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "broker.log"
        self.brokers: list[BrokerProcess] = []
        self.seq_at_verify = 0  # seqs below this were handed out before the last verify

    async def run(self) -> Report:
        started = time.monotonic()
        deadline = started + self.cfg.minutes * 60 if self.cfg.minutes > 0 else None
        with open(self.log_path, "a") as log:
            try:
                cycle = 0
                while (time.monotonic() < deadline if deadline is not None
                       else cycle < self.cfg.cycles):
                    await self._cycle(cycle, log)
                    cycle += 1
                    self.report.cycles = cycle
                    if self.cfg.verbose:
                        print(f"cycle {cycle:4d}  {time.monotonic() - started:6.0f} s  "
                              f"published {self.ledger.next_seq}  confirmed "
                              f"{len(self.ledger.confirmed)}  in stream "
                              f"{len(self.ledger.offsets)}", flush=True)
                    if self.report.violations or any(b.problems for b in self.brokers[-1:]):
                        break
                await self._final(cycle, log)
            except _BrokerDidNotStart as exc:
                self.report.violations.append(str(exc))
            finally:
                for broker in self.brokers:
                    if broker.proc.returncode is None:
                        await broker.kill()
        self.report.seconds = time.monotonic() - started
        self._summarize()
        if self.own_dir and not self.report.violations and not self.cfg.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self.report.kept = str(self.workdir)
        return self.report

    async def _start(self, cycle: int, log: Any) -> BrokerProcess:
        broker = await BrokerProcess.start(self.data_dir, self.cfg.fsync, log, cycle)
        self.brokers.append(broker)
        return broker

    async def _listening(self, broker: BrokerProcess) -> str:
        try:
            await asyncio.wait_for(asyncio.shield(broker.listening), self.cfg.start_timeout)
        except (TimeoutError, RuntimeError):
            await broker.kill()
            self._collect(broker)
            raise _BrokerDidNotStart(f"cycle {broker.cycle}: the broker did not start "
                                     f"(see {self.log_path})") from None
        return broker.url

    def _collect(self, broker: BrokerProcess) -> None:
        self.report.broker_warnings += broker.warnings
        self.report.violations += broker.problems

    async def _cycle(self, cycle: int, log: Any) -> None:
        cfg = self.cfg
        broker = await self._start(cycle, log)
        if self.rng.random() < cfg.startup_kill_rate:
            await asyncio.sleep(self.rng.uniform(0, cfg.startup_window))
            self.report.startup_kills += 1
            await broker.kill()
            self._collect(broker)
            return
        url = await self._listening(broker)
        await self._verify(url, cycle)  # what the previous kill left
        publisher = Publisher(self.ledger, cfg)
        reader = LiveReader(self.ledger, cfg, cycle)
        tasks = [asyncio.create_task(publisher.run(url)), asyncio.create_task(reader.run(url))]
        await asyncio.sleep(self.rng.uniform(cfg.min_up, cfg.max_up))
        for name, task in zip(("publisher", "live reader"), tasks, strict=True):
            if task.done():
                self.report.violations.append(
                    f"cycle {cycle}: the {name} stopped before the kill: {task.exception()!r}")
        await broker.kill()
        await asyncio.wait(tasks, timeout=1.0)
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException) and not _connection_lost(result):
                self.report.violations.append(f"cycle {cycle}: client error {result!r}")
        self.report.live_deliveries += reader.count
        await publisher.close()
        await reader.close()
        self._collect(broker)

    async def _verify(self, url: str, cycle: int) -> None:
        """Read the whole stream from first and check it against everything known."""
        led, rep = self.ledger, self.report
        v = rep.violations
        try:
            entries = await read_all(url, self.cfg.prefetch, self.cfg.verify_timeout)
        except TimeoutError:
            v.append(f"cycle {cycle}: the verifying read from first timed out")
            return
        rep.verify_reads += 1
        rep.entries_verified += len(entries)
        seen = self._check(entries, cycle)
        missing = [o for o in led.offsets if o >= len(entries)]
        if missing:
            v.append(f"cycle {cycle}: {len(missing)} offsets seen before are gone, e.g. "
                     f"{sorted(missing)[:5]}")
        lost = sorted(led.confirmed - seen.keys())
        if lost:
            v.append(f"cycle {cycle}: {len(lost)} confirmed messages missing, e.g. {lost[:10]}")
        for offset, n in enumerate(e[1] for e in entries):
            led.offsets.setdefault(offset, n)
        self.seq_at_verify = led.next_seq
        v += led.bad[:20]
        led.bad.clear()

    def _check(self, entries: list[tuple[int | None, int]], cycle: int) -> dict[int, int]:
        """Order, uniqueness and stability of one read from first; returns seq -> offset."""
        led, rep = self.ledger, self.report
        v = rep.violations
        old_max = max(led.offsets, default=-1)
        seen: dict[int, int] = {}  # seq -> offset
        prev_offset, prev_seq = -1, -1
        for place, (offset, n) in enumerate(entries):
            if offset is None or n < 0:
                v.append(f"cycle {cycle}: entry {place} has a bad body or no offset header")
                continue
            if offset != place:
                v.append(f"cycle {cycle}: entry {place} read from first has offset {offset}")
            if offset <= prev_offset:
                v.append(f"cycle {cycle}: offset {offset} after {prev_offset}")
            if n in seen:
                v.append(f"cycle {cycle}: message {n} twice, at offsets {seen[n]} and {offset}")
            if n <= prev_seq:
                v.append(f"cycle {cycle}: message {n} at offset {offset} after message "
                         f"{prev_seq}: out of publish order")
            seen[n] = offset
            prev_offset, prev_seq = offset, n
            known = led.offsets.get(offset)
            if known is not None and known != n:
                v.append(f"cycle {cycle}: offset {offset} held message {known}, now {n}")
            if known is None and offset <= old_max:
                v.append(f"cycle {cycle}: offset {offset} is new but below {old_max}")
            if known is None and n < self.seq_at_verify:
                v.append(f"cycle {cycle}: message {n}, published before the last verifying "
                         f"read and not in it, appeared at offset {offset}")
            live = led.live.get(offset)
            if live is not None and live[0] != n:
                del led.live[offset]  # (reported once)
                rep.phantom_reads += 1
                rep.phantoms.append(f"cycle {cycle}: offset {offset}: live reader of cycle "
                                    f"{live[1]} got message {live[0]}, now {n}")
                if not self.cfg.allow_phantoms:
                    v.append(f"cycle {cycle}: the live reader of cycle {live[1]} was handed "
                             f"message {live[0]} at offset {offset}, which now holds {n}")
        return seen

    async def _final(self, cycle: int, log: Any) -> None:
        """A clean start: verify, publish a few more and check they follow, stop cleanly,
        start again and verify once more."""
        broker = await self._start(cycle, log)
        url = await self._listening(broker)
        await self._verify(url, cycle)
        before = len(self.ledger.offsets)
        conn = await aiormq.connect(url)
        try:
            ch = cast(aiormq.Channel, await conn.channel(publisher_confirms=True))
            await _declare(ch)
            for _ in range(100):
                n = self.ledger.next_seq
                self.ledger.next_seq += 1
                result = await ch.basic_publish(
                    body_of(n), routing_key=STREAM,
                    properties=spec.Basic.Properties(message_id=str(n)))
                if isinstance(result, spec.Basic.Ack):
                    self.ledger.confirmed.add(n)
        finally:
            await conn.close()
        if (code := await broker.stop()) != 0:
            self.report.violations.append(f"the broker exited with {code} on SIGTERM")
        self._collect(broker)
        broker = await self._start(cycle + 1, log)
        url = await self._listening(broker)
        await self._verify(url, cycle + 1)
        if len(self.ledger.offsets) != before + 100:
            self.report.violations.append(
                f"after a clean restart {len(self.ledger.offsets)} entries, expected "
                f"{before} + 100")
        await broker.stop()
        self._collect(broker)

    def _summarize(self) -> None:
        led, rep = self.ledger, self.report
        rep.published = led.next_seq
        rep.confirmed = len(led.confirmed)
        rep.entries = len(led.offsets)
        rep.unconfirmed_kept = len(set(led.offsets.values()) - led.confirmed)


class _BrokerDidNotStart(Exception):
    pass


async def run(cfg: Config) -> Report:
    quiet = logging.getLogger("aiormq")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return await StreamCrashLoop(cfg).run()
    finally:
        quiet.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Config()
    p.add_argument("--cycles", type=int, default=d.cycles)
    p.add_argument("--minutes", type=float, default=0.0)
    p.add_argument("--min-up", type=float, default=d.min_up)
    p.add_argument("--max-up", type=float, default=d.max_up)
    p.add_argument("--startup-kill-rate", type=float, default=d.startup_kill_rate)
    p.add_argument("--window", type=int, default=d.window)
    p.add_argument("--prefetch", type=int, default=d.prefetch)
    p.add_argument("--max-entries", type=int, default=0,
                   help="stop publishing after this many (0: no limit)")
    p.add_argument("--fsync", default=d.fsync)
    p.add_argument("--allow-phantoms", action="store_true")
    p.add_argument("--seed", type=int)
    p.add_argument("--dir", type=Path)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "little")
    cfg = Config(cycles=a.cycles, minutes=a.minutes, min_up=a.min_up, max_up=a.max_up,
                 startup_kill_rate=a.startup_kill_rate, window=a.window, prefetch=a.prefetch,
                 max_entries=a.max_entries, fsync=a.fsync, allow_phantoms=a.allow_phantoms,
                 seed=seed, workdir=a.dir, keep=a.keep, verbose=not a.quiet)
    print(f"stream crash loop: seed {seed}, fsync {cfg.fsync}, "
          + (f"{cfg.minutes:g} minutes" if cfg.minutes else f"{cfg.cycles} cycles"), flush=True)
    report = asyncio.run(run(cfg))
    print(report.render())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
