"""Fixtures for the integration suite: real TCP, real client libraries, no mocks.

Every test talks to a broker at ``amqp_url``:

* ``LEVERET_TEST_URL`` set (e.g. ``amqp://guest:guest@127.0.0.1:5673/`` for the reference
  RabbitMQ): that broker. This is how the suite is validated: RabbitMQ is the oracle.
* otherwise: the in-process leveret broker of the ``leveret_broker_session`` fixture
  (pytest plugin ``leveret.testing``).

The broker is shared by the whole session, so every test names its queues and exchanges
uniquely (the ``names`` fixture) and deletes them afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pika
import pytest

from ._raw import RawConnection

_SRC = Path(__file__).resolve().parents[2] / "src"


_PLUGIN_IMPORT_ERROR: BaseException | None = None


def pytest_configure(config: pytest.Config) -> None:
    # The plugin is registered by the ``pytest11`` entry point once leveret is installed.
    # When it is not (a bare checkout), register it from src/ so ``leveret_broker_session``
    # still exists. A broker that does not import yet must not stop the suite from running
    # against an external broker (LEVERET_TEST_URL); without one, ``amqp_url`` reports why.
    global _PLUGIN_IMPORT_ERROR
    if config.pluginmanager.has_plugin("leveret"):
        return
    if _SRC.is_dir() and str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))
    try:
        import leveret.testing as plugin
    except Exception as e:
        _PLUGIN_IMPORT_ERROR = e
        return
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "leveret")


@dataclass(frozen=True)
class AMQPParams:
    url: str
    host: str
    port: int
    user: str
    password: str
    vhost: str

    def with_(self, **kw: object) -> str:
        """The URL with some parts replaced (user, password, vhost) and a query string."""
        query = kw.pop("query", "")
        user = kw.pop("user", self.user)
        password = kw.pop("password", self.password)
        vhost = kw.pop("vhost", self.vhost)
        assert not kw, kw
        vh = str(vhost).replace("/", "%2F")
        url = f"amqp://{user}:{password}@{self.host}:{self.port}/{vh}"
        return f"{url}?{query}" if query else url


@pytest.fixture(scope="session")
def amqp_url(request: pytest.FixtureRequest) -> str:
    """The broker under test: LEVERET_TEST_URL, else the in-process leveret broker."""
    url = os.environ.get("LEVERET_TEST_URL")
    if url:
        return url
    try:
        broker = request.getfixturevalue("leveret_broker_session")
    except pytest.FixtureLookupError:
        pytest.fail(
            "LEVERET_TEST_URL is not set and the leveret_broker_session fixture is missing "
            f"(importing leveret.testing failed: {_PLUGIN_IMPORT_ERROR!r})",
            pytrace=False,
        )
    # Refused logins here need their answer, not RabbitMQ's 3 s wait (test_logins.py).
    broker.node.failed_login_delay = 0.1
    return broker.url


@pytest.fixture(scope="session")
def amqp_params(amqp_url: str) -> AMQPParams:
    u = urlparse(amqp_url)
    path = u.path[1:] if u.path.startswith("/") else u.path
    vhost = unquote(path) if path else "/"
    return AMQPParams(
        url=amqp_url,
        host=u.hostname or "127.0.0.1",
        port=u.port or 5672,
        user=unquote(u.username or "guest"),
        password=unquote(u.password or "guest"),
        vhost=vhost,
    )


@pytest.fixture
def pika_params(amqp_url: str) -> pika.URLParameters:
    return pika.URLParameters(amqp_url)


# -- unique names, cleaned up afterwards -------------------------------------------------------


def _cleanup(amqp_url: str, queues: list[str], exchanges: list[str]) -> None:
    if not queues and not exchanges:
        return
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        for kind, name in [("q", q) for q in queues] + [("x", x) for x in exchanges]:
            try:
                if kind == "q":
                    ch.queue_delete(name)
                else:
                    ch.exchange_delete(name)
            except pika.exceptions.ChannelClosedByBroker:
                # e.g. an exclusive queue of a connection still open: it goes with it
                ch = conn.channel()
    finally:
        with contextlib.suppress(Exception):
            conn.close()


class Names:
    """Unique names for one test; everything handed out is deleted (queue and exchange)
    at teardown, which is harmless for names never declared."""

    def __init__(self, test_name: str) -> None:
        safe = re.sub(r"[^\w.-]+", "_", test_name)[:60]
        self.prefix = f"it.{safe}.{uuid.uuid4().hex[:8]}"
        self.count = 0
        self.issued: list[str] = []

    def __call__(self, what: str = "n") -> str:
        self.count += 1
        name = f"{self.prefix}.{what}{self.count}"
        self.issued.append(name)
        return name

    def queue(self) -> str:
        return self("q")

    def exchange(self) -> str:
        return self("x")


@pytest.fixture
def names(request: pytest.FixtureRequest, amqp_url: str) -> Iterator[Names]:
    n = Names(request.node.name)
    yield n
    _cleanup(amqp_url, n.issued, n.issued)


# -- pika blocking connections (the most common client in the suite) --------------------------


@pytest.fixture
def connect(amqp_url: str) -> Iterator[Callable[..., pika.BlockingConnection]]:
    """A factory of pika BlockingConnections, all closed at teardown."""
    opened: list[pika.BlockingConnection] = []

    def factory(**kwargs: object) -> pika.BlockingConnection:
        params = pika.URLParameters(amqp_url)
        for k, v in kwargs.items():
            setattr(params, k, v)
        conn = pika.BlockingConnection(params)
        opened.append(conn)
        return conn

    yield factory
    for conn in opened:
        if conn.is_open:
            with contextlib.suppress(Exception):
                conn.close()


@pytest.fixture
def conn(names: Names, connect: Callable[..., pika.BlockingConnection]) -> pika.BlockingConnection:
    # depends on ``names`` so that it is closed before the names are cleaned up
    return connect()


@pytest.fixture
def channel(conn: pika.BlockingConnection):
    return conn.channel()


# -- raw sockets ----------------------------------------------------------------------------


@pytest.fixture
def raw(amqp_params: AMQPParams) -> Iterator[Callable[..., RawConnection]]:
    """A factory of raw AMQP sockets (see _raw.py), all closed at teardown."""
    opened: list[RawConnection] = []

    def factory(handshake: bool = True, **kwargs: object) -> RawConnection:
        r = RawConnection(amqp_params.host, amqp_params.port)
        opened.append(r)
        if handshake:
            r.handshake(
                user=amqp_params.user,
                password=amqp_params.password,
                vhost=amqp_params.vhost,
                **kwargs,
            )
        return r

    yield factory
    for r in opened:
        r.close()
