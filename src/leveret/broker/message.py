"""A published message as the broker holds it.

Properties stay in their wire encoding (``properties_raw``) and are forwarded byte for byte
on delivery, so every property and header type round-trips exactly and the hot path never
decodes them. They are decoded lazily, once, when routing or validation needs a value.
"""

from __future__ import annotations

from leveret.amqp.spec import Properties

# Property flag bits of the content header (see Properties in amqp/spec.py).
FLAG_HEADERS = 0x2000
FLAG_DELIVERY_MODE = 0x1000
FLAG_PRIORITY = 0x0800
FLAG_REPLY_TO = 0x0200
FLAG_EXPIRATION = 0x0100
FLAG_USER_ID = 0x0010


class Message:
    __slots__ = ("_properties", "body", "exchange", "properties_raw", "routing_key")

    def __init__(self, exchange: str, routing_key: str, properties_raw: bytes, body: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties_raw = properties_raw
        self.body = body
        self._properties: Properties | None = None

    @property
    def flags(self) -> int:
        raw = self.properties_raw
        return (raw[0] << 8) | raw[1] if len(raw) >= 2 else 0

    @property
    def properties(self) -> Properties:
        if self._properties is None:
            self._properties = Properties.decode(self.properties_raw) if self.properties_raw else Properties()
        return self._properties

    def replace_properties(self, properties: Properties) -> None:
        self._properties = properties
        self.properties_raw = properties.encode()

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
