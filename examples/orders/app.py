"""The order service's workers: run them with ``leveret events run examples.orders.app:bus``.

    orders.placed  -> billing      charges, then publishes payments.captured
                   -> fraud-check  a flaky remote check: retried with backoff, and
                                   dead-lettered for a customer it never clears
    payments.captured -> shipping  ships paid orders
    pricing.quote (RPC)            prices a quantity of a SKU
"""

from __future__ import annotations

import logging
from collections import Counter

from examples.orders.events import OrderPlaced, PaymentCaptured, Quote, QuoteRequest
from leveret.events import Delivery, EventBus, RetryPolicy

log = logging.getLogger("orders")
PRICES = {"tea": 4.5, "mug": 12.0, "kettle": 39.0}
# what the workers did, for the demo and the tests; a real service has a database
done: Counter[str] = Counter()

bus = EventBus(name="order-service", exchange="orders",
               retry_policy=RetryPolicy(max_attempts=3, initial_delay=0.2, max_delay=2.0))
bus.register(OrderPlaced)
bus.register(PaymentCaptured)


@bus.subscribe("orders.placed", group="billing")
async def bill(order: OrderPlaced) -> None:
    await bus.publish(PaymentCaptured(order_id=order.order_id, amount=order.total))
    done["billed"] += 1
    log.info("billed order %s: %.2f", order.order_id, order.total)


@bus.subscribe("payments.captured", group="shipping")
def ship(payment: PaymentCaptured) -> None:  # sync: runs in a thread pool
    done["shipped"] += 1
    log.info("shipped order %s", payment.order_id)


class FraudServiceTimeout(Exception):
    pass


@bus.subscribe("orders.placed", group="fraud-check",
               retry=RetryPolicy(max_attempts=3, initial_delay=0.2, multiplier=2))
async def check_fraud(order: OrderPlaced, delivery: Delivery) -> None:
    if order.customer == "mallory" or (order.customer == "trudy" and delivery.attempt < 3):
        raise FraudServiceTimeout(f"fraud service timed out on {order.order_id}")
    done["cleared"] += 1
    log.info("cleared order %s on attempt %d", order.order_id, delivery.attempt)


@bus.responder("pricing.quote")
async def quote(request: QuoteRequest) -> Quote:
    if request.sku not in PRICES:
        raise LookupError(f"no price for {request.sku!r}")
    done["quoted"] += 1
    return Quote(sku=request.sku, quantity=request.quantity,
                 total=round(PRICES[request.sku] * request.quantity, 2))
