"""OpenTelemetry spans for publish and handle, when ``opentelemetry-api`` is installed.

The trace context travels in message headers (W3C ``traceparent``), so a handler's span is
a child of the publisher's even across services.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - exercised only without the extra
    trace = None  # type: ignore[assignment]

SYSTEM = "rabbitmq"  # the semantic-convention value for AMQP 0-9-1 brokers


class Tracer:
    def __init__(self, provider: Any = None) -> None:
        self._tracer = None if trace is None else trace.get_tracer(
            "leveret.events", tracer_provider=provider)

    @contextlib.contextmanager
    def publish(self, exchange: str, routing_key: str, event_id: str,
                headers: MutableMapping[str, Any]) -> Iterator[None]:
        if self._tracer is None:
            yield
            return
        with self._tracer.start_as_current_span(
                f"{routing_key} publish", kind=trace.SpanKind.PRODUCER,
                attributes={"messaging.system": SYSTEM,
                            "messaging.operation.type": "publish",
                            "messaging.destination.name": exchange,
                            "messaging.rabbitmq.destination.routing_key": routing_key,
                            "messaging.message.id": event_id}):
            propagate.inject(headers)
            yield

    @contextlib.contextmanager
    def process(self, group: str, routing_key: str, event_id: str, attempt: int,
                headers: Mapping[str, Any]) -> Iterator[Any]:
        if self._tracer is None:
            yield None
            return
        carrier = {k: v.decode() if isinstance(v, bytes) else v
                   for k, v in headers.items() if isinstance(v, str | bytes)}
        token = otel_context.attach(propagate.extract(carrier))
        try:
            with self._tracer.start_as_current_span(
                    f"{group} process", kind=trace.SpanKind.CONSUMER,
                    attributes={"messaging.system": SYSTEM,
                                "messaging.operation.type": "process",
                                "messaging.consumer.group.name": group,
                                "messaging.rabbitmq.destination.routing_key": routing_key,
                                "messaging.message.id": event_id,
                                "messaging.rabbitmq.attempt": attempt}) as span:
                yield span
        finally:
            otel_context.detach(token)
