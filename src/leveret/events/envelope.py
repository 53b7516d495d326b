"""What travels with an event: AMQP properties and ``x-`` headers, in and out.

Ids live in both places on purpose: properties are what AMQP tools show and filter on,
headers survive clients and bridges that drop or rewrite properties.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from leveret.events.codec import CONTENT_TYPE
from leveret.events.stream import offset_of

EVENT_ID = "x-event-id"
EVENT_TYPE = "x-event-type"
CORRELATION_ID = "x-correlation-id"
CAUSATION_ID = "x-causation-id"
ATTEMPT = "x-attempt"                    # 1-based number of the delivery being made
HISTORY = "x-attempt-history"            # one table per failed attempt
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
ERROR = "x-error"                        # the last error, on dead-lettered messages
DEAD_LETTER_REASON = "x-dead-letter-reason"
DEAD_LETTERED_AT = "x-dead-lettered-at"
GROUP = "x-group"
REDRIVES = "x-redrive-count"
# The broker's own bookkeeping, dropped when we copy a message: RabbitMQ's dead-lettering
# headers (our attempt history already says what happened, and x-death grows with every
# retry), the x-delay of leveret's delayed retry (the next retry sets its own; a dead
# letter or a redrive must not carry a stale one) and a stream delivery's offset.
BROKER_HEADERS = ("x-death", "x-first-death-exchange", "x-first-death-queue",
                  "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
                  "x-last-death-reason", "x-delay", "x-stream-offset")
MAX_HISTORY = 20
MAX_ERROR_TEXT = 1000


def header_int(headers: Mapping[str, Any] | None, name: str, default: int) -> int:
    value = (headers or {}).get(name)
    try:
        return int(value) if isinstance(value, int | str | float) else default
    except ValueError:
        return default


def header_list(headers: Mapping[str, Any] | None, name: str) -> list[Any]:
    value = (headers or {}).get(name)
    return list(value) if isinstance(value, list | tuple) else []


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def build(body: bytes, *, event_type: str, event_id: str, correlation_id: str,
          causation_id: str | None, app_id: str | None,
          headers: Mapping[str, Any] | None = None) -> aio_pika.Message:
    all_headers: dict[str, Any] = dict(headers or {})
    all_headers.update({EVENT_ID: event_id, EVENT_TYPE: event_type,
                        CORRELATION_ID: correlation_id})
    if causation_id:
        all_headers[CAUSATION_ID] = causation_id
    return aio_pika.Message(
        body, headers=all_headers, content_type=CONTENT_TYPE, message_id=event_id,
        type=event_type, timestamp=now(), correlation_id=correlation_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT, app_id=app_id)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Delivery:
    """What a handler may want to know about the event it is handling."""

    event_id: str
    event_type: str
    routing_key: str
    group: str
    attempt: int
    correlation_id: str | None
    causation_id: str | None
    timestamp: datetime.datetime | None
    redelivered: bool
    headers: Mapping[str, Any] = field(repr=False)
    offset: int | None = None  # the event's position in a stream, for replay readers


    @classmethod
    def of(cls, message: AbstractIncomingMessage, group: str) -> Delivery:
        headers = dict(message.headers or {})
        routing_key = _text(headers.get(ORIGINAL_ROUTING_KEY)) or message.routing_key or ""
        event_id = _text(message.message_id) or _text(headers.get(EVENT_ID))
        return cls(
            event_id=event_id or f"delivery-{new_id()}",
            event_type=_text(message.type) or _text(headers.get(EVENT_TYPE)) or routing_key,
            routing_key=routing_key,
            group=group,
            attempt=header_int(headers, ATTEMPT, 1),
            correlation_id=(_text(message.correlation_id)
                            or _text(headers.get(CORRELATION_ID))),
            causation_id=_text(headers.get(CAUSATION_ID)),
            timestamp=message.timestamp,
            redelivered=bool(message.redelivered),
            headers=headers,
            offset=offset_of(headers),
        )


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]


def history_entry(attempt: int, error: str) -> dict[str, Any]:
    return {"attempt": attempt, "error": error[:MAX_ERROR_TEXT], "at": now().isoformat()}


def copy(message: AbstractIncomingMessage, changes: Mapping[str, Any]) -> aio_pika.Message:
    """The message again, for re-publication, with headers changed (None removes one)."""
    merged = {k: v for k, v in (message.headers or {}).items() if k not in BROKER_HEADERS}
    merged.setdefault(ORIGINAL_ROUTING_KEY, message.routing_key or "")
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return aio_pika.Message(
        message.body, headers=merged, content_type=message.content_type,
        content_encoding=message.content_encoding, message_id=message.message_id,
        type=message.type, timestamp=message.timestamp,
        correlation_id=message.correlation_id, app_id=message.app_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT, priority=message.priority)


def failed_attempts(message: AbstractIncomingMessage, attempt: int, error: str,
                    ) -> list[dict[str, Any]]:
    history = header_list(message.headers, HISTORY)
    history.append(history_entry(attempt, error))
    return history[-MAX_HISTORY:]
