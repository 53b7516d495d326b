"""Request-reply over direct reply-to: typed requests and replies, sync responders,
clear errors for timeouts, missing responders and responder failures."""

from __future__ import annotations

import asyncio
import time

import pydantic
import pytest
from events_helpers import uid

from leveret.events import NoResponder, RemoteError, RequestTimeout


class QuoteRequest(pydantic.BaseModel):
    sku: str
    quantity: int


class Quote(pydantic.BaseModel):
    sku: str
    price: float


async def test_request_reply_with_types(make_bus) -> None:
    server, client = make_bus(), make_bus()
    name = uid("pricing.quote")

    @server.responder(name)
    async def quote(req: QuoteRequest) -> Quote:
        return Quote(sku=req.sku, price=2.5 * req.quantity)

    await server.start()
    await client.connect()
    reply = await client.request(name, QuoteRequest(sku="tea", quantity=4), timeout=5,
                                 response=Quote)
    assert reply == Quote(sku="tea", price=10.0)
    replies = await asyncio.gather(*(client.request(name, {"sku": "x", "quantity": n})
                                     for n in range(5)))
    assert [r["price"] for r in replies] == [0.0, 2.5, 5.0, 7.5, 10.0]


async def test_sync_responders_and_remote_errors(make_bus) -> None:
    bus = make_bus()
    name = uid("stock.check")

    @bus.responder(name)
    def check(req: dict) -> dict:
        if req["sku"] == "ghost":
            raise LookupError("unknown sku ghost")
        return {"in_stock": True}

    await bus.start()
    assert await bus.request(name, {"sku": "tea"}) == {"in_stock": True}
    with pytest.raises(RemoteError, match="LookupError: unknown sku ghost"):
        await bus.request(name, {"sku": "ghost"})
    with pytest.raises(RemoteError, match=r"invalid .* payload"):
        await bus.request(name, "not an object")


async def test_timeout_raises_a_clear_error(make_bus) -> None:
    bus = make_bus()
    name = uid("slow.lookup")

    @bus.responder(name)
    async def slow(req: dict) -> dict:
        await asyncio.sleep(1)
        return {}

    await bus.start()
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match=f"no reply to request '{name}' within 0.2 s"):
        await bus.request(name, {}, timeout=0.2)
    assert time.monotonic() - started < 0.6


async def test_no_responder_fails_fast(make_bus) -> None:
    bus = make_bus()
    await bus.connect()
    started = time.monotonic()
    with pytest.raises(NoResponder, match=r"nobody\.home"):
        await bus.request("nobody.home", {}, timeout=5)
    assert time.monotonic() - started < 1
