"""The stream protocol's frames (rabbitmq_stream's docs/PROTOCOL.adoc): size-prefixed, a
command key and version, then the command's fields, all big-endian. ``string`` is an int16
length (-1: null) and UTF-8, ``bytes`` an int32 length, arrays an int32 count.

``FrameBuffer`` cuts frames out of the bytes a connection receives without copying more
than once and refuses a frame larger than the connection's limit before buffering it;
``Fields`` reads one frame's fields and raises FrameError past its end; the ``encode_*``
helpers build what the server sends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from leveret.errors import FrameError

# Command keys; a response carries the request's key with the top bit set.
DECLARE_PUBLISHER, PUBLISH, PUBLISH_CONFIRM, PUBLISH_ERROR = 0x01, 0x02, 0x03, 0x04
QUERY_PUBLISHER_SEQUENCE, DELETE_PUBLISHER, SUBSCRIBE, DELIVER = 0x05, 0x06, 0x07, 0x08
CREDIT, STORE_OFFSET, QUERY_OFFSET, UNSUBSCRIBE = 0x09, 0x0A, 0x0B, 0x0C
CREATE, DELETE, METADATA, METADATA_UPDATE = 0x0D, 0x0E, 0x0F, 0x10
PEER_PROPERTIES, SASL_HANDSHAKE, SASL_AUTHENTICATE, TUNE = 0x11, 0x12, 0x13, 0x14
OPEN, CLOSE, HEARTBEAT, ROUTE, PARTITIONS = 0x15, 0x16, 0x17, 0x18, 0x19
CONSUMER_UPDATE, EXCHANGE_COMMAND_VERSIONS, STREAM_STATS = 0x1A, 0x1B, 0x1C
CREATE_SUPER_STREAM, DELETE_SUPER_STREAM = 0x1D, 0x1E
RESPONSE = 0x8000

# Response codes.
OK, STREAM_DOES_NOT_EXIST, SUBSCRIPTION_ID_ALREADY_EXISTS = 0x01, 0x02, 0x03
SUBSCRIPTION_ID_DOES_NOT_EXIST, STREAM_ALREADY_EXISTS, STREAM_NOT_AVAILABLE = 0x04, 0x05, 0x06
SASL_MECHANISM_NOT_SUPPORTED, AUTHENTICATION_FAILURE, SASL_ERROR = 0x07, 0x08, 0x09
SASL_CHALLENGE, SASL_AUTHENTICATION_FAILURE_LOOPBACK = 0x0A, 0x0B
VIRTUAL_HOST_ACCESS_FAILURE, UNKNOWN_FRAME, FRAME_TOO_LARGE = 0x0C, 0x0D, 0x0E
INTERNAL_ERROR, ACCESS_REFUSED, PRECONDITION_FAILED = 0x0F, 0x10, 0x11
PUBLISHER_DOES_NOT_EXIST, NO_OFFSET = 0x12, 0x13

_U16, _U32, _U64, _I64 = (struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">Q"),
                          struct.Struct(">q"))
_HEAD = struct.Struct(">IHH")  # size, key, version
_REQUEST = struct.Struct(">IHHI")  # size, key, version, correlation id


class FrameTooLarge(FrameError):
    """A frame announced a size above the connection's limit."""


