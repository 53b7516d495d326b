"""How the broker may lay out a message in a log record: routing, properties, body.

    payload = pack_message(exchange, routing_key, properties_raw, body)   # list of parts
    offset = log.append(payload)
    exchange, routing_key, properties_raw, body, expires_at = unpack_message(log.read(offset))

Layout: u8 version (1), u8 len + exchange, u8 len + routing key, f64 time (a queue's
message: expires_at, NaN for none; a stream's entry: when it was appended; on the broker's
clock), u32 len + properties as received, then the body. The body is
passed as its own part so a large one is written without a copy.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

VERSION: Final = 1
_HEAD: Final = struct.Struct("<dI")


def pack_message(exchange: str, routing_key: str, properties_raw: bytes, body: bytes,
                 expires_at: float | None = None) -> list[bytes]:
    # basic.publish's exchange and routing key may be any bytes, as in RabbitMQ: those that
    # are not UTF-8 arrive as surrogate escapes (amqp/fields.py) and are kept as they came.
    ex = exchange.encode("utf-8", "surrogateescape")
    rk = routing_key.encode("utf-8", "surrogateescape")
    head = b"".join((bytes((VERSION, len(ex))), ex, bytes((len(rk),)), rk,
                     _HEAD.pack(math.nan if expires_at is None else expires_at,
                                len(properties_raw)), properties_raw))
    return [head, body]


class Unpacked(NamedTuple):
    """A batch of messages, column by column (no tuple per message)."""

    exchanges: list[str]
    routing_keys: list[str]
    properties: list[bytes]
    bodies: list[bytes]
    expires_at: list[float | None]


def unpack_many(records: Sequence[bytes | memoryview]) -> Unpacked:
    """``unpack_message`` of a batch (paging in a backlog). Exchange and routing key are
    decoded once per distinct pair (a backlog has few)."""
    names: dict[bytes, tuple[str, str]] = {}
    out = Unpacked([], [], [], [], [])
    exchanges, keys, properties, bodies, expiries = out
    unpack = _HEAD.unpack_from
    for record in records:
        data = record if type(record) is bytes else bytes(record)
        if not data or data[0] != VERSION:
            raise ValueError("not a leveret message record (unknown version)")
        n = data[1]
        p = 3 + n + data[2 + n]
        key = data[1:p]
        pair = names.get(key)
        if pair is None:
            pair = names[key] = (data[2:2 + n].decode("utf-8", "surrogateescape"),
                                        data[3 + n:p].decode("utf-8", "surrogateescape"))
        exchanges.append(pair[0])
        keys.append(pair[1])
        expires_at, plen = unpack(data, p)
        p += _HEAD.size
        properties.append(data[p:p + plen])
        bodies.append(data[p + plen:])
        expiries.append(None if math.isnan(expires_at) else expires_at)
    return out


def properties_of(data: bytes | memoryview) -> bytes:
    """Just the properties of a packed message (the body is not copied)."""
    if not data or data[0] != VERSION:
        raise ValueError("not a leveret message record (unknown version)")
    p = 2 + data[1]
    p += 1 + data[p]
    _expires_at, plen = _HEAD.unpack_from(data, p)
    p += _HEAD.size
    return bytes(data[p:p + plen])


def stamp_of(data: bytes | memoryview) -> float | None:
    """Just the time slot of a packed message: expires_at, or a stream entry's append time."""
    if not data or data[0] != VERSION:
        raise ValueError("not a leveret message record (unknown version)")
    p = 2 + data[1]
    p += 1 + data[p]
    (stamp,) = struct.unpack_from("<d", data, p)
    return None if math.isnan(stamp) else stamp


def unpack_message(data: bytes | memoryview) -> tuple[str, str, bytes, bytes, float | None]:
    if not data or data[0] != VERSION:
        raise ValueError("not a leveret message record (unknown version)")
    mv = memoryview(data)
    n = data[1]
    exchange = bytes(mv[2:2 + n]).decode("utf-8", "surrogateescape")
    p = 2 + n
    n = data[p]
    routing_key = bytes(mv[p + 1:p + 1 + n]).decode("utf-8", "surrogateescape")
    p += 1 + n
    expires_at, plen = _HEAD.unpack_from(data, p)
    p += _HEAD.size
    props = bytes(mv[p:p + plen])
    body = bytes(mv[p + plen:])
    return exchange, routing_key, props, body, None if math.isnan(expires_at) else expires_at
