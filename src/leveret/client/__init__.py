"""A small, fast asyncio AMQP 0-9-1 client (works with uvloop).

    conn = await connect("amqp://guest:guest@127.0.0.1:5672/")
    ch = await conn.channel()
    q = (await ch.queue_declare("", exclusive=True)).queue
    await ch.confirm_select()
    publish = ch.publisher("", q)          # frames pre-encoded once
    for _ in range(1000):
        publish(b"hello")                  # queued; one socket write per loop iteration
    await ch.wait_for_confirms()
    await ch.basic_consume(q, on_message)  # on_message(tag, redelivered, exchange,
                                           #            routing_key, properties_raw, body)
    await conn.close()

Server-side closes raise :class:`ConnectionClosed` / :class:`ChannelClosed` with the
reply code and text. ``properties_raw`` can be decoded with
``leveret.amqp.spec.Properties.decode(properties_raw)`` when needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# The errors are light; everything else loads on first use, so the broker, which needs the
# client only once a shovel or a federation link starts, does not carry it at idle.
from leveret.client.errors import (
    AMQPClosed,
    ChannelClosed,
    ClientError,
    ConnectionClosed,
    NoSuitableMechanism,
    ProtocolViolation,
    TLSError,
    TLSSetupError,
)
from leveret.lazy import lazy_getattr

if TYPE_CHECKING:
    from leveret.client.channel import (
        Channel,
        ConfirmCallback,
        DeliverCallback,
        ReturnCallback,
    )
    from leveret.client.connection import Connection, connect
    from leveret.client.publisher import Publisher, encode_properties
    from leveret.client.url import ConnectionParams, parse_url

_LAZY = {
    "Channel": "channel", "ConfirmCallback": "channel", "DeliverCallback": "channel",
    "ReturnCallback": "channel", "Connection": "connection", "connect": "connection",
    "Publisher": "publisher", "encode_properties": "publisher",
    "ConnectionParams": "url", "parse_url": "url",
}  # fmt: skip


__getattr__ = lazy_getattr("leveret.client", _LAZY, globals())


__all__ = [
    "AMQPClosed",
    "Channel",
    "ChannelClosed",
    "ClientError",
    "ConfirmCallback",
    "Connection",
    "ConnectionClosed",
    "ConnectionParams",
    "DeliverCallback",
    "NoSuitableMechanism",
    "ProtocolViolation",
    "Publisher",
    "ReturnCallback",
    "TLSError",
    "TLSSetupError",
    "connect",
    "encode_properties",
    "parse_url",
]
