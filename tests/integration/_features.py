"""Helpers for the queue-feature tests (TTL, dead-lettering, priorities, limits, consumers,
quorum queues): polling with deadlines, consumers that collect deliveries, existence checks
that do not touch a queue's expiry, and a header decoder that keeps the AMQP wire types.

The wire decoder is written here from the spec (not leveret's codec, not pika's), so the
type tests check what the broker sent without trusting either.
"""

from __future__ import annotations

import datetime
import struct
import time
from collections.abc import Callable
from typing import Any

import pika
import pytest

from ._raw import RawConnection, get_raw

# -- the broker under test -----------------------------------------------------------------------

_PRODUCTS: dict[str, str] = {}


def server_product(amqp_url: str) -> str:
    """The ``product`` the broker at ``amqp_url`` announces in connection.start."""
    if amqp_url not in _PRODUCTS:
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        try:
            product = conn._impl.server_properties.get("product", "")
        finally:
            conn.close()
        _PRODUCTS[amqp_url] = product.decode() if isinstance(product, bytes) else str(product)
    return _PRODUCTS[amqp_url]


def is_rabbitmq(amqp_url: str) -> bool:
    return server_product(amqp_url) == "RabbitMQ"


# -- time ------------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# -- queues ----------------------------------------------------------------------------------------


def counts(conn: pika.BlockingConnection, queue: str) -> tuple[int, int]:
    """(message_count, consumer_count) by a passive declare on a channel of its own.

    A passive declare counts as "use" for x-expires: use ``still_exists`` in expiry tests."""
    ch = conn.channel()
    ok = ch.queue_declare(queue, passive=True).method
    ch.close()
    return ok.message_count, ok.consumer_count


def ready(conn: pika.BlockingConnection, queue: str) -> int:
    return counts(conn, queue)[0]


def still_exists(confirm_channel, queue: str) -> bool:
    """Whether ``queue`` exists, by a mandatory publish through the default exchange on a
    channel in confirm mode: unlike every queue method (and basic.get), a publish is not
    "use" of the queue, so it does not reset x-expires. The probe message stays there."""
    try:
        confirm_channel.basic_publish("", queue, b"existence probe", mandatory=True)
    except pika.exceptions.UnroutableError:
        return False
    return True


def get_all(channel, queue: str) -> list[bytes]:
    """basic.get (auto-ack) until empty; the bodies in order."""
    bodies = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def get_one(channel, queue: str, auto_ack: bool = True) -> tuple[Any, Any, bytes]:
    method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
    assert method is not None, f"{queue} is empty"
    return method, props, body


def get_eventually(channel, queue: str, timeout: float = 5.0) -> tuple[Any, Any, bytes]:
    """basic.get until a message arrives (for messages dead-lettered or delayed asynchronously)."""
    def attempt():
        method, props, body = channel.basic_get(queue, auto_ack=True)
        return (method, props, body) if method is not None else None

    return wait_until(attempt, timeout, what=f"a message in {queue}")


# -- consumers -------------------------------------------------------------------------------------


