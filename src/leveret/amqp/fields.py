"""AMQP 0-9-1 field values: short strings, long strings, field tables and arrays.

Decoders read from a buffer (bytes, bytearray or memoryview) at an offset and return
``(value, new_offset)``, so nothing is sliced until a value is materialised.

Type tags follow RabbitMQ's dialect of 0-9-1 (the "errata" table), which is what every
client in the field speaks: ``t b B s u I i l L f d D S x A T F V``. Decoded values keep
their wire type: integers decode to ``TypedInt`` subclasses (``Byte``, ``SignedInt``, ...)
and 'f' floats to ``Float32``, which re-encode with the tag they arrived with; a plain
``int`` encodes with the narrowest signed tag that fits, as pamqp does.
"""

from __future__ import annotations

import datetime
import decimal
import re
import struct
from typing import Any

from leveret.errors import FrameError, NotUTF8, UnknownFieldType

_B = struct.Struct(">B")
_b = struct.Struct(">b")
_h = struct.Struct(">h")
_H = struct.Struct(">H")
_i = struct.Struct(">i")
_I = struct.Struct(">I")
_q = struct.Struct(">q")
_Q = struct.Struct(">Q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")

FieldTable = dict[str, Any]  # values of many wire types (see _decode_value)
Buffer = bytes | bytearray | memoryview  # what the decoders read from


class TypedInt(int):
    """An integer that remembers its wire type, so it re-encodes as it arrived and error
    texts can name the type as RabbitMQ does."""

    __slots__ = ()
    tag = b"l"
    type_name = "long"


class Byte(TypedInt):
    __slots__ = ()
    tag, type_name = b"b", "byte"


class UnsignedByte(TypedInt):
    __slots__ = ()
    tag, type_name = b"B", "unsignedbyte"


class Short(TypedInt):
    __slots__ = ()
    tag, type_name = b"s", "short"


class UnsignedShort(TypedInt):
    __slots__ = ()
    tag, type_name = b"u", "unsignedshort"


class SignedInt(TypedInt):
    __slots__ = ()
    tag, type_name = b"I", "signedint"


class UnsignedInt(TypedInt):
    __slots__ = ()
    tag, type_name = b"i", "unsignedint"


class Long(TypedInt):
    __slots__ = ()
    tag, type_name = b"l", "long"


class UnsignedLong(TypedInt):
    __slots__ = ()
    tag, type_name = b"L", "unsignedlong"


class Timestamp(TypedInt):
    """A 'T' value too far in the future for ``datetime`` (year 10000 and later)."""

    __slots__ = ()
    tag, type_name = b"T", "timestamp"


# Seconds since the epoch of 10000-01-01: 'T' values from there on stay integers.
_MAX_DATETIME = 253402300800


class Float32(float):
    """A single-precision float ('f') as opposed to a double ('d')."""

    __slots__ = ()


_INT_PACK = {b"b": _b, b"B": _B, b"s": _h, b"u": _H, b"I": _i, b"i": _I, b"l": _q, b"L": _Q,
             b"T": _Q}

# Tables and arrays nested deeper than this are refused (501). RabbitMQ takes any depth a
# frame can carry (some 26,000 levels in 128 KiB), but every layer of leveret that re-encodes
# or renders a value (dead-lettering, the management API's JSON, definitions) recurses, two
# Python frames a level; 128 levels is far beyond any real use and far inside the stack.
MAX_DEPTH = 128


# Errors a truncated or nonsensical buffer raises from struct/indexing/datetime; the public
# decoders turn them into FrameError so callers handle exactly one exception type.
_MALFORMED = (struct.error, IndexError, OverflowError, ValueError, OSError)


def decode_shortstr(buf: Buffer, off: int) -> tuple[str, int]:
    """Any short string: bytes that are not UTF-8 decode with surrogate escapes and encode
    back unchanged (table keys, content properties, basic.publish's routing fields)."""
    try:
        n = buf[off]
    except IndexError:
        raise FrameError("short string length missing at the end of the frame") from None
    end = off + 1 + n
    if end > len(buf):
        raise FrameError("short string runs past the end of the frame")
    return bytes(buf[off + 1 : end]).decode("utf-8", "surrogateescape"), end


