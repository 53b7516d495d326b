"""Crash loop: a confirming publisher and a manual-ack consumer run against a real broker
process that is SIGKILLed at random moments and restarted, many times; then the queue is
drained and every delivery is checked against what the clients know.

    python bench/crashloop.py                     # 50 cycles, about two minutes
    python bench/crashloop.py --cycles 300 --seed 7 --fsync interval:50
    python bench/crashloop.py --minutes 10        # as many cycles as fit in ten minutes
    python bench/crashloop.py --stream --minutes 10   # a stream queue instead (its own
                                                      # checks: bench/crashloop_stream.py)

Exit status 1 if a rule below is broken (the violations are listed), 0 otherwise. The
figures and the command that produced them are in docs/storage.md ("Crash and corruption
testing"); tests/test_crash_loop.py runs the same harness for a few cycles.

What is checked, and why exactly so (a kill can land between any two instructions):

* **No loss**: every message whose publisher confirm (basic.ack) arrived is delivered at
  least once. Published-but-unconfirmed messages may or may not be there.
* **No acked message comes back**, for acks *known durable*: the consumer's channel is
  also in confirm mode, and every ~20 ms it publishes a persistent "barrier" message to a
  durable queue. The broker handles one connection's frames in order, and a confirm waits
  until the store is durable up to the publish (every change counts in one sequence), so
  a barrier's confirm proves durable every ack the client had written to the socket
  before it, and the delivered mark of every message it had received before it (the
  broker marks a message before sending it). Durable: fsynced under ``--fsync always``,
  written to the OS (which survives SIGKILL) under ``interval`` and ``off``.
  An ack merely sent, or even answered by a round trip (basic.qos, queue.declare), is
  not enough: the broker has then *processed* it, but while a commit is running the ack
  record waits in the queue's buffer for the next flush, which starts only when that
  commit ends (server/commit.py), so a kill in between legitimately brings the message
  back. Such messages count as duplicates, not violations. Also: a broker process never
  redelivers a message it was sent an ack for.
* **redelivered=true** on a message delivered again after a requeue in the same broker
  run, or after an earlier delivery whose delivered mark is known durable (as above). A
  message whose earlier delivery was not yet known durable may come back with
  redelivered=false (AMQP calls the flag a hint; docs/storage.md explains the window).
* **Bodies are intact** (each body is derived from its id), no unknown id is delivered,
  the broker logs no ERROR, CRITICAL or traceback, and after the final drain and a clean
  restart the queue is empty.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import aiormq
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

QUEUE = "crashloop"
BARRIER_QUEUE = "crashloop.barrier"  # the consumer's confirm barriers; kept short
BARRIER_ARGS: dict[str, Any] = {"x-max-length": 16}  # drop-head: old barriers are dropped (acked)
PERSISTENT = 2

# What happened to one delivery, as far as the consumer knows.
NOTHING, ACKED, REQUEUED = 0, 1, 2

# Errors a client sees when the broker dies under it.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError,
    aiormq.exceptions.ChannelInvalidStateError, EOFError, asyncio.IncompleteReadError)


def _connection_lost(exc: BaseException) -> bool:
    # aiormq rejects what was waiting on a connection that died with a bare Exception.
    return isinstance(exc, (asyncio.CancelledError, *CONNECTION_ERRORS)) or \
        type(exc) is Exception


def body_of(n: int) -> bytes:
    """Message ``n``'s body: its id and a size and filler derived from it, so any damage
    shows. One in 997 is 300 KB (large messages take the store's unbuffered path)."""
    size = 300_000 if n % 997 == 996 else (n * 2654435761) % 3000 + 16
    return b"%d|" % n + bytes([n % 251]) * size


@dataclass
class Config:
    cycles: int = 50
    minutes: float = 0.0  # > 0: run cycles until this much time has passed (cycles ignored)
    min_up: float = 0.2  # seconds the broker runs after it listens, before the kill
    max_up: float = 2.0
    startup_kill_rate: float = 0.1  # share of cycles killed while starting (recovering)
    startup_window: float = 0.8  # such kills land this soon after the process starts
    window: int = 256  # unconfirmed publishes in flight
    prefetch: int = 50
    max_ack_batch: int = 8  # acks go out in multiple-acks of 1..this many messages
    requeue_rate: float = 0.01  # share of deliveries nacked with requeue=true
    barrier_interval: float = 0.02
    max_backlog: int = 10_000  # the publisher pauses while more messages are ready
    fsync: str = "always"
    seed: int | None = None
    workdir: Path | None = None  # default: a temporary directory, removed if all is well
    keep: bool = False
    snapshots: bool = False  # copy the data directory after every kill (for post-mortems)
    start_timeout: float = 60.0
    drain_timeout: float = 180.0
    verbose: bool = False


class Delivery:
    """One delivery of a message, and what the consumer knows about it."""

    __slots__ = ("ack_durable", "epoch", "mark_durable", "outcome", "redelivered")

    def __init__(self, epoch: int, redelivered: bool) -> None:
        self.epoch = epoch  # the broker run (cycle) it came from
        self.redelivered = redelivered
        self.outcome = NOTHING
        self.mark_durable = False  # a barrier confirmed after it arrived
        self.ack_durable = False  # a barrier confirmed after its ack was written


@dataclass
class Ledger:
    """Everything the clients know, across all broker runs (epochs)."""

    next_id: int = 0  # ids 0 .. next_id - 1 were handed to the publisher
    confirmed: set[int] = field(default_factory=set)
    nacked: set[int] = field(default_factory=set)
    deliveries: dict[int, list[Delivery]] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # damaged or unknown deliveries
    acks_sent: int = 0
    barriers: int = 0

    def delivered(self, msg: DeliveredMessage, epoch: int) -> tuple[int, int]:
        """Record a delivery; returns (id, index of this delivery of it) or (-1, -1)."""
        props = msg.header.properties
        try:
            n = int(props.message_id or "")
        except ValueError:
            n = -1
        assert isinstance(msg.delivery, spec.Basic.Deliver)
        if not 0 <= n < self.next_id or msg.body != body_of(n):
            self.bad.append(f"delivery of message_id {props.message_id!r} in cycle {epoch}: "
                            f"{'unknown id' if not 0 <= n < self.next_id else 'bad body'} "
                            f"({len(msg.body)} bytes)")
            return -1, -1
        seen = self.deliveries.setdefault(n, [])
        seen.append(Delivery(epoch, bool(msg.delivery.redelivered)))
        return n, len(seen) - 1

    def settled(self, n: int, k: int, outcome: int) -> None:
        self.deliveries[n][k].outcome = outcome
        if outcome == ACKED:
            self.acks_sent += 1

    def durable(self, acks: Iterable[tuple[int, int]], marks: Iterable[tuple[int, int]]) -> None:
        """A barrier was confirmed: these acks and deliveries are known durable."""
        self.barriers += 1
        for n, k in acks:
            self.deliveries[n][k].ack_durable = True
        for n, k in marks:
            self.deliveries[n][k].mark_durable = True


@dataclass
class Report:
    cycles: int = 0
    startup_kills: int = 0  # cycles killed before or just after the broker listened
    seconds: float = 0.0
    published: int = 0
    confirmed: int = 0
    nacked: int = 0
    deliveries: int = 0
    delivered_ids: int = 0
    unconfirmed_delivered: int = 0  # published, confirm never seen, yet delivered
    duplicates: int = 0  # deliveries beyond the first, all causes
    dup_unacked: int = 0  # the earlier delivery was never acked (in flight at a kill)
    dup_ack_not_durable: int = 0  # acked, but the ack was not yet known durable
    dup_requeued: int = 0  # nacked with requeue=true by the consumer
    redelivered_flag_lost: int = 0  # allowed: the earlier delivery's mark was not durable
    first_flagged_redelivered: int = 0  # first seen, flagged: delivered before, unseen
    acks_sent: int = 0
    acks_known_durable: int = 0
    barriers: int = 0
    lost: int = 0
    final_queue_depth: int = -1
    broker_warnings: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    kept: str = ""  # the work directory (data, broker.log), when kept

    def render(self) -> str:
        lines = [
            f"cycles (SIGKILL + restart)      {self.cycles} ({self.startup_kills} killed "
            f"while starting) in {self.seconds:.0f} s",
            f"published / confirmed / nacked  {self.published} / {self.confirmed} / "
            f"{self.nacked}",
            f"deliveries / distinct ids       {self.deliveries} / {self.delivered_ids} "
            f"({self.unconfirmed_delivered} of them published but not confirmed)",
            f"duplicates (allowed)            {self.duplicates}: {self.dup_unacked} unacked "
            f"at a kill, {self.dup_ack_not_durable} acked but ack not yet durable, "
            f"{self.dup_requeued} requeued",
            f"redelivered flag                {self.redelivered_flag_lost} redeliveries "
            f"without it (mark not yet durable: allowed), {self.first_flagged_redelivered} "
            f"first deliveries with it",
            f"acks sent / known durable       {self.acks_sent} / {self.acks_known_durable} "
            f"({self.barriers} barriers)",
            f"confirmed messages checked      {self.confirmed}, lost: {self.lost}",
            f"queue depth after a clean restart: {self.final_queue_depth}",
            f"broker warnings                 {len(self.broker_warnings)}",
        ]
        lines += [f"    {w}" for w in _summarize(self.broker_warnings)]
        lines.append(f"violations                      {len(self.violations)}")
        lines += [f"    {v}" for v in self.violations[:50]]
        if self.kept:
            lines.append(f"data directory and broker log kept in {self.kept}")
        return "\n".join(lines)


def _summarize(warnings: list[str], limit: int = 10) -> list[str]:
    """The distinct warning texts (timestamps cut), most frequent first."""
    counts: dict[str, int] = {}
    for w in warnings:
        text = w.split(" ", 2)[-1] if w[:4].isdigit() else w
        counts[text] = counts.get(text, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return [f"{n} x {text}" for text, n in ranked[:limit]]


# -- the broker process -------------------------------------------------------------------


class BrokerProcess:
    """``python -m leveret serve`` on a free port; its stderr goes to ``log``."""

    def __init__(self, proc: asyncio.subprocess.Process, log: IO[str], cycle: int) -> None:
        self.proc = proc
        self.log = log
        self.cycle = cycle
        self.listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.problems: list[str] = []  # ERROR / CRITICAL / traceback lines
        self.warnings: list[str] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, data_dir: Path, fsync: str, log: IO[str], cycle: int
                    ) -> BrokerProcess:
        # AMQP only: the management API's fixed default port would clash across runs.
        env = {**os.environ, "LEVERET_MANAGEMENT_ENABLED": "false"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "leveret", "serve", "--port", "0", "--data-dir",
            str(data_dir), "--fsync", fsync, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        log.write(f"=== cycle {cycle}: pid {proc.pid}\n")
        return cls(proc, log, cycle)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := (await self.proc.stderr.readline()).decode(errors="replace"):
            self.log.write(line)
            text = line.rstrip()
            if "listening on" in text and not self.listening.done():
                self.listening.set_result(int(text.rsplit(":", 1)[1].split()[0]))
            if " WARNING " in text:
                self.warnings.append(text)
            elif " ERROR " in text or " CRITICAL " in text or text.startswith("Traceback"):
                self.problems.append(f"cycle {self.cycle}: {text}")
        if not self.listening.done():
            self.listening.set_exception(RuntimeError("the broker exited before listening"))
            self.listening.exception()  # retrieved: callers may have stopped waiting

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.listening.result()}/"

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self.reader

    async def stop(self) -> int:
        """SIGTERM (graceful shutdown); SIGKILL if it takes more than 30 s."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            await self.kill()
            return -9
        await self.reader
        return code


# -- clients ------------------------------------------------------------------------------


async def _declare(ch: aiormq.abc.AbstractChannel) -> None:
    await ch.queue_declare(QUEUE, durable=True)
    await ch.queue_declare(BARRIER_QUEUE, durable=True, arguments=BARRIER_ARGS)


async def _ready(ch: aiormq.abc.AbstractChannel) -> int:
    """Messages ready in the queue (a round trip)."""
    return (await ch.queue_declare(QUEUE, passive=True)).message_count or 0


class Publisher:
    """Persistent messages with ids 0, 1, 2, ... and up to ``window`` unconfirmed."""

    def __init__(self, ledger: Ledger, cfg: Config) -> None:
        self.ledger = ledger
        self.cfg = cfg
        self.conn: aiormq.abc.AbstractConnection | None = None
        self.broken = False

    async def run(self, url: str) -> None:
        self.conn = await aiormq.connect(url)
        # the concrete class: its basic_publish takes wait=False (no drain per message)
        ch = cast(aiormq.Channel, await self.conn.channel(publisher_confirms=True))
        await _declare(ch)
        window = asyncio.Semaphore(self.cfg.window)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self.broken:
                if self.ledger.next_id % 500 == 0:
                    await self._hold_back(ch)
                await window.acquire()
                if self.broken or ch.is_closed:  # ids after a lost connection: never sent
                    break
                n = self.ledger.next_id
                self.ledger.next_id += 1
                task = asyncio.create_task(self._publish(ch, n, window))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _hold_back(self, ch: aiormq.abc.AbstractChannel) -> None:
        """Pause while the consumer is far behind (a huge backlog only slows recovery)."""
        while await _ready(ch) > self.cfg.max_backlog:
            await asyncio.sleep(0.1)

    async def _publish(self, ch: aiormq.Channel, n: int,
                       window: asyncio.Semaphore) -> None:
        try:
            result = await ch.basic_publish(
                body_of(n), routing_key=QUEUE, wait=False,
                properties=spec.Basic.Properties(delivery_mode=PERSISTENT, message_id=str(n)))
        except Exception:  # the connection is gone (aiormq may say just "Exception")
            self.broken = True  # and the outcome of this one is unknown
            return
        finally:
            window.release()
        if isinstance(result, spec.Basic.Ack):
            self.ledger.confirmed.add(n)
        elif isinstance(result, spec.Basic.Nack):
            self.ledger.nacked.add(n)

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 2)


class Consumer:
    """Manual acks (multiple-acks of a few messages), now and then a requeue, and the
    confirm barriers that tell which acks and delivered marks are durable."""

    def __init__(self, ledger: Ledger, cfg: Config, epoch: int, rng: random.Random,
                 requeue_rate: float) -> None:
        self.ledger = ledger
        self.cfg = cfg
        self.epoch = epoch
        self.rng = rng
        self.requeue_rate = requeue_rate
        self.conn: aiormq.abc.AbstractConnection | None = None
        self.inbox: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()
        self.pending: list[tuple[int, int, int]] = []  # (delivery tag, id, delivery index)
        self.acks_since: list[tuple[int, int]] = []  # written since the last barrier
        self.marks_since: list[tuple[int, int]] = []  # received since the last barrier
        self.barrier_in_flight = False
        self.batch = 1

    async def run(self, url: str) -> None:
        self.conn = await aiormq.connect(url)
        ch = await self.conn.channel(publisher_confirms=True)
        await _declare(ch)
        await ch.basic_qos(prefetch_count=self.cfg.prefetch)
        await ch.basic_consume(QUEUE, self._on_message)
        barriers = asyncio.create_task(self._barriers(ch))
        try:
            await self._work(ch)
        finally:
            barriers.cancel()
            with contextlib.suppress(BaseException):
                await barriers

    async def _on_message(self, msg: DeliveredMessage) -> None:
        n, k = self.ledger.delivered(msg, self.epoch)
        if n >= 0:
            self.marks_since.append((n, k))
        assert msg.delivery_tag is not None
        self.inbox.put_nowait((msg.delivery_tag, n, k))

    async def _work(self, ch: aiormq.abc.AbstractChannel) -> None:
        while True:
            item = await self.inbox.get()
            tag, n, k = item
            if n >= 0 and self.rng.random() < self.requeue_rate:
                await ch.basic_nack(tag, requeue=True)
                self.ledger.settled(n, k, REQUEUED)
                continue
            self.pending.append(item)
            if len(self.pending) >= self.batch or self.inbox.empty():
                batch, self.pending = self.pending, []
                # Recorded only once the frame is written: a barrier taken after this
                # point is behind it on the wire.
                await ch.basic_ack(batch[-1][0], multiple=len(batch) > 1)
                for _tag, n, k in batch:
                    if n >= 0:
                        self.ledger.settled(n, k, ACKED)
                        self.acks_since.append((n, k))
                self.batch = self.rng.randint(1, self.cfg.max_ack_batch)

    async def _barriers(self, ch: aiormq.abc.AbstractChannel) -> None:
        while True:
            await asyncio.sleep(self.cfg.barrier_interval)
            if not self.acks_since and not self.marks_since:
                continue
            acks, marks = self.acks_since, self.marks_since
            self.acks_since, self.marks_since = [], []
            self.barrier_in_flight = True
            result = await ch.basic_publish(
                b"", routing_key=BARRIER_QUEUE,
                properties=spec.Basic.Properties(delivery_mode=PERSISTENT))
            self.barrier_in_flight = False
            if isinstance(result, spec.Basic.Ack):
                self.ledger.durable(acks, marks)

    def idle(self) -> bool:
        return (self.inbox.empty() and not self.pending and not self.acks_since and
                not self.marks_since and not self.barrier_in_flight)

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 2)


# -- the loop -----------------------------------------------------------------------------


class CrashLoop:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.ledger = Ledger()
        self.report = Report()
        self.own_dir = cfg.workdir is None
        self.workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="leveret-crashloop-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "broker.log"
        self.brokers: list[BrokerProcess] = []

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
                        self._progress(cycle, started)
                    if any(b.problems for b in self.brokers[-1:]):
                        break  # the broker logged an error: stop and report it
                await self._final(cycle, log)
            except BrokerDidNotStart as exc:
                self.report.violations.append(str(exc))
            finally:
                for broker in self.brokers:
                    if broker.proc.returncode is None:
                        await broker.kill()
        self.report.seconds = time.monotonic() - started
        self._verify()
        if self.own_dir and not self.report.violations and not self.cfg.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self.report.kept = str(self.workdir)
        return self.report

    def _progress(self, cycle: int, started: float) -> None:
        led = self.ledger
        print(f"cycle {cycle:4d}  {time.monotonic() - started:6.0f} s  published "
              f"{led.next_id}  confirmed {len(led.confirmed)}  delivered ids "
              f"{len(led.deliveries)}  barriers {led.barriers}", flush=True)

    async def _start_broker(self, cycle: int, log: IO[str]) -> BrokerProcess:
        broker = await BrokerProcess.start(self.data_dir, self.cfg.fsync, log, cycle)
        self.brokers.append(broker)
        return broker

    async def _listening(self, broker: BrokerProcess) -> str:
        try:
            await asyncio.wait_for(asyncio.shield(broker.listening), self.cfg.start_timeout)
        except (TimeoutError, RuntimeError):
            await broker.kill()
            self._collect(broker)  # its ERROR lines say why
            raise BrokerDidNotStart(
                f"cycle {broker.cycle}: the broker did not start (see {self.log_path})"
            ) from None
        return broker.url

    async def _cycle(self, cycle: int, log: IO[str]) -> None:
        cfg = self.cfg
        broker = await self._start_broker(cycle, log)
        if self.rng.random() < cfg.startup_kill_rate:
            # Killed while importing, recovering (truncating, reclaiming) or just listening.
            await asyncio.sleep(self.rng.uniform(0, cfg.startup_window))
            self.report.startup_kills += 1
            await broker.kill()
            self._collect(broker)
            return
        url = await self._listening(broker)
        publisher = Publisher(self.ledger, cfg)
        consumer = Consumer(self.ledger, cfg, cycle, self.rng, cfg.requeue_rate)
        tasks = [asyncio.create_task(publisher.run(url)), asyncio.create_task(consumer.run(url))]
        await asyncio.sleep(self.rng.uniform(cfg.min_up, cfg.max_up))
        for name, task in zip(("publisher", "consumer"), tasks, strict=True):
            if task.done():  # a client stopped while the broker was up: a broker error
                exc = task.exception()
                self.report.violations.append(
                    f"cycle {cycle}: the {name} stopped before the kill: {exc!r}")
        await broker.kill()
        await self._stop_clients(tasks, (publisher, consumer), cycle)
        self._collect(broker)

    async def _stop_clients(self, tasks: list[asyncio.Task[None]],
                            clients: Iterable[Publisher | Consumer], cycle: int) -> None:
        await asyncio.wait(tasks, timeout=1.0)  # let them notice the broker is gone
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException) and not _connection_lost(result):
                self.report.violations.append(f"cycle {cycle}: client error {result!r}")
        for client in clients:
            await client.close()

    def _collect(self, broker: BrokerProcess) -> None:
        if self.cfg.snapshots and self.data_dir.exists():
            shutil.copytree(self.data_dir, self.workdir / "snapshots" / f"{broker.cycle}")
        self.report.broker_warnings += broker.warnings
        self.report.violations += broker.problems

    async def _final(self, cycle: int, log: IO[str]) -> None:
        """Drain the queue with the consumer alone, stop cleanly, restart, and check that
        nothing is left."""
        broker = await self._start_broker(cycle, log)
        url = await self._listening(broker)
        consumer = Consumer(self.ledger, self.cfg, cycle, self.rng, requeue_rate=0.0)
        task = asyncio.create_task(consumer.run(url))
        conn = await aiormq.connect(url)
        try:
            ch = await conn.channel()
            await _declare(ch)
            deadline = time.monotonic() + self.cfg.drain_timeout
            while True:
                await asyncio.sleep(0.2)
                ready = await _ready(ch)
                if ready == 0 and consumer.idle():
                    break
                if task.done() or time.monotonic() > deadline:
                    self.report.violations.append(
                        f"final drain stopped with {ready} messages ready "
                        f"({task.exception() if task.done() else 'timed out'!r})")
                    break
        finally:
            await conn.close()
            await self._stop_clients([task], [consumer], cycle)
        if (code := await broker.stop()) != 0:
            self.report.violations.append(f"the broker exited with {code} on SIGTERM")
        self._collect(broker)
        broker = await self._start_broker(cycle + 1, log)
        url = await self._listening(broker)
        conn = await aiormq.connect(url)
        try:
            ch = await conn.channel()
            self.report.final_queue_depth = await _ready(ch)
        finally:
            await conn.close()
        await broker.stop()
        self._collect(broker)

    def _verify(self) -> None:
        led, rep = self.ledger, self.report
        rep.published = led.next_id
        rep.confirmed = len(led.confirmed)
        rep.nacked = len(led.nacked)
        rep.acks_sent = led.acks_sent
        rep.barriers = led.barriers
        rep.delivered_ids = len(led.deliveries)
        rep.unconfirmed_delivered = len(led.deliveries.keys() - led.confirmed)
        lost = sorted(led.confirmed - led.deliveries.keys())
        rep.lost = len(lost)
        v = rep.violations
        if lost:
            v.append(f"{len(lost)} confirmed messages never delivered, e.g. {lost[:10]}")
        if rep.final_queue_depth != 0:
            v.append(f"{rep.final_queue_depth} messages left after the drain and a restart")
        v += led.bad[:20]
        for n, seen in led.deliveries.items():
            rep.deliveries += len(seen)
            rep.first_flagged_redelivered += seen[0].redelivered
            for k, d in enumerate(seen):
                rep.acks_known_durable += d.ack_durable
                if d.ack_durable and k + 1 < len(seen):
                    v.append(f"message {n} delivered again after its ack was known durable: "
                             f"{_history(seen)}")
                if k:
                    self._check_redelivery(n, seen, k)

    def _check_redelivery(self, n: int, seen: list[Delivery], k: int) -> None:
        rep = self.report
        before, now = seen[k - 1], seen[k]
        rep.duplicates += 1
        if before.outcome == REQUEUED:
            rep.dup_requeued += 1
        elif before.outcome == ACKED:
            rep.dup_ack_not_durable += 1
        else:
            rep.dup_unacked += 1
        if before.epoch == now.epoch and before.outcome == ACKED:
            rep.violations.append(f"message {n} redelivered by the broker run it was acked "
                                  f"to: {_history(seen)}")
        # A durable delivered mark stays until an ack: any earlier delivery's counts.
        must_flag = before.epoch == now.epoch or any(d.mark_durable for d in seen[:k])
        if not now.redelivered:
            if must_flag:
                rep.violations.append(f"message {n} delivered again without redelivered=true:"
                                      f" {_history(seen)}")
            else:
                rep.redelivered_flag_lost += 1


def _history(seen: list[Delivery]) -> str:
    names = {NOTHING: "unsettled", ACKED: "acked", REQUEUED: "requeued"}
    return "; ".join(f"cycle {d.epoch} redelivered={d.redelivered} {names[d.outcome]}"
                     f"{' (ack durable)' if d.ack_durable else ''}"
                     f"{' (mark durable)' if d.mark_durable else ''}" for d in seen)


class BrokerDidNotStart(Exception):
    pass


async def run(cfg: Config) -> Report:
    """Run the crash loop; the report lists its figures and any violations."""
    quiet = logging.getLogger("aiormq")  # connection resets are expected: not worth a line
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return await CrashLoop(cfg).run()
    finally:
        quiet.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--stream" in args:  # the stream crash loop (bench/crashloop_stream.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import crashloop_stream
        return crashloop_stream.main([a for a in args if a != "--stream"])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Config()
    p.add_argument("--cycles", type=int, default=d.cycles, help="kills (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=0.0,
                   help="run cycles for this long instead of a fixed count")
    p.add_argument("--min-up", type=float, default=d.min_up,
                   help="shortest run before a kill, seconds (default: %(default)s)")
    p.add_argument("--max-up", type=float, default=d.max_up,
                   help="longest run before a kill, seconds (default: %(default)s)")
    p.add_argument("--startup-kill-rate", type=float, default=d.startup_kill_rate,
                   help="share of cycles killed while starting (default: %(default)s)")
    p.add_argument("--prefetch", type=int, default=d.prefetch)
    p.add_argument("--window", type=int, default=d.window,
                   help="unconfirmed publishes in flight (default: %(default)s)")
    p.add_argument("--requeue-rate", type=float, default=d.requeue_rate)
    p.add_argument("--fsync", default=d.fsync, help="the broker's --fsync (default: always)")
    p.add_argument("--seed", type=int, help="seed of the kill times and client choices")
    p.add_argument("--dir", type=Path, help="work directory (default: a temporary one, "
                   "kept only if a check fails)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--snapshots", action="store_true",
                   help="copy the data directory after every kill (into the work directory)")
    p.add_argument("--quiet", action="store_true", help="no line per cycle")
    a = p.parse_args(argv)
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "little")
    cfg = Config(cycles=a.cycles, minutes=a.minutes, min_up=a.min_up, max_up=a.max_up,
                 startup_kill_rate=a.startup_kill_rate, prefetch=a.prefetch, window=a.window,
                 requeue_rate=a.requeue_rate, fsync=a.fsync, seed=seed, workdir=a.dir,
                 keep=a.keep, snapshots=a.snapshots, verbose=not a.quiet)
    print(f"crash loop: seed {seed}, fsync {cfg.fsync}, "
          + (f"{cfg.minutes:g} minutes" if cfg.minutes else f"{cfg.cycles} cycles"), flush=True)
    report = asyncio.run(run(cfg))
    print(report.render())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
