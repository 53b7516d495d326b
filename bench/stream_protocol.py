#!/usr/bin/env python3
"""RabbitMQ's stream protocol, measured the same way against leveret and RabbitMQ.

    python bench/stream_protocol.py --start-leveret --rabbitmq 127.0.0.1:5921 \\
        --rabbitmq-pid-file /var/tmp/NODE-rabbitmq/mnesia/NODE@localhost.pid --rounds 2

Per broker and round (the brokers alternate: leveret, RabbitMQ, leveret, ...):

  publish  ``--count`` messages of ``--size`` bytes to a fresh stream with one rstream
           Producer, as rstream batches them (``send()`` buffers, a timer flushes the
           buffer every 0.5 s in frames of up to frame_max), confirms counted by a
           callback: msg/s from the first send to the last confirm;
  consume  one rstream Consumer reads them from ``first`` (raw bytes, no AMQP 1.0
           decoding; rstream's default credit of 10 chunks): msg/s to the last one.

The client is rstream (pure Python) in this process, on uvloop, the same for both
brokers; the client's own CPU and the broker process's CPU (/proc, share of one core)
are reported with each figure, and the load average before each run. Messages are
``RawMessage`` bodies by default (``--amqp``: AMQP 1.0-encoded ``AMQPMessage``s, which
costs the client more). RabbitMQ's published figures (about a million messages a second)
come from its Java PerfTest on larger machines; PerfTest is not installed here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rstream import (
    AMQPMessage,
    Consumer,
    ConsumerOffsetSpecification,
    OffsetType,
    Producer,
    RawMessage,
)

ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Broker:
    kind: str
    host: str
    port: int
    pid: int | None  # for its CPU time

    def cpu_seconds(self) -> float | None:
        if self.pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


class LeveretProcess:
    """``python -m leveret serve`` with the stream listener, on its own data directory."""

    def __init__(self, stream_port: int, amqp_port: int, fsync: str) -> None:
        self.stream_port, self.amqp_port, self.fsync = stream_port, amqp_port, fsync
        self.data_dir = Path(tempfile.mkdtemp(prefix="leveret-streambench-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leveret", "serve", "--port", str(self.amqp_port),
             "--stream-port", str(self.stream_port), "--no-management", "--data-dir",
             str(self.data_dir), "--fsync", self.fsync, "--log-level", "warning"],
            env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.stream_port), 0.2).close()
                return Broker("leveret", "127.0.0.1", self.stream_port, self.proc.pid)
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("leveret did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class Result:
    rate: float
    client_cpu: float  # share of one core
    broker_cpu: float | None
    load: float


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def publish(b: Broker, stream: str, count: int, size: int, amqp: bool) -> Result:
    load = os.getloadavg()[0]
    body = b"x" * size
    confirmed = 0
    done = asyncio.Event()

    def on_confirm(status: object) -> None:
        nonlocal confirmed
        confirmed += 1
        if confirmed == count:
            done.set()

    async with Producer(b.host, port=b.port, username="guest", password="guest") as p:
        await p.create_stream(stream, exists_ok=True)
        cpu0, broker0, t0 = client_cpu(), b.cpu_seconds(), time.perf_counter()
        for _ in range(count):
            message = AMQPMessage(body=body) if amqp else RawMessage(body)
            await p.send(stream, message, on_publish_confirm=on_confirm)
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - t0
        cpu1, broker1 = client_cpu(), b.cpu_seconds()
    return Result(count / elapsed, (cpu1 - cpu0) / elapsed,
                  None if broker0 is None or broker1 is None else (broker1 - broker0) / elapsed,
                  load)


async def consume(b: Broker, stream: str, count: int) -> Result:
    load = os.getloadavg()[0]
    got = 0
    done = asyncio.Event()

    async def on_message(msg: bytes, ctx: object) -> None:
        nonlocal got
        got += 1
        if got == count:
            done.set()

    consumer = Consumer(b.host, port=b.port, username="guest", password="guest")
    await consumer.start()
    try:
        cpu0, broker0, t0 = client_cpu(), b.cpu_seconds(), time.perf_counter()
        await consumer.subscribe(stream, on_message, decoder=lambda raw: raw,
                                 offset_specification=ConsumerOffsetSpecification(
                                     OffsetType.FIRST))
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - t0
        cpu1, broker1 = client_cpu(), b.cpu_seconds()
    finally:
        await consumer.close()
    return Result(count / elapsed, (cpu1 - cpu0) / elapsed,
                  None if broker0 is None or broker1 is None else (broker1 - broker0) / elapsed,
                  load)


async def delete_stream(b: Broker, stream: str) -> None:
    async with Producer(b.host, port=b.port, username="guest", password="guest") as p:
        await p.delete_stream(stream)


def show(kind: str, what: str, r: Result) -> str:
    """The rate, and each side's CPU as a share of one core and in µs per message."""
    broker = f"{r.broker_cpu:.2f} ({r.broker_cpu / r.rate * 1e6:.2f} us/msg)" \
        if r.broker_cpu is not None else "?"
    return (f"{kind:8} {what:8} {r.rate:>10,.0f} msg/s  client cpu {r.client_cpu:.2f} "
            f"({r.client_cpu / r.rate * 1e6:.2f} us/msg)  broker cpu {broker}  "
            f"load {r.load:.2f}")


