"""End to end with the broker's own CPU per message: the same ``leveret perf`` scenario
against several brokers, runs alternating (ABAB...), each broker's process CPU time
(utime + stime from /proc/PID/stat) read before and after every run.

On a shared 2-core machine rates move with whatever else runs; CPU microseconds per
received message move much less, so they say more about what one broker costs per message.

    python bench/broker_cpu.py --broker compiled=amqp://guest:guest@127.0.0.1:5882/@PID \\
        --broker pure=amqp://guest:guest@127.0.0.1:5881/@PID2 --scenario a --rounds 3

Scenarios are bench/compare.py's (a, b, c, d). Prints one Markdown row per run and the
medians per broker; the load average is printed with every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import SCENARIOS, run_perf

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children: not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", action="append", required=True,
                    help="NAME=URL@PID (the broker process whose CPU is read)")
    ap.add_argument("--scenario", default="a", choices=sorted(SCENARIOS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--time", type=float, default=8.0)
    args = ap.parse_args()
    brokers = []
    for spec in args.broker:
        name, rest = spec.split("=", 1)
        url, pid = rest.rsplit("@", 1)
        brokers.append((name, url, int(pid)))
    description, perf_args = SCENARIOS[args.scenario]
    print(f"({args.scenario}) {description}, {args.time:g} s per run")
    print("| round | broker | sent msg/s | received msg/s | broker CPU us/received | "
          "us/sent | broker CPU share | load average |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in brokers}
    for r in range(1, args.rounds + 1):
        for name, url, pid in brokers:
            before = cpu_seconds(pid)
            result = run_perf(url, perf_args, args.time)
            used = cpu_seconds(pid) - before
            if "error" in result:
                print(f"| {r} | {name} | error: {result['error']} | | | | | {load()} |")
                continue
            received, sent = result["received"], result["sent"]
            rate = result["received_rate"]
            per = used / received * 1e6 if received else float("nan")
            per_sent = used / sent * 1e6 if sent else float("nan")
            results[name].append((rate, per))
            print(f"| {r} | {name} | {result['sent_rate']:,.0f} | {rate:,.0f} | {per:.2f} | "
                  f"{per_sent:.2f} | {used / args.time:.0%} | {load()} |", flush=True)
            subprocess.run(["sleep", "2"], check=True)
    print("\n| broker | median received msg/s | median broker CPU us/received |")
    print("|---|---:|---:|")
    for name, runs in results.items():
        if runs:
            print(f"| {name} | {statistics.median(r for r, _ in runs):,.0f} | "
                  f"{statistics.median(p for _, p in runs):.2f} |")


if __name__ == "__main__":
    main()
