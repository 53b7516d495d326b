"""The order service's events and RPC messages: plain pydantic models."""

from __future__ import annotations

import pydantic

from leveret.events import event


@event("orders.placed")
class OrderPlaced(pydantic.BaseModel):
    """A customer placed an order."""

    order_id: str
    customer: str
    sku: str
    quantity: int = pydantic.Field(gt=0)
    total: float


@event("payments.captured")
class PaymentCaptured(pydantic.BaseModel):
    """Billing charged the customer for an order."""

    order_id: str
    amount: float


class QuoteRequest(pydantic.BaseModel):
    sku: str
    quantity: int


class Quote(pydantic.BaseModel):
    sku: str
    quantity: int
    total: float
