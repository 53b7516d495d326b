"""pytest plugin: a real leveret broker for tests, in-process.

Installed as a pytest11 entry point, so any project that has leveret installed gets the
``leveret_broker`` fixture: a broker listening on a free loopback port, running in a
background thread so both blocking clients (pika) and asyncio clients (aio-pika) can use it.

    def test_publish(leveret_broker):
        conn = pika.BlockingConnection(pika.URLParameters(leveret_broker.url))
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leveret.runtime.threaded import BrokerThread

__all__ = ["BrokerThread", "leveret_broker", "leveret_broker_session"]


@pytest.fixture(scope="session")
def leveret_broker_session() -> Iterator[BrokerThread]:
    """One broker for the whole test session (fast; tests must use unique names)."""
    with BrokerThread() as broker:
        yield broker


@pytest.fixture
def leveret_broker() -> Iterator[BrokerThread]:
    """A fresh broker for one test: nothing declared, nothing left over."""
    with BrokerThread() as broker:
        yield broker
