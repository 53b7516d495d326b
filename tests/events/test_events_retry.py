"""Retries: counted in the message (so across workers and restarts), delayed in the
broker so that delays never block each other (on RabbitMQ one TTL queue per delay, on
leveret its delayed-message exchange, one per group), then dead-lettered with the error and
the attempt history."""

from __future__ import annotations

import asyncio
import time

import pytest
from events_helpers import exists, metric, queue_length, uid
from prometheus_client import CollectorRegistry

from leveret.broker.clock import ManualClock
from leveret.events import DeadLetter, Delivery, EventBus, Metrics, RetryPolicy
from leveret.events.testing import eventually, manual_clock_broker
from leveret.runtime.threaded import BrokerThread

FAST = RetryPolicy(max_attempts=3, initial_delay=0.05, multiplier=2, jitter=0)


async def test_retries_until_the_handler_succeeds(make_bus, registry) -> None:
    bus = make_bus()
    group = uid("flaky")
    attempts: list[int] = []

    @bus.subscribe("orders.placed", group=group, retry=FAST)
    async def flaky(e: dict, d: Delivery) -> None:
        attempts.append(d.attempt)
        if d.attempt < 3:
            raise ConnectionError("payment gateway down")

    await bus.start()
    await bus.publish({"order_id": "o-1"}, routing_key="orders.placed")
    await eventually(lambda: metric(registry, "leveret_events_handled_total", group) == 1)
    assert attempts == [1, 2, 3]
    assert metric(registry, "leveret_events_retried_total", group) == 2
    assert metric(registry, "leveret_events_failed_total", group) == 2


async def test_last_attempt_goes_to_the_dead_letter_queue_with_history(
        make_bus, raw_connection) -> None:
    bus = make_bus()
    group = uid("doomed")

    @bus.subscribe("orders.placed", group=group, retry=FAST)
    async def doomed(e: dict) -> None:
        raise ValueError(f"cannot bill {e['order_id']}")

    await bus.start()
    event_id = await bus.publish({"order_id": "o-2"}, routing_key="orders.placed")
    await eventually(lambda: queue_length(raw_connection, f"{group}.dlq"))
    [letter] = await bus.dead_letters(group).peek()
    assert letter.event_id == event_id
    assert letter.reason == "exhausted"
    assert letter.error == "ValueError: cannot bill o-2"
    assert letter.attempts == 3
    assert [h["attempt"] for h in letter.history] == [1, 2, 3]
    assert all(h["error"] == "ValueError: cannot bill o-2" for h in letter.history)
    assert letter.routing_key == "orders.placed"
    assert await queue_length(raw_connection, group) == 0


async def test_dead_letter_exception_and_retry_on_skip_the_retries(
        make_bus, raw_connection) -> None:
    bus = make_bus()
    rejecting, picky = uid("rejecting"), uid("picky")

    @bus.subscribe("a", group=rejecting, retry=FAST)
    async def reject(e: dict) -> None:
        raise DeadLetter("order is for a closed shop")

    @bus.subscribe("b", group=picky, retry=RetryPolicy(max_attempts=5,
                                                       retry_on=(ConnectionError,)))
    async def pick(e: dict) -> None:
        raise KeyError("no such customer")

    await bus.start()
    await bus.publish({}, routing_key="a")
    await bus.publish({}, routing_key="b")
    await eventually(lambda: queue_length(raw_connection, f"{rejecting}.dlq"))
    await eventually(lambda: queue_length(raw_connection, f"{picky}.dlq"))
    [rejected] = await bus.dead_letters(rejecting).peek()
    [picked] = await bus.dead_letters(picky).peek()
    assert (rejected.reason, rejected.attempts) == ("rejected", 1)
    assert (picked.reason, picked.attempts) == ("exhausted", 1)
    assert picked.error == "KeyError: 'no such customer'"


async def test_the_delay_happens_in_the_broker(make_bus, raw_connection, registry,
                                              broker_kind) -> None:
    bus = make_bus()
    group = uid("patient")
    times: list[float] = []

    @bus.subscribe("t", group=group, retry=RetryPolicy(max_attempts=2, initial_delay=0.5,
                                                       jitter=0))
    async def once(e: dict) -> None:
        times.append(time.monotonic())
        if len(times) == 1:
            raise RuntimeError("not yet")

    await bus.start()
    await bus.publish({}, routing_key="t")
    await eventually(lambda: times)
    if broker_kind == "rabbitmq":
        # while it waits, the event sits in the broker's delay queue, not in the worker
        await eventually(lambda: queue_length(raw_connection, f"{group}.retry.500"))
    else:
        # ... in leveret's delayed-message exchange: no queue holds it meanwhile
        await eventually(lambda: metric(registry, "leveret_events_retried_total",
                                        group) == 1)
        assert len(times) == 1
        assert await queue_length(raw_connection, group) == 0
        assert not await exists(raw_connection, f"{group}.retry.500")
    await eventually(lambda: len(times) == 2)
    assert times[1] - times[0] >= 0.45


