"""End to end with the broker's own CPU per message: the same ``leveret perf`` scenario
against several brokers, runs alternating (ABAB...), each broker's process CPU time
(utime + stime from /proc/PID/stat) read before and after every run.

On a shared 2-core machine rates move with whatever else runs; CPU microseconds per
received message move much less, so they say more about what one broker costs per message.

    python bench/broker_cpu.py --broker compiled=amqp://guest:guest@127.0.0.1:5882/@PID \\
        --broker pure=amqp://guest:guest@127.0.0.1:5881/@PID2 --scenario a --rounds 3

Scenarios are bench/compare.py's (letters, or ``issue14`` for issue 14's rows); each round
runs every scenario against every broker in turn. Prints one Markdown row per run and the
medians per scenario and broker (rates, broker CPU, latency); the load average is printed
with every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import SCENARIOS, run_perf, scenario_keys

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
    ap.add_argument("--scenario", default="a",
                    help="scenario letters of bench/compare.py, or issue14 (default: a)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--time", type=float, default=8.0)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    args = ap.parse_args()
    brokers = []
    for spec in args.broker:
        name, rest = spec.split("=", 1)
        url, pid = rest.rsplit("@", 1)
        brokers.append((name, url, int(pid)))
    keys = scenario_keys(args.scenario)
    print(f"scenarios {keys}, {args.time:g} s per run, {args.rounds} rounds")
    print("| round | scenario | broker | sent msg/s | received msg/s | broker CPU us/received | "
          "broker CPU share | p50 / p99 us | load average |")
    print("|---|---|---|---:|---:|---:|---:|---|---:|")
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r in range(1, args.rounds + 1):
        for key in keys:
            perf_args = SCENARIOS[key][1]
            for name, url, pid in brokers:
                before = cpu_seconds(pid)
                result = run_perf(url, perf_args, args.time)
                used = cpu_seconds(pid) - before
                if "error" in result:
                    print(f"| {r} | {key} | {name} | error: {result['error']} | | | | | "
                          f"{load()} |", flush=True)
                    continue
                received = result["received"]
                lat = result.get("latency_us") or {}
                run = {"rate": result["received_rate"], "sent": result["sent_rate"],
                       "cpu": used / received * 1e6 if received else float("nan"),
                       "share": used / args.time,
                       "p50": lat.get("p50", float("nan")), "p99": lat.get("p99", float("nan"))}
                runs.setdefault((key, name), []).append(run)
                print(f"| {r} | {key} | {name} | {run['sent']:,.0f} | {run['rate']:,.0f} | "
                      f"{run['cpu']:.2f} | {run['share']:.0%} | {run['p50']:,.0f} / "
                      f"{run['p99']:,.0f} | {load()} |", flush=True)
                subprocess.run(["sleep", str(args.pause)], check=True)
    print("\n| scenario | broker | median received msg/s | median broker CPU us/received | "
          "median broker CPU share | median p50 / p99 us |")
    print("|---|---|---:|---:|---:|---|")
    for (key, name), done in runs.items():
        def median(field: str, done: list[dict[str, float]] = done) -> float:
            return statistics.median(run[field] for run in done)

        print(f"| ({key}) {SCENARIOS[key][0]} | {name} | {median('rate'):,.0f} | "
              f"{median('cpu'):.2f} | {median('share'):.0%} | {median('p50'):,.0f} / "
              f"{median('p99'):,.0f} |")


if __name__ == "__main__":
    main()
