"""The event being handled, so events published from a handler carry its ids.

A ``ContextVar`` follows the handler into tasks it starts and, through
``contextvars.copy_context``, into the thread a sync handler runs in.
"""

from __future__ import annotations

from contextvars import ContextVar

from leveret.events.envelope import Delivery

current_delivery: ContextVar[Delivery | None] = ContextVar("leveret_events_delivery",
                                                           default=None)


def lineage(correlation_id: str | None, causation_id: str | None,
            event_id: str) -> tuple[str, str | None]:
    """(correlation id, causation id) for a new event: explicit ids win, then the event
    being handled (same correlation, caused by it), else the event starts its own chain."""
    parent = current_delivery.get()
    if parent is not None:
        correlation_id = correlation_id or parent.correlation_id or parent.event_id
        causation_id = causation_id or parent.event_id
    return correlation_id or event_id, causation_id
