"""Differential tests: the same scenario against leveret and against a reference RabbitMQ.

Fixtures:

``rabbitmq_url``
    ``$LEVERET_REFERENCE_URL`` or amqp://guest:guest@127.0.0.1:5673/; the test is skipped
    when nothing answers there (start one with ``../shared/tools/reference-rabbitmq start``).
``leveret_url``
    ``$LEVERET_TEST_URL`` if set, else the URL of the session-wide in-process broker of the
    ``leveret.testing`` plugin (``leveret_broker_session``).
``differential``
    ``differential(scenario)`` runs ``scenario`` against both and asserts the two records are
    equal, failing with a diff of the pretty-printed records.

Checking the scenarios themselves: point ``LEVERET_TEST_URL`` at the reference RabbitMQ,
and every scenario must pass RabbitMQ-against-RabbitMQ (it is deterministic):

    LEVERET_TEST_URL=amqp://guest:guest@127.0.0.1:5673/ python -m pytest tests/compat

``LEVERET_COMPAT_DUMP=DIR`` writes each record (RabbitMQ's and leveret's) as DIR/<test>.txt.
"""

from __future__ import annotations

import difflib
import os
import pprint
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from amqp_driver import reachable, run_scenario

DEFAULT_REFERENCE_URL = "amqp://guest:guest@127.0.0.1:5673/"


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    url = os.environ.get("LEVERET_REFERENCE_URL", DEFAULT_REFERENCE_URL)
    if not reachable(url):
        pytest.skip(f"reference RabbitMQ not reachable at {url}; start it with "
                    "../shared/tools/reference-rabbitmq start")
    return url


@pytest.fixture(scope="session")
def leveret_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = os.environ.get("LEVERET_TEST_URL")
    if url:
        if not reachable(url):
            pytest.fail(f"LEVERET_TEST_URL={url} is not reachable")
        yield url
        return
    try:
        broker = request.getfixturevalue("leveret_broker_session")
    except pytest.FixtureLookupError:
        # the leveret.testing plugin is registered only when leveret is installed; load it
        # by hand when the tests run from a source checkout
        yield from _broker_from_plugin()
        return
    yield broker.url


def _broker_from_plugin() -> Iterator[str]:
    try:
        from leveret.testing import BrokerThread
    except ImportError as exc:
        pytest.skip(f"leveret's in-process broker is not available ({exc})")
    with BrokerThread() as broker:
        yield broker.url


def _format(record: Any) -> list[str]:
    lines: list[str] = []
    for label, observations in record:
        lines.append(f"== {label}")
        lines.extend(pprint.pformat(observations, width=100, sort_dicts=True).splitlines())
    return lines


@pytest.fixture
def differential(rabbitmq_url: str, leveret_url: str,
                 request: pytest.FixtureRequest) -> Callable[[Any], None]:
    def check(scenario: Callable[..., None]) -> None:
        expected = run_scenario(scenario, rabbitmq_url)
        actual = run_scenario(scenario, leveret_url)
        dump = os.environ.get("LEVERET_COMPAT_DUMP")
        if dump:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
            Path(dump).mkdir(parents=True, exist_ok=True)
            Path(dump, f"{name}.rabbitmq.txt").write_text("\n".join(_format(expected)) + "\n")
            Path(dump, f"{name}.leveret.txt").write_text("\n".join(_format(actual)) + "\n")
        if actual != expected:
            diff = "\n".join(difflib.unified_diff(
                _format(expected), _format(actual), "rabbitmq", "leveret", lineterm="", n=4))
            pytest.fail(f"leveret differs from RabbitMQ:\n{diff}", pytrace=False)

    return check
