"""The receive path without a broker: every way a byte stream can be cut into reads."""

from __future__ import annotations

import pytest

from leveret.amqp import frames, spec
from leveret.amqp.connection import ChannelState, ConnectionState
from leveret.client import Channel, Connection, ConnectionClosed, parse_url


def _delivery(tag: int, body: bytes, frame_max: int = 4096) -> bytes:
    method = spec.BasicDeliver("ctag", tag, tag % 2 == 0, "amq.direct", f"rk{tag}")
    props = spec.Properties(content_type="text/plain", priority=tag % 10).encode()
    return frames.encode_method(1, method) + frames.encode_content(1, 60, props, body,
                                                                   frame_max)  # fmt: skip


def _client(frame_max: int = 4096) -> tuple[Connection, Channel, list[tuple[object, ...]]]:
    """A client whose handshake is done (frame_max 4096) and channel 1 open, no socket."""
    conn = Connection(parse_url("amqp://localhost/"))
    amqp = conn._amqp
    amqp.state = ConnectionState.TUNE_OK
    conn.frame_max = frame_max
    amqp.send(0, spec.ConnectionTuneOk(2047, frame_max, 0))
    amqp.send(0, spec.ConnectionOpen("/"))
    amqp.receive_data(frames.encode_method(0, spec.ConnectionOpenOk()))
    chan = Channel(conn, 1)
    conn._channels[1] = chan
    amqp.send(1, spec.ChannelOpen())
    amqp.receive_data(frames.encode_method(1, spec.ChannelOpenOk()))
    assert amqp.channels[1].state is ChannelState.OPEN
    conn._wbuf.clear()
    got: list[tuple[object, ...]] = []
    chan._consumers[b"ctag"] = lambda *args: got.append(args)
    return conn, chan, got


BODIES = [b"", b"a", b"hello world" * 3, bytes(range(256)) * 40]  # the last spans 3 frames


@pytest.mark.parametrize("lane", [True, False], ids=["fast lane", "table only"])
async def test_every_split_point_gives_the_same_messages(lane: bool) -> None:
    stream = b"".join(_delivery(i + 1, body) for i, body in enumerate(BODIES))
    stream += frames.HEARTBEAT_FRAME + frames.encode_method(1, spec.BasicAck(2, True))
    expected = [
        (i + 1, (i + 1) % 2 == 0, "amq.direct", f"rk{i + 1}",
         spec.Properties(content_type="text/plain", priority=(i + 1) % 10).encode(), body)
        for i, body in enumerate(BODIES)
    ]  # fmt: skip
    for step in [1, 2, 3, 7, 50, 4099, len(stream)]:
        conn, chan, got = _client()
        if not lane:  # every frame through the machine's tables, no hand-written parsing
            conn._amqp.fast_methods.clear()
            machine = conn._amqp
            conn._fast_lane = (  # type: ignore[method-assign]
                lambda data, pos, machine=machine: machine.receive_data(data[pos:]))
        chan._confirm = True
        chan._unconfirmed = {1, 2, 3}
        chan._seq = 3
        for start in range(0, len(stream), step):
            conn.data_received(stream[start : start + step])
        assert got == expected, f"split every {step} bytes"
        assert (chan.acked, chan.unconfirmed) == (2, 1)
        assert conn._closed is None


LARGE = [bytes(range(256)) * 256, b"small", bytes(range(7, 250)) * 300, b"x" * 70000]


@pytest.mark.parametrize("step", [1000, 4096, 65536, 65551, 100000, 262144])
async def test_large_bodies_in_reads_of_any_size(step: int) -> None:
    """64 KiB-class bodies in one frame each (frame_max 128 KiB), in reads that end inside
    their frames: the unfinished frame is completed from the next read, the rest of that
    read parsed where it is; every body arrives whole, as bytes."""
    frame_max = 131072
    stream = b"".join(_delivery(i + 1, body, frame_max) for i, body in enumerate(LARGE))
    conn, _chan, got = _client(frame_max)
    for start in range(0, len(stream), step):
        conn.data_received(stream[start : start + step])
    assert [(g[0], g[-1]) for g in got] == [(i + 1, b) for i, b in enumerate(LARGE)]
    assert all(type(g[-1]) is bytes for g in got)
    assert conn._tail == b"" and conn._closed is None


async def test_large_bodies_are_published_uncopied_beside_the_frames() -> None:
    conn, chan, _got = _client(131072)
    publish = chan.publisher("", "q")
    bodies = [b"a" * 70000, b"tiny", b"b" * (frames.LARGE_BODY + 1)]
    for body in bodies:
        publish(body)
    assert conn._wparts[1] is bodies[0]  # the body object itself, not a copy
    written = b"".join([*conn._wparts, conn._wbuf])
    buf = frames.FrameBuffer(1 << 20)
    buf.feed(written)
    got = []
    while (frame := buf.next_frame()) is not None:
        if frame[0] == frames.BODY:
            got.append(frame[2])
    assert got == bodies


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


def _sent(conn: Connection) -> list[spec.Method]:
    buf = frames.FrameBuffer(1 << 20)
    buf.feed(bytes(conn._wbuf))
    found = []
    while (frame := buf.next_frame()) is not None:
        found.append(spec.METHODS[int.from_bytes(frame[2][:4], "big")].decode(frame[2], 4))
    return found


async def test_server_channel_close_is_answered_and_closes_the_channel() -> None:
    conn, chan, got = _client()
    conn.data_received(frames.encode_method(1, spec.ChannelClose(404, "NOT_FOUND - no queue",
                                                                 50, 10)) + _delivery(1, b"x"))
    assert _sent(conn) == [spec.ChannelCloseOk()]
    assert chan.is_closed and chan._closed is not None and chan._closed.reply_code == 404
    assert 1 not in conn._channels
    # the delivery after it names a channel that no longer exists: a protocol error
    assert isinstance(conn._closed, ConnectionClosed) and conn._closed.reply_code == 504
    assert got == []


async def test_content_out_of_order_closes_the_connection_with_505() -> None:
    conn, _chan, _got = _client()
    deliver = frames.encode_method(1, spec.BasicDeliver("ctag", 1, False, "", "q"))
    conn.data_received(deliver + deliver)
    assert isinstance(conn._closed, ConnectionClosed)
    assert (conn._closed.reply_code, conn._closed.reply_text) == (
        505, "UNEXPECTED_FRAME - expected content header for class 60, got non content "
        "header frame instead")


async def test_a_frame_over_frame_max_is_refused_by_the_machine() -> None:
    conn, _chan, _got = _client()
    conn.data_received(_delivery(1, b"x") + b"\x03\x00\x01\x00\x00\x20\x00" + bytes(100))
    assert isinstance(conn._closed, ConnectionClosed)
    assert conn._closed.reply_text == ("FRAME_ERROR - type 3, all octets = <<>>: "
                                       "{frame_too_large,8192,4088}")