async def test_retry_layout_per_broker(make_bus, raw_connection, broker_kind,
                                       request) -> None:
    """RabbitMQ: one TTL queue per delay. leveret: no delay queues, the copy goes through
    the group's x-delayed-message exchange with x-delay = the backoff; the policy and the
    attempt headers behave the same on both."""
    bus = make_bus()
    group = uid("layout")
    headers: list[dict] = []

    @bus.subscribe("t", group=group, retry=FAST)
    async def doomed(e: dict, d: Delivery) -> None:
        headers.append(dict(d.headers))
        raise RuntimeError(f"attempt {d.attempt} failed")

    await bus.start()
    event_id = await bus.publish({}, routing_key="t")
    await eventually(lambda: queue_length(raw_connection, f"{group}.dlq"))
    assert [h.get("x-attempt", 1) for h in headers] == [1, 2, 3]
    assert [len(h.get("x-attempt-history", [])) for h in headers] == [0, 1, 2]
    retry_queues = [f"{group}.retry.50", f"{group}.retry.100"]
    delay_exchange = f"{group}.delay"
    if broker_kind == "leveret":
        assert bus.retry_strategy.name == "delayed-exchange"
        assert [h.get("x-delay") for h in headers] == [None, 50, 100]
        assert bus.retry_strategy.declared == frozenset()
        assert bus.retry_strategy.declared_exchanges == {delay_exchange}
        assert [await exists(raw_connection, q) for q in retry_queues] == [False, False]
        assert await exists(raw_connection, delay_exchange, "exchange")
        broker = request.getfixturevalue("leveret_session_broker")
        vhost = broker.node.vhosts["/"]
        exchange = broker.call(lambda: vhost.exchanges[delay_exchange])
        assert exchange.TYPE == "x-delayed-message"
        assert exchange.arguments["x-delayed-type"] == "direct"
        assert broker.call(lambda: [q for q in vhost.queues
                                    if q.startswith(f"{group}.retry.")]) == []
    else:
        assert bus.retry_strategy.name == "ttl-queues"
        assert all("x-delay" not in h for h in headers)
        assert bus.retry_strategy.declared == set(retry_queues)
        assert [await exists(raw_connection, q) for q in retry_queues] == [True, True]
        assert not await exists(raw_connection, delay_exchange, "exchange")
    # the dead letter is the same on both: our headers, none of the broker's bookkeeping
    async with raw_connection.channel() as channel:
        dlq = await channel.declare_queue(f"{group}.dlq", passive=True)
        letter = await dlq.get(no_ack=True)
    assert letter.message_id == event_id
    assert letter.headers["x-attempt"] == 3
    assert [h["attempt"] for h in letter.headers["x-attempt-history"]] == [1, 2, 3]
    assert letter.headers["x-error"] == "RuntimeError: attempt 3 failed"
    assert letter.headers["x-original-routing-key"] == "t"
    assert not {"x-delay", "x-death"} & set(letter.headers)


async def test_different_delays_never_block_each_other(make_bus) -> None:
    bus = make_bus()
    group = uid("mixed")
    policy = RetryPolicy(max_attempts=5, initial_delay=0.1, multiplier=10, max_delay=30,
                         jitter=0)
    seen: list[tuple[str, int]] = []

    @bus.subscribe("t", group=group, retry=policy)
    async def fail_first(e: dict, d: Delivery) -> None:
        seen.append((e["name"], d.attempt))
        raise RuntimeError("again")

    await bus.start()
    # "slow" is already on attempt 3: its next delay is 0.1 * 10**2 = 10 s
    await bus.publish({"name": "slow"}, routing_key="t", headers={"x-attempt": 3})
    await eventually(lambda: ("slow", 3) in seen)
    await bus.publish({"name": "fast"}, routing_key="t")  # next delay: 0.1 s
    await eventually(lambda: ("fast", 2) in seen, timeout=3)
    assert ("slow", 4) not in seen


