"""``leveret serve`` as a subprocess, for the tests that stop, kill (-9) or restart it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika


def serve(data: Path, *args: str,
          until: str = "listening on amqp://") -> tuple[subprocess.Popen[str], int]:
    """Start ``leveret serve --port 0 --data-dir data *args`` (management off, so no fixed
    HTTP port) and return it with the port on its first stderr line containing ``until``
    (the AMQP listener's by default; ``rabbitmq-stream://`` for the stream listener's)."""
    env = {**os.environ, "LEVERET_MANAGEMENT_ENABLED": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", "0",
                             "--data-dir", str(data), *args], env=env,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    pattern = re.compile(re.escape(until) + r"\S*:(\d+)")  # (the last :port of the URL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        match = pattern.search(line)
        if match:
            return proc, int(match.group(1))
    proc.kill()
    raise AssertionError(f"the broker did not start (no {until!r} line)")


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill the broker if it still runs, and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=15)
    if proc.stderr is not None:
        proc.stderr.close()


def kill(proc: subprocess.Popen[str], conn: pika.BlockingConnection | None = None) -> None:
    """SIGKILL the broker; let ``conn`` notice the lost socket and close it."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stderr is not None
    proc.stderr.close()
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.process_data_events(time_limit=0.2)
        with contextlib.suppress(Exception):
            conn.close()
