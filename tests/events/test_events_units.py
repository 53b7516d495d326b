"""The pieces that need no broker: retry policy, codec, handlers, duplicate store, ids."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pydantic
import pytest

import leveret.events
from leveret.events import (
    Delivery,
    EventValidationError,
    MemoryIdempotencyStore,
    RetryPolicy,
    event,
    event_type,
)
from leveret.events.codec import decode, encode
from leveret.events.context import current_delivery, lineage
from leveret.events.handler import Handler
from leveret.events.policy import LADDER, quantize_ms


@event("orders.placed")
class OrderPlaced(pydantic.BaseModel):
    order_id: str
    total: float


@event("orders.cancelled")
@dataclasses.dataclass
class OrderCancelled:
    order_id: str
    at: datetime.datetime


def test_public_api_is_pinned() -> None:
    assert set(leveret.events.__all__) == {
        "NO_RETRY", "DeadLetter", "DeadLetterInfo", "DeadLetterQueue",
        "DelayedExchangeRetry", "Delivery",
        "EventBus", "EventValidationError", "EventsError", "IdempotencyStore",
        "MemoryIdempotencyStore", "Metrics", "NoResponder", "PublishError", "RemoteError",
        "RequestError", "RequestTimeout", "RetryPolicy", "RetryStrategy", "TtlQueueRetry",
        "Unroutable", "event", "event_type",
        "FileOffsetStore", "MemoryOffsetStore", "OffsetStore", "StreamRetention",
        "BrokerOffsetStore"}
    for name in leveret.events.__all__:
        assert hasattr(leveret.events, name), name


def test_backoff_is_exponential_and_capped_without_jitter() -> None:
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=10.0, jitter=0.0)
    assert [policy.delay_ms(n) for n in range(1, 7)] == [1000, 2000, 4000, 8000, 10000, 10000]


def test_jitter_stays_within_bounds_and_cap() -> None:
    low = RetryPolicy(initial_delay=1.0, jitter=0.5, random=lambda: 0.0)
    high = RetryPolicy(initial_delay=1.0, jitter=0.5, max_delay=1.2, random=lambda: 1.0)
    assert low.delay(1) == pytest.approx(0.5)
    assert high.delay(1) == pytest.approx(1.2)  # 1.5 capped
    assert high.delay_ms(1) == 1200


def test_delays_round_to_few_distinct_queues() -> None:
    assert quantize_ms(0) == 0
    assert quantize_ms(1000) == 1000
    assert quantize_ms(1040) == 1000
    assert quantize_ms(3_600_000) == 3_600_000
    # a jittered policy over many draws uses only a handful of delay values per attempt
    import random

    rng = random.Random(7)
    policy = RetryPolicy(initial_delay=0.5, jitter=0.2, random=rng.random)
    assert len({policy.delay_ms(3) for _ in range(1000)}) <= 6
    assert len(LADDER) == 23 and quantize_ms(500) == 500


def test_attempts_and_retry_on() -> None:
    policy = RetryPolicy(max_attempts=3, retry_on=(ConnectionError,))
    assert policy.should_retry(1, ConnectionError())
    assert policy.should_retry(2, ConnectionError())
    assert not policy.should_retry(3, ConnectionError())
    assert not policy.should_retry(1, ValueError())
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_pydantic_events_round_trip_and_validate() -> None:
    assert event_type(OrderPlaced) == "orders.placed"
    body = encode(OrderPlaced(order_id="o-1", total=9.5))
    assert decode(body, OrderPlaced, "orders.placed") == OrderPlaced(order_id="o-1", total=9.5)
    with pytest.raises(EventValidationError, match="total"):
        decode(b'{"order_id": "o-1", "total": "lots"}', OrderPlaced, "orders.placed")
    with pytest.raises(EventValidationError):
        decode(b"not json", OrderPlaced, "orders.placed")


def test_dataclass_events_are_validated_too() -> None:
    at = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)
    body = encode(OrderCancelled("o-2", at))
    assert decode(body, OrderCancelled, "orders.cancelled") == OrderCancelled("o-2", at)
    with pytest.raises(EventValidationError, match="at"):
        decode(b'{"order_id": "o-2", "at": "yesterday-ish"}', OrderCancelled, "x")
    assert event_type(dict) == "dict"


def test_handler_reads_its_payload_type_from_annotations() -> None:
    async def typed(e: OrderPlaced) -> None: ...
    def untyped(e, delivery): ...  # type: ignore[no-untyped-def]
    async def either(e: OrderPlaced | OrderCancelled) -> None: ...

    h = Handler.wrap(typed)
    assert h.payload_type is OrderPlaced and h.is_async and not h.wants_delivery
    u = Handler.wrap(untyped)
    assert u.payload_type is None and not u.is_async and u.wants_delivery
    assert u.payload(b'{"a": 1}', "anything") == {"a": 1}
    e = Handler.wrap(either)
    assert e.event_classes == (OrderPlaced, OrderCancelled)
    assert isinstance(e.payload(encode(OrderPlaced(order_id="x", total=1)), "orders.placed"),
                      OrderPlaced)
    with pytest.raises(EventValidationError, match="takes"):
        e.payload(b"{}", "orders.shipped")

    async def unresolvable(e: NoSuchEvent) -> None: ...  # type: ignore[name-defined]  # noqa: F821
    with pytest.raises(TypeError, match="event="):
        Handler.wrap(unresolvable)
    assert Handler.wrap(unresolvable, payload_type=OrderPlaced).payload_type is OrderPlaced


async def test_memory_store_forgets_after_the_window() -> None:
    now = [100.0]
    store = MemoryIdempotencyStore(max_keys=2, clock=lambda: now[0])
    await store.remember("a", ttl=10)
    assert await store.seen("a")
    now[0] += 11
    assert not await store.seen("a")
    for key in "bcd":
        await store.remember(key, ttl=10)
    assert len(store) == 2 and not await store.seen("b") and await store.seen("d")


def test_lineage_links_events_published_while_handling() -> None:
    assert lineage(None, None, "e1") == ("e1", None)
    parent = Delivery(event_id="p", event_type="t", routing_key="t", group="g", attempt=1,
                      correlation_id="c", causation_id=None, timestamp=None,
                      redelivered=False, headers={})
    token = current_delivery.set(parent)
    try:
        assert lineage(None, None, "e2") == ("c", "p")
        assert lineage("mine", "cause", "e3") == ("mine", "cause")
    finally:
        current_delivery.reset(token)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_asyncapi_document_describes_channels_and_schemas() -> None:
    from leveret.events import EventBus
    from leveret.events.asyncapi import document

    bus = EventBus(name="shop", exchange="shop.events")
    bus.register(OrderPlaced)

    class Line(pydantic.BaseModel):
        sku: str

    @bus.event("orders.big")
    class BigOrder(pydantic.BaseModel):
        """An order with many lines."""
        lines: list[Line]

    @bus.subscribe("orders.*", group="billing")
    async def bill(e: OrderPlaced | OrderCancelled) -> None: ...

    @bus.responder("pricing.quote")
    async def quote(req: OrderPlaced) -> dict[str, float]:
        return {}

    doc = document(bus)
    assert doc["asyncapi"] == "3.0.0" and doc["info"]["title"] == "shop"
    assert doc["channels"]["orders.placed"]["address"] == "orders.placed"
    assert doc["operations"]["billing.receive"]["action"] == "receive"
    assert doc["operations"]["publish.orders.big"]["action"] == "send"
    assert "respond.pricing.quote" in doc["operations"]
    messages = doc["components"]["messages"]
    assert messages["OrderPlaced"]["payload"]["properties"]["total"]["type"] == "number"
    assert messages["BigOrder"]["summary"] == "An order with many lines."
    assert "Line" in doc["components"]["schemas"]
    # the reply: the responder's return annotation, on the responder's reply channel
    reply = messages["pricing.quote.reply"]["payload"]
    assert reply == {"type": "object", "additionalProperties": {"type": "number"}}
    assert doc["channels"]["rpc.pricing.quote.reply"]["messages"] == {
        "reply": {"$ref": "#/components/messages/pricing.quote.reply"}}
    for ref in _refs(doc):  # every reference resolves inside the document
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