async def run(args: argparse.Namespace, brokers: list[Broker]) -> None:
    results: dict[tuple[str, str], list[Result]] = {}
    for round_ in range(args.rounds):
        for b in brokers:
            stream = f"bench-{uuid.uuid4().hex[:8]}"
            pub = await publish(b, stream, args.count, args.size, args.amqp)
            print(show(b.kind, "publish", pub), flush=True)
            con = await consume(b, stream, args.count)
            print(show(b.kind, "consume", con), flush=True)
            await delete_stream(b, stream)
            results.setdefault((b.kind, "publish"), []).append(pub)
            results.setdefault((b.kind, "consume"), []).append(con)
            await asyncio.sleep(args.pause)
        print(f"-- round {round_ + 1} done", flush=True)
    print("\n| | " + " | ".join(f"{k} {w}" for k, w in results) + " |")
    print("|---|" + "---|" * len(results))
    for i in range(args.rounds):
        print(f"| round {i + 1} | " + " | ".join(
            f"{rs[i].rate:,.0f}" for rs in results.values()) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--start-leveret", action="store_true",
                   help="start `leveret serve --stream-port` (fsync per --fsync)")
    p.add_argument("--leveret", metavar="HOST:PORT", help="a running leveret's stream port")
    p.add_argument("--leveret-pid", type=int, help="its pid, for its CPU time")
    p.add_argument("--stream-port", type=int, default=5927,
                   help="stream port of the leveret started here")
    p.add_argument("--amqp-port", type=int, default=5926,
                   help="AMQP port of the leveret started here")
    p.add_argument("--fsync", default="always")
    p.add_argument("--rabbitmq", metavar="HOST:PORT", help="RabbitMQ's stream port")
    p.add_argument("--rabbitmq-pid-file", type=Path, help="beam.smp's pid file (CPU time)")
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--pause", type=float, default=3.0, help="seconds between runs")
    p.add_argument("--amqp", action="store_true", help="AMQP 1.0-encoded messages")
    args = p.parse_args()
    brokers: list[Broker] = []
    started: LeveretProcess | None = None
    if args.start_leveret:
        started = LeveretProcess(args.stream_port, args.amqp_port, args.fsync)
        brokers.append(started.start())
    elif args.leveret:
        host, port = args.leveret.rsplit(":", 1)
        brokers.append(Broker("leveret", host, int(port), args.leveret_pid))
    if args.rabbitmq:
        host, port = args.rabbitmq.rsplit(":", 1)
        pid = int(args.rabbitmq_pid_file.read_text().strip()) if args.rabbitmq_pid_file \
            else None
        brokers.append(Broker("rabbitmq", host, int(port), pid))
    if not brokers:
        p.error("nothing to measure: --start-leveret, --leveret or --rabbitmq")
    print(f"# {' '.join(sys.argv)}\n# count {args.count}, size {args.size}, "
          f"{'AMQP 1.0' if args.amqp else 'raw'} messages, {os.cpu_count()} cpus", flush=True)
    try:
        try:
            import uvloop
            uvloop.run(run(args, brokers))
        except ImportError:
            asyncio.run(run(args, brokers))
    finally:
        if started is not None:
            started.stop()


if __name__ == "__main__":
    main()
