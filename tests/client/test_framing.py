"""The receive path without a broker: every way a byte stream can be cut into reads."""

from __future__ import annotations

import pytest

from leveret.amqp import frames, spec
from leveret.client import Channel, Connection, ConnectionClosed, parse_url


def _delivery(tag: int, body: bytes, frame_max: int = 4096) -> bytes:
    method = spec.BasicDeliver("ctag", tag, tag % 2 == 0, "amq.direct", f"rk{tag}")
    props = spec.Properties(content_type="text/plain", priority=tag % 10).encode()
    return frames.encode_method(1, method) + frames.encode_content(1, 60, props, body,
                                                                   frame_max)  # fmt: skip


def _client() -> tuple[Connection, Channel, list[tuple[object, ...]]]:
    conn = Connection(parse_url("amqp://localhost/"))
    conn.frame_max = 4096
    conn._opening = False
    chan = Channel(conn, 1)
    conn._channels[1] = chan
    got: list[tuple[object, ...]] = []
    chan._consumers[b"ctag"] = lambda *args: got.append(args)
    return conn, chan, got


BODIES = [b"", b"a", b"hello world" * 3, bytes(range(256)) * 40]  # the last spans 3 frames


async def test_every_split_point_gives_the_same_messages() -> None:
    stream = b"".join(_delivery(i + 1, body) for i, body in enumerate(BODIES))
    stream += frames.HEARTBEAT_FRAME + frames.encode_method(1, spec.BasicAck(2, True))
    expected = [
        (i + 1, (i + 1) % 2 == 0, "amq.direct", f"rk{i + 1}",
         spec.Properties(content_type="text/plain", priority=(i + 1) % 10).encode(), body)
        for i, body in enumerate(BODIES)
    ]  # fmt: skip
    for step in [1, 2, 3, 7, 50, 4099, len(stream)]:
        conn, chan, got = _client()
        chan._confirm = True
        chan._unconfirmed = {1, 2, 3}
        chan._seq = 3
        for start in range(0, len(stream), step):
            conn.data_received(stream[start : start + step])
        assert got == expected, f"split every {step} bytes"
        assert (chan.acked, chan.unconfirmed) == (2, 1)
        assert conn._closed is None


async def test_malformed_frame_closes_the_connection() -> None:
    conn, _chan, _got = _client()
    bad = bytearray(_delivery(1, b"x"))
    bad[-1] = 0x00  # a wrong frame-end byte on the body frame
    conn.data_received(bytes(bad) + b"\x00" * 8)
    assert isinstance(conn._closed, ConnectionClosed)
    assert conn._closed.reply_code in (501, 505)


async def test_oversized_frame_is_refused() -> None:
    conn, _chan, _got = _client()
    conn.data_received(b"\x03\x00\x01\x00\x10\x00\x00" + b"\x00" * 10)  # 1 MiB body frame
    assert isinstance(conn._closed, ConnectionClosed)


@pytest.mark.parametrize("multiple", [True, False])
async def test_confirms_settle_ranges(multiple: bool) -> None:
    _conn, chan, _got = _client()
    chan._confirm = True
    chan._unconfirmed = set(range(1, 11))
    chan._seq = 10
    chan._on_confirm(3, False, False)  # nack 3 alone
    chan._on_confirm(6, multiple, True)
    assert chan.nacked == 1
    assert chan.acked == (5 if multiple else 1)
    assert chan.unconfirmed == (4 if multiple else 8)
