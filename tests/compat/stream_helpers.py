"""Helpers of the stream-queue scenarios (test_compat_streams*.py)."""

from __future__ import annotations

import struct
from typing import Any

from amqp_driver import Channel

from leveret.amqp import spec

STREAM = {"x-queue-type": "stream"}


def declare_stream(ch: Channel, q: str, arguments: dict[str, Any] | None = None,
                   **kw: Any) -> Any:
    return ch.qd(q, durable=True, arguments={**STREAM, **(arguments or {})}, **kw)


def confirming(ch: Channel) -> Channel:
    """Put ``ch`` in confirm mode; ``publish_one`` then waits for each message's confirm."""
    ch.call(spec.ConfirmSelect())
    ch.published = 0  # type: ignore[attr-defined]
    return ch


def publish_one(ch: Channel, routing_key: str, body: bytes,
                properties: spec.Properties | bytes | None = None, exchange: str = "",
                **kw: Any) -> None:
    """Publish on a ``confirming`` channel and wait for the confirm: RabbitMQ writes the
    message as a chunk of its own (the writer batches only what arrives together)."""
    ch.publish(exchange, routing_key, body, properties, **kw)
    ch.published += 1  # type: ignore[attr-defined]
    ch.confirms(ch.published, label=f"confirm of {body!r}")  # type: ignore[attr-defined]


def publish_many(ch: Channel, routing_key: str, bodies: list[bytes]) -> None:
    for body in bodies:
        publish_one(ch, routing_key, body)


def qos(ch: Channel, prefetch: int, global_: bool = False) -> Any:
    return ch.call(spec.BasicQos(prefetch_count=prefetch, global_=global_))


def long_(n: int) -> bytes:
    return b"l" + struct.pack(">q", n)


def deliveries(observations: list[Any]) -> list[Any]:
    """A delivery as (consumer tag, delivery tag, redelivered, body, x-stream-offset and its
    type); anything else as it is. For ``collect(summary=...)``: short diffs."""
    out: list[Any] = []
    for o in observations:
        if o[1] == "basic.deliver":
            fields, props = o[2], o[3]
            out.append((fields["consumer_tag"], fields["delivery_tag"], fields["redelivered"],
                        o[4], props.get("headers", {}).get("x-stream-offset"),
                        props.get("headers/types", {}).get("x-stream-offset")))
        else:
            out.append(o)
    return out
