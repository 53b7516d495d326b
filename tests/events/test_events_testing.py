"""The helpers applications use in their own tests, and the package's import surface."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import leveret.events
from leveret.cli.main import main
from leveret.events import EventBus, RetryPolicy
from leveret.events.testing import bus_under_test, eventually

ROOT = Path(__file__).resolve().parents[2]


async def test_events_broker_fixture_runs_real_retries(events_broker) -> None:
    bus = EventBus(exchange="app")
    attempts: list[int] = []

    @bus.subscribe("t", group="app-group", retry=RetryPolicy(max_attempts=2,
                                                            initial_delay=0.01))
    async def flaky(e: dict, d: leveret.events.Delivery) -> None:
        attempts.append(d.attempt)
        if d.attempt == 1:
            raise RuntimeError("once")

    async with bus_under_test(bus, events_broker.url):
        await bus.publish({}, routing_key="t")
        await eventually(lambda: attempts == [1, 2])


async def test_eventually_reports_a_timeout() -> None:
    with pytest.raises(AssertionError, match="still false"):
        await eventually(lambda: False, timeout=0.05)


def test_every_public_name_resolves_lazily() -> None:
    from leveret.events import _HOME

    assert set(_HOME) == set(leveret.events.__all__)
    assert set(leveret.events.__all__) <= set(dir(leveret.events))
    with pytest.raises(AttributeError):
        leveret.events.NotAThing  # noqa: B018


def test_leveret_cli_does_not_load_the_events_dependencies() -> None:
    code = ("import sys; from leveret.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('aio_pika', 'pydantic', 'prometheus_client') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_docs_command_writes_asyncapi(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    target = tmp_path / "asyncapi.json"
    assert main(["events", "docs", "examples.orders.app:bus", "-o", str(target),
                 "--title", "Orders"]) == 0
    doc = json.loads(target.read_text())
    assert doc["info"] == {"title": "Orders", "version": "1.0.0"}
    assert set(doc["channels"]) >= {"orders.placed", "payments.captured", "rpc.pricing.quote"}
    assert doc["operations"]["fraud-check.receive"]["x-retry"]["maxAttempts"] == 3
    placed = doc["components"]["messages"]["OrderPlaced"]
    assert placed["payload"]["properties"]["quantity"]["exclusiveMinimum"] == 0
    assert placed["summary"] == "A customer placed an order."
