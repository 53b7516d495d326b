"""leveret.amqp.fields: short/long strings, field tables, arrays and values.

Golden bytes pin the encoding leveret chooses; hypothesis round-trips check the decoder
against the encoder and against pamqp in both directions (comparing values, not bytes,
where the wire type is a free choice); malformed input must raise FrameError.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import math
import struct
import time

import pytest
from amqp_strategies import (
    field_tables,
    field_values,
    raw_table,
    tables_for_pamqp_decode,
    tables_for_pamqp_encode,
    typed_tables,
    typed_values,
    utf8_text,
)
from hypothesis import example, given
from hypothesis import strategies as st
from pamqp import decode as pdecode
from pamqp import encode as pencode

from leveret.amqp import fields
from leveret.errors import FrameError, NotUTF8

UTC = datetime.UTC


def roundtrip_value(value):
    raw = fields.encode_value(value)
    decoded, off = fields.decode_value(raw, 0)
    assert off == len(raw)
    return decoded


# ------------------------------------------------------------------ golden bytes

@pytest.mark.parametrize(("value", "wire"), [
    ("hi", b"S\x00\x00\x00\x02hi"),
    ("żó", b"S\x00\x00\x00\x04\xc5\xbc\xc3\xb3"),
    ("", b"S\x00\x00\x00\x00"),
    (True, b"t\x01"),
    (False, b"t\x00"),
    (0, b"b\x00"),
    (-128, b"b\x80"),
    (127, b"b\x7f"),
    (128, b"s\x00\x80"),
    (-129, b"s\xff\x7f"),
    (32767, b"s\x7f\xff"),
    (32768, b"I\x00\x00\x80\x00"),
    (-(2**31), b"I\x80\x00\x00\x00"),
    (2**31, b"l\x00\x00\x00\x00\x80\x00\x00\x00"),
    (-(2**63), b"l\x80" + b"\x00" * 7),
    (2**63 - 1, b"l\x7f" + b"\xff" * 7),
    (1.5, b"d" + struct.pack(">d", 1.5)),
    (b"\x00\xff", b"x\x00\x00\x00\x02\x00\xff"),
    (bytearray(b"ab"), b"x\x00\x00\x00\x02ab"),
    (None, b"V"),
    ({}, b"F\x00\x00\x00\x00"),
    ({"a": 1}, b"F\x00\x00\x00\x04\x01ab\x01"),
    ([], b"A\x00\x00\x00\x00"),
    ([1, "x"], b"A\x00\x00\x00\x08b\x01S\x00\x00\x00\x01x"),
    (decimal.Decimal("3.14"), b"D\x02\x00\x00\x01\x3a"),
    (decimal.Decimal("-0.5"), b"D\x01\xff\xff\xff\xfb"),
    (decimal.Decimal("100"), b"D\x00\x00\x00\x00\x64"),
    (datetime.datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC),
     b"T\x00\x00\x00\x00\x3b\x9a\xca\x00"),
])
def test_encode_value_golden(value, wire):
    assert fields.encode_value(value) == wire


@pytest.mark.parametrize(("wire", "value"), [
    (b"t\x00", False),
    (b"t\x01", True),
    (b"t\x02", True),  # any non-zero octet is true
    (b"b\xff", -1),
    (b"B\xff", 255),
    (b"s\xff\xfe", -2),
    (b"u\xff\xfe", 65534),
    (b"I\xff\xff\xff\xfe", -2),
    (b"i\xff\xff\xff\xfe", 2**32 - 2),  # RabbitMQ's 'i' is unsigned (the errata table)
    (b"l" + b"\xff" * 8, -1),
    (b"L" + b"\xff" * 8, 2**64 - 1),  # unsigned; RabbitMQ 3.10 accepts and forwards it
    (b"f" + struct.pack(">f", 0.25), 0.25),
    (b"d" + struct.pack(">d", -2.5), -2.5),
    (b"D\x03\x00\x00\x30\x39", decimal.Decimal("12.345")),
    (b"D\x00\xff\xff\xff\xff", decimal.Decimal(-1)),
    (b"S\x00\x00\x00\x03abc", "abc"),
    (b"S\x00\x00\x00\x02\xff\xfe", b"\xff\xfe"),  # not UTF-8: stays bytes
    (b"x\x00\x00\x00\x02\x00\x01", b"\x00\x01"),
    (b"T\x00\x00\x00\x00\x00\x00\x00\x00", datetime.datetime(1970, 1, 1, tzinfo=UTC)),
    (b"V", None),
    (b"F\x00\x00\x00\x00", {}),
    (b"A\x00\x00\x00\x00", []),
    (b"A\x00\x00\x00\x03t\x01V", [True, None]),
])
def test_decode_value_golden(wire, value):
    decoded, off = fields.decode_value(wire, 0)
    assert off == len(wire)
    assert decoded == value
    assert isinstance(decoded, type(value))  # int/float subclasses may keep the wire type


@given(st.one_of(
    st.integers(-128, 127).map(lambda v: b"b" + struct.pack(">b", v)),
    st.integers(0, 255).map(lambda v: b"B" + struct.pack(">B", v)),
    st.integers(-(2**15), 2**15 - 1).map(lambda v: b"s" + struct.pack(">h", v)),
    st.integers(0, 2**16 - 1).map(lambda v: b"u" + struct.pack(">H", v)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: b"I" + struct.pack(">i", v)),
    st.integers(0, 2**32 - 1).map(lambda v: b"i" + struct.pack(">I", v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: b"l" + struct.pack(">q", v)),
    st.integers(0, 2**64 - 1).map(lambda v: b"L" + struct.pack(">Q", v)),
    st.floats(width=32, allow_nan=False).map(lambda v: b"f" + struct.pack(">f", v)),
    st.floats(allow_nan=False).map(lambda v: b"d" + struct.pack(">d", v)),
))
def test_numbers_re_encode_with_the_tag_they_arrived_with(wire):
    """A broker forwards headers and arguments as it got them: RabbitMQ keeps the wire type
    (and names it in error texts: "the value '10' of type 'byte'")."""
    value, _ = fields.decode_value(wire, 0)
    assert fields.encode_value(value) == wire


def test_decoded_timestamp_is_aware_utc():
    value, _ = fields.decode_value(b"T\x00\x00\x00\x00\x3b\x9a\xca\x00", 0)
    assert value.tzinfo is not None
    assert value.utcoffset() == datetime.timedelta(0)


def test_table_golden_preserves_key_order():
    table = {"b": 1, "a": "x"}
    wire = b"\x00\x00\x00\x0c\x01bb\x01\x01aS\x00\x00\x00\x01x"
    assert fields.encode_table(table) == wire
    decoded, off = fields.decode_table(wire, 0)
    assert off == len(wire)
    assert list(decoded) == ["b", "a"]


def test_empty_and_none_tables_encode_as_four_zero_bytes():
    assert fields.encode_table({}) == b"\x00\x00\x00\x00"
    assert fields.encode_table(None) == b"\x00\x00\x00\x00"


def test_decoders_work_at_an_offset_and_on_memoryview():
    wire = b"junk" + fields.encode_table({"k": [1, {"n": None}]}) + b"tail"
    for buf in (wire, bytearray(wire), memoryview(wire)):
        value, off = fields.decode_table(buf, 4)
        assert value == {"k": [1, {"n": None}]}
        assert wire[off:] == b"tail"


def test_shortstr_and_longstr_golden():
    assert fields.encode_shortstr("abc") == b"\x03abc"
    assert fields.encode_shortstr(b"\x00\xff") == b"\x02\x00\xff"
    assert fields.encode_longstr("abc") == b"\x00\x00\x00\x03abc"
    assert fields.decode_shortstr(b"\x03abcZ", 0) == ("abc", 4)
    assert fields.decode_longstr(b"\x00\x00\x00\x03abcZ", 0) == (b"abc", 7)


def test_shortstr_longer_than_255_bytes_is_refused():
    fields.encode_shortstr("x" * 255)
    with pytest.raises(ValueError):
        fields.encode_shortstr("x" * 256)
    with pytest.raises(ValueError):
        fields.encode_shortstr("ż" * 128)  # 256 bytes in UTF-8


def test_shortstr_that_is_not_utf8_round_trips_byte_for_byte():
    text, _ = fields.decode_shortstr(b"\x02\xff\xfe", 0)
    assert fields.encode_shortstr(text) == b"\x02\xff\xfe"


def test_nan_round_trips():
    assert math.isnan(roundtrip_value(float("nan")))


def test_cannot_encode_unknown_types():
    with pytest.raises(TypeError):
        fields.encode_value(object())
    with pytest.raises(TypeError):
        fields.encode_value({1, 2})


# ------------------------------------------------------------------ round trips

@given(field_values())
def test_value_round_trip(value):
    assert roundtrip_value(value) == value


@given(field_tables())
def test_table_round_trip(table):
    raw = fields.encode_table(table)
    decoded, off = fields.decode_table(raw, 0)
    assert off == len(raw)
    assert decoded == table
    assert fields.encode_table(decoded) == raw  # a decoded table re-encodes identically


@given(st.lists(field_values(), max_size=8))
def test_array_round_trip(items):
    raw = fields.encode_array(items)
    decoded, off = fields.decode_array(raw, 0)
    assert (decoded, off) == (items, len(raw))


@given(utf8_text(255))
def test_shortstr_round_trip(text):
    raw = fields.encode_shortstr(text)
    assert fields.decode_shortstr(raw, 0) == (text, len(raw))


@given(st.binary(max_size=300))
def test_longstr_round_trip(data):
    raw = fields.encode_longstr(data)
    assert fields.decode_longstr(raw, 0) == (data, len(raw))


# ------------------------------------------------------------------ every type tag

@given(typed_values())
def test_every_type_tag_decodes(typed):
    wire, expected = typed
    value, off = fields.decode_value(wire, 0)
    assert off == len(wire)
    assert value == expected


@given(typed_tables())
def test_every_type_tag_in_tables_decodes_and_re_encodes_to_equal_values(typed):
    """The wire type is a free choice on re-encoding (leveret picks the narrowest signed
    integer, 'd' for floats, 'x' for non-UTF-8 strings): the values must survive."""
    wire, expected = typed
    value, off = fields.decode_table(wire, 0)
    assert (value, off) == (expected, len(wire))
    again, _ = fields.decode_table(fields.encode_table(value), 0)
    assert again == expected


@given(typed_tables())
def test_every_type_tag_decodes_like_pamqp(typed):
    wire, _ = typed
    ours, off = fields.decode_table(wire, 0)
    consumed, theirs = pdecode.field_table(wire)
    assert off == consumed == len(wire)
    assert without_pamqp_quirks(ours) == without_pamqp_quirks(theirs)


def without_pamqp_quirks(value):
    """pamqp reads a decimal's mantissa as unsigned: compare decimals as their raw 32 bits."""
    if isinstance(value, dict):
        return {k: without_pamqp_quirks(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_pamqp_quirks(v) for v in value]
    if isinstance(value, decimal.Decimal):
        sign, digits, exponent = value.as_tuple()
        mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
        scale = -exponent
        while scale < 0:
            mantissa, scale = mantissa * 10, scale + 1
        return ("decimal", scale, mantissa & 0xFFFFFFFF)
    if isinstance(value, bytearray):
        return bytes(value)
    return value


# ------------------------------------------------------------------ pamqp as the oracle

@given(tables_for_pamqp_decode())
def test_our_tables_decode_in_pamqp_to_the_same_values(table):
    raw = fields.encode_table(table)
    consumed, theirs = pdecode.field_table(raw)
    assert consumed == len(raw)
    assert theirs == table


@given(tables_for_pamqp_encode())
def test_pamqp_tables_decode_in_leveret_to_the_same_values(table):
    raw = pencode.field_table(table)
    ours, off = fields.decode_table(raw, 0)
    assert off == len(raw)
    assert ours == table


@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), utf8_text(20), st.none(),
                          st.booleans()), max_size=10))