class FrameBuffer:
    """Complete frames out of received bytes: a bytearray with a read offset, compacted
    once per ``frames()`` batch. A frame is refused by its size prefix, so no more than
    ``limit`` bytes of one frame are ever buffered. Each frame is handed out as its own
    bytes (one copy), so nothing a handler keeps pins the buffer."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()

    def feed(self, data: bytes) -> None:
        self.buf += data

    def frames(self) -> Iterator[bytes]:
        """Each complete frame (key, version and fields, without the size prefix)."""
        buf = self.buf
        pos = 0
        try:
            while len(buf) - pos >= 4:
                (size,) = _U32.unpack_from(buf, pos)
                if size > self.limit or size < 4:
                    raise FrameTooLarge(f"frame of {size} bytes (limit {self.limit})")
                if len(buf) - pos - 4 < size:
                    break
                frame = bytes(buf[pos + 4:pos + 4 + size])
                pos += 4 + size  # (before the yield: a caller may stop after any frame)
                yield frame
        finally:
            if pos:
                del buf[:pos]

    @property
    def buffered(self) -> int:
        return len(self.buf)


class Fields:
    """The fields of one frame, read in order; FrameError when one runs past the end."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: memoryview | bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)

    def _take(self, n: int) -> int:
        start = self.pos
        if start + n > self.end:
            raise FrameError("frame too short for its fields")
        self.pos = start + n
        return start

    def u8(self) -> int:
        return int(self.buf[self._take(1)])

    def u16(self) -> int:
        return int(_U16.unpack_from(self.buf, self._take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack_from(self.buf, self._take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self.buf, self._take(8))[0])

    def i64(self) -> int:
        return int(_I64.unpack_from(self.buf, self._take(8))[0])

    def string(self) -> str | None:
        size = self.u16()
        if size == 0xFFFF:
            return None
        start = self._take(size)
        try:
            return bytes(self.buf[start:start + size]).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("a string field is not UTF-8") from None

    def text(self) -> str:
        """A string that must not be null."""
        value = self.string()
        if value is None:
            raise FrameError("a string field is null")
        return value

    def bytes_(self) -> bytes | None:
        size = self.u32()
        if size == 0xFFFFFFFF:
            return None
        start = self._take(size)
        return bytes(self.buf[start:start + size])

    def count(self, item_size: int = 1) -> int:
        """An array's length, checked against what is left (each item ``item_size`` bytes
        at least), so a hostile count cannot make us loop or allocate for nothing."""
        n = self.u32()
        if n * item_size > self.end - self.pos:
            raise FrameError(f"array of {n} items does not fit in the frame")
        return n

    def properties(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for _ in range(self.count(4)):
            key = self.text()
            value = self.string()
            out[key] = "" if value is None else value
        return out

    def strings(self) -> list[str]:
        return [self.text() for _ in range(self.count(2))]

    def done(self) -> None:
        if self.pos != self.end:
            raise FrameError(f"{self.end - self.pos} bytes after the last field")


# -- encoding --------------------------------------------------------------------------------

def string(value: str | None) -> bytes:
    if value is None:
        return b"\xff\xff"
    raw = value.encode("utf-8")
    return _U16.pack(len(raw)) + raw


def bytes_field(value: bytes | None) -> bytes:
    if value is None:
        return b"\xff\xff\xff\xff"
    return _U32.pack(len(value)) + value


def properties(items: dict[str, str]) -> bytes:
    return _U32.pack(len(items)) + b"".join(string(k) + string(v) for k, v in items.items())


def array(items: Iterable[bytes]) -> bytes:
    parts = list(items)
    return _U32.pack(len(parts)) + b"".join(parts)


def command(key: int, version: int, body: bytes = b"") -> bytes:
    """A frame the server sends on its own (no correlation id)."""
    return _HEAD.pack(4 + len(body), key, version) + body


def request(key: int, correlation: int, body: bytes = b"", version: int = 1) -> bytes:
    """A request the server sends and expects an answer to (Close, ConsumerUpdate)."""
    return _REQUEST.pack(8 + len(body), key, version, correlation) + body


def response(key: int, correlation: int, code: int, body: bytes = b"", version: int = 1
             ) -> bytes:
    return _REQUEST.pack(10 + len(body), key | RESPONSE, version, correlation) + \
        _U16.pack(code) + body


def u16(v: int) -> bytes:
    return _U16.pack(v)


def u32(v: int) -> bytes:
    return _U32.pack(v)


def u64(v: int) -> bytes:
    return _U64.pack(v)


def i64(v: int) -> bytes:
    return _I64.pack(v)
