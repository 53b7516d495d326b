"""Duplicates (same event id) are skipped within the window, per group; the store is
pluggable, so workers can share one."""

from __future__ import annotations

import asyncio

from events_helpers import metric, uid

from leveret.events import Delivery, IdempotencyStore, MemoryIdempotencyStore
from leveret.events.testing import eventually


async def test_a_duplicate_event_is_handled_once_per_group(make_bus, registry) -> None:
    bus = make_bus()
    group, other = uid("billing"), uid("shipping")
    billed: list[str] = []
    shipped: list[str] = []

    @bus.subscribe("orders.placed", group=group)
    async def bill(e: dict, d: Delivery) -> None:
        billed.append(d.event_id)

    @bus.subscribe("orders.placed", group=other)
    async def ship(e: dict, d: Delivery) -> None:
        shipped.append(d.event_id)

    await bus.start()
    for _ in range(3):  # e.g. a publisher retrying after a lost confirm
        await bus.publish({"order_id": "o-1"}, routing_key="orders.placed", event_id="evt-1")
    await bus.publish({"order_id": "o-2"}, routing_key="orders.placed", event_id="evt-2")
    await eventually(lambda: metric(registry, "leveret_events_duplicates_total", group) == 2)
    await eventually(lambda: len(shipped) == 2)
    assert billed == ["evt-1", "evt-2"] and shipped == ["evt-1", "evt-2"]


async def test_idempotency_can_be_turned_off(make_bus) -> None:
    bus = make_bus()
    seen: list[str] = []

    @bus.subscribe("t", group=uid("counter"), idempotent=False)
    async def count(e: dict, d: Delivery) -> None:
        seen.append(d.event_id)

    await bus.start()
    await bus.publish({}, routing_key="t", event_id="same")
    await bus.publish({}, routing_key="t", event_id="same")
    await eventually(lambda: len(seen) == 2)


class SharedStore:
    """Stands in for Redis or a database table shared by workers on several hosts."""

    def __init__(self) -> None:
        self.inner = MemoryIdempotencyStore()
        self.calls: list[str] = []

    async def seen(self, key: str) -> bool:
        self.calls.append(f"seen {key}")
        return await self.inner.seen(key)

    async def remember(self, key: str, ttl: float) -> None:
        self.calls.append(f"remember {key} {ttl:g}")
        await self.inner.remember(key, ttl)


async def test_a_shared_store_skips_duplicates_across_workers(make_bus) -> None:
    store = SharedStore()
    assert isinstance(store, IdempotencyStore)
    group = uid("shared")
    handled: list[str] = []

    def worker() -> object:
        bus = make_bus(idempotency=store, dedupe_window=60)

        @bus.subscribe("t", group=group, prefetch=1)
        async def handle(e: dict, d: Delivery) -> None:
            await asyncio.sleep(0.02)
            handled.append(d.event_id)

        return bus

    one, two = worker(), worker()
    await one.start()
    await two.start()
    await one.publish({}, routing_key="t", event_id="a")
    await eventually(lambda: handled == ["a"])
    for _ in range(4):
        await one.publish({}, routing_key="t", event_id="a")
    await one.publish({}, routing_key="t", event_id="b")
    await eventually(lambda: "b" in handled)
    await asyncio.sleep(0.1)
    assert handled == ["a", "b"]
    assert f"remember {group}:a 60" in store.calls
