"""Idle memory, memory per connection and the accept rate, beside RabbitMQ.

For leveret, starts ``leveret serve`` (a fresh data directory) with and without the
management server and reads its idle RSS; then, against each broker, opens N connections
(AMQP handshake + one channel each, ``--concurrency`` at a time, leveret's own client on
uvloop) and reports:

- the accept rate: connections fully open (connection.open-ok and channel.open-ok) per
  second, from the first connect to the last open-ok;
- the broker's RSS before and after (with the N connections idle for ``--settle`` s), and
  the difference per connection.

The load generator's own ceiling is printed too: the same N opens against a listener that
answers the handshake from canned bytes (no broker work), so a figure near it measures the
tool, not the broker.

    python bench/connections.py                       # leveret, then the reference RabbitMQ
    python bench/connections.py --connections 800 --rabbitmq-pid-file \\
        /var/tmp/reference-rabbitmq/mnesia/reference@localhost.pid

Figures are in docs/benchmarks.md ("Connections and idle memory").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

from nodes import free_port, wait_port

from leveret.amqp import frames, spec
from leveret.client import Connection, connect

REFERENCE_PID_FILE = "/var/tmp/reference-rabbitmq/mnesia/reference@localhost.pid"


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Served:
    """``leveret serve`` on a fresh data directory, as a user starts it."""

    def __init__(self, management: bool) -> None:
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="bench-connections-")
        args = [sys.executable, "-m", "leveret", "serve", "--port", str(self.port),
                "--data-dir", str(Path(self.dir.name) / "data"), "--log-level", "warning"]
        args += ["--management-port", str(free_port())] if management else ["--no-management"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        wait_port(self.port)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.dir.cleanup()


async def open_many(url: str, n: int, concurrency: int) -> tuple[float, list[Connection]]:
    """Open n connections with one channel each; the seconds it took."""
    gate = asyncio.Semaphore(concurrency)
    opened: list[Connection] = []

    async def one() -> None:
        async with gate:
            conn = await connect(url, heartbeat=0)
            await conn.channel()
            opened.append(conn)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - started, opened


async def close_all(conns: list[Connection]) -> None:
    for i in range(0, len(conns), 100):
        await asyncio.gather(*(c.close() for c in conns[i:i + 100]),
                             return_exceptions=True)


async def canned_server() -> tuple[asyncio.Server, int]:
    """A listener that answers the client's handshake with pre-encoded frames: the tool's
    ceiling (it reads and answers, nothing else)."""
    start = frames.encode_method(0, spec.ConnectionStart(
        version_major=0, version_minor=9, server_properties={}, mechanisms=b"PLAIN",
        locales=b"en_US"))
    tune = frames.encode_method(0, spec.ConnectionTune(channel_max=2047, frame_max=131072,
                                                       heartbeat=0))
    open_ok = frames.encode_method(0, spec.ConnectionOpenOk())
    channel_ok = frames.encode_method(1, spec.ChannelOpenOk())

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
            self.seen = 0

        def data_received(self, data: bytes) -> None:
            # header -> start; start-ok + tune-ok + open (maybe in one or more reads) ->
            # tune, open-ok; channel.open -> channel.open-ok. Answer by frame count.
            if self.seen == 0:
                self.transport.write(start)
                self.seen = 1
                data = data[8:]
            self.seen += data.count(frames.FRAME_END)
            if self.seen >= 2 and not getattr(self, "tuned", False):
                self.tuned = True
                self.transport.write(tune)
            if self.seen >= 4 and not getattr(self, "opened", False):
                self.opened = True
                self.transport.write(open_ok)
            if self.seen >= 5 and not getattr(self, "channel", False):
                self.channel = True
                self.transport.write(channel_ok)

    server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def measure(label: str, url: str, pid: int | None, n: int, concurrency: int,
                  settle: float) -> None:
    before = rss(pid) if pid else 0
    took, conns = await open_many(url, n, concurrency)
    await asyncio.sleep(settle)
    after = rss(pid) if pid else 0
    line = f"{label:<40} {n / took:>9,.0f} conn/s ({n} in {took:.2f} s)"
    if pid:
        line += (f"   RSS {before / 2**20:6.1f} -> {after / 2**20:6.1f} MiB, "
                 f"{(after - before) / n / 1024:5.1f} KiB per connection")
    print(line, flush=True)
    await close_all(conns)


async def main_async(args: argparse.Namespace) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}; {args.connections} connections, "
          f"one channel each, {args.concurrency} opening at a time", flush=True)
    server, port = await canned_server()
    await measure("tool ceiling (canned handshake)", f"amqp://guest:guest@127.0.0.1:{port}/",
                  None, args.connections, args.concurrency, 0)
    server.close()

    for management in (False, True):
        served = Served(management)
        try:
            await asyncio.sleep(args.settle)
            idle = rss(served.proc.pid)
            print(f"leveret idle RSS, management {'on ' if management else 'off'}"
                  f"{'':15} {idle / 2**20:6.1f} MiB", flush=True)
            if management:
                await measure("leveret (management on)", served.url, served.proc.pid,
                              args.connections, args.concurrency, args.settle)
        finally:
            served.stop()

    pid_file = Path(args.rabbitmq_pid_file)
    if pid_file.exists():
        pid = int(pid_file.read_text().strip())
        print(f"RabbitMQ (pid {pid}) RSS now {rss(pid) / 2**20:.1f} MiB", flush=True)
        await measure("RabbitMQ", args.rabbitmq, pid, args.connections, args.concurrency,
                      args.settle)
    else:
        print(f"no RabbitMQ pid file at {pid_file}: RabbitMQ skipped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds idle before reading RSS (default 3)")
    parser.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5673/")
    parser.add_argument("--rabbitmq-pid-file", default=REFERENCE_PID_FILE)
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop
        uvloop.install()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
