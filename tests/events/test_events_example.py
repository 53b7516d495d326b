"""examples/orders runs end to end: in one process on both brokers, and as the README
tells it, against ``leveret serve`` with ``leveret events run`` and the dlq commands."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end(bus_url: str) -> None:
    result = subprocess.run([sys.executable, "-m", "examples.orders.demo", bus_url, "--reset"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "billing: 4 orders billed" in result.stdout
    assert "shipping: 4 orders shipped" in result.stdout
    assert "fraud-check: 3 cleared, 1 dead-lettered" in result.stdout
    assert re.search(r"dead letter \w+ \(orders.placed\) after 3 attempts: "
                     r"FraudServiceTimeout: fraud service timed out on o-1004", result.stdout)
    assert "retrying in" in result.stderr and "dead-lettering it" in result.stderr


def _leveret(*args: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "leveret", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _wait_line(proc: subprocess.Popen[str], pattern: str, timeout: float = 20) -> re.Match:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if match := re.search(pattern, line):
            return match
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r}")


def _cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "leveret", "events", *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.timeout(90)
def test_readme_walkthrough_against_leveret_serve(tmp_path: Path) -> None:
    procs: list[subprocess.Popen[str]] = []
    try:
        server = _leveret("serve", "--port", "0", "--data-dir", str(tmp_path / "data"))
        procs.append(server)
        port = _wait_line(server, r"listening on amqp://127\.0\.0\.1:(\d+)").group(1)
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        worker = _leveret("events", "run", "examples.orders.app:bus", "--url", url,
                          "--shutdown-timeout", "5",
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
        procs.append(worker)
        _wait_line(worker, r"worker order-service started")
        placed = subprocess.run([sys.executable, "-m", "examples.orders.publish", url],
                                cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert placed.returncode == 0, placed.stderr
        assert placed.stdout.count("placed o-") == 4
        mallory = _wait_line(worker, r"fraud-check: event (\w+) failed attempt 3/3, "
                                     r"dead-lettering it").group(1)

        listed = _cli("dlq", "list", "--app", "examples.orders.app:bus", "--url", url)
        assert re.search(r"fraud-check\s+fraud-check\.dlq\s+1", listed)
        assert re.search(r"billing\s+billing\.dlq\s+0", listed)
        [shown] = [json.loads(line) for line in
                   _cli("dlq", "show", "fraud-check", "--json", "--url", url).splitlines()]
        assert shown["event_id"] == mallory and shown["attempts"] == 3
        assert "redrove 1" in _cli("dlq", "redrive", "fraud-check", "--url", url)
        _wait_line(worker, rf"event {mallory} failed attempt 1/3")
        doc = json.loads(_cli("docs", "examples.orders.app:bus"))
        assert doc["asyncapi"] == "3.0.0" and "orders.placed" in doc["channels"]

        worker.terminate()
        assert worker.wait(timeout=20) == 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
