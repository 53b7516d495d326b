"""Helpers for the tests in this folder (imported by name, like tests/compat's driver)."""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import CollectorRegistry

from leveret.events.testing import eventually


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def metric(registry: CollectorRegistry, name: str, group: str) -> float:
    labels = {"group": group}
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                total += sample.value
    return total


async def tap(channel: Any, exchange: str, pattern: str = "#") -> Any:
    """An exclusive queue bound to ``exchange``: sees what is published there."""
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=pattern)
    return queue


async def get(queue: Any, timeout: float = 5.0) -> Any:
    """The next message in ``queue`` (basic.get, polled), acked."""
    async def poll() -> Any:
        return await queue.get(no_ack=True, fail=False)
    return await eventually(poll, timeout)


async def queue_length(connection: Any, name: str) -> int:
    """Messages ready in queue ``name`` (0 if there is no such queue yet)."""
    import aiormq

    try:
        async with connection.channel() as channel:
            queue = await channel.declare_queue(name, passive=True)
            return int(queue.declaration_result.message_count or 0)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return 0


async def wait_length(connection: Any, name: str, length: int, timeout: float = 5.0) -> None:
    """Wait until queue ``name`` holds exactly ``length`` ready messages."""
    async def check() -> bool:
        return await queue_length(connection, name) == length
    await eventually(check, timeout)


async def exists(connection: Any, name: str, kind: str = "queue") -> bool:
    """Whether the broker has the queue (or, with ``kind="exchange"``, the exchange)."""
    import aiormq

    try:
        async with connection.channel() as channel:
            if kind == "queue":
                await channel.declare_queue(name, passive=True)
            else:
                await channel.declare_exchange(name, passive=True)
            return True
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
