"""A private RabbitMQ node with the shovel and federation plugins, for differential tests.

The shared reference broker (``../shared/tools/reference-rabbitmq``, port 5673) runs only the
management plugin, and restarting it or changing its plugins would disturb every other test and
session that uses it. Tests that need RabbitMQ's shovel or federation plugins (or need to kill a
RabbitMQ) start this node instead: its own node name, ports and data directory under /var/tmp
(the ``rabbitmq`` user that Debian's wrapper runs the node as cannot enter pytest's tmp dirs).

Use the session fixture ``plugin_rabbit`` from ``tests/conftest.py``; it skips cleanly when
``rabbitmq-server`` is not installed or the node does not start.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PLUGINS = (
    "rabbitmq_management",
    "rabbitmq_shovel",
    "rabbitmq_shovel_management",
    "rabbitmq_federation",
    "rabbitmq_federation_management",
)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_node_ports() -> tuple[int, int]:
    """An AMQP port whose distribution port (+20000) is free too, and a management port:
    so that test sessions running side by side each get their own node."""
    rng = random.Random()
    while True:
        port, http_port = rng.randrange(20000, 40000), rng.randrange(40000, 45000)
        if port_free(port) and port_free(port + 20000) and port_free(http_port):
            return port, http_port


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


class PluginRabbit:
    """One RabbitMQ node: ``start()``, ``url``, ``http`` (management API), ``kill9()``,
    ``stop()``. Ports default away from the reference (5673) and the benchmarks (5684, 5694).
    ``stream_port`` sets the ``rabbitmq_stream`` plugin's listener (with that plugin in
    ``plugins``); None leaves the plugin's default (5552). ``extra_config`` is appended to
    rabbitmq.conf (TLS listeners, other plugins' ports)."""

    def __init__(self, name: str = "leveret-test", port: int = 5697,
                 http_port: int = 15697, plugins: tuple[str, ...] = PLUGINS,
                 stream_port: int | None = None, extra_config: str = "") -> None:
        self.node = f"{name}@localhost"
        self.port, self.http_port, self.plugins = port, http_port, plugins
        self.stream_port = stream_port
        self.extra_config = extra_config
        self.base = Path("/var/tmp") / f"{name}-rabbitmq"

    def env(self) -> dict[str, str]:
        b = self.base
        return {**os.environ, "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.port + 20000),
                "RABBITMQ_MNESIA_BASE": str(b / "mnesia"), "RABBITMQ_LOG_BASE": str(b / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf")}

    @staticmethod
    def installed() -> bool:
        return shutil.which("rabbitmq-server") is not None

    def running(self) -> bool:
        return port_open(self.port) and port_open(self.http_port) and (
            self.stream_port is None or port_open(self.stream_port))

    def start(self, timeout: float = 180) -> float:
        """Start the node (fresh data unless it is already running); seconds it took."""
        t0 = time.monotonic()
        if self.running():
            return 0.0
        shutil.rmtree(self.base, ignore_errors=True)
        self.base.mkdir(parents=True)
        (self.base / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        conf = f"management.tcp.port = {self.http_port}\nmanagement.tcp.ip = 127.0.0.1\n"
        if self.stream_port is not None:
            conf += f"stream.listeners.tcp.1 = 127.0.0.1:{self.stream_port}\n"
        (self.base / "rabbitmq.conf").write_text(conf + self.extra_config)
        subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(self.base)], check=False)
        self.restart(timeout)
        return time.monotonic() - t0

    def restart(self, timeout: float = 180) -> None:
        """Start the node on its existing data (after ``kill9`` or ``stop(remove=False)``)."""
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ node {self.node} did not start; see "
                                   f"{self.base / 'log'}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def vhost_url(self, vhost: str) -> str:
        from urllib.parse import quote
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return int((self.base / "mnesia" / f"{self.node}.pid").read_text().strip())

    def kill9(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, remove: bool = True) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)