async def test_attempts_count_across_workers_and_restarts(make_bus, raw_connection) -> None:
    group = uid("relay")
    policy = RetryPolicy(max_attempts=3, initial_delay=0.3, jitter=0)
    seen: list[tuple[str, int]] = []

    def worker(name: str):
        bus = make_bus()

        @bus.subscribe("t", group=group, retry=policy)
        async def fail(e: dict, d: Delivery) -> None:
            seen.append((name, d.attempt))
            raise RuntimeError(f"{name} failed")

        return bus

    first = worker("first")
    await first.start()
    await first.publish({}, routing_key="t")
    await eventually(lambda: seen == [("first", 1)])
    await first.close()  # the retry waits in the broker while no worker runs
    second = worker("second")
    await second.start()
    await eventually(lambda: queue_length(raw_connection, f"{group}.dlq"))
    assert seen == [("first", 1), ("second", 2), ("second", 3)]
    [letter] = await second.dead_letters(group).peek()
    assert [h["error"] for h in letter.history] == [
        "RuntimeError: first failed", "RuntimeError: second failed",
        "RuntimeError: second failed"]


async def test_one_hour_backoff_on_leveret_manual_clock() -> None:
    """With leveret's injectable clock a one-hour retry delay is checked in milliseconds
    (skipped until the broker accepts a clock)."""
    from leveret.events import EventBus

    with manual_clock_broker() as (broker, advance):
        bus = EventBus(broker.url, exchange=uid("clock"))
        attempts: list[int] = []

        @bus.subscribe("t", group=uid("hourly"), retry=RetryPolicy(
            max_attempts=2, initial_delay=3600, max_delay=3600, jitter=0))
        async def fail_once(e: dict, d: Delivery) -> None:
            attempts.append(d.attempt)
            if d.attempt == 1:
                raise RuntimeError("try again in an hour")

        async with bus:
            assert bus.retry_strategy.name == "delayed-exchange"
            await bus.publish({}, routing_key="t")
            await eventually(lambda: attempts == [1])
            await advance(3599)
            await asyncio.sleep(0.1)
            assert attempts == [1]
            await advance(2)
            await eventually(lambda: attempts == [1, 2])


async def test_native_retry_one_hour_backoff_on_manual_clock() -> None:
    """leveret's delayed-message retry on a ManualClock: a one-hour and a one-minute
    backoff share the group's one delay exchange (no queue per delay), the minute is not
    held back by the hour, and the hour is exact to the second, all in milliseconds."""
    registry = CollectorRegistry()
    group = uid("hourly")
    policy = RetryPolicy(max_attempts=3, initial_delay=60, multiplier=60, max_delay=3600,
                         jitter=0)
    seen: list[tuple[str, int, object]] = []

    with BrokerThread(clock=ManualClock()) as broker:
        bus = EventBus(broker.url, exchange=uid("clock"),
                       metrics=Metrics.for_registry(registry))

        @bus.subscribe("t", group=group, retry=policy)
        async def fail_first(e: dict, d: Delivery) -> None:
            first = all(name != e["name"] for name, _, _ in seen)
            seen.append((e["name"], d.attempt, d.headers.get("x-delay")))
            if first:
                raise RuntimeError("later")

        started = time.monotonic()
        async with bus:
            assert bus.retry_strategy.name == "delayed-exchange"
            # "hour" is on attempt 2 already: its backoff is 60 s * 60 = one hour
            await bus.publish({"name": "hour"}, routing_key="t", headers={"x-attempt": 2})
            await bus.publish({"name": "minute"}, routing_key="t")
            await eventually(lambda: metric(registry, "leveret_events_retried_total",
                                            group) == 2)
            await asyncio.to_thread(broker.advance, 59)
            await asyncio.sleep(0.1)
            assert [n for n, _, _ in seen] == ["hour", "minute"]
            await asyncio.to_thread(broker.advance, 2)  # t = 61 s
            await eventually(lambda: ("minute", 2, 60_000) in seen)
            await asyncio.to_thread(broker.advance, 3599 - 61)  # t = 3599 s
            await asyncio.sleep(0.1)
            assert len(seen) == 3
            await asyncio.to_thread(broker.advance, 2)  # t = 3601 s
            await eventually(lambda: ("hour", 3, 3_600_000) in seen)
            queues = broker.call(lambda: sorted(broker.node.vhosts["/"].queues))
            assert not [q for q in queues if q.startswith(f"{group}.retry.")]
            assert f"{group}.delay" in broker.call(
                lambda: list(broker.node.vhosts["/"].exchanges))
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("delay", [0])
async def test_zero_delay_retries_straight_back(make_bus, delay: float) -> None:
    bus = make_bus()
    attempts: list[int] = []

    @bus.subscribe("t", group=uid("eager"), retry=RetryPolicy(max_attempts=2,
                                                              initial_delay=delay))
    async def fail_once(e: dict, d: Delivery) -> None:
        attempts.append(d.attempt)
        if d.attempt == 1:
            raise RuntimeError("again")

    await bus.start()
    await bus.publish({}, routing_key="t")
    await eventually(lambda: attempts == [1, 2])
