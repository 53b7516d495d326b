"""A published message as the broker holds it.

Properties stay in their wire encoding (``properties_raw``) and are forwarded byte for byte
on delivery, so every property and header type round-trips exactly and the hot path never
decodes them. They are decoded lazily, once, when routing or validation needs a value.
"""

from __future__ import annotations

from leveret.amqp.frames import route_bytes
from leveret.amqp.spec import Properties

# Property flag bits of the content header (see Properties in amqp/spec.py).
FLAG_HEADERS = 0x2000
FLAG_DELIVERY_MODE = 0x1000
FLAG_PRIORITY = 0x0800
FLAG_REPLY_TO = 0x0200
FLAG_EXPIRATION = 0x0100
FLAG_USER_ID = 0x0010
# No properties, or only delivery-mode and/or content-type: nothing that can be malformed
# beyond what the content header's length already bounds.
_TRIVIAL_FLAGS = frozenset((0x0000, 0x1000))


class Message:
    __slots__ = ("_properties", "_route", "body", "exchange", "properties_raw", "routing_key")

    def __init__(self, exchange: str, routing_key: str, properties_raw: bytes, body: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties_raw = properties_raw
        self.body = body
        self._properties: Properties | None = None
        self._route: bytes | None = None

    @property
    def route(self) -> bytes:
        """Exchange and routing key as encoded in deliver/get-ok, built once per message
        however many queues and consumers it reaches."""
        if self._route is None:
            self._route = route_bytes(self.exchange, self.routing_key)
        return self._route

    @property
    def flags(self) -> int:
        raw = self.properties_raw
        return (raw[0] << 8) | raw[1] if len(raw) >= 2 else 0

    @property
    def properties(self) -> Properties:
        if self._properties is None:
            raw = self.properties_raw
            self._properties = Properties.decode(raw) if raw else Properties()
        return self._properties

    def replace_reply_to(self, reply_to: str) -> None:
        """Rewrite reply_to in the raw property list, leaving every other byte as sent
        (re-encoding would change the wire types of header values)."""
        raw = self.properties_raw
        flags = self.flags
        off = 2
        # Fields before reply_to: content-type, content-encoding (shortstr), headers
        # (table), delivery-mode, priority (octet), correlation-id (shortstr).
        for bit, kind in ((0x8000, "s"), (0x4000, "s"), (FLAG_HEADERS, "t"),
                          (FLAG_DELIVERY_MODE, "o"), (FLAG_PRIORITY, "o"), (0x0400, "s")):
            if flags & bit:
                if kind == "s":
                    off += 1 + raw[off]
                elif kind == "t":
                    off += 4 + int.from_bytes(raw[off:off + 4], "big")
                else:
                    off += 1
        new = reply_to.encode()
        if flags & FLAG_REPLY_TO:
            tail = raw[off + 1 + raw[off]:]
            self.properties_raw = raw[:off] + bytes([len(new)]) + new + tail
        else:
            flags |= FLAG_REPLY_TO
            self.properties_raw = (flags.to_bytes(2, "big") + raw[2:off] + bytes([len(new)]) +
                                   new + raw[off:])
        self._properties = None

    def validate(self) -> None:
        """Decode the properties now unless they are trivially well-formed, so a malformed
        content header fails its publisher, not whoever reads the message later."""
        if self.flags not in _TRIVIAL_FLAGS:
            _ = self.properties

    @property
    def headers(self) -> dict:
        if not self.flags & FLAG_HEADERS:
            return {}
        return self.properties.headers or {}

    @property
    def persistent(self) -> bool:
        return bool(self.flags & FLAG_DELIVERY_MODE) and self.properties.delivery_mode == 2

    @property
    def size(self) -> int:
        return len(self.body)
