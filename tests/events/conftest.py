"""Every broker test here runs twice: against the in-process leveret broker and against
the reference RabbitMQ (``$LEVERET_REFERENCE_URL`` or amqp://guest:guest@127.0.0.1:5673/,
skipped when nothing answers there). The library must behave the same on both.

Tests share one broker of each kind, so every test names its exchange and groups uniquely
(``make_bus``, ``uid``) and ``make_bus`` deletes what its buses declared.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
from events_helpers import uid
from prometheus_client import CollectorRegistry

from leveret.events import EventBus, Metrics
from leveret.events.testing import events_broker  # noqa: F401 - a fixture
from leveret.runtime.threaded import BrokerThread

REFERENCE_URL = os.environ.get("LEVERET_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5673/")


def reachable(url: str) -> bool:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), 1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def leveret_session_broker() -> Iterator[BrokerThread]:
    with BrokerThread() as broker:
        yield broker


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    if not reachable(REFERENCE_URL):
        pytest.skip(f"reference RabbitMQ not reachable at {REFERENCE_URL} (start it with "
                    "../shared/tools/reference-rabbitmq start)")
    return REFERENCE_URL


@pytest.fixture(params=["leveret", "rabbitmq"])
def bus_url(request: pytest.FixtureRequest) -> str:
    if request.param == "leveret":
        return str(request.getfixturevalue("leveret_session_broker").url)
    return str(request.getfixturevalue("rabbitmq_url"))


@pytest.fixture
def broker_kind(bus_url: str, request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["bus_url"])


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def make_bus(bus_url: str, registry: CollectorRegistry,
                   ) -> AsyncIterator[Callable[..., EventBus]]:
    """``make_bus(**kwargs)``: an EventBus on the broker under test, with a unique
    exchange and its own metrics registry; closed and its topology deleted afterwards."""
    buses: list[EventBus] = []
    exchange = uid("test.events")

    def make(**kwargs: Any) -> EventBus:
        kwargs.setdefault("exchange", exchange)
        kwargs.setdefault("metrics", Metrics.for_registry(registry))
        kwargs.setdefault("reconnect_interval", 0.1)
        bus = EventBus(kwargs.pop("url", bus_url), **kwargs)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close(1.0)
    for bus in buses:
        with contextlib.suppress(Exception):
            await bus.delete_topology(bus_url)


@pytest.fixture
async def raw_connection(bus_url: str) -> AsyncIterator[Any]:
    """A plain aio-pika connection to the broker under test, to look at what the bus did."""
    import aio_pika

    connection = await aio_pika.connect(bus_url)
    async with connection:
        yield connection


@pytest.fixture
async def raw_channel(raw_connection: Any) -> Any:
    return await raw_connection.channel()
