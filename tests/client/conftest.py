"""Fixtures for the client tests: ``amqp_url`` is the broker every test talks to.

* ``LEVERET_TEST_URL`` set (e.g. amqp://guest:guest@127.0.0.1:5673/, the reference
  RabbitMQ): that broker. This is how the tests are validated: RabbitMQ is the oracle.
* otherwise: a fresh in-process leveret broker from the ``leveret_broker`` fixture
  (pytest plugin ``leveret.testing``), loaded from src/ when leveret is not installed.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))  # a bare checkout: leveret not installed in the venv


@pytest.fixture
def amqp_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = os.environ.get("LEVERET_TEST_URL")
    if url:
        yield url
        return
    try:
        broker = request.getfixturevalue("leveret_broker")
    except pytest.FixtureLookupError:
        from leveret.testing import BrokerThread  # plugin not registered: use it directly

        with BrokerThread() as thread:
            yield thread.url
        return
    yield broker.url


@pytest.fixture
def name() -> str:
    """A unique queue name: the broker may be shared with other tests."""
    return f"test-client-{uuid.uuid4().hex[:10]}"
