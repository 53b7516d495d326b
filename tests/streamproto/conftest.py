"""Fixtures for the stream protocol tests: leveret with its stream listener, and a private
RabbitMQ node with the rabbitmq_stream plugin (skipped cleanly when it cannot start).

The node listens on ``LEVERET_STREAMPROTO_RABBIT_PORT`` (AMQP, default 5851) and the ports
after it: +1 the stream protocol, +2 the stream protocol over TLS; +10000 the management
API, +10001 Prometheus. Two sessions running these tests side by side give different
bases, so neither stops the other's node."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("rstream", reason="rstream (the test extras) is not installed")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rabbit_node import PluginRabbit, port_open
from streamproto_helpers import Target, rabbit_target
from tls_certificates import Certs, Pem, make_certs

from leveret.runtime.embedded import Broker

STREAM_PLUGINS = ("rabbitmq_management", "rabbitmq_stream", "rabbitmq_stream_management",
                  "rabbitmq_prometheus")
RABBIT_PORT = int(os.environ.get("LEVERET_STREAMPROTO_RABBIT_PORT", "5851"))


@pytest.fixture(autouse=True)
def _collect_client_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked CLIENT_LEAKS_REFUSED_SOCKET collects what the client leaked before it
    ends, under its own warning filter (the collector may otherwise run in the next test)."""
    yield
    if any(mark.args == ("ignore::pytest.PytestUnraisableExceptionWarning",)
           for mark in request.node.iter_markers("filterwarnings")):
        gc.collect()


@pytest.fixture(scope="session")
def stream_certs() -> Certs:
    """CA, server and client ("alice") certificates where the rabbitmq user can read them.
    A node still running from an earlier session keeps the files it was started with:
    they are reused then (they are valid for a day)."""
    directory = Path("/var/tmp") / f"leveret-streamproto-{RABBIT_PORT}-certs"
    names = ("leveret-test-ca.crt", "localhost.crt", "localhost.key", "alice.crt",
             "alice.key")
    if port_open(RABBIT_PORT + 2) and all((directory / n).is_file() for n in names):
        pem = SimpleNamespace
        return Certs(directory, pem(pem=directory / names[0]), None,  # type: ignore[arg-type]
                     Pem(directory / names[1], directory / names[2]),
                     Pem(directory / names[3], directory / names[4]), None, None, None)
    directory.mkdir(exist_ok=True)
    certs = make_certs(directory)
    directory.chmod(0o755)
    for file in directory.iterdir():
        file.chmod(0o644)
    return certs


@pytest.fixture(scope="session")
def stream_rabbit(stream_certs: Certs) -> Iterator[PluginRabbit]:
    c = stream_certs
    tls = (f"stream.listeners.ssl.1 = 127.0.0.1:{RABBIT_PORT + 2}\n"
           f"ssl_options.cacertfile = {c.ca.pem}\nssl_options.certfile = {c.server.cert}\n"
           f"ssl_options.keyfile = {c.server.key}\nssl_options.verify = verify_peer\n"
           "ssl_options.fail_if_no_peer_cert = false\n"
           f"prometheus.tcp.port = {RABBIT_PORT + 10001}\n")
    node = PluginRabbit(name=f"leveret-streamproto-{RABBIT_PORT}", port=RABBIT_PORT,
                        http_port=RABBIT_PORT + 10000, plugins=STREAM_PLUGINS,
                        stream_port=RABBIT_PORT + 1, extra_config=tls)
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
        yield rabbit_target(node)

