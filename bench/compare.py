#!/usr/bin/env python3
"""Run the same ``leveret perf`` scenarios against leveret and RabbitMQ, side by side.

    python bench/compare.py --leveret amqp://guest:guest@127.0.0.1:5672/ \\
                            --rabbitmq amqp://guest:guest@127.0.0.1:5673/ [--time 10]
    python bench/compare.py --rabbitmq URL --only rabbitmq --markdown   # one broker

Each scenario runs once per broker (``--repeat N`` keeps the best of N by received rate),
brokers alternating, with a pause in between so one run's backlog does not leak into the
next. Prints a table (``--markdown`` for docs/benchmarks.md) and can save all raw JSON
summaries with ``--save FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# name -> (description, perf arguments)
SCENARIOS: dict[str, tuple[str, list[str]]] = {
    "a": ("1 producer, 1 consumer, 16 B, autoack",
          ["--producers", "1", "--consumers", "1", "--size", "16", "--autoack"]),
    "b": ("persistent, confirms 256 in flight, manual ack prefetch 100",
          ["--producers", "1", "--consumers", "1", "--size", "16", "--persistent",
           "--confirm", "256", "--prefetch", "100", "--queue", "perf-persistent"]),
    "c": ("1 KiB messages, autoack",
          ["--producers", "1", "--consumers", "1", "--size", "1024", "--autoack"]),
    "d": ("latency at a fixed 10,000 msg/s, 16 B, autoack",
          ["--producers", "1", "--consumers", "1", "--size", "16", "--autoack",
           "--rate", "10000"]),
    "e": ("64 KiB messages, autoack",
          ["--producers", "1", "--consumers", "1", "--size", "65536", "--autoack"]),
    "f": ("4 KiB messages, autoack",
          ["--producers", "1", "--consumers", "1", "--size", "4096", "--autoack"]),
}  # fmt: skip


def perf_command(url: str, args: list[str], seconds: float) -> list[str]:
    return [sys.executable, "-m", "leveret.cli.perf", "--uri", url, "--time", str(seconds),
            *args, "--json", "--quiet"]  # fmt: skip


def run_perf(url: str, args: list[str], seconds: float) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run(perf_command(url, args, seconds), capture_output=True, text=True,
                          env=env, timeout=seconds + 120)  # fmt: skip
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def cells(r: dict[str, Any] | None) -> list[str]:
    if r is None:
        return ["(not run)"] * 6
    if "error" in r:
        return [f"error: {r['error']}"] + [""] * 5
    lat = r.get("latency_us") or {}
    cpu = " ".join(f"{role[0]}:{v * 100:.0f}%" for role, v in r["tool_cpu"].items())
    return [f"{r['sent_rate']:,.0f}", f"{r['received_rate']:,.0f}",
            f"{lat.get('p50', 0):,.0f}", f"{lat.get('p95', 0):,.0f}",
            f"{lat.get('p99', 0):,.0f}", cpu]  # fmt: skip


HEAD = ["sent msg/s", "received msg/s", "p50 us", "p95 us", "p99 us",
        "tool cpu (p/c/a = producers/consumers/all)"]


def print_table(results: dict[str, dict[str, dict[str, Any] | None]], brokers: list[str],
                markdown: bool) -> None:  # fmt: skip
    header = ["scenario", "broker", *HEAD]
    rows = []
    for key, per_broker in results.items():
        for broker in brokers:
            rows.append([f"({key}) {SCENARIOS[key][0]}", broker, *cells(per_broker.get(broker))])
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--leveret", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--rabbitmq", default="amqp://guest:guest@127.0.0.1:5673/")
    p.add_argument("--only", choices=["leveret", "rabbitmq"], help="run against one broker")
    p.add_argument("--time", type=float, default=10.0, help="seconds per run (default 10)")
    p.add_argument("--scenarios", default="abcd", help="which scenarios (default: abcd)")
    p.add_argument("--repeat", type=int, default=1, help="runs per cell; the best is kept")
    p.add_argument("--pause", type=float, default=3.0, help="seconds between runs")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--save", type=Path, help="write every raw JSON summary here")
    args = p.parse_args()
    urls = {"leveret": args.leveret, "rabbitmq": args.rabbitmq}
    brokers = [args.only] if args.only else ["leveret", "rabbitmq"]
    results: dict[str, dict[str, dict[str, Any] | None]] = {}
    raw: list[dict[str, Any]] = []
    for key in args.scenarios:
        _desc, perf_args = SCENARIOS[key]
        results[key] = {}
        for broker in brokers:
            best: dict[str, Any] | None = None
            for _ in range(args.repeat):
                cmd = " ".join(perf_command(urls[broker], perf_args, args.time)[1:])
                print(f"# ({key}) {broker}: python {cmd}", file=sys.stderr, flush=True)
                r = run_perf(urls[broker], perf_args, args.time)
                raw.append({"scenario": key, "broker": broker, "result": r})
                if best is None or r.get("received_rate", -1) > best.get("received_rate", -1):
                    best = r
                time.sleep(args.pause)
            results[key][broker] = best
    print_table(results, brokers, args.markdown)
    if args.save:
        args.save.write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
