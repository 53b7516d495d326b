"""pytest helpers for applications built on ``leveret.events``: the real broker,
in-process, so tests exercise real routing, retries and dead-lettering.

Enable in a conftest.py with ``pytest_plugins = ["leveret.events.testing"]``:

    async def test_billing(events_broker):
        async with bus_under_test(bus, events_broker.url):   # your app's bus
            await bus.publish(OrderPlaced(order_id="o-1", total=10))
            await eventually(lambda: billed == ["o-1"])

Use short retry delays in tests (``RetryPolicy(initial_delay=0.05)``): the delay happens in
the broker. ``manual_clock_broker`` is ready for leveret's injectable clock, with which a
one-hour backoff is tested by advancing the clock; until the broker accepts a clock it
skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from leveret.events.bus import EventBus
from leveret.runtime.embedded import Broker
from leveret.runtime.threaded import BrokerThread

__all__ = ["bus_under_test", "events_broker", "eventually", "manual_clock_broker"]


@pytest.fixture
def events_broker() -> Iterator[BrokerThread]:
    """A fresh leveret broker on a free loopback port, for one test."""
    with BrokerThread() as broker:
        yield broker


@contextlib.asynccontextmanager
async def bus_under_test(bus: EventBus, url: str, timeout: float = 5.0,
                         ) -> AsyncIterator[EventBus]:
    """Run ``bus`` (subscribers, responders) against ``url`` for the block."""
    await bus.start(url)
    try:
        yield bus
    finally:
        await bus.close(timeout)


async def eventually(condition: Callable[[], Any], timeout: float = 5.0,
                     interval: float = 0.01) -> Any:
    """Wait until ``condition()`` (sync or async) is truthy; return its value, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition still false after {timeout} s")
        await asyncio.sleep(interval)


@contextlib.contextmanager
def manual_clock_broker() -> Iterator[tuple[BrokerThread, Callable[[float], Awaitable[None]]]]:
    """A broker on a manual clock and ``advance(seconds)`` to move it (skips the test
    while leveret's Broker does not accept a clock)."""
    if "clock" not in inspect.signature(Broker.__init__).parameters:
        pytest.skip("leveret's Broker has no injectable clock yet")
    from leveret.broker.clock import ManualClock

    clock = ManualClock()
    with BrokerThread(clock=clock) as broker:

        async def advance(seconds: float) -> None:
            done = asyncio.get_running_loop().create_future()

            def step() -> None:
                clock.advance(seconds)
                done.get_loop().call_soon_threadsafe(done.set_result, None)

            broker.loop.call_soon_threadsafe(step)
            await done

        yield broker, advance