def test_arrays_agree_with_pamqp_both_ways(items):
    ours = fields.encode_array(items)
    assert pdecode.field_array(ours) == (len(ours), items)
    theirs = pencode.field_array(items)
    assert fields.decode_array(theirs, 0) == (items, len(theirs))


@given(st.integers(-(2**63), 2**63 - 1))
def test_integers_use_the_narrowest_signed_tag(n):
    tag = fields.encode_value(n)[:1]
    width = {b"b": 8, b"s": 16, b"I": 32, b"l": 64}[tag]
    assert -(2 ** (width - 1)) <= n < 2 ** (width - 1)
    if width > 8:
        narrower = width // 2 if width != 64 else 32
        assert not -(2 ** (narrower - 1)) <= n < 2 ** (narrower - 1)


@pytest.fixture
def five_hours_west():
    """The process time zone set to UTC-5 (no DST), restored afterwards."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "Etc/GMT+5")
    time.tzset()
    try:
        yield
    finally:
        mp.undo()
        time.tzset()


def test_naive_datetime_is_encoded_as_utc(five_hours_west):
    naive = datetime.datetime(2020, 1, 1, 0, 0, 0)
    assert fields.encode_value(naive) == b"T" + pencode.timestamp(naive)


def test_aware_datetime_does_not_depend_on_the_time_zone(five_hours_west):
    aware = datetime.datetime(2020, 1, 1, tzinfo=UTC)
    assert fields.encode_value(aware) == b"T" + pencode.timestamp(aware)


# ------------------------------------------------------------------ malformed input

def _nested(levels: int, wrapper: bytes) -> bytes:
    """``levels`` containers around an empty table, each one's body = wrapper + inner
    (built outside-in in linear time: every level only adds a prefix)."""
    sizes, inner = [], 4
    for _ in range(levels):
        sizes.append(len(wrapper) + inner)
        inner = 4 + sizes[-1]
    return b"".join(struct.pack(">I", n) + wrapper for n in reversed(sizes)) + b"\x00" * 4


def _nested_tables(levels: int) -> bytes:
    return _nested(levels, b"\x01aF")


def _table_of(value: bytes) -> bytes:
    """A table with one key, 'a', holding an already encoded value (tag included)."""
    return struct.pack(">I", len(value) + 2) + b"\x01a" + value


def _nested_arrays(levels: int) -> bytes:
    return _nested(levels, b"A")


MALFORMED_TABLES_RAISING_FRAME_ERROR = {
    "table size past the end": b"\x00\x00\x00\x05\x01aV",
    "table size 2**32-1": b"\xff\xff\xff\xff\x01aV",
    "key length past the end of the frame": b"\x00\x00\x00\x01\x05",
    "unknown type tag 'Z'": b"\x00\x00\x00\x03\x01aZ",
    "NUL type tag": b"\x00\x00\x00\x03\x01a\x00",
    "value runs past the declared table size": b"\x00\x00\x00\x03\x01aI\x00\x00\x00\x01",
    "table size shorter than its contents": b"\x00\x00\x00\x02\x01aV",
    "long string past the end": b"\x00\x00\x00\x08\x01aS\x00\x00\x00\x09ab",
    "byte array past the end": b"\x00\x00\x00\x08\x01ax\x7f\xff\xff\xffab",
    "nested table size past the end": b"\x00\x00\x00\x08\x01aF\x00\x00\x00\x09",
    "array size past the end": b"\x00\x00\x00\x08\x01aA\x00\x00\x00\x09",
    "array element runs past the array": b"\x00\x00\x00\x09\x01aA\x00\x00\x00\x01b\x01",
    "tables nested 129 deep": _nested_tables(fields.MAX_DEPTH + 1),
    "tables nested 100000 deep": _nested_tables(100_000),
    "arrays nested 100000 deep": _table_of(b"A" + _nested_arrays(100_000)),
}


@pytest.mark.parametrize("wire", MALFORMED_TABLES_RAISING_FRAME_ERROR.values(),
                         ids=MALFORMED_TABLES_RAISING_FRAME_ERROR.keys())
def test_malformed_table_raises_frame_error(wire):
    with pytest.raises(FrameError):
        fields.decode_table(wire, 0)


def test_nesting_up_to_the_limit_is_fine():
    value, _ = fields.decode_table(_nested_tables(fields.MAX_DEPTH), 0)
    depth = 0
    while value:
        value, depth = value["a"], depth + 1
    assert depth == fields.MAX_DEPTH


TRUNCATED = {
    # the buffer ends inside a length or a fixed-size value: struct.error / IndexError
    "empty buffer": b"",
    "table size cut short": b"\x00\x00",
    "type tag missing at the end of the buffer": b"\x00\x00\x00\x02\x01a",
    "int value cut short at the end of the buffer": b"\x00\x00\x00\x03\x01aI",
    "long long value cut short": b"\x00\x00\x00\x06\x01al\x00\x00\x00",
    "decimal cut short": b"\x00\x00\x00\x05\x01aD\x02\x00",
    "long string length cut short": b"\x00\x00\x00\x05\x01aS\x00\x00",
    "boolean octet missing": b"\x00\x00\x00\x03\x01at",
}


@pytest.mark.parametrize("wire", TRUNCATED.values(), ids=TRUNCATED.keys())
def test_truncated_table_raises_frame_error(wire):
    with pytest.raises(FrameError):
        fields.decode_table(wire, 0)


def test_shortstr_at_end_of_buffer_raises_frame_error():
    with pytest.raises(FrameError):
        fields.decode_shortstr(b"abc", 3)


def test_shortstr_longer_than_the_buffer_raises_frame_error():
    with pytest.raises(FrameError):
        fields.decode_shortstr(b"\x05abc", 0)


def test_longstr_length_cut_short_raises_frame_error():
    with pytest.raises(FrameError):
        fields.decode_longstr(b"\x00\x00", 0)


def test_longstr_longer_than_the_buffer_raises_frame_error():
    with pytest.raises(FrameError):
        fields.decode_longstr(b"\x00\x00\x00\x09abc", 0)


@pytest.mark.parametrize("seconds", [253402300800, 2**63, 2**64 - 1])
def test_timestamp_beyond_datetime_stays_a_number(seconds):
    """RabbitMQ accepts any 64-bit 'T'; past year 9999 it decodes to an integer that
    re-encodes as the same 'T' value."""
    raw = b"T" + struct.pack(">Q", seconds)
    value, end = fields.decode_value(raw, 0)
    assert end == 9 and value == seconds and isinstance(value, fields.Timestamp)
    assert fields.encode_value(value) == raw


@given(st.binary(max_size=40))
@example(b"")
def test_decode_table_on_garbage_raises_only_frame_error(garbage):
    with contextlib.suppress(FrameError):
        fields.decode_table(garbage, 0)


@given(typed_tables(), st.data())
def test_cutting_a_table_short_never_decodes_silently(typed, data):
    """Whatever a truncated table raises, it must not decode to a (wrong) value."""
    wire, _ = typed
    if len(wire) <= 4:
        return
    cut = data.draw(st.integers(0, len(wire) - 1))
    with pytest.raises(Exception):  # noqa: B017 - see the xfail tests for the type
        fields.decode_table(wire[:cut], 0)


def test_raw_table_helper_matches_encoder():
    raw, value = raw_table({"a": (b"b\x01", 1)})
    assert raw == fields.encode_table({"a": 1})
    assert value == {"a": 1}


@pytest.mark.parametrize("raw", [b"wire", "żółw".encode(), b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                 b"\x00", b"\xef\xbf\xbe"],
                         ids=["ascii", "utf-8", "surrogate", "U+110000", "nul", "U+FFFE"])
def test_method_short_strings_pass_what_rabbitmq_passes(raw):
    text, end = fields.decode_checked_shortstr(bytes([len(raw)]) + raw, 0)
    assert end == 1 + len(raw) and fields.encode_shortstr(text) == bytes([len(raw)]) + raw


@pytest.mark.parametrize("raw", [b"\xff", b"\xc0\x80", b"\xe0\x80\x80", b"\xe2\x82", b"\x80",
                                 b"\xf8\x88\x80\x80\x80"],
                         ids=["ff", "overlong 2", "overlong 3", "cut", "continuation", "5 bytes"])
def test_method_short_strings_refuse_what_rabbitmq_refuses(raw):
    with pytest.raises(NotUTF8, match="Malformed UTF-8 in shortstr"):
        fields.decode_checked_shortstr(bytes([len(raw)]) + raw, 0)
    assert fields.decode_shortstr(bytes([len(raw)]) + raw, 0)[1] == 1 + len(raw)  # elsewhere: any
