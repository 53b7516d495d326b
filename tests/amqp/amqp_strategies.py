"""Hypothesis strategies for AMQP field values, shared by the codec tests.

Two value domains matter:

* ``field_values()``: everything leveret's encoder accepts and its decoder gives back
  equal (str, bool, int64, float, bytes, None, Decimal, aware datetime, dict, list);
* ``pamqp_compatible(...)``: the part of it pamqp (the oracle) handles the same way, since
  pamqp has quirks of its own: it decodes a decimal's mantissa as unsigned, reads
  timestamps above 2**32 as milliseconds, truncates keys longer than 128 bytes, encodes
  floats as 32-bit 'f' and only ``bytearray`` as 'x', and encodes nothing for ``bytes``.

And ``typed_values()`` generates ``(wire bytes, expected value)`` pairs over every type tag
of RabbitMQ's field-table dialect, including the tags leveret's encoder never picks.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from typing import Any

from hypothesis import strategies as st

INT64 = (-(2**63), 2**63 - 1)


def utf8_text(max_bytes: int, min_size: int = 0) -> st.SearchStrategy[str]:
    """Text (no lone surrogates) whose UTF-8 encoding fits in ``max_bytes``."""
    return (st.text(st.characters(exclude_categories=["Cs"]), min_size=min_size,
                    max_size=max_bytes)
            .filter(lambda s: len(s.encode()) <= max_bytes))


def keys(max_bytes: int = 255) -> st.SearchStrategy[str]:
    return utf8_text(max_bytes)


def decimals(signed: bool = True) -> st.SearchStrategy[decimal.Decimal]:
    lo = -(2**31) if signed else 0
    return st.builds(lambda m, s: decimal.Decimal(m).scaleb(-s),
                     st.integers(lo, 2**31 - 1), st.integers(0, 12))


def timestamps(max_seconds: int = 2**32 - 1) -> st.SearchStrategy[datetime.datetime]:
    return st.integers(0, max_seconds).map(
        lambda t: datetime.datetime.fromtimestamp(t, datetime.UTC))


def scalars(*, floats: st.SearchStrategy[float] | None = None,
            binary: st.SearchStrategy[Any] | None = None, signed_decimals: bool = True,
            max_timestamp: int = 2**32 - 1) -> st.SearchStrategy[Any]:
    return st.one_of(
        utf8_text(300),
        st.booleans(),
        st.integers(*INT64),
        floats if floats is not None else st.floats(allow_nan=False),
        binary if binary is not None else st.binary(max_size=64),
        st.none(),
        decimals(signed_decimals),
        timestamps(max_timestamp),
    )


def containers(leaves: st.SearchStrategy[Any], key_bytes: int = 255
               ) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=5),
                                st.dictionaries(keys(key_bytes), inner, max_size=5)),
        max_leaves=20,
    )


def field_values() -> st.SearchStrategy[Any]:
    return containers(scalars())


def field_tables(values: st.SearchStrategy[Any] | None = None, key_bytes: int = 255
                 ) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(keys(key_bytes), field_values() if values is None else values,
                           max_size=8)


def tables_for_pamqp_decode() -> st.SearchStrategy[dict[str, Any]]:
    """Tables leveret encodes and pamqp must decode to the same values."""
    leaves = scalars(signed_decimals=False)
    return field_tables(containers(leaves))


def tables_for_pamqp_encode() -> st.SearchStrategy[dict[str, Any]]:
    """Tables pamqp encodes and leveret must decode to the same values."""
    leaves = scalars(floats=st.floats(allow_nan=False, width=32),
                     binary=st.binary(max_size=64).map(bytearray))
    return field_tables(containers(leaves, key_bytes=128), key_bytes=128)


# --------------------------------------------------------------------------- typed values

def _fixed(tag: str, fmt: str, ints: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return ints.map(lambda v: (tag.encode() + struct.pack(fmt, v), v))


def _longstr_raw(raw: bytes) -> tuple[bytes, Any]:
    try:
        value: Any = raw.decode("utf-8")
    except UnicodeDecodeError:
        value = raw
    return b"S" + struct.pack(">I", len(raw)) + raw, value


def _decimal(scale: int, mantissa: int) -> tuple[bytes, decimal.Decimal]:
    return b"D" + struct.pack(">Bi", scale, mantissa), decimal.Decimal(mantissa).scaleb(-scale)


def _timestamp(t: int) -> tuple[bytes, datetime.datetime]:
    return b"T" + struct.pack(">Q", t), datetime.datetime.fromtimestamp(t, datetime.UTC)


def _float32(raw: bytes) -> tuple[bytes, float]:
    return b"f" + raw, struct.unpack(">f", raw)[0]


def typed_scalars() -> st.SearchStrategy[tuple[bytes, Any]]:
    """(encoded value with its tag, the value it decodes to) for every scalar tag."""
    return st.one_of(
        st.sampled_from([(b"t\x00", False), (b"t\x01", True)]),
        _fixed("b", ">b", st.integers(-128, 127)),
        _fixed("B", ">B", st.integers(0, 255)),
        _fixed("s", ">h", st.integers(-(2**15), 2**15 - 1)),
        _fixed("u", ">H", st.integers(0, 2**16 - 1)),
        _fixed("I", ">i", st.integers(-(2**31), 2**31 - 1)),
        _fixed("i", ">I", st.integers(0, 2**32 - 1)),
        _fixed("l", ">q", st.integers(*INT64)),
        st.floats(allow_nan=False, width=32).map(lambda f: (b"f" + struct.pack(">f", f), f)),
        st.floats(allow_nan=False).map(lambda f: (b"d" + struct.pack(">d", f), f)),
        st.builds(_decimal, st.integers(0, 255), st.integers(-(2**31), 2**31 - 1)),
        st.one_of(utf8_text(100).map(str.encode), st.binary(max_size=40)).map(_longstr_raw),
        st.binary(max_size=40).map(lambda b: (b"x" + struct.pack(">I", len(b)) + b, b)),
        st.integers(0, 2**32 - 1).map(_timestamp),
        st.just((b"V", None)),
    )


def _array(items: list[tuple[bytes, Any]]) -> tuple[bytes, list[Any]]:
    body = b"".join(raw for raw, _ in items)
    return b"A" + struct.pack(">I", len(body)) + body, [v for _, v in items]


def _table(items: dict[str, tuple[bytes, Any]]) -> tuple[bytes, dict[str, Any]]:
    raw, value = raw_table(items)
    return b"F" + raw, value


def raw_table(items: dict[str, tuple[bytes, Any]]) -> tuple[bytes, dict[str, Any]]:
    body = b"".join(bytes([len(k.encode())]) + k.encode() + raw for k, (raw, _) in items.items())
    return struct.pack(">I", len(body)) + body, {k: v for k, (_, v) in items.items()}


def typed_values() -> st.SearchStrategy[tuple[bytes, Any]]:
    return st.recursive(
        typed_scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=5).map(_array),
            st.dictionaries(keys(60), inner, max_size=5).map(_table),
        ),
        max_leaves=20,
    )


def typed_tables() -> st.SearchStrategy[tuple[bytes, dict[str, Any]]]:
    return st.dictionaries(keys(60), typed_values(), max_size=8).map(raw_table)


# --------------------------------------------------------------------------- method fields

def for_amqp_type(amqp_type: str, *, tables: st.SearchStrategy[Any],
                  longstr: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value for a method argument of pamqp's domain type name."""
    if amqp_type == "bit":
        return st.booleans()
    if amqp_type == "octet":
        return st.integers(0, 255)
    if amqp_type == "short":
        return st.integers(0, 2**16 - 1)
    if amqp_type == "long":
        return st.integers(0, 2**32 - 1)
    if amqp_type == "longlong":
        return st.integers(0, 2**63 - 1)  # pamqp reads longlong as signed
    if amqp_type == "shortstr":
        return utf8_text(255)
    if amqp_type == "longstr":
        return longstr
    if amqp_type == "table":
        return tables
    raise ValueError(amqp_type)
