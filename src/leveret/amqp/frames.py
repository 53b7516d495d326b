"""AMQP 0-9-1 framing: the frame envelope, heartbeats, content headers and body splitting.

A frame is ``type:octet channel:short size:long payload:size frame-end:octet(0xCE)``.
``FrameBuffer`` accumulates received bytes and hands out whole frames; it keeps a read
offset and compacts once per batch instead of slicing per frame (bounded, copy-light).
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


class FrameBuffer:
    """Received bytes waiting to be parsed into frames.

    ``next_frame`` returns ``(frame_type, channel, payload)`` or None when more bytes are
    needed. The bytes are kept as they were received: the chunk being read (``_buf`` from
    ``_pos``) and the chunks fed after it. A payload is copied once, out of the chunk that
    holds it (a bytes slice), or joined once from the pieces of the chunks it spans; the
    chunk where a frame ends becomes the one being read, uncopied. So a large frame
    arriving in many reads is copied once, and so is every other byte, whatever the read
    boundaries. ``compact`` after a batch drops the chunk once it is all read.
    """

    __slots__ = ("_buf", "_chunks", "_chunks_size", "_pos", "frame_max")

    def __init__(self, frame_max: int = DEFAULT_FRAME_MAX) -> None:
        self._buf = b""
        self._pos = 0
        self._chunks: list[bytes] = []  # fed after _buf, unread
        self._chunks_size = 0
        self.frame_max = frame_max

    def feed(self, data: bytes) -> None:
        if type(data) is not bytes:  # (a caller's bytearray must not change under us)
            data = bytes(data)
        if self._pos == len(self._buf) and not self._chunks:
            self._buf = data  # everything before was read: no copy
            self._pos = 0
        elif data:
            self._chunks.append(data)
            self._chunks_size += len(data)

    def __len__(self) -> int:
        return len(self._buf) - self._pos + self._chunks_size

    def _take(self, n: int) -> bytes:
        """The next ``n`` bytes, which must all have arrived, in one copy."""
        buf = self._buf
        pos = self._pos
        have = len(buf) - pos
        if have >= n:
            self._pos = pos + n
            return buf[pos : pos + n]
        pieces: list[bytes | memoryview] = [memoryview(buf)[pos:]] if have else []
        chunks = self._chunks
        while True:
            chunk = chunks.pop(0)
            self._chunks_size -= len(chunk)
            want = n - have
            if len(chunk) >= want:  # the rest of this chunk is read next, as it is
                self._buf = chunk
                self._pos = want
                pieces.append(memoryview(chunk)[:want])
                return b"".join(pieces)
            pieces.append(chunk)
            have += len(chunk)

    def take(self, n: int) -> bytes | None:
        """Take ``n`` raw bytes (the protocol header), or None if not all arrived yet."""
        if len(self) < n:
            return None
        return self._take(n)

    def next_frame(self) -> tuple[int, int, bytes] | None:
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 7:
            if len(buf) - pos + self._chunks_size < 7:
                return None
            if pos == len(buf):  # the next chunk, uncopied
                buf = self._buf = self._chunks.pop(0)
                self._chunks_size -= len(buf)
                pos = self._pos = 0
        head = buf if len(buf) - pos >= 7 else self.peek(7)
        ftype: int
        channel: int
        size: int
        ftype, channel, size = _FRAME_HEAD.unpack_from(head, pos if head is buf else 0)
        if size > self.frame_max:
            # RabbitMQ's limit and wording: frame_max bounds the payload, not the whole frame
            # (some clients, AMQPStorm among them, fill a body frame with frame_max bytes),
            # though the text names frame_max - 8 as the limit.
            raise FrameError(f"type {ftype}, all octets = <<>>: "
                             f"{{frame_too_large,{size},{self.frame_max - 8}}}")
        end = pos + 7 + size
        if len(buf) > end:  # the whole frame in this chunk
            payload = buf[pos + 7 : end]
            frame_end = buf[end]
            self._pos = end + 1
        else:  # it goes on in the chunks fed since
            if len(buf) - pos + self._chunks_size < size + 8:
                return None
            self._take(7)
            payload = self._take(size)
            frame_end = self._take(1)[0]
        if frame_end != FRAME_END:
            prefix = f"type {ftype}, first 16 octets = {erlang_binary(payload[:16])}: "
            raise FrameError(prefix + erlang_tuple(len(prefix), "invalid_frame_end_marker",
                                                   str(frame_end)))
        return ftype, channel, payload

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes (which must all have arrived), left unread."""
        pieces: list[bytes | memoryview] = [memoryview(self._buf)[self._pos :]]
        have = len(self._buf) - self._pos
        for chunk in self._chunks:
            if have >= n:
                break
            pieces.append(chunk)
            have += len(chunk)
        return b"".join(pieces)[:n]

    def compact(self) -> None:
        """After a batch: drop the chunk being read once every byte of it was read."""
        if self._pos and self._pos == len(self._buf):
            if self._chunks:
                self._buf = self._chunks.pop(0)
                self._chunks_size -= len(self._buf)
            else:
                self._buf = b""
            self._pos = 0


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
