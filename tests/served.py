"""``leveret serve`` as a subprocess for the tests that kill it (kill -9 and restart)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pika


def serve(data: Path) -> tuple[subprocess.Popen[str], int]:
    """Start a broker on ``data`` and a free port (AMQP only); returns it and the port."""
    env = {**os.environ, "LEVERET_MANAGEMENT_ENABLED": "false"}  # no fixed HTTP port
    proc = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", "0",
                             "--data-dir", str(data)], env=env, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    for _ in range(40):
        line = proc.stderr.readline()
        if "listening on" in line:
            return proc, int(line.rsplit(":", 1)[1].split()[0])
    proc.kill()
    raise AssertionError("the broker did not start (no listening line)")


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
