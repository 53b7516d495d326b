"""A stream-protocol client on raw frames, for what rstream cannot do or cannot read (RabbitMQ
3.10's Route and Partitions answers lack the response bit; ConsumerUpdate requests seen as
they come; a connection that dies without a word)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from typing import Any

from leveret.streamproto import frames as f


class Frame:
    """One frame the server sent: its key (the response bit cleared), whether the bit was
    set, the version and the bytes after them."""

    def __init__(self, key: int, version: int, body: bytes) -> None:
        self.response = bool(key & f.RESPONSE)
        self.key = key & ~f.RESPONSE
        self.version = version
        self.body = body

    @property
    def correlation(self) -> int:
        return int.from_bytes(self.body[:4], "big")

    @property
    def code(self) -> int:
        return int.from_bytes(self.body[4:6], "big")

    def strings(self, pos: int = 6) -> list[str]:
        """An array of strings from ``pos`` (Route's and Partitions' answer)."""
        fields = f.Fields(self.body, pos)
        return fields.strings()

    def __repr__(self) -> str:
        return f"Frame(0x{self.key:04x}, response={self.response}, {self.body.hex()})"


class RawClient:
    """Open with ``await RawClient.connect(port, ...)``; ``request`` sends a request and
    returns the server's answer to it (with or without the response bit); every frame the
    server sends is kept in ``frames``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames: list[Frame] = []
        self.closed = asyncio.Event()
        self._correlation = 100
        self._answers: dict[int, asyncio.Future[Frame]] = {}
        self._task: asyncio.Task[None] | None = None
        self.open_code = 0

    @classmethod
    async def connect(cls, port: int, vhost: str = "/", user: str = "guest",
                      password: str = "guest") -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        try:
            await client._handshake(vhost, user, password)
        except BaseException:
            await client.close()
            raise
        return client

    async def _frame(self) -> Frame:
        (size,) = struct.unpack(">I", await self.reader.readexactly(4))
        body = await asyncio.wait_for(self.reader.readexactly(size), 10)
        key, version = struct.unpack(">HH", body[:4])
        return Frame(key, version, body[4:])

    async def _handshake(self, vhost: str, user: str, password: str) -> None:
        """Step by step: RabbitMQ refuses a Tune that arrives before its own."""
        w = self.writer
        w.write(f.request(f.PEER_PROPERTIES, 1, f.properties({})))
        await asyncio.wait_for(self._frame(), 10)
        w.write(f.request(f.SASL_HANDSHAKE, 2))
        await asyncio.wait_for(self._frame(), 10)
        w.write(f.request(f.SASL_AUTHENTICATE, 3, f.string("PLAIN") + f.bytes_field(
            f"\x00{user}\x00{password}".encode())))
        answer = await asyncio.wait_for(self._frame(), 10)
        if answer.code != f.OK:
            raise ConnectionRefusedError(f"authentication: code {answer.code}")
        await asyncio.wait_for(self._frame(), 10)  # the server's Tune
        w.write(f.command(f.TUNE, 1, f.u32(1 << 20) + f.u32(0)))
        w.write(f.request(f.OPEN, 4, f.string(vhost)))
        answer = await asyncio.wait_for(self._frame(), 10)
        self.open_code = answer.code
        if answer.code != f.OK:
            raise ConnectionRefusedError(f"open: code {answer.code}")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self._frame()
                waiter = self._answers.pop(frame.correlation, None) \
                    if frame.key in ANSWERED else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame)
                else:
                    self.frames.append(frame)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()

    def next_correlation(self) -> int:
        self._correlation += 1
        return self._correlation

    async def request(self, key: int, body: bytes = b"", timeout: float = 10.0) -> Frame:
        correlation = self.next_correlation()
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._answers[correlation] = waiter
        self.writer.write(f.request(key, correlation, body))
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            self._answers.pop(correlation, None)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def wait_for(self, match: Callable[[Frame], bool], timeout: float = 20.0
                       ) -> Frame:
        """The first frame kept in ``frames`` that ``match`` accepts (waiting for it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for frame in self.frames:
                if match(frame):
                    return frame
            if loop.time() > deadline:
                raise AssertionError(f"no such frame in time; got {self.frames}")
            await asyncio.sleep(0.02)

    def abort(self) -> None:
        """Drop the TCP connection without a Close (a client that dies)."""
        transport: Any = self.writer.transport
        transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


# Requests whose answer carries the request's correlation id right after key and version.
ANSWERED = frozenset({
    f.DECLARE_PUBLISHER, f.QUERY_PUBLISHER_SEQUENCE, f.DELETE_PUBLISHER, f.SUBSCRIBE,
    f.QUERY_OFFSET, f.UNSUBSCRIBE, f.CREATE, f.DELETE, f.METADATA, f.ROUTE, f.PARTITIONS,
    f.STREAM_STATS, f.CREATE_SUPER_STREAM, f.DELETE_SUPER_STREAM})


def subscribe_body(subscription_id: int, stream: str, properties: dict[str, str],
                   kind: int = 1, offset: int | None = None, credit: int = 10) -> bytes:
    spec = f.u16(kind) + (f.u64(offset) if kind == 4 and offset is not None else
                          f.i64(offset) if kind == 5 and offset is not None else b"")
    return bytes((subscription_id,)) + f.string(stream) + spec + f.u16(credit) + \
        f.properties(properties)


def consumer_update_answer(correlation: int, kind: int = 1, offset: int = 0) -> bytes:
    """The client's answer to a ConsumerUpdate (rstream always sends the 8 offset bytes)."""
    body = f.u32(correlation) + f.u16(f.OK) + f.u16(kind) + f.u64(offset)
    return struct.pack(">IHH", 4 + len(body), f.CONSUMER_UPDATE | f.RESPONSE, 1) + body


def amqp_message(text: str) -> bytes:
    """An AMQP 1.0 message of one data section."""
    data = text.encode()
    return b"\x00\x53\x75\xa0" + bytes((len(data),)) + data


def publish(publisher_id: int, items: list[tuple[int, bytes]]) -> bytes:
    """A Publish (v1) of (publishing id, simple entry message) pairs."""
    return f.command(f.PUBLISH, 1, bytes((publisher_id,)) + f.array(
        f.u64(pid) + f.u32(len(m)) + m for pid, m in items))