# UTF-8 as RabbitMQ checks it (Erlang's xmerl_ucs): sequences of at most four bytes in their
# shortest form; surrogates and code points up to 0x1FFFFF pass. Python's codec is stricter,
# so this is the second opinion on what it refuses.
_RABBITMQ_UTF8 = re.compile(
    rb"(?:[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xef][\x80-\xbf]{2}|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf7][\x80-\xbf]{3})*")


def decode_checked_shortstr(buf: Buffer, off: int) -> tuple[str, int]:
    """A short string among a method's arguments (a queue, exchange or consumer name, a
    binding key, a reply text): RabbitMQ refuses one that is not UTF-8 with 501."""
    try:
        n = buf[off]
    except IndexError:
        raise FrameError("short string length missing at the end of the frame") from None
    end = off + 1 + n
    if end > len(buf):
        raise FrameError("short string runs past the end of the frame")
    raw = bytes(buf[off + 1 : end])
    try:
        return raw.decode("utf-8"), end
    except UnicodeDecodeError:
        if _RABBITMQ_UTF8.fullmatch(raw) is None:
            raise NotUTF8("Malformed UTF-8 in shortstr") from None
        return raw.decode("utf-8", "surrogateescape"), end


def decode_longstr(buf: Buffer, off: int) -> tuple[bytes, int]:
    try:
        (n,) = _I.unpack_from(buf, off)
    except struct.error:
        raise FrameError("long string length cut short") from None
    end = off + 4 + n
    if end > len(buf):
        raise FrameError("long string runs past the end of the frame")
    return bytes(buf[off + 4 : end]), end


