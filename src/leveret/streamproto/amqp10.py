"""AMQP 1.0 types (OASIS AMQP 1.0, part 1): the encoding stream messages are made of.

Values decode to ``Value(type, value)`` so that every type survives a round trip and a
conversion to AMQP 0-9-1 can pick the matching field type, as RabbitMQ's
amqp10_binary_parser / amqp10_binary_generator do: ``list`` holds a list of Values, ``map``
a list of (key, value) pairs of Values, ``array`` a list of Values, ``described`` a
(descriptor, value) pair of Values. The encoder picks the compact forms RabbitMQ's
generator picks (``smallulong``, ``str8``, ``list8`` ... when the value fits).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from leveret.errors import FrameError


class Value(NamedTuple):
    type: str
    value: Any


NULL = Value("null", None)

_FIXED: dict[int, tuple[str, struct.Struct]] = {
    0x50: ("ubyte", struct.Struct(">B")), 0x51: ("byte", struct.Struct(">b")),
    0x60: ("ushort", struct.Struct(">H")), 0x61: ("short", struct.Struct(">h")),
    0x70: ("uint", struct.Struct(">I")), 0x71: ("int", struct.Struct(">i")),
    0x52: ("uint", struct.Struct(">B")), 0x54: ("int", struct.Struct(">b")),
    0x80: ("ulong", struct.Struct(">Q")), 0x81: ("long", struct.Struct(">q")),
    0x53: ("ulong", struct.Struct(">B")), 0x55: ("long", struct.Struct(">b")),
    0x72: ("float", struct.Struct(">f")), 0x82: ("double", struct.Struct(">d")),
    0x83: ("timestamp", struct.Struct(">q")), 0x73: ("char", struct.Struct(">I")),
}
_RAW = {0x74: ("decimal32", 4), 0x84: ("decimal64", 8), 0x94: ("decimal128", 16),
        0x98: ("uuid", 16)}
_ZERO = {0x40: NULL, 0x41: Value("boolean", True), 0x42: Value("boolean", False),
         0x43: Value("uint", 0), 0x44: Value("ulong", 0), 0x45: Value("list", [])}
_VARIABLE = {0xA0: ("binary", 1), 0xB0: ("binary", 4), 0xA1: ("utf8", 1), 0xB1: ("utf8", 4),
             0xA3: ("symbol", 1), 0xB3: ("symbol", 4)}
_COMPOUND = {0xC0: ("list", 1), 0xD0: ("list", 4), 0xC1: ("map", 1), 0xD1: ("map", 4)}
_ARRAY = {0xE0: 1, 0xF0: 4}
MAX_DEPTH = 64  # nesting a hostile message may ask for before it is refused
# Elements of zero width (null, true, false) cost no bytes: their count is capped instead.
MAX_EMPTY_ELEMENTS = 65536

_U8, _U32 = struct.Struct(">B"), struct.Struct(">I")


class Decoder:
    """Reads values from ``buf`` starting at ``pos``; FrameError on anything malformed."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes | memoryview, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def value(self, depth: int = 0) -> Value:
        try:
            return self._value(depth)
        except (IndexError, struct.error, UnicodeDecodeError) as exc:
            raise FrameError(f"malformed AMQP 1.0 value: {exc}") from None

    def _take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise FrameError("AMQP 1.0 value runs past its end")
        self.pos = start + n
        return start

    def _value(self, depth: int) -> Value:
        code = self.buf[self._take(1)]
        if code == 0x00:
            if depth >= MAX_DEPTH:
                raise FrameError("AMQP 1.0 value nested too deep")
            descriptor = self._value(depth + 1)
            return Value("described", (descriptor, self._value(depth + 1)))
        return self._constructed(code, depth)

    def _constructed(self, code: int, depth: int) -> Value:
        buf = self.buf
        zero = _ZERO.get(code)
        if zero is not None:
            return Value(zero.type, [] if code == 0x45 else zero.value)
        fixed = _FIXED.get(code)
        if fixed is not None:
            name, st = fixed
            return Value(name, st.unpack_from(buf, self._take(st.size))[0])
        if code == 0x56:
            return Value("boolean", buf[self._take(1)] != 0)
        variable = _VARIABLE.get(code)
        if variable is not None:
            name, width = variable
            size = self._size(width)
            raw = bytes(buf[self._take(size):self.pos])
            if name == "binary":
                return Value(name, raw)
            return Value(name, raw.decode("utf-8" if name == "utf8" else "ascii"))
        raw_kind = _RAW.get(code)
        if raw_kind is not None:
            name, size = raw_kind
            return Value(name, bytes(buf[self._take(size):self.pos]))
        compound = _COMPOUND.get(code)
        if compound is not None:
            name, width = compound
            size = self._size(width)
            end = self.pos + size
            count = self._size(width)
            if depth >= MAX_DEPTH:
                raise FrameError("AMQP 1.0 value nested too deep")
            items = [self._value(depth + 1) for _ in range(count)]
            if self.pos != end:
                raise FrameError(f"AMQP 1.0 {name} size does not match its items")
            if name == "map":
                if count % 2:
                    raise FrameError("AMQP 1.0 map with an odd number of items")
                return Value("map", list(zip(items[::2], items[1::2], strict=True)))
            return Value("list", items)
        array_width = _ARRAY.get(code)
        if array_width is not None:
            size = self._size(array_width)
            end = self.pos + size
            count = self._size(array_width)
            if depth >= MAX_DEPTH:
                raise FrameError("AMQP 1.0 value nested too deep")
            items = self._array_items(count, depth)
            if self.pos != end:
                raise FrameError("AMQP 1.0 array size does not match its items")
            return Value("array", items)
        raise FrameError(f"unknown AMQP 1.0 type code 0x{code:02x}")

    def _array_items(self, count: int, depth: int) -> list[Value]:
        code = self.buf[self._take(1)]
        descriptor = None
        if code == 0x00:
            descriptor = self._value(depth + 1)
            code = self.buf[self._take(1)]
        if code in _ZERO and count > MAX_EMPTY_ELEMENTS:
            raise FrameError(f"AMQP 1.0 array of {count} empty elements")
        items = []
        for _ in range(count):
            item = self._constructed(code, depth + 1)
            items.append(item if descriptor is None else
                         Value("described", (descriptor, item)))
        return items

    def _size(self, width: int) -> int:
        start = self._take(width)
        return int(self.buf[start]) if width == 1 else int(_U32.unpack_from(self.buf, start)[0])


