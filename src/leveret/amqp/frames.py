"""AMQP 0-9-1 framing: the frame envelope, heartbeats, content headers and body splitting.

A frame is ``type:octet channel:short size:long payload:size frame-end:octet(0xCE)``.
``FrameBuffer`` is where a connection's socket reads land (asyncio's BufferedProtocol) and
hands out whole frames, each payload copied once.
The frame types and sizes come from the generated spec (one source of truth), under the
short names the connection code uses.
"""

from __future__ import annotations

import struct
from typing import Final

from leveret.amqp import spec
from leveret.errors import FrameError

# Final: mypyc (leveret/build.py) makes them constants, not a module lookup per use.
METHOD: Final = spec.FRAME_METHOD  # 1
HEADER: Final = spec.FRAME_HEADER  # 2
BODY: Final = spec.FRAME_BODY  # 3
HEARTBEAT: Final = spec.FRAME_HEARTBEAT  # 8
FRAME_END: Final = spec.FRAME_END  # 0xCE
FRAME_MIN_SIZE: Final = spec.FRAME_MIN_SIZE  # 4096
# The largest frame_max leveret offers: RabbitMQ's default (128 KiB).
DEFAULT_FRAME_MAX: Final = 131072

_FRAME_HEAD: Final = struct.Struct(">BHI")
FRAME_END_BYTE: Final = bytes((FRAME_END,))
PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_FRAME: Final = _FRAME_HEAD.pack(HEARTBEAT, 0, 0) + FRAME_END_BYTE
_METHOD_HEAD: Final = struct.Struct(">BHIHH")  # frame header + class id + method id
_CONTENT_HEAD: Final = struct.Struct(">BHIHHQ")  # frame header + class, weight, body size
_II: Final = struct.Struct(">I")


# The receive buffer (``FrameBuffer``): a socket read goes straight into it (asyncio's
# BufferedProtocol), not into a bytes object the frames are then copied out of again. Its
# 256 KiB rings are what uvloop reads at once; a connection holds one only while bytes wait in
# it (a few are kept in ``_POOL`` for the next), so an idle connection holds none.
RING_SIZE: Final = 256 << 10
POOL_MAX: Final = 4
# A read is offered at least this much room; with less left at the end of the ring, what is
# unread moves to the front of another ring first.
MIN_READ: Final = 16 << 10
# Small frames are sliced out of one bytes copy of up to this much of the ring (one copy for
# some twenty small messages); a frame that does not fit in that copy is copied once, straight
# out of the ring: a 64 KiB body costs one copy, not two.
SNAPSHOT: Final = 2048
# After a batch, unread bytes up to this many (the start of a frame still arriving) move to a
# buffer of their own size and the ring goes back to the pool.
SPILL: Final = 16 << 10

_POOL: list[bytearray] = []
_NO_BYTES: Final = bytearray()


def _acquire_ring() -> bytearray:
    try:
        return _POOL.pop()  # (one call: atomic where a client and a broker share a process)
    except IndexError:
        return bytearray(RING_SIZE)


