"""Fixtures for the management API tests.

``api``        a client for a leveret broker with the management API on (one per module,
               running in a background thread, so blocking AMQP clients work too); tests use
               unique names.
``fresh_api``  the same, for one test.
``reference``  a client for the reference RabbitMQ's management API
               ($LEVERET_REFERENCE_MANAGEMENT_URL, default http://127.0.0.1:15673/, guest);
               the test is skipped when nothing answers there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from mgmt_helpers import Api

from leveret.runtime.threaded import BrokerThread

DEFAULT_REFERENCE = "http://127.0.0.1:15673/"


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerThread]:
    with BrokerThread(management_port=0, stream_port=0) as b:
        yield b


@pytest.fixture(scope="module")
def api(broker: BrokerThread) -> Api:
    return Api(broker.broker.management_url, broker.port,
               stream_port=broker.broker.stream_port)


@pytest.fixture
def fresh_api() -> Iterator[Api]:
    with BrokerThread(management_port=0) as b:
        yield Api(b.broker.management_url, b.port)


@pytest.fixture(scope="session")
def reference() -> Api:
    base = os.environ.get("LEVERET_REFERENCE_MANAGEMENT_URL", DEFAULT_REFERENCE)
    api = Api(base)
    try:
        reply = api.get("/api/overview")
    except OSError as exc:
        pytest.skip(f"reference RabbitMQ management API not reachable at {base}: {exc}")
    if reply.status != 200:
        pytest.skip(f"reference RabbitMQ management API at {base} answered {reply.status}")
    return api
