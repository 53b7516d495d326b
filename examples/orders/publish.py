"""Place a few orders: price each one over RPC, then publish it.

    python -m examples.orders.publish [AMQP_URL]
"""

from __future__ import annotations

import asyncio
import sys

from examples.orders.events import OrderPlaced, Quote, QuoteRequest
from leveret.events import EventBus

ORDERS = [("o-1001", "alice", "tea", 2), ("o-1002", "bob", "mug", 1),
          ("o-1003", "trudy", "kettle", 1), ("o-1004", "mallory", "tea", 10)]


async def place_orders(bus: EventBus) -> list[str]:
    ids = []
    for order_id, customer, sku, quantity in ORDERS:
        quote = await bus.request("pricing.quote", QuoteRequest(sku=sku, quantity=quantity),
                                  timeout=5, response=Quote)
        await bus.publish(OrderPlaced(order_id=order_id, customer=customer, sku=sku,
                                      quantity=quantity, total=quote.total))
        print(f"placed {order_id} for {customer}: {quantity} x {sku} = {quote.total:.2f}",
              flush=True)
        ids.append(order_id)
    return ids


async def main(url: str | None) -> None:
    bus = EventBus(url, name="order-client", exchange="orders")
    await bus.connect()
    try:
        await place_orders(bus)
    finally:
        await bus.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
