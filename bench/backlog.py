"""A large persistent backlog in one queue: broker memory, publish and drain rates, restart.

Starts ``leveret serve`` on a fresh data directory, fills one durable queue with N
persistent messages (``leveret perf`` with publisher confirms), reads the broker's RSS from
/proc/<pid>/status, kills it with SIGKILL, measures the start-up (until it listens) and its
RSS, then drains the queue with manual acks and reports the rate, the peak RSS and the
segment files left on disk.

    python bench/backlog.py --messages 1000000
    python bench/backlog.py --messages 10000000 --dir /var/tmp
    python bench/backlog.py --messages 1000000 --transient   # delivery-mode 1, no restart
    python bench/backlog.py --messages 1000000 --transient \\
        --uri amqp://guest:guest@127.0.0.1:5673/ \\
        --rss-pid-file /var/tmp/reference-rabbitmq/mnesia/reference@localhost.pid
    python bench/backlog.py --messages 1000000 --no-restart --in-memory 100000000
                                                 # never pages: the drain from memory
    python bench/backlog.py --messages 1000000 --uri amqp://guest:guest@127.0.0.1:5673/ \\
        --rss-process beam.smp                   # an already running broker (RabbitMQ)

Figures are in docs/benchmarks.md ("Large backlogs"); the design in docs/storage.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

QUEUE = "bench-backlog"


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def find_process(name: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
    raise SystemExit(f"no process named {name!r}")


class PeakRss(threading.Thread):
    """Samples a process's RSS every 0.2 s (VmHWM cannot be reset between phases)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, status(self.pid)["VmRSS"])

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self.join()
        with contextlib.suppress(OSError):
            self.peak = max(self.peak, status(self.pid)["VmRSS"])


def perf(uri: str, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "leveret", "perf", "--uri", uri, "--queue", QUEUE,
           "--no-auto-delete", "--time", "0", "--json", "--quiet", *args]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


class Leveret:
    """``leveret serve`` as a subprocess on a data directory."""

    def __init__(self, data: Path, port: int, fsync: str, policies: Path | None) -> None:
        self.data, self.port, self.fsync, self.policies = data, port, fsync, policies
        self.proc: subprocess.Popen[str] | None = None
        self.uri = f"amqp://guest:guest@127.0.0.1:{port}/"

    def start(self) -> float:
        """Start and wait until it listens; returns the seconds that took."""
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "leveret", "serve", "--port", str(self.port),
             "--data-dir", str(self.data), "--fsync", self.fsync, "--log-level", "info",
             *(("--policies", str(self.policies)) if self.policies else ())],
            stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if "recovered" in line:
                print("   ", line.rstrip().split("] ")[-1], file=sys.stderr)
            if "listening on" in line:
                took = time.monotonic() - started
                threading.Thread(target=self._drain_stderr, daemon=True).start()
                return took
        raise SystemExit(f"leveret serve exited with {self.proc.wait()}")

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for _line in self.proc.stderr:
            pass

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


def disk(data: Path) -> tuple[int, int]:
    """Segment files and their bytes under the data directory."""
    files = list(data.glob("queues/*/*.seg")) + list(data.glob("transient/*/*.seg"))
    return len(files), sum(f.stat().st_size for f in files)


def persistent(args: argparse.Namespace) -> tuple[str, ...]:
    return () if args.transient else ("--persistent",)


def bench_leveret(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="leveret-backlog-", dir=args.dir))
    policies = None
    if args.in_memory is not None:  # the queue's in-memory limit, by policy
        policies = base / "policies.json"
        policies.write_text(json.dumps([{"name": "backlog", "pattern": f"^{QUEUE}$",
                                         "definition": {"max-in-memory-length": args.in_memory}}]))
    broker = Leveret(base / "data", args.port, args.fsync, policies)
    n = args.messages
    try:
        broker.start()
        idle = status(broker.pid)["VmRSS"]
        with PeakRss(broker.pid) as peak:
            pub = perf(broker.uri, "--producers", "1", "--consumers", "0", *persistent(args),
                       "--size", str(args.size), "--confirm", str(args.confirm),
                       "--pmessages", str(n))
        after_publish = status(broker.pid)["VmRSS"]
        files, size = disk(broker.data)
        print(f"publish: {pub['sent_rate']:,.0f} msg/s ({pub['confirmed']:,} confirmed); "
              f"RSS idle {mib(idle)}, after {mib(after_publish)}, peak {mib(peak.peak)}; "
              f"{files} segment files, {mib(size)} on disk", flush=True)
        if args.restart and not args.transient:  # transient messages do not outlive it
            broker.kill()
            took = broker.start()
            after_start = status(broker.pid)["VmRSS"]
            print(f"start-up after kill -9: listening after {took:.2f} s, "
                  f"RSS {mib(after_start)}", flush=True)
        with PeakRss(broker.pid) as peak:
            drain = perf(broker.uri, "--producers", "0", "--consumers", "1",
                         "--prefetch", str(args.prefetch), "--cmessages", str(n))
        time.sleep(1)  # the commit after the last acks deletes the drained segments
        files, size = disk(broker.data)
        print(f"drain (manual acks, prefetch {args.prefetch}): "
              f"{drain['received_rate']:,.0f} msg/s ({drain['received']:,} received); "
              f"peak RSS {mib(peak.peak)}, after {mib(status(broker.pid)['VmRSS'])}; "
              f"{files} segment files, {mib(size)} on disk after", flush=True)
    finally:
        broker.kill()
        shutil.rmtree(base, ignore_errors=True)


