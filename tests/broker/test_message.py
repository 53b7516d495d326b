"""Messages keep their properties as sent; direct reply-to rewrites only reply_to."""

from __future__ import annotations

import pytest

from leveret.amqp.spec import Properties
from leveret.broker.message import Message


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


def test_persistent_flag() -> None:
    assert Message("", "", Properties(delivery_mode=2).encode(), b"").persistent
    assert not Message("", "", Properties(delivery_mode=1).encode(), b"").persistent
    assert not Message("", "", b"\x00\x00", b"").persistent
