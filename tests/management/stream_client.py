"""A small blocking stream-protocol client (sockets and leveret.streamproto's codecs), so
the management tests, which run blocking clients beside a broker thread, can hold a stream
connection with a publisher and a subscription open. Heartbeats are off (Tune 0)."""

from __future__ import annotations

import socket
from typing import Any

from leveret.streamproto import frames as f

FIRST = 1  # Subscribe's offset specification "first"


class StreamClientError(Exception):
    pass


class StreamClient:
    def __init__(self, host: str, port: int, vhost: str = "/", user: str = "guest",
                 password: str = "guest", name: str = "") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self._correlation = 0
        self._buffer = b""
        self.request(f.PEER_PROPERTIES, f.properties({"connection_name": name} if name
                                                      else {}))
        self.request(f.SASL_HANDSHAKE)
        self.request(f.SASL_AUTHENTICATE, f.string("PLAIN") + f.bytes_field(
            f"\0{user}\0{password}".encode()))
        key, _ = self._frame()
        if key != f.TUNE:
            raise StreamClientError(f"expected Tune, got 0x{key:04x}")
        self.sock.sendall(f.command(f.TUNE, 1, f.u32(1 << 20) + f.u32(0)))
        self.request(f.OPEN, f.string(vhost))

    def request(self, key: int, body: bytes = b"") -> bytes:
        """Send a request and return its response's body after the code (raises unless
        the code is OK); frames that are not the answer are skipped."""
        self._correlation += 1
        self.sock.sendall(f.request(key, self._correlation, body))
        while True:
            got, rest = self._frame()
            if got == key | f.RESPONSE and int.from_bytes(rest[:4], "big") == \
                    self._correlation:
                code = int.from_bytes(rest[4:6], "big")
                if code != f.OK:
                    raise StreamClientError(f"0x{key:04x} answered 0x{code:02x}")
                return rest[6:]

    def declare_publisher(self, publisher_id: int, stream: str, reference: str = "") -> None:
        self.request(f.DECLARE_PUBLISHER, bytes((publisher_id,)) + f.string(reference) +
                     f.string(stream))

    def subscribe(self, subscription_id: int, stream: str, credit: int = 1,
                  properties: dict[str, str] | None = None) -> None:
        self.request(f.SUBSCRIBE, bytes((subscription_id,)) + f.string(stream) +
                     f.u16(FIRST) + f.u16(credit) + f.properties(properties or {}))

    def _frame(self) -> tuple[int, bytes]:
        while True:
            if len(self._buffer) >= 4:
                size = int.from_bytes(self._buffer[:4], "big")
                if len(self._buffer) >= 4 + size:
                    body = self._buffer[4:4 + size]
                    self._buffer = self._buffer[4 + size:]
                    return int.from_bytes(body[:2], "big"), body[4:]
            data = self.sock.recv(65536)
            if not data:
                raise StreamClientError("the server closed the connection")
            self._buffer += data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
