"""leveret.amqp.frames: the frame envelope, FrameBuffer, content headers and body splitting."""

from __future__ import annotations

import math
import struct

import pytest
from amqp_strategies import utf8_text
from hypothesis import given
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

from leveret.amqp import fields, frames, spec
from leveret.errors import FrameError


def frame(ftype: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + end


def parse_all(data: bytes, frame_max: int = 1 << 20) -> list[tuple[int, int, bytes]]:
    buf = frames.FrameBuffer(frame_max)
    buf.feed(data)
    out = []
    while (f := buf.next_frame()) is not None:
        out.append(f)
    assert len(buf) == 0, "bytes left over"
    return out


# ------------------------------------------------------------------ constants

def test_constants():
    assert frames.PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
    assert frames.HEARTBEAT_FRAME == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert pframe.marshal(pheartbeat.Heartbeat(), 0) == frames.HEARTBEAT_FRAME
    assert (frames.METHOD, frames.HEADER, frames.BODY, frames.HEARTBEAT) == (1, 2, 3, 8)
    assert frames.FRAME_END == 0xCE
    assert frames.FRAME_MIN_SIZE == 4096
    assert frames.DEFAULT_FRAME_MAX == 131072  # what RabbitMQ 3.x offers in connection.tune


# ------------------------------------------------------------------ FrameBuffer

def test_frame_buffer_yields_nothing_until_a_frame_is_complete():
    data = frame(1, 3, b"\x00\x5a\x00\x0a")
    buf = frames.FrameBuffer()
    for i, byte in enumerate(data):
        assert buf.next_frame() is None
        buf.feed(bytes([byte]))
        assert len(buf) == i + 1
    assert buf.next_frame() == (1, 3, b"\x00\x5a\x00\x0a")
    assert buf.next_frame() is None
    assert len(buf) == 0


def test_frame_buffer_several_frames_in_one_feed_and_compact():
    data = frame(1, 1, b"a") + frames.HEARTBEAT_FRAME + frame(3, 2, b"") + frame(2, 9, b"xyz")
    buf = frames.FrameBuffer()
    buf.feed(data + b"\x01\x00")  # and the start of a fifth
    assert buf.next_frame() == (1, 1, b"a")
    assert buf.next_frame() == (8, 0, b"")
    buf.compact()
    assert buf.next_frame() == (3, 2, b"")
    assert buf.next_frame() == (2, 9, b"xyz")
    assert buf.next_frame() is None
    buf.compact()
    assert len(buf) == 2
    buf.feed(b"\x07\x00\x00\x00\x01Z\xce")
    assert buf.next_frame() == (1, 7, b"Z")


def test_frame_buffer_take_protocol_header():
    buf = frames.FrameBuffer()
    buf.feed(b"AMQP\x00\x00")
    assert buf.take(8) is None
    buf.feed(b"\x09\x01" + frames.HEARTBEAT_FRAME)
    assert buf.take(8) == frames.PROTOCOL_HEADER
    assert buf.next_frame() == (8, 0, b"")


def test_frame_buffer_payload_is_bytes():
    buf = frames.FrameBuffer()
    buf.feed(frame(1, 1, b"abc"))
    _, _, payload = buf.next_frame()
    assert type(payload) is bytes


@pytest.mark.parametrize("end", [b"\x00", b"\xcd", b"\xff", b"A"])
def test_bad_frame_end_raises_frame_error(end):
    buf = frames.FrameBuffer()
    buf.feed(frame(1, 1, b"\x00\x0a\x00\x33", end=end))
    with pytest.raises(FrameError):
        buf.next_frame()


def test_frame_end_checked_even_for_empty_payloads():
    buf = frames.FrameBuffer()
    buf.feed(b"\x08\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(FrameError):
        buf.next_frame()


def test_frame_max_is_enforced_on_the_header_alone():
    """A frame larger than frame_max is refused as soon as its size is known."""
    buf = frames.FrameBuffer(frame_max=4096)
    buf.feed(struct.pack(">BHI", 3, 1, 4097))  # 4097 > 4096: no need to wait for it
    with pytest.raises(FrameError, match=r"\{frame_too_large,4097,4088\}"):
        buf.next_frame()


@pytest.mark.parametrize("size", [4088, 4096])
def test_payloads_up_to_frame_max_are_accepted(size):
    """frame_max bounds the payload, as RabbitMQ reads it: a body frame of frame_max bytes
    (AMQPStorm sends them) is no error, though the frame is 8 bytes longer."""
    buf = frames.FrameBuffer(frame_max=4096)
    buf.feed(frame(3, 1, b"x" * size))
    assert buf.next_frame() == (3, 1, b"x" * size)


@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 8]), st.integers(0, 65535),
                          st.binary(max_size=300)), max_size=10),
       st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_frame_buffer_reassembles_any_split(frames_in, cuts):
    data = b"".join(frame(*f) for f in frames_in)
    buf = frames.FrameBuffer(1 << 20)
    got = []
    pos = 0
    i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        buf.feed(data[pos:pos + step])
        pos += step
        i += 1
        while (f := buf.next_frame()) is not None:
            got.append(f)
        if i % 3 == 0:
            buf.compact()
    assert got == frames_in
    assert len(buf) == 0


