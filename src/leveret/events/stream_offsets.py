"""Replay offsets kept by the broker, over RabbitMQ's stream protocol (StoreOffset and
QueryOffset): RabbitMQ with the ``rabbitmq_stream`` plugin, or leveret with
``--stream-port``. The broker keeps a reader's offset with the stream (RabbitMQ in the
stream itself, leveret beside it), so it survives the application's hosts and needs no
database.

    bus = EventBus(url, offsets=BrokerOffsetStore())              # the bus's broker, 5552
    BrokerOffsetStore("rabbitmq-stream://user:pw@host:5552/vhost",
                      fallback=FileOffsetStore("offsets.json"))

The client is a small one on ``leveret.streamproto``'s codecs: one connection, PLAIN
login, heartbeats, the two commands. When the stream port cannot be reached (or answers
for another broker than the bus's) at the first load, the store logs why and uses
``fallback`` (a MemoryOffsetStore unless given) for the rest of the process. Once it
worked, a lost connection is reconnected at the next load or save, which raise
``EventsError`` if the broker stays away (``reconnect_timeout``): a reader then stops
as it does when any store fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

from leveret.events.errors import EventsError
from leveret.events.offsets import MemoryOffsetStore, OffsetStore
from leveret.streamproto import frames as f

log = logging.getLogger("leveret.events")

DEFAULT_PORT, DEFAULT_TLS_PORT = 5552, 5551
HEARTBEAT = 60  # seconds, proposed in Tune
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0


class StreamProtocolError(EventsError):
    """The broker refused a stream-protocol request or closed the connection."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.code = code


def stream_url_for(amqp_url: str, port: int = DEFAULT_PORT) -> str:
    """The stream-protocol URL of the broker an AMQP URL names: same host, credentials
    and vhost; ``port`` (RabbitMQ's 5552, or 5551 for ``amqps``)."""
    parts = urlsplit(amqp_url)
    tls = parts.scheme == "amqps"
    netloc = parts.netloc.rsplit("@", 1)
    credentials = netloc[0] + "@" if len(netloc) == 2 else ""
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    scheme = "rabbitmq-stream+tls" if tls else "rabbitmq-stream"
    return f"{scheme}://{credentials}{host}:{port}{parts.path or '/'}"


