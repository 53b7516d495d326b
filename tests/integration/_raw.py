"""A minimal AMQP 0-9-1 client over a raw socket, for tests that must send what no client would.

Frames are encoded and decoded with pamqp (independent of leveret's own codec), so these tests
check the broker's wire behaviour without trusting the broker's code.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from pamqp import commands, frame, header, heartbeat
from pamqp.base import Frame

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


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
    ) -> commands.Connection.Tune:
        self.send_bytes(PROTOCOL_HEADER)
        start = self.expect(commands.Connection.Start, 0)
        self.server_properties = start.server_properties
        self.send(
            commands.Connection.StartOk(
                client_properties={
                    "product": "leveret-raw-test",
                    "capabilities": {"authentication_failure_close": True},
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
        self.send(header.ContentHeader(0, len(body), commands.Basic.Properties(**(properties or {}))),
                  channel)
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            self.send(_body(body[i : i + step]), channel)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

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
        bytes([frame_type]) + channel.to_bytes(2, "big") + len(payload).to_bytes(4, "big")
        + payload + end
    )
