"""A published message as the broker holds it.

Properties stay in their wire encoding (``properties_raw``) and are forwarded byte for byte
on delivery, so every property and header type round-trips exactly and the hot path never
decodes them. They are decoded lazily, once, when routing or validation needs a value.
"""

from __future__ import annotations

from typing import Any, Final

from leveret.amqp.frames import route_bytes
from leveret.amqp.spec import Properties
from leveret.errors import InternalError, PreconditionFailed

# Property flag bits of the content header (see Properties in amqp/spec.py).
FLAG_HEADERS: Final = 0x2000
FLAG_DELIVERY_MODE: Final = 0x1000
FLAG_PRIORITY: Final = 0x0800
FLAG_REPLY_TO: Final = 0x0200
FLAG_EXPIRATION: Final = 0x0100
FLAG_USER_ID: Final = 0x0010


def parse_expiration(text: str) -> int:
    """RabbitMQ's reading of the expiration property: a non-negative integer of
    milliseconds; anything else is refused with its Erlang reason as the error text."""
    digits = len(text) - len(text.lstrip("+-"))
    sign_end = min(digits, 1)
    i = sign_end
    while i < len(text) and text[i].isdigit():
        i += 1
    if i == sign_end:
        raise ValueError("no_integer")
    if i < len(text):
        raise ValueError(f'{{leftover_string,"{text[i:]}"}}')
    value = int(text[:i])
    if value < 0:
        raise ValueError(f"{{value_negative,{value}}}")
    if value > MAX_EXPIRATION:
        raise ValueError(f"{{value_too_large,{value}}}")
    return value


# RabbitMQ's ceiling for a per-message TTL: ten years, in milliseconds.
MAX_EXPIRATION: Final = 315_360_000_000


class Message:
    __slots__ = ("_properties", "_route", "body", "exchange", "flags", "properties_raw",
                 "routing_key")

    def __init__(self, exchange: str, routing_key: str, properties_raw: bytes, body: bytes) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties_raw = properties_raw
        # Which properties are present, from the first two bytes of the property list.
        self.flags = (properties_raw[0] << 8) | properties_raw[1] if len(properties_raw) >= 2 \
            else 0
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
            self.flags = flags
        self._properties = None

    def fresh_properties(self) -> Properties:
        """A private copy of the properties to modify (the cached one may be shared by
        every queue the message reached)."""
        return Properties.decode(self.properties_raw) if self.properties_raw else Properties()

    @property
    def expiration_ms(self) -> int | None:
        """The per-message TTL; validated at publish (see ``parse_expiration``)."""
        text = self.properties.expiration
        if text is None:
            return None
        try:
            return parse_expiration(text)
        except ValueError:
            return None

    def sender_keys(self) -> list[str]:
        """Extra routing keys from the CC and BCC headers (sender-selected distribution)."""
        headers = self.headers
        keys: list[str] = []
        for name in ("CC", "BCC"):
            value = headers.get(name)
            if isinstance(value, list):
                keys.extend(v if isinstance(v, str) else bytes(v).decode("utf-8", "replace")
                            for v in value if isinstance(v, str | bytes))
        return keys

    def without_bcc(self) -> Message:
        """The message as delivered: RabbitMQ removes the BCC header before delivery."""
        props = self.fresh_properties()
        headers = dict(props.headers or {})
        headers.pop("BCC", None)
        props.headers = headers
        return Message(self.exchange, self.routing_key, props.encode(), self.body)

    def validate(self) -> None:
        """Check a published property list as RabbitMQ does, so that a malformed one fails
        its publisher and every message the broker keeps is one any client can decode:
        bytes the flags do not describe exactly (missing, left over, a flag 0-9-1 does not
        have) are 541 INTERNAL_ERROR, a delivery mode other than 1 or 2 is 406. The two
        commonest lists, none and delivery-mode alone, are checked by their length; the
        others are decoded (once: the result is kept)."""
        raw = self.properties_raw
        flags = self.flags
        if flags == 0 and len(raw) == 2:
            return
        if flags == FLAG_DELIVERY_MODE and len(raw) == 3:
            mode: int | None = raw[2]
        else:
            try:
                mode = self.properties.delivery_mode
            except Exception:  # FrameError and whatever else a hostile list provokes
                # RabbitMQ's channel crashes on it, taking the connection with a bare 541.
                raise InternalError("", 0, 0) from None
            if mode is None:
                return
        if mode != 2 and mode != 1:
            raise PreconditionFailed(f"invalid message: {{delivery_mode_unknown,{mode}}}")

    @property
    def headers(self) -> dict[str, Any]:
        if not self.flags & FLAG_HEADERS:
            return {}
        return self.properties.headers or {}

    @property
    def persistent(self) -> bool:
        """delivery_mode 2, read from the raw property list without decoding it (once per
        message written to a durable queue): the fields before it are skipped by their
        lengths, as ``replace_reply_to`` does."""
        flags = self.flags
        if not flags & FLAG_DELIVERY_MODE:
            return False
        if self._properties is not None:
            return self._properties.delivery_mode == 2
        raw = self.properties_raw
        off = 2
        try:
            if flags & 0x8000:  # content-type
                off += 1 + raw[off]
            if flags & 0x4000:  # content-encoding
                off += 1 + raw[off]
            if flags & FLAG_HEADERS:
                off += 4 + int.from_bytes(raw[off:off + 4], "big")
            return raw[off] == 2
        except IndexError:  # a list that never passed validate(): let the decoder judge
            return self.properties.delivery_mode == 2

    @property
    def size(self) -> int:
        return len(self.body)