def decode(buf: bytes | memoryview) -> list[Value]:
    """Every value in ``buf`` (a message is a sequence of described sections)."""
    dec = Decoder(buf)
    out = []
    while dec.pos < dec.end:
        out.append(dec.value())
    return out


# -- encoding -----------------------------------------------------------------------------

def encode(v: Value) -> bytes:
    out = bytearray()
    _encode(v, out)
    return bytes(out)


def _encode(v: Value, out: bytearray) -> None:  # noqa: C901
    t, x = v
    if t == "null" or (x is None and t not in ("list", "map", "array")):
        out.append(0x40)
    elif t == "boolean":
        out.append(0x41 if x else 0x42)
    elif t == "utf8" or t == "symbol" or t == "binary":
        raw = x.encode("utf-8") if isinstance(x, str) else bytes(x)
        small, large = {"utf8": (0xA1, 0xB1), "symbol": (0xA3, 0xB3),
                        "binary": (0xA0, 0xB0)}[t]
        if len(raw) < 256:
            out += bytes((small, len(raw)))
        else:
            out.append(large)
            out += _U32.pack(len(raw))
        out += raw
    elif t == "ulong":
        if x == 0:
            out.append(0x44)
        elif 0 < x < 256:
            out += bytes((0x53, x))
        else:
            out.append(0x80)
            out += struct.pack(">Q", x)
    elif t == "uint":
        if x == 0:
            out.append(0x43)
        elif 0 < x < 256:
            out += bytes((0x52, x))
        else:
            out.append(0x70)
            out += _U32.pack(x)
    elif t == "long":
        if -128 <= x < 128:
            out += b"\x55" + struct.pack(">b", x)
        else:
            out += b"\x81" + struct.pack(">q", x)
    elif t == "int":
        if -128 <= x < 128:
            out += b"\x54" + struct.pack(">b", x)
        else:
            out += b"\x71" + struct.pack(">i", x)
    elif t in _SIMPLE:
        code, st = _SIMPLE[t]
        out.append(code)
        out += st.pack(x)
    elif t in ("decimal32", "decimal64", "decimal128", "uuid"):
        out.append({"decimal32": 0x74, "decimal64": 0x84, "decimal128": 0x94,
                    "uuid": 0x98}[t])
        out += x
    elif t == "described":
        out.append(0x00)
        _encode(x[0], out)
        _encode(x[1], out)
    elif t == "list" or t == "map":
        items = x if t == "list" else [item for pair in x for item in pair]
        if t == "list" and not items:
            out.append(0x45)
            return
        body = bytearray()
        for item in items:
            _encode(item, body)
        _compound(0xC0 if t == "list" else 0xC1, len(items), body, out)
    elif t == "array":
        _encode_array(x, out)
    else:
        raise ValueError(f"cannot encode AMQP 1.0 type {t!r}")


