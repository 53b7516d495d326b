"""``leveret perf``: a load generator for any AMQP 0-9-1 broker, in the spirit of PerfTest.

    leveret perf --uri amqp://guest:guest@127.0.0.1:5672/ --producers 1 --consumers 1 \\
        --size 16 --autoack --time 10

Prints one line per second (sent/received/confirmed rates, that second's median and 95th
percentile latency) and a summary (rates, latency p50/p75/p95/p99/max, the tool's own
CPU use). By default producers and consumers run in two worker processes so the tool can
use both cores; ``--single-process`` runs them all on one event loop instead.

Queues: without ``--queue`` every consumer declares a server-named exclusive queue bound
to ``amq.direct`` with a per-run routing key, and producers publish there (so each
consumer gets every message, as in PerfTest). With ``--queue NAME`` a durable queue is
declared (auto-delete unless ``--no-auto-delete``), consumers share it and producers
publish to it through the default exchange.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import signal
import sys
import threading
import time
import uuid
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from leveret.client.loadgen import LoadConfig, config_dict, worker_entry

DEFAULT_URI = "amqp://guest:guest@127.0.0.1:5672/"


def add_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--uri", "--url", dest="uri", default=DEFAULT_URI,
      help="broker URL (default: %(default)s)")
    a("--producers", "-x", type=int, default=1, help="producer connections (default: 1)")
    a("--consumers", "-y", type=int, default=1, help="consumer connections (default: 1)")
    a("--size", "-s", type=int, default=16,
      help="message body size in bytes; the first 8 carry the send timestamp (default: 16)")
    a("--rate", "-r", type=float, default=0.0,
      help="messages/s per producer, 0 = as fast as possible (default: 0)")
    a("--confirm", "-c", type=int, default=0, metavar="N",
      help="publisher confirms with at most N unconfirmed per producer, 0 = off")
    a("--persistent", action="store_true", help="delivery-mode 2 (persistent) messages")
    a("--autoack", "-a", action="store_true", help="consume with no-ack")
    a("--prefetch", "-q", type=int, default=0,
      help="basic.qos prefetch count for manual-ack consumers, 0 = unlimited")
    a("--multi-ack-every", "-A", type=int, default=0, metavar="M",
      help="manual ack: one multiple-ack every M messages (default: half the prefetch, "
           "or 100 when prefetch is unlimited; 1 = ack each message)")
    a("--time", "-z", type=float, default=10.0,
      help="run time in seconds, 0 = until --pmessages/--cmessages (default: 10)")
    a("--queue", "-u", default="", help="named durable queue (default: server-named)")
    a("--no-auto-delete", dest="auto_delete", action="store_false",
      help="declare the named queue without auto-delete")
    a("--pmessages", "-C", type=int, default=0, help="stop each producer after N messages")
    a("--cmessages", "-D", type=int, default=0,
      help="stop consuming after N messages (all consumers together)")
    a("--batch", type=int, default=100,
      help="messages a producer queues per event-loop turn (one socket write)")
    a("--single-process", action="store_true",
      help="run producers and consumers in one process on one event loop")
    a("--no-uvloop", dest="uvloop", action="store_false", help="use the stdlib event loop")
    a("--json", action="store_true",
      help="print the summary as one JSON object on stdout (progress goes to stderr)")
    a("--quiet", action="store_true", help="no per-second lines")


def _config(args: argparse.Namespace) -> LoadConfig:
    if min(args.producers, args.consumers, args.size, args.prefetch, args.confirm) < 0:
        raise ValueError("counts and sizes must not be negative")
    if args.producers == 0 and args.consumers == 0:
        raise ValueError("nothing to do: no producers and no consumers")
    if args.time <= 0 and not (args.pmessages or args.cmessages):
        raise ValueError("--time 0 needs --pmessages or --cmessages")
    every = args.multi_ack_every or (max(1, args.prefetch // 2) if args.prefetch else 100)
    if not args.autoack and args.prefetch and every > args.prefetch:
        raise ValueError("--multi-ack-every larger than --prefetch would stall the consumer")
    return LoadConfig(
        uri=args.uri, producers=args.producers, consumers=args.consumers, size=args.size,
        rate=args.rate, confirm=args.confirm, persistent=args.persistent,
        autoack=args.autoack, prefetch=args.prefetch, multi_ack_every=every,
        duration=args.time, queue=args.queue, routing_key=f"perf-{uuid.uuid4().hex[:12]}",
        auto_delete=args.auto_delete, pmessages=args.pmessages, cmessages=args.cmessages,
        batch=max(1, args.batch),
    )  # fmt: skip


def _safe_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class _Workers:
    """Worker processes (or one in-process thread) and the pipes to them."""

    def __init__(self, cfg: LoadConfig, single: bool, use_uvloop: bool) -> None:
        roles = ["all"] if single else [
            r for r, n in (("consumers", cfg.consumers), ("producers", cfg.producers)) if n
        ]  # fmt: skip
        self.pipes: dict[str, Pipe] = {}
        self.runners: list[Any] = []
        ctx = multiprocessing.get_context("spawn")
        for role in roles:
            ours, theirs = ctx.Pipe()
            self.pipes[role] = ours
            wargs = (role, config_dict(cfg), theirs, use_uvloop, not single)
            runner: Any
            if single:
                runner = threading.Thread(target=worker_entry, args=wargs, daemon=True)
            else:
                runner = ctx.Process(target=worker_entry, args=wargs, daemon=True)
            runner.start()
            self.runners.append(runner)

    def broadcast(self, msg: tuple[Any, ...]) -> None:
        for pipe in self.pipes.values():
            with contextlib.suppress(OSError):  # that worker is gone already
                pipe.send(msg)

    def receive(self, timeout: float) -> list[tuple[str, Any]]:
        by_fd = {p: role for role, p in self.pipes.items()}
        out = []
        for pipe in wait(list(self.pipes.values()), timeout):
            assert isinstance(pipe, Pipe)
            try:
                out.append((by_fd[pipe], pipe.recv()))
            except EOFError:
                out.append((by_fd[pipe], ("error", "worker exited unexpectedly")))
                del self.pipes[by_fd[pipe]]
        return out

    def finished(self, role: str) -> None:
        """The worker sent its summary: its pipe's EOF is now expected, stop watching."""
        self.pipes.pop(role, None)

    def join(self) -> None:
        for runner in self.runners:
            runner.join(10)
            if isinstance(runner, multiprocessing.process.BaseProcess) and runner.is_alive():
                runner.terminate()


