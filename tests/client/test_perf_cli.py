"""``leveret perf`` end to end: a 2-second run prints per-second lines and a summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import leveret

pytestmark = pytest.mark.timeout(90)


def _perf(url: str, *args: str, cli: tuple[str, ...] = ("leveret.cli.perf",)
          ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = dict(os.environ)
    src = str(Path(leveret.__file__).resolve().parents[1])  # works installed or from src/
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", *cli, "--uri", url, "--time", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


def test_perf_runs_two_seconds_and_prints_summary(amqp_url: str) -> None:
    proc = _perf(amqp_url, "--autoack", "--rate", "2000", cli=("leveret", "perf"))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("leveret perf: ")
    assert any(line.startswith("time   1s") for line in lines), proc.stdout
    summary = next(line for line in lines if line.startswith("summary: "))
    assert "msg/s" in summary
    assert any(line.startswith("latency us: p50") for line in lines), proc.stdout


def test_perf_json_single_process_confirms_manual_ack(amqp_url: str, name: str) -> None:
    proc = _perf(amqp_url, "--single-process", "--confirm", "64", "--prefetch", "50",
                 "--queue", name, "--persistent", "--rate", "1000", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["processes"] == "single"
    assert 1500 <= summary["sent"] <= 2200
    assert summary["received"] >= summary["sent"] - 100
    assert summary["confirmed"] >= summary["sent"] - 100
    assert summary["nacked"] == 0
    assert set(summary["latency_us"]) == {"p50", "p75", "p95", "p99", "max"}
    assert "summary: " in proc.stderr


def test_perf_rejects_bad_arguments(amqp_url: str) -> None:
    proc = _perf(amqp_url, "--prefetch", "10", "--multi-ack-every", "20")
    assert proc.returncode == 2
    assert "stall" in proc.stderr
