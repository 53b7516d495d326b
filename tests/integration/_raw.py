"""A minimal AMQP 0-9-1 client over a raw socket, for tests that must send what no client would.

Frames are encoded and decoded with pamqp (independent of leveret's own codec), so these tests
check the broker's wire behaviour without trusting the broker's code.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from pamqp import commands, frame, header, heartbeat
from pamqp.base import Frame

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

# what the usual clients (pika, aiormq) announce
DEFAULT_CAPABILITIES = {
    "authentication_failure_close": True,
    "consumer_cancel_notify": True,
    "basic.nack": True,
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "connection.blocked": True,
}


class RawConnection:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.closed_by_peer = False
        self.frame_max = 131072
        self.channel_max = 0

    # -- bytes -----------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_bytes(self, n: int = 65536) -> bytes:
        """Whatever arrives next (b"" once the peer has closed)."""
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        data = self.sock.recv(n)
        if not data:
            self.closed_by_peer = True
        return data

    def read_until_closed(self, timeout: float = 5.0) -> bytes:
        """All bytes until the peer closes the socket; fails if it doesn't within ``timeout``."""
        deadline = time.monotonic() + timeout
        chunks = [self.buffer]
        self.buffer = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("peer did not close the socket")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed_by_peer = True
                return b"".join(chunks)
            chunks.append(data)

    # -- frames ----------------------------------------------------------------------------

    def send(self, value: Any, channel: int = 0) -> None:
        self.sock.sendall(frame.marshal(value, channel))

    def recv_frame(self, timeout: float = 5.0, skip_heartbeats: bool = True) -> tuple[int, Any]:
        """The next (channel, frame); raises EOFError if the peer closed the socket."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 7:
                size = int.from_bytes(self.buffer[3:7], "big")
                if len(self.buffer) >= size + 8:
                    consumed, channel, value = frame.unmarshal(self.buffer)
                    self.buffer = self.buffer[consumed:]
                    if skip_heartbeats and isinstance(value, heartbeat.Heartbeat):
                        continue
                    return channel, value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the peer")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed_by_peer = True
                raise EOFError("peer closed the socket")
            self.buffer += data

    def expect(self, cls: type[Frame], channel: int | None = None, timeout: float = 5.0) -> Any:
        ch, value = self.recv_frame(timeout)
        assert isinstance(value, cls), f"expected {cls.__name__}, got {value!r} on channel {ch}"
        if channel is not None:
            assert ch == channel, f"expected channel {channel}, got {ch}"
        return value

    def rpc(self, method: Frame, reply: type[Frame], channel: int = 0) -> Any:
        self.send(method, channel)
        return self.expect(reply, channel)

    # -- handshake -------------------------------------------------------------------------

    def handshake(
        self,
        user: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        channel_max: int | None = None,
        frame_max: int | None = None,
        heartbeat_: int = 0,
        capabilities: dict[str, bool] | None = None,
    ) -> commands.Connection.Tune:
        self.send_bytes(PROTOCOL_HEADER)
        start = self.expect(commands.Connection.Start, 0)
        self.server_properties = start.server_properties
        self.send(
            commands.Connection.StartOk(
                client_properties={
                    "product": "leveret-raw-test",
                    "capabilities": DEFAULT_CAPABILITIES if capabilities is None else capabilities,
                },
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
            )
        )
        tune = self.expect(commands.Connection.Tune, 0)
        self.channel_max = tune.channel_max if channel_max is None else channel_max
        self.frame_max = tune.frame_max if frame_max is None else frame_max
        self.send(commands.Connection.TuneOk(self.channel_max, self.frame_max, heartbeat_))
        self.send(commands.Connection.Open(virtual_host=vhost))
        self.expect(commands.Connection.OpenOk, 0)
        return tune

    def open_channel(self, channel: int) -> None:
        self.rpc(commands.Channel.Open(), commands.Channel.OpenOk, channel)

    def publish(
        self,
        channel: int,
        body: bytes,
        exchange: str = "",
        routing_key: str = "",
        properties: dict[str, Any] | None = None,
        mandatory: bool = False,
    ) -> None:
        self.send(
            commands.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
            channel,
        )
        self.send(
            header.ContentHeader(0, len(body), commands.Basic.Properties(**(properties or {}))),
            channel,
        )
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            self.send(_body(body[i : i + step]), channel)

    def wait_for(self, cls: type[Frame], timeout: float = 5.0) -> tuple[int, Any]:
        """Skip frames until one of type ``cls`` arrives; returns (channel, frame)."""
        deadline = time.monotonic() + timeout
        while True:
            ch, value = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if isinstance(value, cls):
                return ch, value

    def expect_connection_close(
        self, timeout: float = 5.0, wait_closed: bool = True
    ) -> commands.Connection.Close:
        """The next frame is connection.close (on channel 0): answer close-ok and (unless
        ``wait_closed`` is false) check that the server then closes the socket."""
        ch, value = self.recv_frame(timeout)
        assert isinstance(value, commands.Connection.Close), (
            f"expected Connection.Close, got {value!r}"
        )
        assert ch == 0
        self.send(commands.Connection.CloseOk())
        if wait_closed:
            self.read_until_closed(timeout)
        return value

    def expect_channel_close(self, channel: int, timeout: float = 5.0) -> commands.Channel.Close:
        """The next frame is channel.close on ``channel``: answer close-ok."""
        ch, value = self.recv_frame(timeout)
        assert isinstance(value, commands.Channel.Close), f"expected Channel.Close, got {value!r}"
        assert ch == channel
        self.send(commands.Channel.CloseOk(), channel)
        return value

    def read_content(self, channel: int) -> tuple[Any, bytes]:
        """The content header and the body frames that follow a deliver/get-ok/return."""
        ch, content_header = self.recv_frame()
        assert isinstance(content_header, header.ContentHeader), content_header
        assert ch == channel
        chunks = []
        size = 0
        while size < content_header.body_size:
            ch, body = self.recv_frame()
            assert ch == channel
            chunks.append(body.value)
            size += len(body.value)
        assert size == content_header.body_size
        return content_header, b"".join(chunks)

    def get(self, channel: int, queue: str, no_ack: bool = True) -> tuple[Any, Any, bytes] | None:
        """basic.get: (get-ok, content header, body), or None for get-empty."""
        self.send(commands.Basic.Get(queue=queue, no_ack=no_ack), channel)
        ch, value = self.recv_frame()
        assert ch == channel
        if isinstance(value, commands.Basic.GetEmpty):
            return None
        assert isinstance(value, commands.Basic.GetOk), value
        content_header, body = self.read_content(channel)
        return value, content_header, body

    def drain(self, channel: int, queue: str) -> list[bytes]:
        bodies = []
        while (got := self.get(channel, queue)) is not None:
            bodies.append(got[2])
        return bodies

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _body(data: bytes) -> Any:
    from pamqp.body import ContentBody

    return ContentBody(data)


def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    """A frame built by hand: type, channel, size, payload, frame-end."""
    return (
        bytes([frame_type])
        + channel.to_bytes(2, "big")
        + len(payload).to_bytes(4, "big")
        + payload
        + end
    )


# -- field tables with exact wire types --------------------------------------------------------


class Typed:
    """A field value with an explicit AMQP type tag (RabbitMQ's 0-9-1 letters)."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"Typed({self.tag!r}, {self.value!r})"


_INT_TAGS = {
    "b": (1, True),
    "B": (1, False),
    "s": (2, True),
    "u": (2, False),
    "I": (4, True),
    "i": (4, False),
    "l": (8, True),
    "L": (8, False),
}


def encode_value(value: Any) -> bytes:  # noqa: C901 - one branch per AMQP type
    import decimal
    import struct

    if not isinstance(value, Typed):
        if value is None:
            value = Typed("V", None)
        elif isinstance(value, bool):
            value = Typed("t", value)
        elif isinstance(value, int):
            value = Typed("I" if -(2**31) <= value < 2**31 else "l", value)
        elif isinstance(value, float):
            value = Typed("d", value)
        elif isinstance(value, decimal.Decimal):
            value = Typed("D", value)
        elif isinstance(value, str):
            value = Typed("S", value)
        elif isinstance(value, bytes):
            value = Typed("x", value)
        elif isinstance(value, dict):
            value = Typed("F", value)
        elif isinstance(value, list | tuple):
            value = Typed("A", value)
        else:
            raise TypeError(value)
    tag, v = value.tag, value.value
    out = tag.encode()
    if tag in _INT_TAGS:
        size, signed = _INT_TAGS[tag]
        return out + int(v).to_bytes(size, "big", signed=signed)
    if tag == "t":
        return out + (b"\x01" if v else b"\x00")
    if tag == "f":
        return out + struct.pack(">f", v)
    if tag == "d":
        return out + struct.pack(">d", v)
    if tag == "D":
        sign, digits, exp = decimal.Decimal(v).as_tuple()
        scale = -exp if exp < 0 else 0
        unscaled = int("".join(map(str, digits)) or "0") * (10**exp if exp > 0 else 1)
        return (
            out + bytes([scale]) + (-unscaled if sign else unscaled).to_bytes(4, "big", signed=True)
        )
    if tag in "Sx":
        raw = v.encode() if isinstance(v, str) else bytes(v)
        return out + len(raw).to_bytes(4, "big") + raw
    if tag == "T":
        return out + int(v).to_bytes(8, "big")
    if tag == "V":
        return out
    if tag == "F":
        return out + encode_table(v)
    if tag == "A":
        items = b"".join(encode_value(x) for x in v)
        return out + len(items).to_bytes(4, "big") + items
    raise ValueError(f"unknown tag {tag!r}")


def encode_table(table: dict[str, Any]) -> bytes:
    body = b""
    for key, value in table.items():
        k = key.encode()
        body += bytes([len(k)]) + k + encode_value(value)
    return len(body).to_bytes(4, "big") + body


def shortstr(s: str) -> bytes:
    b = s.encode()
    return bytes([len(b)]) + b


def queue_bind_payload(queue: str, exchange: str, routing_key: str, arguments: dict) -> bytes:
    """queue.bind (50, 20) with an argument table encoded exactly as given."""
    return (
        (50).to_bytes(2, "big")
        + (20).to_bytes(2, "big")
        + b"\x00\x00"
        + shortstr(queue)
        + shortstr(exchange)
        + shortstr(routing_key)
        + b"\x00"
        + encode_table(arguments)
    )


def publish_with_headers_frames(
    channel: int, exchange: str, routing_key: str, headers: dict, body: bytes
) -> bytes:
    """basic.publish + a content header whose only property is the headers table, as raw bytes."""
    method = (
        (60).to_bytes(2, "big")
        + (40).to_bytes(2, "big")
        + b"\x00\x00"
        + shortstr(exchange)
        + shortstr(routing_key)
        + b"\x00"
    )
    props = (1 << 13).to_bytes(2, "big") + encode_table(headers)
    content_header = (60).to_bytes(2, "big") + b"\x00\x00" + len(body).to_bytes(8, "big") + props
    return (
        raw_frame(1, channel, method)
        + raw_frame(2, channel, content_header)
        + raw_frame(3, channel, body)
    )


# -- content headers with exact property bytes --------------------------------------------------

PROPERTY_BITS = [  # (name, bit, kind)
    ("content_type", 15, "shortstr"),
    ("content_encoding", 14, "shortstr"),
    ("headers", 13, "table"),
    ("delivery_mode", 12, "octet"),
    ("priority", 11, "octet"),
    ("correlation_id", 10, "shortstr"),
    ("reply_to", 9, "shortstr"),
    ("expiration", 8, "shortstr"),
    ("message_id", 7, "shortstr"),
    ("timestamp", 6, "timestamp"),
    ("type", 5, "shortstr"),
    ("user_id", 4, "shortstr"),
    ("app_id", 3, "shortstr"),
    ("cluster_id", 2, "shortstr"),
]


def encode_properties(props: dict[str, Any]) -> bytes:
    """Property flags and property list of a basic content header, in wire order."""
    flags = 0
    out = b""
    for name, bit, kind in PROPERTY_BITS:
        if name not in props:
            continue
        flags |= 1 << bit
        v = props[name]
        if kind == "shortstr":
            out += shortstr(v)
        elif kind == "table":
            out += v if isinstance(v, bytes) else encode_table(v)
        elif kind == "octet":
            out += bytes([v])
        elif kind == "timestamp":
            out += int(v).to_bytes(8, "big")
    return flags.to_bytes(2, "big") + out


def publish_frames(
    channel: int,
    exchange: str,
    routing_key: str,
    property_bytes: bytes,
    body: bytes,
    frame_max: int = 131072,
    mandatory: bool = False,
) -> bytes:
    """basic.publish, a content header with the given raw property bytes, and body frames."""
    method = (
        (60).to_bytes(2, "big")
        + (40).to_bytes(2, "big")
        + b"\x00\x00"
        + shortstr(exchange)
        + shortstr(routing_key)
        + (b"\x01" if mandatory else b"\x00")
    )
    content_header = (
        (60).to_bytes(2, "big") + b"\x00\x00" + len(body).to_bytes(8, "big") + property_bytes
    )
    parts = [raw_frame(1, channel, method), raw_frame(2, channel, content_header)]
    step = frame_max - 8
    view = memoryview(body)
    for i in range(0, len(body), step):
        chunk = view[i : i + step]
        parts += [
            b"\x03",
            channel.to_bytes(2, "big"),
            len(chunk).to_bytes(4, "big"),
            chunk,
            b"\xce",
        ]
    return b"".join(parts)


class RawFrame:
    """A frame as bytes, for tests that compare the exact encoding the broker sent."""

    def __init__(self, frame_type: int, channel: int, payload: bytes) -> None:
        self.type, self.channel, self.payload = frame_type, channel, payload


def recv_raw_frame(conn: RawConnection, timeout: float = 5.0) -> RawFrame:
    """The next frame, undecoded (heartbeats skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        if len(conn.buffer) >= 7:
            size = int.from_bytes(conn.buffer[3:7], "big")
            if len(conn.buffer) >= size + 8:
                data = conn.buffer[: size + 8]
                conn.buffer = conn.buffer[size + 8 :]
                assert data[-1:] == b"\xce", "bad frame end from the server"
                f = RawFrame(data[0], int.from_bytes(data[1:3], "big"), data[7:-1])
                if f.type == 8:
                    continue
                return f
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame from the peer")
        conn.sock.settimeout(remaining)
        data = conn.sock.recv(1 << 20)
        if not data:
            raise EOFError("peer closed the socket")
        conn.buffer += data


def get_raw(conn: RawConnection, channel: int, queue: str) -> tuple[bytes, list[bytes]] | None:
    """basic.get (no-ack), returning the raw content-header payload and the body payloads."""
    conn.send(commands.Basic.Get(queue=queue, no_ack=True), channel)
    method = recv_raw_frame(conn)
    assert method.type == 1
    if method.payload[:4] == b"\x00\x3c\x00\x48":  # get-empty
        return None
    assert method.payload[:4] == b"\x00\x3c\x00\x47", method.payload[:4]  # get-ok
    content_header = recv_raw_frame(conn)
    assert content_header.type == 2
    size = int.from_bytes(content_header.payload[4:12], "big")
    bodies = []
    got = 0
    while got < size:
        f = recv_raw_frame(conn)
        assert f.type == 3
        bodies.append(f.payload)
        got += len(f.payload)
    return content_header.payload, bodies