def _line(k: int, ticks: dict[str, dict[str, Any]], prev: dict[str, dict[str, Any]]) -> str:
    rates: dict[str, float] = {"sent": 0.0, "received": 0.0, "confirmed": 0.0}
    nacked = 0
    lat = None
    for role, tick in ticks.items():
        before = prev.get(role, {"t": 0.0, "sent": 0, "received": 0, "confirmed": 0,
                                 "nacked": 0})  # fmt: skip
        dt = max(1e-9, tick["t"] - before["t"])
        for key in rates:
            rates[key] += (tick[key] - before[key]) / dt
        nacked += tick["nacked"] - before["nacked"]
        lat = tick["lat"] or lat
    text = (f"time {k:>3d}s  sent {rates['sent']:>8,.0f} msg/s  "
            f"received {rates['received']:>8,.0f} msg/s  "
            f"confirmed {rates['confirmed']:>8,.0f} msg/s  nacked {nacked}")  # fmt: skip
    if lat:
        text += f"  latency median {lat[0]:,.0f} us  95th {lat[1]:,.0f} us"
    return text


def _summary(cfg: LoadConfig, done: dict[str, dict[str, Any]], server: dict[str, str],
             single: bool, use_uvloop: bool) -> dict[str, Any]:  # fmt: skip
    total = {k: sum(d[k] for d in done.values()) for k in ("sent", "received", "confirmed",
                                                           "nacked")}  # fmt: skip
    prod_s = max(d["producer_s"] for d in done.values())
    cons_s = max(d["consumer_s"] for d in done.values())
    latency = next((d["latency_us"] for d in done.values() if d["latency_us"]), None)
    return {
        "uri": _safe_uri(cfg.uri), "server": server,
        "params": {k: v for k, v in config_dict(cfg).items() if k not in ("uri",)},
        "processes": "single" if single else "split", "uvloop": use_uvloop,
        **total,
        "sent_rate": total["sent"] / prod_s if prod_s else 0.0,
        "received_rate": total["received"] / cons_s if cons_s else 0.0,
        "producer_seconds": prod_s, "consumer_seconds": cons_s,
        "latency_us": latency,
        "tool_cpu": {role: round(d["cpu_s"] / max(prod_s, cons_s, 1e-9), 3)
                     for role, d in done.items()},
    }  # fmt: skip


