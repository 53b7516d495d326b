"""AMQP 1.0 messages as streams store them, and their AMQP 0-9-1 faces.

A stream holds AMQP 1.0 messages. One published over the stream protocol is kept as the
client encoded it and handed back byte for byte; an AMQP 0-9-1 consumer gets it converted.
One published over AMQP 0-9-1 is kept as 0-9-1 (broker/queues/stream.py) and a stream
protocol consumer gets it converted. Both conversions are RabbitMQ's (3.10's
``rabbit_msg_record:from_amqp091/2`` and ``to_amqp091/1``, with the stream queue's
``x-exchange`` / ``x-routing-key`` message annotations):

- 0-9-1 → 1.0: message-id, reply-to, correlation-id (utf8), user-id (binary),
  content-type, content-encoding (symbol), timestamp (creation-time, ms) go to the
  properties section; priority, delivery-mode (ubyte) and expiration (utf8) to message
  annotations ``x-basic-*``, with ``x-exchange`` and ``x-routing-key``; app-id and type
  to application properties ``x-basic-app-id``, ``x-basic-type``, beside the headers
  (array and table values dropped); the body is one data section (or, with type
  ``amqp-1.0``, the AMQP 1.0 sections it already is).
- 1.0 → 0-9-1: the reverse; the application properties become headers (typed), a
  message-id or correlation-id that is not a string comes as a string with an
  ``x-message-id-type`` / ``x-correlation-id-type`` header; a body that is not one data
  section comes encoded, with type ``amqp-1.0``; exchange and routing key are the
  annotations, or "" and the stream's name (as if published to the default exchange).
"""

from __future__ import annotations

import base64
import datetime
import uuid
from decimal import Decimal
from typing import Any, NamedTuple

from leveret.amqp import fields
from leveret.amqp.spec import Properties
from leveret.errors import FrameError
from leveret.streamproto.amqp10 import NULL, Decoder, Value, described, encode, symbol, utf8

# Section descriptors (AMQP 1.0 part 3.2), by code and by symbolic name.
HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS, PROPERTIES = 0x70, 0x71, 0x72, 0x73
APPLICATION_PROPERTIES, DATA, AMQP_SEQUENCE, AMQP_VALUE, FOOTER = 0x74, 0x75, 0x76, 0x77, 0x78
_SYMBOLIC = {"amqp:header:list": HEADER, "amqp:delivery-annotations:map": DELIVERY_ANNOTATIONS,
             "amqp:message-annotations:map": MESSAGE_ANNOTATIONS,
             "amqp:properties:list": PROPERTIES,
             "amqp:application-properties:map": APPLICATION_PROPERTIES,
             "amqp:data:binary": DATA, "amqp:amqp-sequence:list": AMQP_SEQUENCE,
             "amqp:amqp-value:*": AMQP_VALUE, "amqp:footer:map": FOOTER}
PROPERTY_FIELDS = ("message-id", "user-id", "to", "subject", "reply-to", "correlation-id",
                   "content-type", "content-encoding", "absolute-expiry-time",
                   "creation-time", "group-id", "group-sequence", "reply-to-group-id")
AMQP10_TYPE = "amqp-1.0"
MAX_ID = 256  # longer message/correlation ids travel in a header (RabbitMQ's rule)


class Sections(NamedTuple):
    """A decoded message: the sections the conversion uses, and where the body lies."""

    message_annotations: list[tuple[Value, Value]]
    properties: list[Value]
    application_properties: list[tuple[Value, Value]]
    body: bytes  # one data section's content, or the raw body sections (see single_data)
    single_data: bool


def parse(data: bytes | memoryview) -> Sections:
    """The sections of an encoded message (FrameError if it is not one)."""
    dec = Decoder(data)
    ma: list[tuple[Value, Value]] = []
    props: list[Value] = []
    app: list[tuple[Value, Value]] = []
    body_start = body_end = -1
    data_sections: list[bytes] = []
    others = False
    while dec.pos < dec.end:
        start = dec.pos
        section = dec.value()
        if section.type != "described":
            raise FrameError("an AMQP 1.0 message section must be described")
        descriptor, value = section.value
        code = descriptor.value if descriptor.type == "ulong" else \
            _SYMBOLIC.get(descriptor.value) if descriptor.type == "symbol" else None
        if code == MESSAGE_ANNOTATIONS and value.type == "map":
            ma = value.value
        elif code == PROPERTIES and value.type == "list":
            props = value.value
        elif code == APPLICATION_PROPERTIES and value.type == "map":
            app = value.value
        elif code in (DATA, AMQP_SEQUENCE, AMQP_VALUE):
            if body_start < 0:
                body_start = start
            body_end = dec.pos
            if code == DATA and value.type == "binary":
                data_sections.append(value.value)
            else:
                others = True
    single = not others and len(data_sections) == 1
    if single:
        body = data_sections[0]
    elif body_start < 0:
        body, single = b"", True  # no body at all: an empty one, as RabbitMQ gives
    else:
        body = bytes(data[body_start:body_end])
    return Sections(ma, props, app, body, single)


