"""Messages keep their properties as sent; direct reply-to rewrites only reply_to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leveret.amqp.spec import Properties
from leveret.broker.message import Message
from leveret.errors import InternalError, PreconditionFailed


@pytest.mark.parametrize("props", [
    Properties(),
    Properties(content_type="a", headers={"x": 1, "y": [1, 2]}, delivery_mode=2, priority=3,
               correlation_id="c"),
    Properties(reply_to="amq.rabbitmq.reply-to", message_id="m", headers={"l": 2**40}),
    Properties(content_encoding="e", correlation_id="cc", expiration="100"),
])
def test_replace_reply_to_touches_nothing_else(props: Properties) -> None:
    m = Message("", "", props.encode(), b"")
    m.replace_reply_to("amq.rabbitmq.reply-to.abc")
    expected = Properties.decode(props.encode())
    expected.reply_to = "amq.rabbitmq.reply-to.abc"
    assert Properties.decode(m.properties_raw) == expected


def test_header_wire_types_survive_reply_to_rewrite() -> None:
    # A 64-bit 'l' header of a small value must stay 'l', not be narrowed on re-encode.
    raw = b"\x22\x00" + b"\x00\x00\x00\x0b\x01al" + (5).to_bytes(8, "big") + b"\x01q"
    m = Message("", "", raw, b"")
    m.replace_reply_to("r")
    assert b"\x01al" + (5).to_bytes(8, "big") in m.properties_raw
    assert Properties.decode(m.properties_raw).reply_to == "r"


@given(st.none() | st.text(max_size=20), st.none() | st.text(max_size=20),
       st.none() | st.dictionaries(st.text(max_size=5), st.integers(0, 2**31) | st.text()),
       st.none() | st.integers(0, 255), st.none() | st.integers(0, 9),
       st.none() | st.text(max_size=8))
def test_persistent_reads_the_raw_list_as_the_decoder_would(
        content_type: str | None, encoding: str | None, headers: dict[str, object] | None,
        mode: int | None, priority: int | None, message_id: str | None) -> None:
    """``persistent`` skips the fields before delivery_mode by their lengths, undecoded."""
    raw = Properties(content_type=content_type, content_encoding=encoding, headers=headers,
                     delivery_mode=mode, priority=priority, message_id=message_id).encode()
    assert Message("", "", raw, b"").persistent == (Properties.decode(raw).delivery_mode == 2)


def test_persistent_flag() -> None:
    assert Message("", "", Properties(delivery_mode=2).encode(), b"").persistent
    assert not Message("", "", Properties(delivery_mode=1).encode(), b"").persistent
    assert not Message("", "", b"\x00\x00", b"").persistent


@pytest.mark.parametrize("raw", [
    b"\x10\x00",  # delivery-mode flagged, no byte: the poison message of issue 11
    b"\x00\x00\x02",  # no flags, one byte left over
    b"\x10\x00\x02\x02",  # delivery-mode and a byte left over
    b"\xff\xfc",  # every flag, no values
    b"\x00\x01",  # the flags continue: not 0-9-1 (RabbitMQ takes it; no client can read it)
    b"\x80\x00\x09ab",  # content-type runs past the end
], ids=["0x1000 no byte", "0x0000 extra", "0x1000 extra", "0xfffc", "0x0001", "cut text"])
def test_a_malformed_property_list_is_541(raw: bytes) -> None:
    with pytest.raises(InternalError):
        Message("", "q", raw, b"").validate()


@pytest.mark.parametrize("raw", [b"\x10\x00\x09", b"\x18\x00\x00\x05"])
def test_an_unknown_delivery_mode_is_406(raw: bytes) -> None:
    with pytest.raises(PreconditionFailed, match="delivery_mode_unknown"):
        Message("", "q", raw, b"").validate()


@pytest.mark.parametrize("props", [
    Properties(), Properties(delivery_mode=1), Properties(delivery_mode=2),
    Properties(content_type="t", delivery_mode=2, headers={"a": {"b": [1]}}, priority=255),
])
def test_well_formed_property_lists_pass(props: Properties) -> None:
    Message("", "q", props.encode(), b"").validate()
