"""Connections: the opening handshake, channel bookkeeping, connection-level methods, close."""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import struct
from typing import Any

from leveret.amqp import frames, spec
from leveret.client.channel import Channel
from leveret.client.errors import AMQPClosed, ConnectionClosed, ProtocolViolation
from leveret.client.protocol import FrameProtocol
from leveret.client.url import ConnectionParams, parse_url

_I = struct.Struct(">I")

CLIENT_PROPERTIES: dict[str, Any] = {
    "product": "leveret-client",
    "platform": "Python/asyncio",
    "capabilities": {
        "publisher_confirms": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        # ask for a connection.close 403 on bad credentials instead of a silent hang-up
        "authentication_failure_close": True,
        "exchange_exchange_bindings": True,
    },
}


def _negotiate(client: int, server: int) -> int:
    """0 means "no limit" on either side: take the other, else the smaller."""
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


class Connection(FrameProtocol):
    """One AMQP connection. Create it with :func:`connect`."""

    def __init__(self, params: ConnectionParams) -> None:
        super().__init__()
        self.params = params
        self.server_properties: dict[str, Any] = {}
        self.channel_max = params.channel_max
        self.heartbeat = params.heartbeat
        self._waiter: asyncio.Future[spec.Method] | None = None
        self._next_channel = 1

    # -- public API ----------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed is not None

    @property
    def blocked(self) -> bool:
        """True while the server has sent connection.blocked (a resource alarm)."""
        return self._blocked

    async def channel(self) -> Channel:
        self._check_open()
        number = self._allocate_channel()
        chan = Channel(self, number)
        self._channels[number] = chan
        try:
            await chan._open()
        except BaseException:
            self._channels.pop(number, None)
            raise
        return chan

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close politely (connection.close, wait for close-ok), then the socket."""
        if self._closed is None and self._transport is not None:
            self._send_method(0, spec.ConnectionClose(reply_code, reply_text, 0, 0))
            self._flush()
            with contextlib.suppress(AMQPClosed, ProtocolViolation, TimeoutError):
                await asyncio.wait_for(self._expect(spec.ConnectionCloseOk), 10)
            self._set_closed(ConnectionClosed(reply_code, "closed by the client"))
        if self._transport is not None:
            self._transport.close()
            await self._lost

    async def wait_closed(self) -> AMQPClosed:
        """Wait until the connection is gone; returns why (never raises it)."""
        await asyncio.shield(self._lost)
        assert self._closed is not None
        return self._closed

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- handshake -----------------------------------------------------------------------
    async def _handshake(self) -> None:
        p = self.params
        assert self._transport is not None
        self._transport.write(frames.PROTOCOL_HEADER)
        start = await self._expect(spec.ConnectionStart)
        assert isinstance(start, spec.ConnectionStart)
        self.server_properties = start.server_properties
        if b"PLAIN" not in bytes(start.mechanisms).split():
            raise ProtocolViolation(f"server does not offer PLAIN auth: {start.mechanisms!r}")
        response = b"\0" + p.username.encode() + b"\0" + p.password.encode()
        self._send_method(0, spec.ConnectionStartOk(CLIENT_PROPERTIES, "PLAIN", response))
        tune = await self._expect(spec.ConnectionTune)
        assert isinstance(tune, spec.ConnectionTune)
        self.channel_max = _negotiate(p.channel_max, tune.channel_max) or 65535
        self.frame_max = _negotiate(p.frame_max, tune.frame_max)
        # heartbeat=0 in the URL disables them; otherwise the smaller non-zero value wins
        self.heartbeat = 0 if p.heartbeat == 0 else _negotiate(p.heartbeat, tune.heartbeat)
        tune_ok = spec.ConnectionTuneOk(self.channel_max, self.frame_max, self.heartbeat)
        self._send_method(0, tune_ok)
        self._send_method(0, spec.ConnectionOpen(p.vhost))
        await self._expect(spec.ConnectionOpenOk)
        self._opening = False
        self._start_heartbeat(self.heartbeat)

    async def _expect(self, cls: type[spec.Method]) -> spec.Method:
        self._check_open()
        fut: asyncio.Future[spec.Method] = self._loop.create_future()
        self._waiter = fut
        try:
            method = await fut
        finally:
            self._waiter = None
        if not isinstance(method, cls):
            raise ProtocolViolation(f"expected {cls.NAME}, got {method.NAME}")
        return method

    # -- incoming methods ----------------------------------------------------------------
    def _on_method(self, channel: int, payload: bytes) -> None:
        index = _I.unpack_from(payload, 0)[0]
        cls = spec.METHODS.get(index)
        if cls is None:
            raise ProtocolViolation(f"unknown method {index >> 16}.{index & 0xFFFF}")
        method = cls.decode(payload, 4)
        if channel == 0:
            self._on_connection_method(method)
        elif channel in self._channels:
            self._channels[channel]._on_method(method)
        # else: a late frame for a channel we already forgot; nothing to do with it

    def _on_connection_method(self, method: spec.Method) -> None:
        if isinstance(method, spec.ConnectionClose):
            self._send_method(0, spec.ConnectionCloseOk())
            self._flush()
            exc = ConnectionClosed(
                method.reply_code, method.reply_text, method.class_id, method.method_id
            )
            self._set_closed(exc)
            if self._transport is not None:
                self._transport.close()
        elif isinstance(method, spec.ConnectionBlocked):
            self._blocked = True
        elif isinstance(method, spec.ConnectionUnblocked):
            self._blocked = False
            self._wake_writers()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(method)

    # -- bookkeeping ---------------------------------------------------------------------
    def _allocate_channel(self) -> int:
        limit = self.channel_max
        for _ in range(limit):
            number = self._next_channel
            self._next_channel = number % limit + 1
            if number not in self._channels:
                return number
        raise ConnectionClosed(0, f"no free channel number (channel_max {limit})")

    def _forget_channel(self, number: int) -> None:
        self._channels.pop(number, None)

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed.with_traceback(None)

    def _set_closed(self, exc: AMQPClosed) -> None:
        if self._closed is not None:
            return
        self._closed = exc
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        for chan in list(self._channels.values()):
            chan._set_closed(exc)
        self._channels.clear()
        self._wake_writers()


async def connect(url: str = "amqp://guest:guest@127.0.0.1:5672/", **overrides: Any) -> Connection:
    """Open a connection: TCP, protocol header, PLAIN auth, tune, connection.open.

    ``overrides`` replace fields of the parsed URL (``heartbeat=0``, ``frame_max=...``).
    """
    params = parse_url(url)
    if overrides:
        params = ConnectionParams(**{**_asdict(params), **overrides})
    loop = asyncio.get_running_loop()
    ssl_ctx = ssl_module.create_default_context() if params.ssl else None

    async def _open() -> Connection:
        _t, conn = await loop.create_connection(
            lambda: Connection(params), params.host, params.port, ssl=ssl_ctx
        )
        try:
            await conn._handshake()
        except BaseException:
            if conn._transport is not None:
                conn._transport.close()
            raise
        return conn

    return await asyncio.wait_for(_open(), params.connect_timeout)


def _asdict(params: ConnectionParams) -> dict[str, Any]:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}