async def _delete_queue(uri: str) -> None:
    from leveret.client import connect

    async with await connect(uri) as conn:
        ch = await conn.channel()
        await ch.queue_delete(QUEUE)


def bench_running(args: argparse.Namespace) -> None:
    """An already running broker (RabbitMQ): no restart; RSS of the named process. The
    queue is deleted first (a run killed earlier) and at the end."""
    pid = (int(Path(args.rss_pid_file).read_text().strip()) if args.rss_pid_file
           else find_process(args.rss_process))
    n = args.messages
    asyncio.run(_delete_queue(args.uri))
    time.sleep(2)
    idle = status(pid)["VmRSS"]
    with PeakRss(pid) as peak:
        pub = perf(args.uri, "--producers", "1", "--consumers", "0", *persistent(args),
                   "--size", str(args.size), "--confirm", str(args.confirm),
                   "--pmessages", str(n))
    after = status(pid)["VmRSS"]
    print(f"publish: {pub['sent_rate']:,.0f} msg/s ({pub['confirmed']:,} confirmed); "
          f"{args.rss_process} RSS before {mib(idle)}, after {mib(after)}, "
          f"peak {mib(peak.peak)}", flush=True)
    with PeakRss(pid) as peak:
        drain = perf(args.uri, "--producers", "0", "--consumers", "1",
                     "--prefetch", str(args.prefetch), "--cmessages", str(n))
    print(f"drain (manual acks, prefetch {args.prefetch}): "
          f"{drain['received_rate']:,.0f} msg/s ({drain['received']:,} received); "
          f"peak RSS {mib(peak.peak)}, after {mib(status(pid)['VmRSS'])}", flush=True)
    asyncio.run(_delete_queue(args.uri))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100, help="body bytes (default: 100)")
    ap.add_argument("--confirm", type=int, default=256, help="confirms in flight")
    ap.add_argument("--prefetch", type=int, default=1000)
    ap.add_argument("--fsync", default="always")
    ap.add_argument("--port", type=int, default=5698)
    ap.add_argument("--in-memory", type=int, default=None, metavar="N",
                    help="messages the queue keeps in memory (x-max-in-memory-length, by "
                         "policy; default: the broker's default)")
    ap.add_argument("--dir", default=None, help="where the data directory goes")
    ap.add_argument("--no-restart", dest="restart", action="store_false",
                    help="drain right after publishing (no kill -9 and start-up)")
    ap.add_argument("--uri", help="measure this running broker instead of starting leveret")
    ap.add_argument("--rss-pid-file", default=None,
                    help="with --uri: read the broker's pid here (several beam.smp may run), "
                         "e.g. /var/tmp/reference-rabbitmq/mnesia/reference@localhost.pid")
    ap.add_argument("--transient", action="store_true",
                    help="delivery-mode 1 messages (no restart: they would not outlive it)")
    ap.add_argument("--rss-process", default="beam.smp",
                    help="with --uri: the process whose RSS to report (default: beam.smp)")
    args = ap.parse_args()
    kind = "transient" if args.transient else "persistent"
    print(f"# {args.messages:,} {kind} messages of {args.size} bytes in one queue "
          f"({args.uri or 'leveret serve'}), {time.strftime('%Y-%m-%d')}", flush=True)
    if args.uri:
        bench_running(args)
    else:
        if not os.path.exists("/proc/self/status"):
            raise SystemExit("needs /proc (Linux) to read the broker's RSS")
        bench_leveret(args)


if __name__ == "__main__":
    main()