_SIMPLE = {"ubyte": (0x50, struct.Struct(">B")), "byte": (0x51, struct.Struct(">b")),
           "ushort": (0x60, struct.Struct(">H")), "short": (0x61, struct.Struct(">h")),
           "float": (0x72, struct.Struct(">f")), "double": (0x82, struct.Struct(">d")),
           "timestamp": (0x83, struct.Struct(">q")), "char": (0x73, struct.Struct(">I"))}


def _compound(small_code: int, count: int, body: bytearray, out: bytearray) -> None:
    if len(body) + 1 < 256 and count < 256:
        out += bytes((small_code, len(body) + 1, count))
    else:
        out.append(small_code + 0x10)
        out += _U32.pack(len(body) + 4)
        out += _U32.pack(count)
    out += body


def _encode_array(items: list[Value], out: bytearray) -> None:
    """An array in its wide form: one constructor, then each element's bytes."""
    body = bytearray()
    if items:
        first = bytearray()
        _encode(items[0], first)
        code = _wide_code(items[0])
        body.append(code)
        for item in items:
            enc = bytearray()
            _encode_wide(item, enc)
            body += enc
    else:
        body.append(0x40)
    out.append(0xF0)
    out += _U32.pack(len(body) + 4)
    out += _U32.pack(len(items))
    out += body


def _wide_code(v: Value) -> int:
    return {"utf8": 0xB1, "symbol": 0xB3, "binary": 0xB0, "ulong": 0x80, "uint": 0x70,
            "long": 0x81, "int": 0x71, "boolean": 0x56, "null": 0x40, "list": 0xD0,
            "map": 0xD1}.get(v.type, _SIMPLE.get(v.type, (0x40,))[0])


def _encode_wide(v: Value, out: bytearray) -> None:
    """An array element without its constructor, in the wide form of its type."""
    t, x = v
    if t in ("utf8", "symbol", "binary"):
        raw = x.encode("utf-8") if isinstance(x, str) else bytes(x)
        out += _U32.pack(len(raw)) + raw
    elif t in ("ulong", "long"):
        out += struct.pack(">Q" if t == "ulong" else ">q", x)
    elif t in ("uint", "int"):
        out += struct.pack(">I" if t == "uint" else ">i", x)
    elif t == "boolean":
        out.append(1 if x else 0)
    elif t in _SIMPLE:
        out += _SIMPLE[t][1].pack(x)
    elif t in ("list", "map"):
        enc = bytearray()
        _encode(v, enc)
        if enc[0] in (0xC0, 0xC1):  # widen list8/map8 to list32/map32
            size, count = enc[1], enc[2]
            out += _U32.pack(size + 3) + _U32.pack(count) + enc[3:]
        elif enc[0] == 0x45:
            out += _U32.pack(4) + _U32.pack(0)
        else:
            out += enc[1:]
    elif t != "null":
        raise ValueError(f"cannot encode an array of {t}")


# -- constructors for the common cases ------------------------------------------------------

def utf8(text: str) -> Value:
    return Value("utf8", text)


def symbol(text: str) -> Value:
    return Value("symbol", text)


def described(code: int, value: Value) -> Value:
    return Value("described", (Value("ulong", code), value))
