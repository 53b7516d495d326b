"""Small helpers shared by the integration tests."""

from __future__ import annotations


def drain(channel, queue: str, auto_ack: bool = True) -> list[bytes]:
    """Every message now in ``queue``, by basic.get."""
    bodies = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return bodies
        bodies.append(body)


def declare_temp_queue(channel, **kwargs) -> str:
    """A server-named exclusive queue (goes away with the connection)."""
    return channel.queue_declare("", exclusive=True, **kwargs).method.queue