@given(st.binary(max_size=60))
def test_frame_buffer_on_garbage_raises_only_frame_error(garbage):
    buf = frames.FrameBuffer(frame_max=4096)
    buf.feed(garbage)
    try:
        while buf.next_frame() is not None:
            pass
    except FrameError:
        pass


# ------------------------------------------------------------------ methods

def test_encode_method_golden():
    assert frames.encode_method(1, spec.BasicAck(delivery_tag=7, multiple=True)) == (
        b"\x01\x00\x01\x00\x00\x00\x0d\x00\x3c\x00\x50\x00\x00\x00\x00\x00\x00\x00\x07\x01\xce")
    assert frames.encode_method(0, spec.ConnectionCloseOk()) == (
        b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce")


@given(st.integers(0, 65535), utf8_text(255), st.integers(0, 2**63 - 1), st.booleans())
def test_encode_method_agrees_with_pamqp(channel, tag, delivery_tag, redelivered):
    m = spec.BasicDeliver(consumer_tag=tag, delivery_tag=delivery_tag, redelivered=redelivered,
                          exchange="amq.topic", routing_key="a.b")
    data = frames.encode_method(channel, m)
    consumed, ch, theirs = pframe.unmarshal(data)
    assert (consumed, ch) == (len(data), channel)
    assert (theirs.consumer_tag, theirs.delivery_tag, theirs.redelivered) == (
        tag, delivery_tag, redelivered)


# ------------------------------------------------------------------ content

def test_content_golden_empty_body_has_no_body_frame():
    props = spec.Properties(delivery_mode=2).encode()
    assert frames.encode_content(5, 60, props, b"", 131072) == (
        b"\x02\x00\x05\x00\x00\x00\x0f\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x10\x00\x02\xce")


def test_content_golden_split_body():
    data = frames.encode_content(1, 60, b"\x00\x00", b"abcdefghij", 12)  # 4 bytes per frame
    assert data == (
        b"\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00" + b"\x00" * 7 + b"\x0a\x00\x00\xce"
        b"\x03\x00\x01\x00\x00\x00\x04abcd\xce"
        b"\x03\x00\x01\x00\x00\x00\x04efgh\xce"
        b"\x03\x00\x01\x00\x00\x00\x02ij\xce")


@given(st.binary(max_size=30_000), st.sampled_from([9, 12, 100, 4096, 8192, 131072]),
       st.integers(0, 65535))
def test_content_is_split_by_frame_max(body, frame_max, channel):
    props = spec.Properties(content_type="application/octet-stream").encode()
    data = frames.encode_content(channel, 60, props, body, frame_max)
    parsed = parse_all(data, frame_max=max(frame_max, 12 + len(props) + 8))
    (htype, hch, hpayload), *bodies = parsed
    assert (htype, hch) == (frames.HEADER, channel)
    assert frames.parse_content_header(hpayload) == (60, len(body), props)
    chunk = frame_max - 8
    assert len(bodies) == math.ceil(len(body) / chunk)
    assert all(t == frames.BODY and c == channel for t, c, _ in bodies)
    assert all(len(p) == chunk for _, _, p in bodies[:-1])  # full frames but the last
    assert b"".join(p for _, _, p in bodies) == body


@given(st.binary(max_size=20_000), st.sampled_from([4096, 131072]))
def test_content_frames_agree_with_pamqp(body, frame_max):
    props = spec.Properties(message_id="m", headers={"k": [1, "v"]}, priority=3)
    data = frames.encode_content(2, 60, props.encode(), body, frame_max)
    pos = 0
    _, ch, header = pframe.unmarshal(data)
    assert isinstance(header, pheader.ContentHeader)
    assert (header.body_size, header.properties.message_id) == (len(body), "m")
    assert header.properties.headers == {"k": [1, "v"]}
    pos = 12 + len(props.encode()) + 8
    received = b""
    while pos < len(data):
        consumed, ch, piece = pframe.unmarshal(data[pos:])
        assert isinstance(piece, pbody.ContentBody) and ch == 2
        received += piece.value
        pos += consumed
    assert received == body


@pytest.mark.parametrize("frame_max", [0, 8])
def test_content_with_unusable_frame_max_never_loses_the_body(frame_max):
    try:
        data = frames.encode_content(1, 60, b"\x00\x00", b"abc", frame_max)
    except ValueError as exc:
        pytest.fail(f"ValueError: {exc}")
    assert b"".join(p for t, _, p in parse_all(data) if t == frames.BODY) == b"abc"


def test_parse_content_header_golden():
    payload = b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x90\x00\x04text\x01"
    assert frames.parse_content_header(payload) == (60, 65536, b"\x90\x00\x04text\x01")


@pytest.mark.parametrize("payload", [b"", b"\x00\x3c", b"\x00\x3c" + b"\x00" * 10,
                                     b"\x00\x3c" + b"\x00" * 11])
def test_content_header_too_short_raises_frame_error(payload):
    with pytest.raises(FrameError):
        frames.parse_content_header(payload)


# ------------------------------------------------------------------ hot-path encoders

hot_path = pytest.mark.skipif(
    not (hasattr(frames, "encode_deliver") and hasattr(frames, "encode_get_ok")),
    reason="no hand-written deliver/get-ok encoders in leveret.amqp.frames")


@hot_path
@given(utf8_text(255), utf8_text(100), utf8_text(100), st.integers(0, 2**64 - 1),
       st.booleans(), st.binary(max_size=10_000), st.sampled_from([0, 100, 4096, 131072]))
def test_encode_deliver_matches_the_generated_codec(tag, exchange, key, delivery_tag,
                                                    redelivered, body, frame_max):
    props = spec.Properties(content_type="t", headers={"a": 1}).encode()
    fast = frames.encode_deliver(3, fields.encode_shortstr(tag), delivery_tag, redelivered,
                                 frames.route_bytes(exchange, key), props, body, frame_max)
    slow = frames.encode_method(3, spec.BasicDeliver(
        consumer_tag=tag, delivery_tag=delivery_tag, redelivered=redelivered,
        exchange=exchange, routing_key=key)) + frames.encode_content(3, 60, props, body,
                                                                     frame_max)
    assert fast == slow


@hot_path
@given(utf8_text(100), utf8_text(100), st.integers(0, 2**64 - 1), st.booleans(),
       st.integers(0, 2**32 - 1), st.binary(max_size=10_000))
def test_encode_get_ok_matches_the_generated_codec(exchange, key, delivery_tag, redelivered,
                                                   count, body):
    props = b"\x00\x00"
    fast = frames.encode_get_ok(1, delivery_tag, redelivered, frames.route_bytes(exchange, key),
                                count, props, body, 4096)
    slow = frames.encode_method(1, spec.BasicGetOk(
        delivery_tag=delivery_tag, redelivered=redelivered, exchange=exchange,
        routing_key=key, message_count=count)) + frames.encode_content(1, 60, props, body, 4096)
    assert fast == slow


def _publish_or_error(decode: object, payload: bytes) -> object:
    try:
        m = decode(payload)  # type: ignore[operator]
    except Exception:
        return "refused"
    return (m.ticket, m.exchange, m.routing_key, m.mandatory, m.immediate)


_PUBLISH_IDS = b"\x00\x3c\x00\x28"


@given(st.integers(0, 0xFFFF), st.binary(max_size=255), st.binary(max_size=255),
       st.integers(0, 255))
def test_decode_publish_matches_the_generated_codec(ticket, exchange, key, bits):
    """Any exchange and routing key bytes (UTF-8 or not) and any bits byte."""
    payload = _PUBLISH_IDS + ticket.to_bytes(2, "big") + bytes([len(exchange)]) + exchange + \
        bytes([len(key)]) + key + bytes([bits])
    fast = _publish_or_error(frames.decode_publish, payload)
    assert fast == _publish_or_error(lambda p: spec.BasicPublish.decode(p, 4), payload)
    assert fast != "refused"


@given(st.binary(max_size=40), st.integers(0, 40), st.binary(max_size=3))
def test_decode_publish_refuses_what_the_generated_codec_refuses(tail, cut, extra):
    """Truncated, overrunning and trailing arguments: refused by both, or read alike."""
    good = _PUBLISH_IDS + b"\x00\x00\x03abc\x02rk\x01"
    for payload in (_PUBLISH_IDS + tail, good[:cut], good + extra):
        assert _publish_or_error(frames.decode_publish, payload) == \
            _publish_or_error(lambda p: spec.BasicPublish.decode(p, 4), payload)


@pytest.mark.skipif(not hasattr(frames, "erlang_binary"), reason="no erlang_binary")
@pytest.mark.parametrize(("data", "text"), [
    # as they appear in RabbitMQ 3.10 FRAME_ERROR reply texts
    (b"hi", '<<"hi">>'),
    (b"", "<<>>"),
    (b"\x00\x32\x00\x0a\x00\x00\x14compat-ba",
     "<<0,50,0,10,0,0,20,99,111,109,112,97,116,45,98,97>>"),
])
def test_erlang_binary(data, text):
    assert frames.erlang_binary(data) == text


# ------------------------------------------------------------------ large frames

def _payloads(buf: frames.FrameBuffer) -> list[bytes]:
    """The payloads of the whole frames buffered (each its own bytes), then a compact."""
    got = []
    while (f := buf.next_frame()) is not None:
        assert type(f[2]) is bytes
        got.append(f[2])
    buf.compact()
    return got


@given(st.lists(st.integers(0, 140000), min_size=1, max_size=4),
       st.lists(st.integers(1, 70000), min_size=1, max_size=12),
       st.lists(st.integers(1, 4), min_size=1, max_size=5))
def test_frame_buffer_large_frames_fed_in_bursts(sizes, cuts, bursts):
    """Frames up to twice 64 KiB, cut anywhere and fed a few reads at a time before
    parsing: every payload comes out whole, and nothing is left over."""
    bodies = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    data = b"".join(frame(3, 1, b) for b in bodies)
    buf = frames.FrameBuffer(1 << 20)
    got: list[bytes] = []
    pos = i = 0
    while pos < len(data):
        for _ in range(bursts[i % len(bursts)]):
            step = cuts[i % len(cuts)]
            buf.feed(data[pos:pos + step])
            pos += step
            i += 1
        got += _payloads(buf)
    assert got == bodies
    assert len(buf) == 0


def _read_into(buf: frames.FrameBuffer, data: bytes, most: int) -> None:
    """What a BufferedProtocol transport does: recv_into ``get_buffer``'s room, at most
    ``most`` bytes a read, then ``buffer_updated``."""
    pos = 0
    while pos < len(data):
        room = buf.get_buffer(-1)
        assert len(room) >= frames.MIN_READ
        k = min(len(room), most, len(data) - pos)
        room[:k] = data[pos:pos + k]
        buf.buffer_updated(k)
        pos += k


@given(st.lists(st.integers(0, 300000), min_size=1, max_size=6),
       st.integers(1, 300000))
def test_frame_buffer_reads_straight_into_its_ring(sizes, most):
    """Reads land in the ring in pieces of any size; frames (up to beyond the ring's size,
    as a large frame_max allows) come out whole and as bytes."""
    bodies = [bytes([i % 251]) * n for i, n in enumerate(sizes)] + [b"m"]
    data = b"".join(frame(3, 1, b) for b in bodies)
    buf = frames.FrameBuffer(1 << 20)
    got: list[bytes] = []
    for start in range(0, len(data), most):
        _read_into(buf, data[start:start + most], most)
        got += _payloads(buf)
    assert got == bodies
    assert len(buf) == 0


def test_frame_buffer_room_for_the_whole_of_a_frame_begun():
    """Once a frame's header is in, the next read has room for all the rest of it."""
    buf = frames.FrameBuffer(1 << 20)
    data = frame(3, 1, b"b" * 200000)
    room = buf.get_buffer(-1)
    room[:100] = data[:100]
    buf.buffer_updated(100)
    assert buf.next_frame() is None
    buf.compact()
    assert len(buf.get_buffer(-1)) >= len(data) - 100


def test_frame_buffer_does_not_set_aside_what_a_header_announces():
    """With a large frame_max, a header announcing a frame of 1 GiB makes the buffer grow
    with what arrives, not by 1 GiB."""
    buf = frames.FrameBuffer(1 << 31)
    _read_into(buf, struct.pack(">BHI", 3, 1, 1 << 30) + bytes(100), 1 << 20)
    assert buf.next_frame() is None
    buf.compact()
    assert len(buf.get_buffer(-1)) <= frames.RING_SIZE
    _read_into(buf, bytes(2 << 20), 1 << 20)
    assert len(buf._ring) <= 8 << 20


def test_frame_buffer_holds_no_ring_between_reads():
    """An idle connection holds no 256 KiB ring: after a batch, nothing is kept when all
    was read, and the start of a frame is kept in a buffer of its own size."""
    buf = frames.FrameBuffer()
    _read_into(buf, frame(1, 1, b"abc") * 3 + b"\x01\x00\x01", 1 << 20)
    assert [buf.next_frame() for _ in range(3)] == [(1, 1, b"abc")] * 3
    assert buf.next_frame() is None
    buf.compact()
    assert len(buf) == 3 and len(buf._ring) == 3
    _read_into(buf, b"\x00\x00\x00\x02hi\xce", 1 << 20)
    assert buf.next_frame() == (1, 1, b"hi")
    buf.compact()
    assert len(buf) == 0 and len(buf._ring) == 0
    buf.release()  # and a released buffer can be used again
    _read_into(buf, frames.HEARTBEAT_FRAME, 1 << 20)
    assert buf.next_frame() == (8, 0, b"")


def test_frame_buffer_header_split_across_reads():
    data = frame(1, 5, b"abc") + frame(3, 5, b"x" * 5000)
    for cut in range(1, 14):
        buf = frames.FrameBuffer()
        buf.feed(data[:cut])
        buf.feed(data[cut:cut + 3])
        buf.feed(data[cut + 3:])
        assert buf.next_frame() == (1, 5, b"abc")
        assert buf.next_frame() == (3, 5, b"x" * 5000)
        assert buf.next_frame() is None and len(buf) == 0


def test_frame_buffer_bad_frame_end_after_a_split_frame():
    data = frame(3, 1, b"q" * 9000, end=b"\x00")
    buf = frames.FrameBuffer()
    buf.feed(data[:5000])
    buf.feed(data[5000:])
    with pytest.raises(FrameError, match="invalid_frame_end_marker"):
        buf.next_frame()


@pytest.mark.parametrize("size", [frames.LARGE_BODY, 65536, 131064])
def test_deliver_head_is_encode_deliver_before_the_body(size):
    body = bytes(range(256)) * (size // 256) + b"t" * (size % 256)
    route = frames.route_bytes("amq.direct", "key")
    tag_frame = b"\x04ctag"
    head = frames.encode_deliver_head(3, tag_frame, 77, True, route, b"\x10\x00\x02", size)
    whole = frames.encode_deliver(3, tag_frame, 77, True, route, b"\x10\x00\x02", body,
                                  131072)
    assert head + body + frames.FRAME_END_BYTE == whole
