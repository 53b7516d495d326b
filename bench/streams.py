#!/usr/bin/env python3
"""Stream queues, measured the same way against leveret and RabbitMQ.

    python bench/streams.py --start-leveret                 # starts leveret itself
    python bench/streams.py --url amqp://guest:guest@127.0.0.1:5673/ --rabbitmq
    python bench/streams.py --start-leveret --startup 10000000 --startup-dir /var/tmp/s10m
    python bench/streams.py --start-rabbitmq-node --startup 10000000 \\
        --startup-dir /var/tmp/rmq-s10m                      # a private RabbitMQ node

Scenarios (``--scenarios abce``, default all but d):

  (a) publish N entries (``--publish``, 100 B) to a fresh stream, confirms with a window
      of ``--window`` outstanding: msg/s;
  (b) one consumer reads ``--read`` entries from ``first`` (prefetch ``--prefetch``, one
      multiple-ack per half prefetch): msg/s;
  (c) 1 then ``--readers`` consumers (one connection each) read the same stream from
      ``first`` at once, ``--read-each`` entries each: total msg/s and the broker's RSS
      before / peak during / after;
  (e) disk used per entry: du of the stream's directory / entries;
  (d) ``--startup N``: a stream of N entries on disk, the broker restarted: seconds from
      process start to accepting connections, and to the first delivery from ``first``.

The client is leveret's own asyncio client (``leveret.client``, uvloop), the same for both
brokers. Streams are declared ``x-queue-type: stream``, durable, default segment size.
The broker's RSS is read from /proc (``--pid``; found by itself for a leveret it started
and for the reference RabbitMQ's beam.smp).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nodes import RabbitNode  # noqa: E402

from leveret.amqp import spec  # noqa: E402
from leveret.client import connect  # noqa: E402
from leveret.client.channel import Channel  # noqa: E402
from leveret.client.connection import Connection  # noqa: E402

STREAM_ARGS = {"x-queue-type": "stream"}
REFERENCE_MNESIA = "/var/tmp/reference-rabbitmq/mnesia/reference@localhost"
_SEQ = struct.Struct(">Q")


# -- brokers ---------------------------------------------------------------------------


class LeveretProcess:
    """``python -m leveret serve`` on a free port with a data directory."""

    def __init__(self, data_dir: Path, fsync: str = "always") -> None:
        self.data_dir = data_dir
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.port = 0

    def start(self) -> float:
        """Start; returns seconds until it logged that it listens."""
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leveret", "serve", "--port", "0", "--no-management",
             "--data-dir", str(self.data_dir), "--fsync", self.fsync],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            if "listening on amqp://" in line:
                self.port = int(line.rsplit(":", 1)[1].split()[0])
                break
        else:
            raise RuntimeError("leveret exited before listening")
        listened = time.monotonic() - self.started
        # keep reading its log so it never blocks on a full pipe
        stderr = self.proc.stderr
        import threading
        threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
        return listened

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def reference_pid() -> int | None:
    """The reference RabbitMQ's beam.smp (the shared broker on 5673)."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path(REFERENCE_MNESIA + ".pid").read_text().strip())
    return None


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def du_bytes(path: Path, apparent: bool = False) -> int:
    """``du -s`` (blocks allocated) or ``du -sb`` (apparent size), in bytes."""
    args = ["du", "-sb"] if apparent else ["du", "-s", "--block-size=1"]
    out = subprocess.run([*args, str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.returncode == 0 else -1


def disk_row(d: Path, entries: int, size: int) -> list[str]:
    used, apparent = du_bytes(d), du_bytes(d, apparent=True)
    return ["(e) disk per entry", f"{entries:,} entries of {size} B",
            f"{used / entries:.1f} B/entry", f"du -s {used:,} B (apparent {apparent:,} B; "
            f"{apparent / entries:.1f} B/entry) in {d}"]


def stream_dir(name: str, leveret_data: Path | None, rabbit_mnesia: str | None) -> Path | None:
    """The directory holding the stream ``name``'s entries."""
    if leveret_data is not None:
        for qfile in (leveret_data / "queues").glob("*/QUEUE"):
            if f'"name": "{name}"' in qfile.read_text() or \
                    f'"name":"{name}"' in qfile.read_text():
                return qfile.parent
        return None
    if rabbit_mnesia is not None:
        hits = sorted(glob.glob(f"{rabbit_mnesia}/stream/__{name}_*"))
        return Path(hits[-1]) if hits else None
    return None


# -- clients ---------------------------------------------------------------------------


async def declare(url: str, name: str, fresh: bool) -> int:
    conn = await connect(url)
    try:
        ch = await conn.channel()
        if fresh:
            with contextlib.suppress(Exception):
                await ch.queue_delete(name)
            ch = await conn.channel()
        ok = await ch.queue_declare(name, durable=True, arguments=STREAM_ARGS)
        return int(ok.message_count)
    finally:
        await conn.close()


async def publish(url: str, name: str, count: int, size: int, window: int,
                  first_seq: int = 0) -> float:
    """Publish ``count`` entries with confirms, at most ``window`` unconfirmed; returns
    the seconds from the first publish to the last confirm."""
    conn = await connect(url)
    try:
        ch = await conn.channel()
        await ch.confirm_select()
        pub = ch.publisher("", name, spec.Properties(delivery_mode=2).encode())
        pad = bytes(max(0, size - _SEQ.size))
        refill = max(0, window - max(1, window // 4))
        sent = 0
        t0 = time.perf_counter()
        while sent < count:
            room = window - ch.unconfirmed
            if room <= 0:
                await ch.wait_unconfirmed(refill)
                continue
            n = min(room, count - sent, 500)
            for i in range(first_seq + sent, first_seq + sent + n):
                pub(_SEQ.pack(i) + pad)
            sent += n
            await conn.drain()
        await ch.wait_for_confirms()
        return time.perf_counter() - t0
    finally:
        await conn.close()


@dataclass
class Reader:
    count: int
    prefetch: int
    received: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    first_at: float = 0.0
    end: float = 0.0


async def read(url: str, name: str, reader: Reader, offset: Any = "first") -> Connection:
    """Consume from ``offset`` until ``reader.count`` entries arrived (the connection is
    returned open: the caller closes it)."""
    conn = await connect(url)
    ch: Channel = await conn.channel()
    await ch.basic_qos(reader.prefetch)
    every = max(1, reader.prefetch // 2)
    ack = ch.ack
    pending = 0

    def on_message(tag: int, _r: bool, _e: str, _k: str, _p: bytes, _body: bytes) -> None:
        nonlocal pending
        reader.received += 1
        if reader.received == 1:
            reader.first_at = time.perf_counter()
        pending += 1
        if pending >= every:
            ack(tag, True)
            pending = 0
        if reader.received == reader.count:
            reader.end = time.perf_counter()
            reader.done.set()

    await ch.basic_consume(name, on_message, arguments={"x-stream-offset": offset})
    return conn


async def read_together(url: str, name: str, readers: int, each: int, prefetch: int,
                        pid: int | None) -> dict[str, float]:
    """``readers`` consumers from ``first`` at once; total msg/s and the broker's RSS."""
    before = rss_mb(pid)
    peak = before
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    sampler = asyncio.create_task(sample())
    rs = [Reader(each, prefetch) for _ in range(readers)]
    t0 = time.perf_counter()
    conns = await asyncio.gather(*(read(url, name, r) for r in rs))
    await asyncio.gather(*(r.done.wait() for r in rs))
    seconds = time.perf_counter() - t0
    stop.set()
    await sampler
    during = peak
    for c in conns:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.close(), 10)
    await asyncio.sleep(2.0)
    return {"readers": readers, "seconds": seconds, "rate": readers * each / seconds,
            "rss_before": before, "rss_peak": during, "rss_after": rss_mb(pid)}


async def first_delivery(url: str, name: str) -> float:
    """Seconds until a consumer from ``first`` gets its first entry (from now)."""
    t0 = time.perf_counter()
    r = Reader(1, 10)
    conn = await read(url, name, r)
    await asyncio.wait_for(r.done.wait(), 600)
    await conn.close()
    return r.end - t0


async def declare_when_ready(url: str, name: str, timeout: float = 600) -> int:
    """Declare until the queue answers (RabbitMQ: 404 "home node ... is down or
    inaccessible" while the stream's process is still starting)."""
    t0 = time.perf_counter()
    while True:
        try:
            return await declare(url, name, fresh=False)
        except Exception:
            if time.perf_counter() - t0 > timeout:
                raise
            await asyncio.sleep(0.05)


async def connect_when_up(url: str, timeout: float = 600) -> float:
    t0 = time.perf_counter()
    while True:
        try:
            conn = await connect(url)
            await conn.close()
            return time.perf_counter() - t0
        except (OSError, Exception):
            if time.perf_counter() - t0 > timeout:
                raise
            await asyncio.sleep(0.05)


# -- the scenarios ----------------------------------------------------------------------


def fmt(x: float, unit: str = "") -> str:
    if x != x:  # nan
        return "-"
    return f"{x:,.0f}{unit}" if abs(x) >= 100 else f"{x:,.1f}{unit}"


async def run_scenarios(a: argparse.Namespace, url: str, pid: int | None,
                        data_dir: Path | None) -> list[list[str]]:
    rows: list[list[str]] = []
    rabbit = a.rabbitmq
    if "a" in a.scenarios:
        name = "bench-stream-a"
        await declare(url, name, fresh=True)
        secs = await publish(url, name, a.publish, a.size, a.window)
        rows.append(["(a) publish, confirms", f"{a.publish:,} x {a.size} B, window {a.window}",
                     f"{a.publish / secs:,.0f} msg/s", f"{secs:.1f} s"])
        print(rows[-1], flush=True)
    name = "bench-stream"
    need = max(a.read if "b" in a.scenarios else 0, a.read_each if "c" in a.scenarios else 0)
    if need:
        have = await declare(url, name, fresh=a.fresh)
        if have < need:
            secs = await publish(url, name, need - have, a.size, a.window, first_seq=have)
            print(f"# filled {name} with {need - have:,} entries: "
                  f"{(need - have) / secs:,.0f} msg/s", flush=True)
    if "b" in a.scenarios:
        best = 0.0
        for _ in range(a.repeat):
            r = Reader(a.read, a.prefetch)
            t0 = time.perf_counter()
            conn = await read(url, name, r)
            await r.done.wait()
            secs = time.perf_counter() - t0
            await conn.close()
            best = max(best, a.read / secs)
            print(f"# (b) run: {a.read / secs:,.0f} msg/s ({secs:.1f} s)", flush=True)
        rows.append(["(b) 1 consumer from first", f"{a.read:,} entries, prefetch {a.prefetch}",
                     f"{best:,.0f} msg/s", f"best of {a.repeat}"])
        print(rows[-1], flush=True)
    if "c" in a.scenarios:
        for n in (1, a.readers):
            res = await read_together(url, name, n, a.read_each, a.prefetch, pid)
            rows.append([f"(c) {n} consumer(s) from first",
                         f"{a.read_each:,} entries each, prefetch {a.prefetch}",
                         f"{res['rate']:,.0f} msg/s total",
                         f"RSS MB before {fmt(res['rss_before'])} / peak "
                         f"{fmt(res['rss_peak'])} / after {fmt(res['rss_after'])}"])
            print(rows[-1], flush=True)
    if "e" in a.scenarios:
        have = await declare(url, name, fresh=False)
        d = stream_dir(name, data_dir, a.rabbit_mnesia if rabbit else None)
        if d is None or have == 0:
            rows.append(["(e) disk per entry", name, "(directory not found)", ""])
        else:
            rows.append(disk_row(d, have, a.size))
        print(rows[-1], flush=True)
    return rows


async def run_startup(a: argparse.Namespace) -> list[list[str]]:
    """(d): fill a stream to ``a.startup`` entries (once; the directory is kept), then
    restart the broker ``a.repeat`` times and time it."""
    base = Path(a.startup_dir)
    name = "bench-stream-startup"
    broker: LeveretProcess | RabbitNode
    if a.start_rabbitmq_node:
        broker = RabbitNode("streambench@localhost", base, 5684)
    else:
        base.mkdir(parents=True, exist_ok=True)
        broker = LeveretProcess(base, a.fsync)
    broker.start()
    await connect_when_up(broker.url)
    have = await declare_when_ready(broker.url, name)
    if have < a.startup:
        print(f"# filling {name}: {have:,} -> {a.startup:,}", flush=True)
        chunk = 1_000_000
        while have < a.startup:
            n = min(chunk, a.startup - have)
            secs = await publish(broker.url, name, n, a.size, a.window, first_seq=have)
            have += n
            print(f"#   {have:,} ({n / secs:,.0f} msg/s)", flush=True)
    broker.stop()
    rows = []
    for i in range(a.repeat):
        time.sleep(2)
        listen = broker.start()
        up = await connect_when_up(broker.url)
        t_up = time.monotonic() - broker.started
        declared = await declare_when_ready(broker.url, name)
        t_decl = time.monotonic() - broker.started
        await first_delivery(broker.url, name)
        t_read = time.monotonic() - broker.started
        rss = rss_mb(broker.pid)
        print(f"# (d) run {i}: listening {listen:.2f} s, connect ok {t_up:.2f} s, "
              f"declare-ok ({declared:,}) {t_decl:.2f} s, first delivery {t_read:.2f} s, "
              f"RSS {rss:.0f} MB ({up:.2f})", flush=True)
        rows.append([f"(d) start-up, run {i + 1}", f"{declared:,} entries on disk",
                     f"accepting {t_up:.2f} s, declare-ok {t_decl:.2f} s, "
                     f"readable {t_read:.2f} s",
                     f"RSS after {rss:,.0f} MB"])
        broker.stop()
    if a.du:
        d = stream_dir(name, base if isinstance(broker, LeveretProcess) else None,
                       str(base / "mnesia" / broker.name)
                       if isinstance(broker, RabbitNode) else None)
        if d is not None:
            rows.append(disk_row(d, have, a.size))
    return rows


def print_table(rows: list[list[str]], title: str) -> None:
    print(f"\n{title}")
    head = ["scenario", "load", "result", "notes"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running broker (otherwise --start-leveret)")
    p.add_argument("--rabbitmq", action="store_true",
                   help="the --url broker is the reference RabbitMQ (for its RSS and disk)")
    p.add_argument("--rabbit-mnesia", default=REFERENCE_MNESIA)
    p.add_argument("--pid", type=int, help="the broker's pid, for its RSS")
    p.add_argument("--data-dir", type=Path, help="the --url leveret's data directory (for e)")
    p.add_argument("--start-leveret", action="store_true",
                   help="start `leveret serve` on a temporary data directory")
    p.add_argument("--fsync", default="always", help="leveret's --fsync (default: always)")
    p.add_argument("--scenarios", default="abce")
    p.add_argument("--publish", type=int, default=100_000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--read", type=int, default=1_000_000)
    p.add_argument("--read-each", type=int, default=1_000_000)
    p.add_argument("--readers", type=int, default=10)
    p.add_argument("--prefetch", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--fresh", action="store_true", help="delete and refill the read stream")
    p.add_argument("--startup", type=int, default=0, metavar="N",
                   help="(d) only: start-up with N entries on disk")
    p.add_argument("--startup-dir", help="(d): data directory, kept and reused")
    p.add_argument("--start-rabbitmq-node", action="store_true",
                   help="(d): a private RabbitMQ node in --startup-dir (not the reference)")
    p.add_argument("--du", action="store_true", help="(d): also (e) on that stream")
    a = p.parse_args()

    try:
        import uvloop
        run = uvloop.run
    except ImportError:
        run = asyncio.run

    if a.startup:
        if not a.startup_dir:
            p.error("--startup needs --startup-dir")
        rows = run(run_startup(a))
        print_table(rows, "RabbitMQ (private node)" if a.start_rabbitmq_node else "leveret")
        return 0
    broker = None
    tmp = None
    data_dir = a.data_dir
    pid = a.pid
    if a.start_leveret:
        tmp = Path(tempfile.mkdtemp(prefix="leveret-streams-"))
        broker = LeveretProcess(tmp, a.fsync)
        broker.start()
        url, pid, data_dir = broker.url, broker.pid, tmp
    elif a.url:
        url = a.url
        if a.rabbitmq and pid is None:
            pid = reference_pid()
    else:
        p.error("give --url or --start-leveret")
    load = os.getloadavg()
    print(f"# load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    try:
        rows = run(run_scenarios(a, url, pid, data_dir))
    finally:
        if broker is not None:
            broker.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows, "RabbitMQ" if a.rabbitmq else "leveret")
    load = os.getloadavg()
    print(f"# load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
