"""Prometheus metrics per handler and OpenTelemetry spans linked from publish to handle."""

from __future__ import annotations

import pytest
from events_helpers import metric, uid
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from leveret.events import Delivery, RetryPolicy
from leveret.events.testing import eventually


async def test_metrics_count_each_outcome_per_handler(make_bus, registry) -> None:
    bus = make_bus()
    group = uid("metered")

    @bus.subscribe("t", group=group, retry=RetryPolicy(max_attempts=2, initial_delay=0.02))
    async def handle(e: dict, d: Delivery) -> None:
        if e["fail"]:
            raise RuntimeError("no")

    await bus.start()
    await bus.publish({"fail": False}, routing_key="t")
    await bus.publish({"fail": True}, routing_key="t")
    # the two events are handled concurrently: wait for both outcomes
    await eventually(lambda: metric(registry, "leveret_events_dead_lettered_total", group)
                     and metric(registry, "leveret_events_handled_total", group))
    assert metric(registry, "leveret_events_handled_total", group) == 1
    assert metric(registry, "leveret_events_failed_total", group) == 2
    assert metric(registry, "leveret_events_retried_total", group) == 1
    assert metric(registry, "leveret_events_dead_lettered_total", group) == 1
    assert metric(registry, "leveret_events_handler_seconds_count", group) == 3
    labels = {"group": group, "handler": handle.__qualname__}
    assert registry.get_sample_value("leveret_events_handled_total", labels) == 1


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


async def test_spans_follow_an_event_from_publish_to_handler(make_bus, spans) -> None:
    provider, exporter = spans
    bus = make_bus(tracer_provider=provider)
    group = uid("traced")
    handled: list[str] = []

    @bus.subscribe("orders.placed", group=group)
    async def handle(e: dict, d: Delivery) -> None:
        handled.append(d.event_id)

    await bus.start()
    event_id = await bus.publish({}, routing_key="orders.placed")
    await eventually(lambda: len(exporter.get_finished_spans()) == 2)
    by_kind = {s.kind: s for s in exporter.get_finished_spans()}
    publish, process = by_kind[SpanKind.PRODUCER], by_kind[SpanKind.CONSUMER]
    assert (publish.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert publish.name == "orders.placed publish" and process.name == f"{group} process"
    assert process.context.trace_id == publish.context.trace_id
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert process.attributes["messaging.message.id"] == event_id
    assert publish.attributes["messaging.system"] == "rabbitmq"