class StreamClient:
    """One stream-protocol connection: ``connect()``, ``store_offset``, ``query_offset``,
    ``close()``. Requests are answered in order by correlation id; a reader task takes
    every frame, answers nothing but heartbeats (and the server's Close)."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("rabbitmq-stream", "rabbitmq-stream+tls"):
            raise ValueError(f"a stream URL is rabbitmq-stream://user:password@host:port/"
                             f"vhost (or rabbitmq-stream+tls://), not {url!r}")
        self.tls = parts.scheme.endswith("+tls")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (DEFAULT_TLS_PORT if self.tls else DEFAULT_PORT)
        self.user = unquote(parts.username or "guest")
        self.password = unquote(parts.password or "guest")
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.vhost = unquote(path) if path else "/"
        self.ssl_context = ssl_context if ssl_context is not None else (
            ssl.create_default_context() if self.tls else None)
        self.server_properties: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation = 0
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._tune: asyncio.Future[tuple[int, int]] | None = None
        self.closed: BaseException | None = None  # why the connection ended

    @property
    def connected(self) -> bool:
        return self._writer is not None and self.closed is None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(
            self.host, self.port, ssl=self.ssl_context), CONNECT_TIMEOUT)
        loop = asyncio.get_running_loop()
        self._tune = loop.create_future()
        self._tasks.append(asyncio.create_task(self._read_frames(), name="stream-offsets"))
        try:
            fields = await self._request(f.PEER_PROPERTIES, f.properties({
                "product": "leveret.events", "connection_name": "leveret.events offsets"}))
            self.server_properties = fields.properties()
            await self._request(f.SASL_HANDSHAKE)
            await self._request(f.SASL_AUTHENTICATE, f.string("PLAIN") + f.bytes_field(
                f"\0{self.user}\0{self.password}".encode()))
            _frame_max, heartbeat = await asyncio.wait_for(self._tune, REQUEST_TIMEOUT)
            heartbeat = min(heartbeat, HEARTBEAT) if heartbeat else HEARTBEAT
            self._send(f.command(f.TUNE, 1, f.u32(1 << 20) + f.u32(heartbeat)))
            await self._request(f.OPEN, f.string(self.vhost))
        except BaseException:
            await self.close()
            raise
        self._tasks.append(asyncio.create_task(self._heartbeats(heartbeat)))

    async def store_offset(self, reference: str, stream: str, offset: int) -> None:
        """StoreOffset has no answer; a refused one (no such stream, no read permission)
        is dropped by the broker, as in RabbitMQ."""
        self._check()
        self._send(f.command(f.STORE_OFFSET, 1, f.string(reference) + f.string(stream) +
                             f.u64(offset)))
        assert self._writer is not None
        await self._writer.drain()

    async def query_offset(self, reference: str, stream: str) -> int | None:
        try:
            fields = await self._request(f.QUERY_OFFSET, f.string(reference) +
                                         f.string(stream))
        except StreamProtocolError as exc:
            if exc.code == f.NO_OFFSET:
                return None
            raise
        return fields.u64()

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None and self.closed is None:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(f.request(f.CLOSE, self._next(), f.u16(f.OK) + f.string("bye")))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        self._fail(ConnectionError("the stream connection was closed"))

    # -- frames -------------------------------------------------------------------------

    def _check(self) -> None:
        if self.closed is not None:
            raise ConnectionError(f"the stream connection is gone: {self.closed}")

    def _next(self) -> int:
        self._correlation += 1
        return self._correlation

    def _send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def _request(self, key: int, body: bytes = b"") -> f.Fields:
        """The answer's fields after its code (raises StreamProtocolError unless OK)."""
        self._check()
        correlation = self._next()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[correlation] = future
        self._send(f.request(key, correlation, body))
        try:
            frame = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self._waiting.pop(correlation, None)
        fields = f.Fields(frame, 8)  # key, version, correlation id
        code = fields.u16()
        if code != f.OK:
            raise StreamProtocolError(f"command 0x{key:02x} refused with code 0x{code:02x}",
                                      code)
        return fields

    async def _read_frames(self) -> None:
        assert self._reader is not None
        reader = self._reader
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                if size > 1 << 24:
                    raise ConnectionError(f"a frame of {size} bytes")
                self._frame(await reader.readexactly(size))
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, EventsError) as exc:
            self._fail(exc)

    def _frame(self, frame: bytes) -> None:
        key = int.from_bytes(frame[:2], "big")
        if key & f.RESPONSE:
            future = self._waiting.get(int.from_bytes(frame[4:8], "big"))
            if future is not None and not future.done():
                future.set_result(frame)
        elif key == f.TUNE and self._tune is not None and not self._tune.done():
            fields = f.Fields(frame, 4)
            self._tune.set_result((fields.u32(), fields.u32()))
        elif key == f.CLOSE:
            fields = f.Fields(frame, 4)
            correlation, code = fields.u32(), fields.u16()
            reason = fields.string() or ""
            with contextlib.suppress(OSError, RuntimeError):
                self._send(f.response(f.CLOSE, correlation, f.OK))
            raise StreamProtocolError(f"the broker closed the connection: {reason}", code)
        # (heartbeats and anything else: nothing to do)

    def _fail(self, exc: BaseException) -> None:
        if self.closed is None:
            self.closed = exc
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the stream connection failed: {exc}"))

    async def _heartbeats(self, interval: int) -> None:
        while self.closed is None and self._writer is not None:
            await asyncio.sleep(interval / 2)
            with contextlib.suppress(OSError, RuntimeError):
                self._send(f.command(f.HEARTBEAT, 1))