def _print_summary(s: dict[str, Any], out: TextIO) -> None:
    print(f"summary: sent {s['sent_rate']:,.0f} msg/s, received {s['received_rate']:,.0f}"
          f" msg/s (sent {s['sent']:,}, received {s['received']:,}, confirmed "
          f"{s['confirmed']:,}, nacked {s['nacked']:,})", file=out)  # fmt: skip
    lat = s["latency_us"]
    if lat:
        print("latency us: " + ", ".join(f"{k} {v:,.0f}" for k, v in lat.items()), file=out)
    cpu = ", ".join(f"{role} {frac * 100:.0f}%" for role, frac in s["tool_cpu"].items())
    print(f"tool cpu (share of one core): {cpu}", file=out)


def run(args: argparse.Namespace) -> int:  # noqa: C901
    try:
        cfg = _config(args)
    except ValueError as exc:
        print(f"leveret perf: {exc}", file=sys.stderr)
        return 2
    use_uvloop = args.uvloop
    if use_uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            use_uvloop = False
    out = sys.stderr if args.json else sys.stdout
    if cfg.consumers == 0 and not cfg.queue:
        print("leveret perf: warning: no consumers and no --queue: every message is "
              "unroutable and dropped by the broker", file=sys.stderr)  # fmt: skip
    workers = _Workers(cfg, args.single_process, use_uvloop)
    server: dict[str, str] = {}
    ready: set[str] = set()
    ticks: dict[int, dict[str, dict[str, Any]]] = {}
    prev: dict[str, dict[str, Any]] = {}
    done: dict[str, dict[str, Any]] = {}
    error = None
    started = False
    setup_deadline = time.monotonic() + 60
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous_term = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        while len(done) < len(workers.runners) and error is None:
            if not started and time.monotonic() > setup_deadline:
                error = "workers did not get ready within 60 s"
                break
            try:
                messages = workers.receive(1.0)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop and still summarise
                if not started:
                    error = "interrupted"
                workers.broadcast(("stop",))
                continue
            for role, msg in messages:
                if msg[0] == "error":
                    error = msg[1]
                elif msg[0] == "ready":
                    server = msg[1]
                    ready.add(role)
                elif msg[0] == "tick":
                    ticks.setdefault(msg[1], {})[role] = msg[2]
                elif msg[0] == "done":
                    done[role] = msg[1]
                    workers.finished(role)
            if not started and len(ready) == len(workers.runners):
                started = True
                _print_header(cfg, server, args.single_process, use_uvloop, out)
                workers.broadcast(("start", time.monotonic() + 0.1))
            for k in sorted(ticks):
                if len(ticks[k]) == len(workers.runners):
                    if not args.quiet:
                        print(_line(k, ticks[k], prev), file=out, flush=True)
                    prev.update(ticks.pop(k))
    finally:
        if error is not None or len(done) < len(workers.runners):
            workers.broadcast(("stop",))
        workers.join()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    if error is not None:
        print(f"leveret perf: {error}", file=sys.stderr)
        return 1
    summary = _summary(cfg, done, server, args.single_process, use_uvloop)
    _print_summary(summary, out)
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _print_header(cfg: LoadConfig, server: dict[str, str], single: bool, use_uvloop: bool,
                  out: TextIO) -> None:  # fmt: skip
    ack = "autoack" if cfg.autoack else (
        f"manual ack (prefetch {cfg.prefetch or 'unlimited'}, "
        f"multi-ack every {cfg.multi_ack_every})")  # fmt: skip
    print(f"leveret perf: {_safe_uri(cfg.uri)} ({server.get('product')} "
          f"{server.get('version')}), {cfg.producers} producer(s), {cfg.consumers} "
          f"consumer(s), {cfg.size} B {'persistent' if cfg.persistent else 'transient'}, "
          f"rate {cfg.rate or 'unlimited'}, confirm {cfg.confirm or 'off'}, {ack}, "
          f"queue {cfg.queue or 'server-named'}, "
          f"{'single process' if single else 'split processes'}"
          f"{' (uvloop)' if use_uvloop else ''}", file=out, flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leveret perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
