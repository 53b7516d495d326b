"""Fixtures for the stream protocol tests: leveret with its stream listener, and a private
RabbitMQ node with the rabbitmq_stream plugin (skipped cleanly when it cannot start).

The node listens on ``LEVERET_STREAMPROTO_RABBIT_PORT`` (AMQP, default 5851), the stream
protocol on the port after it and the management API on +10000, so two sessions running
these tests side by side use different nodes and neither stops the other's."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("rstream", reason="rstream (the test extras) is not installed")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rabbit_node import PluginRabbit

from leveret.runtime.embedded import Broker

STREAM_PLUGINS = ("rabbitmq_management", "rabbitmq_stream", "rabbitmq_stream_management")
RABBIT_PORT = int(os.environ.get("LEVERET_STREAMPROTO_RABBIT_PORT", "5851"))


@dataclass
class Target:
    """One broker the same client-side scenario runs against."""

    kind: str  # "leveret" or "rabbitmq"
    host: str
    stream_port: int
    amqp_url: str
    broker: Broker | None = None  # leveret's, to look inside or restart
    http: str = ""  # RabbitMQ's management API (its users, vhosts, limits)


@pytest.fixture(scope="session")
def stream_rabbit() -> Iterator[PluginRabbit]:
    node = PluginRabbit(name=f"leveret-streamproto-{RABBIT_PORT}", port=RABBIT_PORT,
                        http_port=RABBIT_PORT + 10000, plugins=STREAM_PLUGINS,
                        stream_port=RABBIT_PORT + 1)
    if not node.installed():
        pytest.skip("rabbitmq-server is not installed")
    started = 0.0
    try:
        started = node.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        node.stop()
        pytest.skip(f"the private RabbitMQ node with rabbitmq_stream did not start: {exc}")
    yield node
    if started:
        node.stop()


@pytest.fixture
async def leveret(tmp_path: Path) -> AsyncIterator[Target]:
    broker = Broker(port=0, stream_port=0, data_dir=tmp_path / "data")
    broker.node.failed_login_delay = 0.2
    await broker.start()
    try:
        yield Target("leveret", "127.0.0.1", broker.stream_port or 0, broker.url, broker)
    finally:
        await broker.stop()


@pytest.fixture(params=["leveret", "rabbitmq"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "leveret":
        broker = Broker(port=0, stream_port=0, data_dir=tmp_path / "data")
        broker.node.failed_login_delay = 0.2
        await broker.start()
        try:
            yield Target("leveret", "127.0.0.1", broker.stream_port or 0, broker.url, broker)
        finally:
            await broker.stop()
    else:
        node = request.getfixturevalue("stream_rabbit")
        yield Target("rabbitmq", "127.0.0.1", node.stream_port or 5552, node.url,
                     http=node.http)
