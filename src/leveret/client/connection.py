"""Connections: the opening handshake, channel bookkeeping, connection-level methods, close.

``Connection`` is the client-role owner of the protocol machine (``amqp.connection``): the
machine says which method arrived on which channel, in an order it has checked; this module
decides what the client does with it (answer a waiter, call a consumer, mark a channel
closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

from leveret.amqp import spec
from leveret.amqp.connection import ProtocolMachine, Role
from leveret.amqp.content import ContentHead
from leveret.amqp.fields import encode_table
from leveret.client import tls
from leveret.client.channel import Channel
from leveret.client.errors import (
    AMQPClosed,
    ChannelClosed,
    ConnectionClosed,
    NoSuitableMechanism,
    ProtocolViolation,
)
from leveret.client.protocol import FrameProtocol
from leveret.client.url import ConnectionParams, parse_url
from leveret.errors import AMQPError

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
        self._amqp = ProtocolMachine(Role.CLIENT, self, self._send)
        self._amqp.fast_methods.update(self._fast_methods())
        # why the connection ends once the server answers our connection.close
        self._closing: ConnectionClosed | None = None

    # -- public API ----------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed is not None

    @property
    def addresses(self) -> tuple[tuple[str, int], tuple[str, int]] | None:
        """(this end, the server's end) of the socket as (host, port); None once closed."""
        t = self._transport
        if t is None:
            return None
        local, peer = t.get_extra_info("sockname"), t.get_extra_info("peername")
        if not local or not peer:
            return None
        return (str(local[0]), int(local[1])), (str(peer[0]), int(peer[1]))

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
            self._closing = ConnectionClosed(reply_code, "closed by the client")
            self._send_method(0, spec.ConnectionClose(reply_code, reply_text, 0, 0))
            self._flush()
            # the close-ok ends the connection (connection_closed), which fails this wait
            with contextlib.suppress(AMQPClosed, ProtocolViolation, TimeoutError):
                await asyncio.wait_for(self._expect(spec.ConnectionCloseOk), 10)
            self._set_closed(self._closing)
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
        self._amqp.send_protocol_header()
        self._flush()
        start = await self._expect(spec.ConnectionStart)
        assert isinstance(start, spec.ConnectionStart)
        self.server_properties = start.server_properties
        mechanism = self._mechanism(bytes(start.mechanisms).decode(errors="replace").split())
        self._send_method(0, spec.ConnectionStartOk(
            CLIENT_PROPERTIES, mechanism, _auth_response(mechanism, p)))
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
        self._start_heartbeat(self.heartbeat)

    def _mechanism(self, offered: list[str]) -> str:
        """The first of the URI's mechanisms the server offers (RabbitMQ's client rule)."""
        wanted = self.params.auth_mechanisms
        for mechanism in wanted:
            if mechanism in offered:
                return mechanism
        hint = ""
        if "EXTERNAL" in wanted:
            hint = (" (a server offers EXTERNAL only over TLS to a client whose certificate "
                    "it verified: give certfile and keyfile in the amqps URI)")
        raise NoSuitableMechanism(f"no suitable auth mechanism: the server offers "
                                  f"{' '.join(offered)}, the URI asks for "
                                  f"{' '.join(wanted)}{hint}")

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

    # -- the protocol machine's events ---------------------------------------------------
    def header_received(self) -> None:
        """Only a server receives a protocol header; the machine never calls this here."""

    def connection_method(self, method: spec.Method) -> None:
        if isinstance(method, spec.ConnectionBlocked):
            self._blocked = True
        elif isinstance(method, spec.ConnectionUnblocked):
            self._blocked = False
            self._wake_writers()
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(method)

    def connection_closed(self, method: spec.ConnectionClose | None) -> None:
        self._flush()  # the close-ok the machine answered with, if any
        if method is None:  # the server answered our connection.close
            exc = self._closing or ConnectionClosed(0, "closed by the client")
        else:
            exc = ConnectionClosed(
                method.reply_code, method.reply_text, method.class_id, method.method_id
            )
        self._set_closed(exc)
        if self._transport is not None:
            self._transport.close()

    def channel_method(self, number: int, method: spec.Method) -> None:
        chan = self._channels.get(number)
        if chan is not None:
            chan._on_method(method)

    def content_received(self, number: int, head: ContentHead, properties: bytes,
                         body: bytes) -> None:
        chan = self._channels.get(number)
        if chan is not None:
            chan._on_content(head, properties, body)

    def channel_closed(self, number: int,
                       method: spec.ChannelClose | spec.ChannelCloseOk) -> None:
        chan = self._channels.get(number)
        if chan is None:
            return
        if isinstance(method, spec.ChannelClose):  # the machine sends close-ok next
            self._forget_channel(number)
            chan._set_closed(ChannelClosed(
                method.reply_code, method.reply_text, method.class_id, method.method_id))
        else:
            chan._on_method(method)  # the answer to our channel.close

    def channel_failed(self, number: int, error: AMQPError) -> None:
        chan = self._channels.get(number)
        if chan is not None:  # the machine sends channel.close next
            chan._set_closed(ChannelClosed(error.reply_code, error.reply_text,
                                           error.class_id or 0, error.method_id or 0))

    # -- bookkeeping ---------------------------------------------------------------------
    def _allocate_channel(self) -> int:
        limit = self.channel_max
        for _ in range(limit):
            number = self._next_channel
            self._next_channel = number % limit + 1
            # the machine may still be closing a channel this side already forgot
            if number not in self._channels and number not in self._amqp.channels:
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
    """Open a connection: TCP (TLS for amqps://, leveret.client.tls), protocol header,
    login (PLAIN, AMQPLAIN or EXTERNAL, as the URI's auth_mechanism says), tune,
    connection.open.

    ``overrides`` replace fields of the parsed URL (``heartbeat=0``, ``frame_max=...``).
    """
    params = parse_url(url)
    if overrides:
        params = ConnectionParams(**{**_asdict(params), **overrides})
    loop = asyncio.get_running_loop()
    tls_args: dict[str, Any] = {}
    if params.tls is not None:
        tls_args = {"ssl": tls.client_context(params.tls),
                    "server_hostname": tls.server_hostname(params.tls, params.host)}
        tls.warn_unverified(params.tls, params.host, params.port)

    async def _open() -> Connection:
        try:
            transport, conn = await loop.create_connection(
                lambda: Connection(params), params.host, params.port, **tls_args)
        except ssl.SSLCertVerificationError as exc:
            assert params.tls is not None
            raise tls.verification_failed(exc, params.tls, params.host, params.port) from exc
        try:
            if params.tls is not None:
                tls.check_depth(params.tls, transport.get_extra_info("ssl_object"))
            await conn._handshake()
        except BaseException as exc:
            if conn._transport is not None:
                conn._transport.close()
            if (isinstance(exc, ConnectionClosed) and exc.reply_code == 0
                    and params.tls is not None and params.tls.certfile is None):
                # under TLS 1.3 a server's refusal of a client without a certificate
                # arrives after the handshake, as a hang-up
                raise ConnectionClosed(0, f"{exc.reply_text}, before the AMQP handshake "
                                          f"ended; if the server requires a client "
                                          f"certificate, give certfile and keyfile in the "
                                          f"amqps URI") from exc
            raise
        return conn

    return await asyncio.wait_for(_open(), params.connect_timeout)


def _auth_response(mechanism: str, params: ConnectionParams) -> bytes:
    if mechanism == "PLAIN":
        return b"\0" + params.username.encode() + b"\0" + params.password.encode()
    if mechanism == "AMQPLAIN":  # a field table without its 4-byte length
        return encode_table({"LOGIN": params.username, "PASSWORD": params.password})[4:]
    return b""  # EXTERNAL: the server takes the user from our certificate


def _asdict(params: ConnectionParams) -> dict[str, Any]:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}
