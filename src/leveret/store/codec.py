"""How the broker may lay out a message in a log record: routing, properties, body.

    payload = pack_message(exchange, routing_key, properties_raw, body)   # list of parts
    offset = log.append(payload)
    exchange, routing_key, properties_raw, body, expires_at = unpack_message(log.read(offset))

Layout: u8 version (1), u8 len + exchange, u8 len + routing key, f64 time (a queue's
message: expires_at, NaN for none; a stream's entry: when it was appended; on the broker's
clock), u32 len + properties as received, then the body. The body is
passed as its own part so a large one is written without a copy.

A stream's entry published over the stream protocol is an AMQP 1.0 message, kept as the
client encoded it (``pack_amqp10``): u8 version (2), f64 append time, u8 len + the name of
the producer that published it ("" for none), u64 its publishing id, then the message.
The producer and id let the stream rebuild its de-duplication state at start.

A sub-entry batch published over the stream protocol takes one offset per record, as in
RabbitMQ, but is kept whole, never decompressed (``pack_amqp10_batch``): its first offset
holds u8 version (3), the same fields as above, then the sub-entry as the client sent it
(its header: type and compression, record count, sizes; then the records); each further
offset holds u8 version (4), f64 append time, u32 its distance to that first offset.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Final, NamedTuple

VERSION: Final = 1
AMQP10: Final = 2
AMQP10_BATCH: Final = 3
BATCH_PART: Final = 4
STREAM_KINDS: Final = (AMQP10, AMQP10_BATCH, BATCH_PART)
_HEAD: Final = struct.Struct("<dI")
_AMQP10_HEAD: Final = struct.Struct("<dB")
_PUBLISHING_ID: Final = struct.Struct("<Q")
_BATCH_PART: Final = struct.Struct("<BdI")


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


def pack_amqp10(message: bytes, stamp: float, producer: str = "", publishing_id: int = 0
                ) -> list[bytes]:
    ref = producer.encode("utf-8")
    head = b"".join((bytes((AMQP10,)), _AMQP10_HEAD.pack(stamp, len(ref)), ref,
                     _PUBLISHING_ID.pack(publishing_id)))
    return [head, message]


def pack_amqp10_batch(entry: bytes, stamp: float, producer: str = "",
                      publishing_id: int = 0) -> list[bytes]:
    """The first offset of a sub-entry batch: ``entry`` as received, header included."""
    head = pack_amqp10(entry, stamp, producer, publishing_id)
    return [bytes((AMQP10_BATCH,)) + head[0][1:], entry]


def pack_batch_part(stamp: float, distance: int) -> list[bytes]:
    """A further offset of a sub-entry batch, ``distance`` after its first."""
    return [_BATCH_PART.pack(BATCH_PART, stamp, distance)]


def batch_part_distance(data: bytes | memoryview) -> int:
    return int(_BATCH_PART.unpack_from(data, 0)[2])


def is_amqp10(data: bytes | memoryview) -> bool:
    """Published over the stream protocol: a message, a batch, or one of its records."""
    return bool(data) and data[0] in STREAM_KINDS


def unpack_amqp10(data: bytes | memoryview) -> tuple[float, str, int, bytes]:
    """(append time, producer, publishing id, message) of a ``pack_amqp10`` record (and of a
    ``pack_amqp10_batch`` one, whose message is the sub-entry)."""
    if not data or data[0] not in (AMQP10, AMQP10_BATCH):
        raise ValueError("not a leveret AMQP 1.0 record")
    stamp, n = _AMQP10_HEAD.unpack_from(data, 1)
    p = 1 + _AMQP10_HEAD.size
    producer = bytes(data[p:p + n]).decode("utf-8", "replace")
    p += n
    (publishing_id,) = _PUBLISHING_ID.unpack_from(data, p)
    return stamp, producer, publishing_id, bytes(data[p + 8:])


def amqp10_message(data: bytes) -> bytes:
    """Only the message of a ``pack_amqp10`` record (the sub-entry of a
    ``pack_amqp10_batch`` one): what a stream-protocol reader needs, cut out with one slice
    after the kind, time, producer (its length at byte 9) and publishing id."""
    return data[1 + _AMQP10_HEAD.size + data[9] + _PUBLISHING_ID.size:]


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
    if data and data[0] in STREAM_KINDS:  # (the time is first after the kind in all three)
        return float(_AMQP10_HEAD.unpack_from(data, 1)[0])
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
