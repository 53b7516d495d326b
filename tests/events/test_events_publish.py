"""Publishing: confirmed, typed, with ids in properties and headers, mandatory on demand."""

from __future__ import annotations

import pydantic
import pytest
from events_helpers import get, tap, uid

from leveret.events import EventsError, Unroutable, event


@event("orders.placed")
class OrderPlaced(pydantic.BaseModel):
    order_id: str
    total: float


async def test_publish_carries_ids_type_and_timestamp(make_bus, raw_channel) -> None:
    bus = make_bus(name="shop")
    await bus.connect()
    seen = await tap(raw_channel, bus.exchange)
    event_id = await bus.publish(OrderPlaced(order_id="o-1", total=12.5))
    message = await get(seen)
    assert message.routing_key == "orders.placed"
    assert message.message_id == event_id
    assert message.type == "orders.placed"
    assert message.correlation_id == event_id  # a new chain starts with the event
    assert message.timestamp is not None
    assert message.content_type == "application/json"
    assert message.delivery_mode == 2
    assert message.app_id == "shop"
    assert message.headers["x-event-id"] == event_id
    assert message.headers["x-event-type"] == "orders.placed"
    assert message.headers["x-correlation-id"] == event_id
    assert OrderPlaced.model_validate_json(message.body).order_id == "o-1"


async def test_explicit_routing_key_ids_and_plain_payloads(make_bus, raw_channel) -> None:
    bus = make_bus()
    await bus.connect()
    seen = await tap(raw_channel, bus.exchange)
    await bus.publish(OrderPlaced(order_id="o-2", total=1), routing_key="orders.eu.placed",
                      correlation_id="corr-1", causation_id="cause-1", event_id="fixed-id")
    message = await get(seen)
    assert (message.routing_key, message.type) == ("orders.eu.placed", "orders.placed")
    assert (message.message_id, message.correlation_id) == ("fixed-id", "corr-1")
    assert message.headers["x-causation-id"] == "cause-1"
    await bus.publish({"sku": "a"}, routing_key="stock.changed")
    message = await get(seen)
    assert (message.type, message.body) == ("stock.changed", b'{"sku":"a"}')
    with pytest.raises(TypeError):
        await bus.publish({"sku": "a"})


async def test_mandatory_publish_fails_when_nothing_is_bound(make_bus) -> None:
    bus = make_bus()
    await bus.connect()
    await bus.publish(OrderPlaced(order_id="o-3", total=1))  # dropped, but confirmed
    with pytest.raises(Unroutable, match=r"orders\.placed"):
        await bus.publish(OrderPlaced(order_id="o-3", total=1), mandatory=True)


async def test_mandatory_publish_succeeds_when_a_group_listens(make_bus) -> None:
    bus = make_bus()

    @bus.subscribe("orders.#", group=uid("audit"))
    async def audit(e: OrderPlaced) -> None: ...

    await bus.start()
    await bus.publish(OrderPlaced(order_id="o-4", total=1), mandatory=True)


async def test_events_published_by_a_handler_are_linked_to_their_cause(
        make_bus, raw_channel) -> None:
    bus = make_bus()

    @bus.subscribe("orders.placed", group=uid("billing"))
    async def bill(e: OrderPlaced) -> None:
        await bus.publish({"order_id": e.order_id}, routing_key="payments.captured")

    await bus.start()
    seen = await tap(raw_channel, bus.exchange, "payments.*")
    first = await bus.publish(OrderPlaced(order_id="o-5", total=3), correlation_id="checkout-9")
    message = await get(seen)
    assert message.headers["x-causation-id"] == first
    assert message.correlation_id == "checkout-9"


async def test_publish_needs_a_connection() -> None:
    from leveret.events import EventBus

    with pytest.raises(EventsError, match="not connected"):
        await EventBus("amqp://guest:guest@127.0.0.1:1/").publish({"a": 1}, routing_key="a")