class BrokerOffsetStore:
    """An OffsetStore for readers of any stream (``for_stream``): offsets stored by the
    broker under the reader's name. ``url`` is a ``rabbitmq-stream://`` URL; without one,
    the bus it is given to (``EventBus(offsets=...)``, ``@bus.replay(store=...)``) tells
    it its own broker, at ``port``."""

    def __init__(self, url: str | None = None, *, port: int = DEFAULT_PORT,
                 fallback: OffsetStore | None = None, ssl_context: ssl.SSLContext | None = None,
                 reconnect_timeout: float = 30.0) -> None:
        self.url = url
        self.port = port
        self.fallback: OffsetStore = fallback if fallback is not None else MemoryOffsetStore()
        self.ssl_context = ssl_context
        self.reconnect_timeout = reconnect_timeout
        self.expected_cluster: str | None = None  # the bus's broker, to check it is that one
        self.using_fallback = False
        self._client: StreamClient | None = None
        self._lock = asyncio.Lock()
        self._tried = False

    def attach(self, amqp_url: str, server_properties: dict[str, Any]) -> None:
        """Called by the bus once connected: its broker, unless a URL was given."""
        if self.url is None:
            self.url = stream_url_for(amqp_url, self.port)
        cluster = server_properties.get("cluster_name")
        self.expected_cluster = cluster.decode() if isinstance(cluster, bytes) else cluster

    def for_stream(self, stream: str) -> StreamOffsets:
        return StreamOffsets(self, stream)

    async def load_from(self, stream: str, name: str) -> int | None:
        client = await self._connected()
        if client is None:
            return await self.fallback.load(name)
        try:
            return await client.query_offset(name, stream)
        except StreamProtocolError as exc:
            if exc.code == f.STREAM_DOES_NOT_EXIST:
                return None
            raise

    async def save_to(self, stream: str, name: str, offset: int) -> None:
        client = await self._connected()
        if client is None:
            await self.fallback.save(name, offset)
            return
        await client.store_offset(name, stream, offset)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _connected(self) -> StreamClient | None:
        """The live client (reconnected if it was lost), or None once the fallback is in
        use; raises EventsError when a broker that answered before stays away."""
        async with self._lock:
            if self.using_fallback:
                return None
            if self._client is not None and self._client.connected:
                return self._client
            if self._client is not None:
                await self._client.close()
                self._client = None
            first = not self._tried
            self._tried = True
            if first:
                return await self._first_connect()
            return await self._reconnect()

    async def _first_connect(self) -> StreamClient | None:
        try:
            client = await self._open()
        except (TimeoutError, OSError, EventsError, ValueError) as exc:
            log.warning("offsets: the broker's stream protocol at %s is not usable (%s); "
                        "replay offsets go to the %s instead", self._where(), exc,
                        type(self.fallback).__name__)
            self.using_fallback = True
            return None
        cluster = client.server_properties.get("cluster_name")
        if self.expected_cluster and cluster and cluster != self.expected_cluster:
            log.warning("offsets: %s is the stream port of cluster %r, not of the bus's %r; "
                        "replay offsets go to the %s instead", self._where(), cluster,
                        self.expected_cluster, type(self.fallback).__name__)
            await client.close()
            self.using_fallback = True
            return None
        log.info("offsets: replay offsets are kept by the broker (stream protocol at %s)",
                 self._where())
        self._client = client
        return client

    async def _reconnect(self) -> StreamClient:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout
        delay = 0.5
        while True:
            try:
                self._client = await self._open()
                log.info("offsets: reconnected to %s", self._where())
                return self._client
            except (TimeoutError, OSError, EventsError) as exc:
                if loop.time() + delay > deadline:
                    raise EventsError(f"offsets: the stream protocol at {self._where()} "
                                      f"is unreachable: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _open(self) -> StreamClient:
        if self.url is None:
            raise ValueError("no stream URL (give one, or hand the store to an EventBus)")
        client = StreamClient(self.url, self.ssl_context)
        await client.connect()
        return client

    def _where(self) -> str:
        if self.url is None:
            return "(no URL)"
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}"


class StreamOffsets:
    """``BrokerOffsetStore`` for one stream: the OffsetStore a replay reader uses."""

    def __init__(self, store: BrokerOffsetStore, stream: str) -> None:
        self.store = store
        self.stream = stream

    async def load(self, name: str) -> int | None:
        return await self.store.load_from(self.stream, name)

    async def save(self, name: str, offset: int) -> None:
        await self.store.save_to(self.stream, name, offset)
