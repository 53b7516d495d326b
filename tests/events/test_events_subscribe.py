"""Subscribing: topic patterns, competing workers in a group, fan-out across groups,
sync handlers in threads, the concurrency limit, and bad payloads."""

from __future__ import annotations

import asyncio
import threading

import pydantic
import pytest
from events_helpers import queue_length, uid

from leveret.events import Delivery, EventsError, event
from leveret.events.testing import eventually


@event("orders.placed")
class OrderPlaced(pydantic.BaseModel):
    order_id: str
    total: float


async def test_topic_patterns_select_events(make_bus) -> None:
    bus = make_bus()
    star: list[str] = []
    hash_: list[str] = []

    @bus.subscribe("orders.*", group=uid("star"))
    async def one_word(e: dict, d: Delivery) -> None:
        star.append(d.routing_key)

    @bus.subscribe("orders.#", "refunds.created", group=uid("hash"))
    async def any_words(e: dict, d: Delivery) -> None:
        hash_.append(d.routing_key)

    await bus.start()
    for key in ("orders.placed", "orders.eu.placed", "refunds.created", "stock.low"):
        await bus.publish({"k": key}, routing_key=key)
    await eventually(lambda: len(hash_) == 3)
    await asyncio.sleep(0.1)
    assert star == ["orders.placed"]
    assert sorted(hash_) == ["orders.eu.placed", "orders.placed", "refunds.created"]


async def test_workers_in_a_group_compete_and_groups_fan_out(make_bus) -> None:
    billing, shipping = uid("billing"), uid("shipping")
    handled: dict[str, list[str]] = {"b1": [], "b2": [], "s": []}

    def worker(name: str, group: str) -> None:
        bus = make_bus(prefetch=1)

        @bus.subscribe("orders.placed", group=group)
        async def handle(e: OrderPlaced) -> None:
            await asyncio.sleep(0.01)
            handled[name].append(e.order_id)

        workers.append(bus)

    workers: list = []
    worker("b1", billing)
    worker("b2", billing)
    worker("s", shipping)
    for bus in workers:
        await bus.start()
    ids = [f"o-{i}" for i in range(20)]
    for order_id in ids:
        await workers[0].publish(OrderPlaced(order_id=order_id, total=1))
    await eventually(lambda: len(handled["b1"]) + len(handled["b2"]) == 20
                     and len(handled["s"]) == 20)
    assert sorted(handled["b1"] + handled["b2"]) == sorted(ids)  # each once per group
    assert handled["b1"] and handled["b2"]  # both workers took a share
    assert sorted(handled["s"]) == sorted(ids)


async def test_sync_handlers_run_in_a_thread_pool_and_can_publish(make_bus) -> None:
    bus = make_bus()
    threads: list[str] = []
    followups: list[str | None] = []

    @bus.subscribe("orders.placed", group=uid("sync"))
    def handle(e: OrderPlaced) -> None:
        threads.append(threading.current_thread().name)
        bus.publish_sync({"order_id": e.order_id}, routing_key="orders.audited")

    @bus.subscribe("orders.audited", group=uid("audit"))
    async def audited(e: dict, d: Delivery) -> None:
        followups.append(d.causation_id)

    await bus.start()
    with pytest.raises(EventsError, match="block"):  # on the loop itself: use await
        bus.publish_sync({}, routing_key="orders.audited")
    first = await bus.publish(OrderPlaced(order_id="o-1", total=1))
    await eventually(lambda: followups)
    assert threads[0] != threading.main_thread().name
    assert followups == [first]


async def test_concurrency_limit_per_subscriber(make_bus) -> None:
    bus = make_bus()
    running = 0
    peak = 0
    done: list[int] = []

    @bus.subscribe("jobs.run", group=uid("jobs"), concurrency=3, prefetch=10)
    async def job(e: dict) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(e["n"])

    await bus.start()
    for n in range(9):
        await bus.publish({"n": n}, routing_key="jobs.run")
    await eventually(lambda: len(done) == 9)
    assert peak == 3


async def test_invalid_payload_is_dead_lettered_and_the_worker_goes_on(
        make_bus, raw_connection) -> None:
    bus = make_bus()
    group = uid("strict")
    good: list[str] = []

    @bus.subscribe("orders.placed", group=group)
    async def handle(e: OrderPlaced) -> None:
        good.append(e.order_id)

    await bus.start()
    await bus.publish({"order_id": "o-bad", "total": "a lot"}, routing_key="orders.placed")
    await bus.publish(OrderPlaced(order_id="o-good", total=2))
    await eventually(lambda: good == ["o-good"])
    await eventually(lambda: queue_length(raw_connection, f"{group}.dlq"))
    [letter] = await bus.dead_letters(group).peek()
    assert letter.reason == "invalid"
    assert "total" in (letter.error or "") and "orders.placed" in (letter.error or "")
    assert letter.attempts == 1