class FrameBuffer:
    """Received bytes waiting to be parsed into frames.

    A socket read lands in the ring: ``get_buffer`` offers the free space after the bytes
    not yet read (from ``_r`` to ``_w``), ``buffer_updated`` takes what arrived (``feed``
    copies bytes in the same way). ``next_frame`` returns ``(frame_type, channel, payload)``
    or None when more bytes are needed; every payload is its own bytes object, copied once
    (small ones as a slice of ``_snap``, a bytes copy of the ring from ``_snap_at``).
    ``compact`` after a batch gives the ring back once nothing, or only the start of a frame,
    is left in it.
    """

    __slots__ = ("_r", "_ring", "_snap", "_snap_at", "_view", "_w", "frame_max")

    def __init__(self, frame_max: int = DEFAULT_FRAME_MAX) -> None:
        self._ring = _NO_BYTES
        self._view = memoryview(_NO_BYTES)
        self._r = 0
        self._w = 0
        self._snap = b""
        self._snap_at = 0
        self.frame_max = frame_max

    # -- receiving into the ring ---------------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next read goes: room for at least ``MIN_READ`` (or ``sizehint``) bytes,
        and for the whole of a frame whose start has arrived."""
        w = self._w
        if w and self._r == w:  # all read: start again at the front
            self._r = self._w = w = 0
            self._snap = b""
        if len(self._ring) - w < MIN_READ:
            self._make_room(sizehint)
            w = self._w
        return self._view[w:]

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` arrived where ``get_buffer`` said."""
        self._w += nbytes

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Copy received bytes in (a caller that reads into ``get_buffer`` copies none)."""
        view = memoryview(data)
        n = len(view)
        done = 0
        while done < n:
            room = self.get_buffer(n - done)
            k = min(len(room), n - done)
            room[:k] = view[done : done + k]
            self._w += k
            done += k

    def _make_room(self, sizehint: int) -> None:
        """Move the unread bytes to the front of another ring with room after them."""
        r = self._r
        w = self._w
        pending = w - r
        want = pending + max(sizehint, MIN_READ)
        if pending >= 7:  # a frame has begun: room for all of it, up to a ring's size;
            # past that (a large frame_max) twice what has arrived, so a header alone never
            # makes us set aside what it announces
            size: int = _FRAME_HEAD.unpack_from(self._ring, r)[2]
            if size <= self.frame_max:  # (next_frame refuses a larger one)
                want = max(want, size + 8 if size + 8 <= RING_SIZE
                           else min(size + 8, 2 * pending))
        ring = _acquire_ring() if want <= RING_SIZE else bytearray(want)
        view = memoryview(ring)
        if pending:
            view[:pending] = self._view[r:w]
        self.release()
        self._ring = ring
        self._view = view
        self._r = 0
        self._w = pending

    def release(self) -> None:
        """Drop what is buffered and give the ring back (the buffer can be used again)."""
        ring = self._ring
        if len(ring) == RING_SIZE and len(_POOL) < POOL_MAX:
            _POOL.append(ring)
        self._ring = _NO_BYTES
        self._view = memoryview(_NO_BYTES)
        self._r = self._w = 0
        self._snap = b""

    def compact(self) -> None:
        """After a batch: give the ring back if nothing is left in it, or keep only the
        little that is (the start of a frame) in a buffer of its own."""
        pending = self._w - self._r
        if not pending:
            if self._ring is not _NO_BYTES:
                self.release()
        elif pending <= SPILL:
            self.shrink()

    @property
    def holds_ring(self) -> bool:
        """A ring (256 KiB or more) is held, with bytes in it still to be read."""
        return len(self._ring) >= RING_SIZE

    def shrink(self) -> None:
        """Keep only the unread bytes, in a buffer of their own size, and give the ring
        back: for a connection that stopped sending, whatever it sent before."""
        if len(self._ring) < RING_SIZE:
            return
        pending = self._w - self._r
        rest = bytearray(self._view[self._r : self._w]) if pending else _NO_BYTES
        self.release()
        if pending:
            self._ring = rest
            self._view = memoryview(rest)
            self._w = pending

    # -- reading frames ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._w - self._r

    def take(self, n: int) -> bytes | None:
        """Take ``n`` raw bytes (the protocol header), or None if not all arrived yet."""
        r = self._r
        if self._w - r < n:
            return None
        self._r = r + n
        return self._view[r : r + n].tobytes()

    def next_frame(self) -> tuple[int, int, bytes] | None:
        r = self._r
        avail = self._w - r
        if avail < 7:
            return None
        snap = self._snap
        off = r - self._snap_at
        if off < 0 or off + 7 > len(snap):
            snap = self._snap = self._view[r : r + min(avail, SNAPSHOT)].tobytes()
            self._snap_at = r
            off = 0
        ftype: int
        channel: int
        size: int
        ftype, channel, size = _FRAME_HEAD.unpack_from(snap, off)
        if size > self.frame_max:
            # RabbitMQ's limit and wording: frame_max bounds the payload, not the whole frame
            # (some clients, AMQPStorm among them, fill a body frame with frame_max bytes),
            # though the text names frame_max - 8 as the limit.
            raise FrameError(f"type {ftype}, all octets = <<>>: "
                             f"{{frame_too_large,{size},{self.frame_max - 8}}}")
        end = off + 7 + size
        if end < len(snap):  # the whole frame in the snapshot
            payload = snap[off + 7 : end]
            frame_end = snap[end]
        else:  # a large frame, or one past the snapshot's end: straight from the ring
            if avail < size + 8:
                return None
            start = r + 7
            payload = self._view[start : start + size].tobytes()
            frame_end = self._ring[start + size]
        self._r = r + 8 + size
        if frame_end != FRAME_END:
            prefix = f"type {ftype}, first 16 octets = {erlang_binary(payload[:16])}: "
            raise FrameError(prefix + erlang_tuple(len(prefix), "invalid_frame_end_marker",
                                                   str(frame_end)))
        return ftype, channel, payload


def erlang_binary(data: bytes) -> str:
    """Bytes as Erlang prints a binary (``<<"text">>`` or ``<<0,50,...>>``), the way
    RabbitMQ quotes offending input in its error texts."""
    if data and all(32 <= b < 127 for b in data):
        return '<<"' + data.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return "<<" + ",".join(str(b) for b in data) + ">>"


def erlang_tuple(column: int, *items: str) -> str:
    """A tuple as Erlang's ``~p`` lays it out starting at ``column``: on one line if it fits
    in 80 columns, else one element per line aligned after the brace."""
    flat = "{" + ",".join(items) + "}"
    if column + len(flat) <= 80:
        return flat
    return "{" + (",\n" + " " * (column + 1)).join(items) + "}"


def encode_method(channel: int, method: spec.Method) -> bytes:
    payload = method.encode()
    return _FRAME_HEAD.pack(METHOD, channel, len(payload)) + payload + FRAME_END_BYTE


def encode_content(
    channel: int, class_id: int, properties: bytes, body: bytes, frame_max: int
) -> bytes:
    """The content header frame and body frames for one message.

    ``properties`` is the encoded property list (flags + values), forwarded untouched from
    the publisher so every property and header round-trips byte for byte.
    """
    size = len(body)
    head = _CONTENT_HEAD.pack(HEADER, channel, 12 + len(properties), class_id, 0, size)
    if size == 0:
        return head + properties + FRAME_END_BYTE
    # frame_max 0 means "no limit"; nothing below 4096 can be negotiated, so treat any
    # value too small to carry a byte the same way rather than lose the body.
    chunk = frame_max - 8 if frame_max > 8 else max(size, 1)
    if size <= chunk:
        return b"".join(
            (head, properties, b"\xce\x03", channel.to_bytes(2, "big"), _II.pack(size), body,
             FRAME_END_BYTE)
        )
    parts: list[bytes | memoryview] = [head, properties, FRAME_END_BYTE]
    view = memoryview(body)
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        parts.append(_FRAME_HEAD.pack(BODY, channel, len(piece)))
        parts.append(piece)
        parts.append(FRAME_END_BYTE)
    return b"".join(parts)


def parse_content_header(payload: bytes) -> tuple[int, int, bytes]:
    """``(class_id, body_size, raw_properties)`` of a content header frame payload."""
    if len(payload) < 14:
        raise FrameError("content header frame too short")
    class_id, _weight, body_size = struct.unpack_from(">HHQ", payload, 0)
    return class_id, body_size, payload[12:]


_BASIC_PUBLISH: Final = spec.BasicPublish


def decode_publish(payload: bytes) -> spec.BasicPublish:
    """basic.publish's method frame payload (class and method ids first), hand-written for
    the hot path: what ``spec.BasicPublish.decode(payload, 4)`` returns, refusing exactly
    what it refuses (short, overrunning or trailing bytes), in a fifth of its work."""
    size = len(payload)
    if size < 9:  # ids, ticket, two short-string lengths, the bits
        raise FrameError("basic.publish: too short")
    key_at = 7 + payload[6]
    if key_at >= size:
        raise FrameError("basic.publish: exchange runs past the end of the frame")
    bits_at = key_at + 1 + payload[key_at]
    if bits_at + 1 != size:
        raise FrameError("basic.publish: routing key and bits do not fill the frame")
    bits = payload[bits_at]
    return _BASIC_PUBLISH((payload[4] << 8) | payload[5],
                             payload[7:key_at].decode("utf-8", "surrogateescape"),
                             payload[key_at + 1:bits_at].decode("utf-8", "surrogateescape"),
                             bits & 1 == 1, bits & 2 == 2)


_DELIVER_HEAD: Final = b"\x00\x3c\x00\x3c"  # basic.deliver: class 60, method 60
_GET_OK_HEAD: Final = b"\x00\x3c\x00\x47"  # basic.get-ok: class 60, method 71
_Q: Final = struct.Struct(">Q")
_QB: Final = struct.Struct(">QB")
_QI: Final = struct.Struct(">I")


# A short string's length octet, by length (no bytes([n]) list per string).
_LENGTH_OCTET: Final = tuple(bytes((n,)) for n in range(256))


def route_bytes(exchange: str, routing_key: str) -> bytes:
    """exchange and routing key as two short strings, the tail of deliver/get-ok/return."""
    e = exchange.encode("utf-8", "surrogateescape")
    r = routing_key.encode("utf-8", "surrogateescape")
    return _LENGTH_OCTET[len(e)] + e + _LENGTH_OCTET[len(r)] + r


def encode_deliver(channel: int, tag_frame: bytes, delivery_tag: int, redelivered: bool,
                   route: bytes, properties: bytes, body: bytes, frame_max: int) -> bytes:
    """basic.deliver + content header + body, hand-written for the hot path.

    A body that fits one frame (the common case) is framed here in one join, the numbers
    encoded with ``int.to_bytes`` (as fast as struct in CPython; a native operation when
    mypyc compiles this module, where a struct call is a generic one)."""
    size = len(body)
    if size == 0 or frame_max <= 8 or size > frame_max - 8:
        return b"".join((
            _FRAME_HEAD.pack(METHOD, channel, 13 + len(tag_frame) + len(route)), _DELIVER_HEAD,
            tag_frame, _QB.pack(delivery_tag, 1 if redelivered else 0), route, FRAME_END_BYTE,
            encode_content(channel, 60, properties, body, frame_max),
        ))
    ch = channel.to_bytes(2, "big")
    return b"".join((
        b"\x01", ch, (13 + len(tag_frame) + len(route)).to_bytes(4, "big"), _DELIVER_HEAD,
        tag_frame, delivery_tag.to_bytes(8, "big"), b"\x01" if redelivered else b"\x00", route,
        b"\xce\x02", ch, (12 + len(properties)).to_bytes(4, "big"), b"\x00\x3c\x00\x00",
        size.to_bytes(8, "big"), properties,
        b"\xce\x03", ch, size.to_bytes(4, "big"), body, b"\xce",
    ))


# A body at least this large is delivered as it was received, beside the frames around it
# (``encode_deliver_head``, then a vectored write), not copied into one join with them;
# smaller ones are cheaper joined (docs/benchmarks.md, "Large bodies without copies").
LARGE_BODY: Final = 16 << 10


def encode_deliver_head(channel: int, tag_frame: bytes, delivery_tag: int, redelivered: bool,
                        route: bytes, properties: bytes, size: int) -> bytes:
    """What ``encode_deliver`` frames before a body of ``size`` bytes that fits one frame
    (up to the body frame's header): for a large body written after it as it is, not
    copied into a join, followed by ``FRAME_END_BYTE``."""
    ch = channel.to_bytes(2, "big")
    return b"".join((
        b"\x01", ch, (13 + len(tag_frame) + len(route)).to_bytes(4, "big"), _DELIVER_HEAD,
        tag_frame, delivery_tag.to_bytes(8, "big"), b"\x01" if redelivered else b"\x00", route,
        b"\xce\x02", ch, (12 + len(properties)).to_bytes(4, "big"), b"\x00\x3c\x00\x00",
        size.to_bytes(8, "big"), properties,
        b"\xce\x03", ch, size.to_bytes(4, "big"),
    ))


def encode_get_ok(channel: int, delivery_tag: int, redelivered: bool, route: bytes,
                  message_count: int, properties: bytes, body: bytes, frame_max: int) -> bytes:
    size = 4 + 9 + len(route) + 4
    return b"".join((
        _FRAME_HEAD.pack(METHOD, channel, size), _GET_OK_HEAD,
        _QB.pack(delivery_tag, 1 if redelivered else 0), route, _QI.pack(message_count),
        FRAME_END_BYTE, encode_content(channel, 60, properties, body, frame_max),
    ))