# -- 1.0 -> 0-9-1 ---------------------------------------------------------------------------

def _text(v: Value | None) -> str | None:
    if v is None or v.value is None:
        return None
    x = v.value
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def _take(pairs: list[tuple[Value, Value]], key: str) -> Value | None:
    for i, (k, v) in enumerate(pairs):
        if k.value == key:
            del pairs[i]
            return v
    return None


def _header_value(v: Value) -> Any:  # noqa: C901
    """An application property as an AMQP 0-9-1 header value (RabbitMQ's to_091), or
    NotImplemented for the types RabbitMQ has no mapping for."""
    t, x = v
    if t == "utf8" or t == "symbol" or t == "char":
        return x if t != "char" else chr(x)
    if t == "long":
        return fields.Long(x)
    if t == "byte":
        return fields.Byte(x)
    if t == "ubyte":
        return fields.UnsignedByte(x)
    if t == "short":
        return fields.Short(x)
    if t == "ushort":
        return fields.UnsignedShort(x)
    if t == "uint":
        return fields.UnsignedInt(x)
    if t == "int":
        return fields.SignedInt(x)
    if t == "ulong":
        return fields.Long(x) if x < 1 << 63 else fields.UnsignedLong(x)
    if t == "double":
        return float(x)
    if t == "float":
        return fields.Float32(x)
    if t == "timestamp":
        return _timestamp(x // 1000)
    if t == "binary":
        return bytes(x)
    if t == "boolean":
        return bool(x)
    if t == "null":
        return None
    return NotImplemented


def _timestamp(seconds: int) -> Any:
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return fields.Timestamp(max(seconds, 0))


def _message_id(v: Value | None, type_header: str, headers: dict[str, Any]) -> str | None:
    if v is None or v.value is None:
        return None
    t, x = v
    if t == "uuid":
        headers[type_header] = "uuid"
        return str(uuid.UUID(bytes=x))
    if t == "ulong":
        headers[type_header] = "ulong"
        return str(x)
    if t == "binary":
        encoded = base64.b64encode(x).decode()
        if len(encoded) > MAX_ID:
            headers[type_header.removesuffix("-type")] = bytes(x)
            return None
        headers[type_header] = "binary"
        return encoded
    text = _text(v)
    if text is not None and len(text.encode()) > MAX_ID:
        headers[type_header.removesuffix("-type")] = text
        return None
    return text


class Amqp091(NamedTuple):
    exchange: str
    routing_key: str
    properties: Properties
    body: bytes


def to_amqp091(data: bytes | memoryview, stream: str) -> Amqp091:
    """What an AMQP 0-9-1 consumer of ``stream`` gets for this AMQP 1.0 message."""
    s = parse(data)
    ma = list(s.message_annotations)
    app = list(s.application_properties)
    props = s.properties + [NULL] * (len(PROPERTY_FIELDS) - len(s.properties))
    exchange = _text(_take(ma, "x-exchange")) or ""
    routing_key = _text(_take(ma, "x-routing-key"))
    basic_type = _text(_take(app, "x-basic-type"))
    if basic_type is None and not s.single_data:
        basic_type = AMQP10_TYPE
    app_id = _text(_take(app, "x-basic-app-id"))
    priority = _take(ma, "x-basic-priority")
    delivery_mode = _take(ma, "x-basic-delivery-mode")
    expiration = _take(ma, "x-basic-expiration")
    headers: dict[str, Any] = {}
    message_id = _message_id(props[0], "x-message-id-type", headers)
    correlation_id = _message_id(props[5], "x-correlation-id-type", headers)
    for key, value in app:
        if key.type != "utf8":
            continue
        converted = _header_value(value)
        if converted is not NotImplemented:
            headers[key.value] = converted
    created = props[9].value
    p = Properties(
        content_type=_text(props[6]), content_encoding=_text(props[7]),
        headers=headers or None,
        delivery_mode=_small_int(delivery_mode), priority=_small_int(priority),
        correlation_id=correlation_id, reply_to=_text(props[4]),
        expiration=_text(expiration), message_id=message_id,
        timestamp=created // 1000 if isinstance(created, int) else None,
        type=basic_type, user_id=_text(props[1]), app_id=app_id)
    return Amqp091(exchange, stream if routing_key is None else routing_key, p, s.body)


def _small_int(v: Value | None) -> int | None:
    return v.value if v is not None and isinstance(v.value, int) and 0 <= v.value < 256 \
        else None


# -- 0-9-1 -> 1.0 ---------------------------------------------------------------------------

def _amqp10_value(x: Any) -> Value | None:
    """A header value as an application property (RabbitMQ's from_091); None drops it."""
    if isinstance(x, bool):
        return Value("boolean", x)
    if isinstance(x, fields.Timestamp):
        return Value("timestamp", int(x) * 1000)
    if isinstance(x, fields.TypedInt):
        kind = {b"b": "byte", b"B": "ubyte", b"s": "short", b"u": "ushort", b"I": "int",
                b"i": "uint", b"l": "long", b"L": "long"}.get(x.tag)
        return Value(kind, int(x)) if kind is not None else None
    if isinstance(x, int):
        return Value("long", x)
    if isinstance(x, str):
        return utf8(x)
    if isinstance(x, bytes | bytearray | memoryview):
        return Value("binary", bytes(x))
    if isinstance(x, fields.Float32):
        return Value("float", float(x))
    if isinstance(x, float):
        return Value("double", x)
    if isinstance(x, datetime.datetime):
        return Value("timestamp", int(x.timestamp()) * 1000)
    if x is None:
        return NULL
    if isinstance(x, list | dict | Decimal):
        return None  # arrays and tables are dropped (RabbitMQ's documented limitation)
    return None


def _annotations(exchange: str, routing_key: str, props: Properties) -> Value:
    ma: list[tuple[Value, Value]] = [(symbol("x-routing-key"), utf8(routing_key)),
                                     (symbol("x-exchange"), utf8(exchange))]
    if props.priority is not None:
        ma.append((symbol("x-basic-priority"), Value("ubyte", props.priority)))
    if props.delivery_mode is not None:
        ma.append((symbol("x-basic-delivery-mode"), Value("ubyte", props.delivery_mode)))
    if props.expiration is not None:
        ma.append((symbol("x-basic-expiration"), utf8(props.expiration)))
    return described(MESSAGE_ANNOTATIONS, Value("map", ma))


def _properties(props: Properties) -> Value | None:
    plist = [NULL] * 10
    for i, value in ((0, props.message_id), (4, props.reply_to), (5, props.correlation_id)):
        if value is not None:
            plist[i] = utf8(value)
    if props.user_id is not None:
        plist[1] = Value("binary", props.user_id.encode())
    for i, value in ((6, props.content_type), (7, props.content_encoding)):
        if value is not None:
            plist[i] = symbol(value)
    if props.timestamp is not None:
        stamp: Any = props.timestamp
        seconds = int(stamp.timestamp()) if isinstance(stamp, datetime.datetime) else int(stamp)
        plist[9] = Value("timestamp", seconds * 1000)
    while plist and plist[-1] is NULL:
        plist.pop()
    return described(PROPERTIES, Value("list", plist)) if plist else None


def _application_properties(props: Properties, skip: tuple[str, ...]) -> Value | None:
    app: list[tuple[Value, Value]] = []
    if props.app_id is not None:
        app.append((utf8("x-basic-app-id"), utf8(props.app_id)))
    if props.type is not None and props.type != AMQP10_TYPE:
        app.append((utf8("x-basic-type"), utf8(props.type)))
    for key, value in (props.headers or {}).items():
        if key in skip or key.startswith("x-amqp-1.0-"):
            continue
        converted = _amqp10_value(value)
        if converted is not None:
            app.append((utf8(key), converted))
    return described(APPLICATION_PROPERTIES, Value("map", app)) if app else None


def from_amqp091(exchange: str, routing_key: str, props: Properties, body: bytes,
                 skip_headers: tuple[str, ...] = ("x-stream-offset",)) -> bytes:
    """The AMQP 1.0 message RabbitMQ stores for this AMQP 0-9-1 publish."""
    out = bytearray(encode(_annotations(exchange, routing_key, props)))
    for section in (_properties(props), _application_properties(props, skip_headers)):
        if section is not None:
            out += encode(section)
    if props.type == AMQP10_TYPE:
        out += body
    else:
        out += encode(described(DATA, Value("binary", body)))
    return bytes(out)
