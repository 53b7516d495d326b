"""Brokers the benchmarks start themselves: free ports, waiting for a port, and a private
RabbitMQ node (its own name, ports and data directory), so that restarting or killing it
never disturbs the shared reference broker on 5673.

Used by bench/connections.py, bench/shovel.py and bench/streams.py (run as scripts, so this
module is found beside them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s")


class RabbitNode:
    """``rabbitmq-server -detached`` under ``name`` with its data in ``base``; the
    management API on ``http_port`` when given (it needs the ``rabbitmq_management``
    plugin among ``plugins``)."""

    def __init__(self, name: str, base: Path, port: int, http_port: int | None = None,
                 plugins: tuple[str, ...] = ()) -> None:
        self.name, self.base, self.port, self.http_port = name, base, port, http_port
        self.plugins = plugins
        self.started = 0.0  # time.monotonic() when start() began

    def env(self) -> dict[str, str]:
        b = self.base
        return {**os.environ, "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.port + 20000),
                "RABBITMQ_MNESIA_BASE": str(b / "mnesia"), "RABBITMQ_LOG_BASE": str(b / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf")}

    def running(self) -> bool:
        return port_open(self.port)

    def start(self, fresh: bool = False) -> float:
        """Start the node (on its existing data, after ``kill9``; on none if ``fresh``);
        returns the seconds until it accepts AMQP connections (0 if it already did)."""
        self.started = t0 = time.monotonic()
        if self.running():
            return 0.0
        if fresh:
            shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        (self.base / "rabbitmq.conf").write_text(
            "" if self.http_port is None else
            f"management.tcp.port = {self.http_port}\nmanagement.tcp.ip = 127.0.0.1\n")
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=False)
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 300)
        started = time.monotonic() - t0
        if self.http_port is not None:
            wait_port(self.http_port, 60)
        return started

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def vhost_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{vhost}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return int((self.base / "mnesia" / f"{self.name}.pid").read_text().strip())

    def kill9(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, remove: bool = False) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.name, "stop"], env=self.env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)
