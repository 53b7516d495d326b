"""The publish hot path: frames around the body are encoded once, the body is spliced in.

For one (channel, exchange, routing key, properties, mandatory) the basic.publish method
frame and the content header never change except for the body size, and for a benchmark
the body size never changes either: a message costs three ``bytearray +=`` calls.
"""

from __future__ import annotations

import struct

from leveret.amqp import frames, spec
from leveret.amqp.frames import LARGE_BODY
from leveret.client.links import ChannelLink

_HEADER_HEAD = struct.Struct(">BHIHH")  # type, channel, size, class id, weight
_Q = struct.Struct(">Q")
_I = struct.Struct(">I")
EMPTY_PROPERTIES = b"\x00\x00"  # property flags with no property set


def encode_properties(properties: spec.Properties | bytes | None) -> bytes:
    if properties is None:
        return EMPTY_PROPERTIES
    if isinstance(properties, bytes):
        return properties
    return properties.encode()


class Publisher:
    """``publisher(body) -> sequence number`` (0 unless the channel is in confirm mode).

    Only queues the frames; the connection writes them at the end of the current loop
    iteration. Await ``connection.drain()`` between batches to respect flow control.
    """

    __slots__ = ("_channel", "_conn", "_head", "_method", "_mid", "_prefix", "_props", "_size")

    def __init__(
        self, channel: ChannelLink, exchange: str, routing_key: str, properties: bytes,
        mandatory: bool,
    ) -> None:  # fmt: skip
        num = channel.number
        self._channel = channel
        self._conn = channel._conn
        self._props = properties
        self._method = frames.encode_method(
            num, spec.BasicPublish(0, exchange, routing_key, mandatory, False)
        )
        # method frame + content header up to its body-size field ...
        self._prefix = self._method + _HEADER_HEAD.pack(2, num, 12 + len(properties), 60, 0)
        # ... and from the properties to the body frame's size field
        self._mid = properties + b"\xce\x03" + num.to_bytes(2, "big")
        self._size = -1
        self._head = b""

    def __call__(self, body: bytes) -> int:
        ch = self._channel
        if ch._closed is not None:
            raise ch._closed.with_traceback(None)
        n = len(body)
        conn = self._conn
        if n != self._size:
            if n == 0 or n > conn.frame_max - 8:
                return self._publish_unusual(body)
            self._size = n
            self._head = self._prefix + _Q.pack(n) + self._mid + _I.pack(n)
        w = conn._wbuf
        w += self._head
        if n < LARGE_BODY:
            w += body
        else:  # written as it is beside the frames (a vectored write), not copied
            conn._send_large(body)
            w = conn._wbuf
        w += b"\xce"
        if not conn._flush_pending:
            conn._schedule_flush()
        if ch._confirm:
            seq = ch._seq = ch._seq + 1
            ch._unconfirmed.add(seq)
            return seq
        return 0

    def _publish_unusual(self, body: bytes) -> int:
        """Empty bodies (no body frame) and bodies split over several frames."""
        ch = self._channel
        conn = self._conn
        content = frames.encode_content(ch.number, 60, self._props, body, conn.frame_max)
        conn._send(self._method + content)
        if ch._confirm:
            seq = ch._seq = ch._seq + 1
            ch._unconfirmed.add(seq)
            return seq
        return 0