class Collector:
    """A pika consumer that stores (method, properties, body) for each delivery."""

    def __init__(self, conn: pika.BlockingConnection, channel, queue: str, *,
                 auto_ack: bool = False, consumer_tag: str | None = None,
                 arguments: dict | None = None, exclusive: bool = False) -> None:
        self.conn = conn
        self.channel = channel
        self.deliveries: list[tuple[Any, Any, bytes]] = []
        kwargs: dict[str, Any] = {"auto_ack": auto_ack, "exclusive": exclusive}
        if consumer_tag is not None:
            kwargs["consumer_tag"] = consumer_tag
        if arguments is not None:
            kwargs["arguments"] = arguments
        self.tag = channel.basic_consume(queue, self._on_message, **kwargs)

    def _on_message(self, _ch, method, props, body) -> None:
        self.deliveries.append((method, props, body))

    @property
    def bodies(self) -> list[bytes]:
        return [b for _, _, b in self.deliveries]

    def wait(self, n: int, timeout: float = 5.0) -> list[bytes]:
        """Until ``n`` deliveries in all have arrived; the bodies so far."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"expected {n} deliveries, got {self.bodies}")
            self.conn.process_data_events(time_limit=0.01)
        return self.bodies

    def ack_last(self) -> None:
        self.channel.basic_ack(self.deliveries[-1][0].delivery_tag)

    def cancel(self) -> None:
        self.channel.basic_cancel(self.tag)


def settle(conn: pika.BlockingConnection, seconds: float = 0.15) -> None:
    """Let deliveries in flight arrive (used only to check that nothing *more* arrives)."""
    conn.process_data_events(time_limit=seconds)


# -- field tables with their wire types --------------------------------------------------------


def decode_typed_value(buf: bytes, off: int) -> tuple[Any, int]:
    """One field value as ``(tag, value)``; tables and arrays nest the same way."""
    tag = chr(buf[off])
    off += 1
    ints = {"b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i", "i": ">I", "l": ">q", "L": ">Q"}
    if tag in ints:
        fmt = ints[tag]
        (v,) = struct.unpack_from(fmt, buf, off)
        return (tag, v), off + struct.calcsize(fmt)
    if tag == "t":
        return (tag, buf[off] != 0), off + 1
    if tag == "f":
        return (tag, struct.unpack_from(">f", buf, off)[0]), off + 4
    if tag == "d":
        return (tag, struct.unpack_from(">d", buf, off)[0]), off + 8
    if tag == "D":
        scale = buf[off]
        (raw,) = struct.unpack_from(">i", buf, off + 1)
        return (tag, (scale, raw)), off + 5
    if tag in "Sx":
        (n,) = struct.unpack_from(">I", buf, off)
        data = buf[off + 4: off + 4 + n]
        return (tag, data.decode() if tag == "S" else data), off + 4 + n
    if tag == "T":
        (v,) = struct.unpack_from(">Q", buf, off)
        return (tag, v), off + 8
    if tag == "V":
        return (tag, None), off
    if tag == "F":
        table, off = decode_typed_table(buf, off)
        return (tag, table), off
    if tag == "A":
        (n,) = struct.unpack_from(">I", buf, off)
        end = off + 4 + n
        off += 4
        items = []
        while off < end:
            item, off = decode_typed_value(buf, off)
            items.append(item)
        return (tag, items), end
    raise ValueError(f"unknown field type {tag!r}")


def decode_typed_table(buf: bytes, off: int) -> tuple[dict[str, Any], int]:
    """A field table as {key: (tag, value)}, keys in wire order (dicts keep it)."""
    (size,) = struct.unpack_from(">I", buf, off)
    off += 4
    end = off + size
    out: dict[str, Any] = {}
    while off < end:
        n = buf[off]
        key = buf[off + 1: off + 1 + n].decode()
        off += 1 + n
        out[key], off = decode_typed_value(buf, off)
    return out, end


def headers_of_content_header(payload: bytes) -> dict[str, Any] | None:
    """The typed headers table of a basic content header payload (class, weight, size,
    property flags, properties), or None when the headers property is absent."""
    (flags,) = struct.unpack_from(">H", payload, 12)
    off = 14
    if not flags & (1 << 13):
        return None
    for bit in (15, 14):  # content-type, content-encoding come first
        if flags & (1 << bit):
            off += 1 + payload[off]
    return decode_typed_table(payload, off)[0]


def property_flags(payload: bytes) -> int:
    return struct.unpack_from(">H", payload, 12)[0]


def types_of(typed: Any) -> Any:
    """Only the type tags of a typed value: 'S', ('A', [...]), ('F', {...})."""
    if isinstance(typed, dict):
        return {k: types_of(v) for k, v in typed.items()}
    tag, value = typed
    if tag == "F":
        return ("F", types_of(value))
    if tag == "A":
        return ("A", [types_of(v) for v in value])
    return tag


def values_of(typed: Any) -> Any:
    """The values of a typed value, without the tags."""
    if isinstance(typed, dict):
        return {k: values_of(v) for k, v in typed.items()}
    tag, value = typed
    if tag == "F":
        return values_of(value)
    if tag == "A":
        return [values_of(v) for v in value]
    return value


def raw_get_headers(raw: RawConnection, channel: int, queue: str,
                    timeout: float = 5.0) -> tuple[dict[str, Any] | None, bytes, bytes]:
    """basic.get (no-ack) on a raw connection, polling until a message comes: the typed
    headers, the raw content header payload and the body."""
    deadline = time.monotonic() + timeout
    while True:
        got = get_raw(raw, channel, queue)
        if got is not None:
            payload, bodies = got
            return headers_of_content_header(payload), payload, b"".join(bodies)
        if time.monotonic() > deadline:
            pytest.fail(f"no message in {queue}")
        time.sleep(0.01)


def utc_now_seconds() -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp())