def encode_shortstr(value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    if len(raw) > 255:
        raise ValueError(f"short string longer than 255 bytes: {raw[:32]!r}...")
    return _B.pack(len(raw)) + raw


def encode_longstr(value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return _I.pack(len(raw)) + raw


def decode_table(buf: Buffer, off: int, depth: int = 0) -> tuple[FieldTable, int]:
    try:
        return _decode_table(buf, off, depth)
    except _MALFORMED as exc:
        raise FrameError(f"malformed field table: {exc}") from None


def _decode_table(buf: Buffer, off: int, depth: int) -> tuple[FieldTable, int]:
    (size,) = _I.unpack_from(buf, off)
    off += 4
    end = off + size
    if end > len(buf):
        raise FrameError("field table runs past the end of the frame")
    if depth > MAX_DEPTH:
        raise FrameError("field table nested too deeply")
    table: FieldTable = {}
    while off < end:
        key, off = decode_shortstr(buf, off)
        table[key], off = _decode_value(buf, off, depth)
    if off != end:
        raise FrameError("field table length does not match its contents")
    return table, off


def decode_array(buf: Buffer, off: int, depth: int = 0) -> tuple[list[Any], int]:
    try:
        return _decode_array(buf, off, depth)
    except _MALFORMED as exc:
        raise FrameError(f"malformed field array: {exc}") from None


def _decode_array(buf: Buffer, off: int, depth: int) -> tuple[list[Any], int]:
    (size,) = _I.unpack_from(buf, off)
    off += 4
    end = off + size
    if end > len(buf):
        raise FrameError("field array runs past the end of the frame")
    if depth > MAX_DEPTH:
        raise FrameError("field array nested too deeply")
    items: list[Any] = []
    while off < end:
        value, off = _decode_value(buf, off, depth)
        items.append(value)
    if off != end:
        raise FrameError("field array length does not match its contents")
    return items, off


def decode_value(buf: Buffer, off: int, depth: int = 0) -> tuple[Any, int]:
    try:
        return _decode_value(buf, off, depth)
    except _MALFORMED as exc:
        raise FrameError(f"malformed field value: {exc}") from None


def _decode_value(buf: Buffer, off: int, depth: int) -> tuple[Any, int]:  # noqa: C901
    tag = buf[off]
    off += 1
    if tag == 0x53:  # S long string: text if it is UTF-8, else bytes
        raw, off = decode_longstr(buf, off)
        try:
            return raw.decode("utf-8"), off
        except UnicodeDecodeError:
            return raw, off
    if tag == 0x49:  # I
        return SignedInt(_i.unpack_from(buf, off)[0]), off + 4
    if tag == 0x46:  # F
        return _decode_table(buf, off, depth + 1)
    if tag == 0x74:  # t
        return bool(buf[off]), off + 1
    if tag == 0x6C:  # l
        return Long(_q.unpack_from(buf, off)[0]), off + 8
    if tag == 0x41:  # A
        return _decode_array(buf, off, depth + 1)
    if tag == 0x54:  # T
        (ts,) = _Q.unpack_from(buf, off)
        if ts < _MAX_DATETIME:
            return datetime.datetime.fromtimestamp(ts, datetime.UTC), off + 8
        return Timestamp(ts), off + 8  # beyond datetime's range: keep the number
    if tag == 0x62:  # b
        return Byte(_b.unpack_from(buf, off)[0]), off + 1
    if tag == 0x42:  # B
        return UnsignedByte(_B.unpack_from(buf, off)[0]), off + 1
    if tag == 0x73:  # s
        return Short(_h.unpack_from(buf, off)[0]), off + 2
    if tag == 0x75:  # u
        return UnsignedShort(_H.unpack_from(buf, off)[0]), off + 2
    if tag == 0x4C:  # L: unsigned 64-bit, which RabbitMQ accepts too
        return UnsignedLong(_Q.unpack_from(buf, off)[0]), off + 8
    if tag == 0x69:  # i
        return UnsignedInt(_I.unpack_from(buf, off)[0]), off + 4
    if tag == 0x66:  # f
        return Float32(_f.unpack_from(buf, off)[0]), off + 4
    if tag == 0x64:  # d
        return _d.unpack_from(buf, off)[0], off + 8
    if tag == 0x44:  # D
        scale = buf[off]
        (raw,) = _i.unpack_from(buf, off + 1)
        return decimal.Decimal(raw).scaleb(-scale), off + 5
    if tag == 0x78:  # x
        return decode_longstr(buf, off)
    if tag == 0x56:  # V
        return None, off
    raise UnknownFieldType(f"unknown field value type {chr(tag)!r}")


def encode_table(table: FieldTable | None) -> bytes:
    if not table:
        return b"\x00\x00\x00\x00"
    parts = []
    for key, value in table.items():
        parts.append(encode_shortstr(key))
        parts.append(encode_value(value))
    body = b"".join(parts)
    return _I.pack(len(body)) + body


def encode_array(items: list[Any] | tuple[Any, ...]) -> bytes:
    body = b"".join(encode_value(v) for v in items)
    return _I.pack(len(body)) + body


def encode_value(value: Any) -> bytes:  # noqa: C901
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        return b"S" + _I.pack(len(raw)) + raw
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, TypedInt):
        return value.tag + _INT_PACK[value.tag].pack(value)
    if isinstance(value, int):
        if -(2**7) <= value < 2**7:
            return b"b" + _b.pack(value)
        if -(2**15) <= value < 2**15:
            return b"s" + _h.pack(value)
        if -(2**31) <= value < 2**31:
            return b"I" + _i.pack(value)
        return b"l" + _q.pack(value)
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, (list, tuple)):
        return b"A" + encode_array(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return b"x" + _I.pack(len(raw)) + raw
    if isinstance(value, Float32):
        return b"f" + _f.pack(value)
    if isinstance(value, float):
        return b"d" + _d.pack(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # naive means UTC, as in pamqp, not the local time zone
            value = value.replace(tzinfo=datetime.UTC)
        return b"T" + _Q.pack(int(value.timestamp()))
    if isinstance(value, decimal.Decimal):
        exponent = value.normalize().as_tuple().exponent
        scale = max(0, -int(exponent))
        unscaled = int(value.scaleb(scale))
        return b"D" + _B.pack(scale) + _i.pack(unscaled)
    if value is None:
        return b"V"
    raise TypeError(f"cannot encode {type(value).__name__} in an AMQP field table")
