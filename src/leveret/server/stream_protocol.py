"""asyncio adapter for the stream protocol listener (``--stream-port``, RabbitMQ's 5552):
bytes between a transport and broker/stream_connection.py's StreamConnection, the
heartbeat, and backpressure both ways (a client that stops reading pauses its
subscriptions and our reading from it; too many unconfirmed publishes pause reading)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import TYPE_CHECKING

from leveret.broker.stream_connection import CLOSED, CLOSING, OPEN, StreamConnection
from leveret.broker.stream_stats import StreamTotals
from leveret.server.listener import bind_sockets, close_served, close_sockets
from leveret.server.protocol import WRITE_HIGH_WATER, WRITE_LOW_WATER
from leveret.server.tls import peer_common_name, session_details
from leveret.streamproto import frames

if TYPE_CHECKING:
    from leveret.broker.node import Node
    from leveret.server.listener import Listener

log = logging.getLogger("leveret.server")

HANDSHAKE_TIMEOUT = 10.0
CLOSE_TIMEOUT = 3.0
TLS_CLOSE_LINGER = 0.1
HEARTBEAT_FRAME = frames.command(frames.HEARTBEAT, 1)


class StreamProtocol(asyncio.Protocol):
    def __init__(self, listener: StreamListener) -> None:
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: StreamConnection | None = None
        self.last_recv = self.last_send = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        self._heartbeat: asyncio.TimerHandle | None = None
        self._closing = False
        self._close_timer = False
        self.name = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = t
        t.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("?", 0)
        self.name = f"{peer[0]}:{peer[1]} -> {local[0]}:{local[1]}"
        cn = tls = None
        advertised = self.listener.advertised
        if transport.get_extra_info("sslcontext") is not None:
            cn = peer_common_name(transport.get_extra_info("peercert"))
            tls = session_details(transport.get_extra_info("ssl_object"))
            advertised = self.listener.advertised_tls  # Metadata names the TLS port
        self.conn = StreamConnection(self.listener.node, peer, advertised,
                                     self._schedule_flush, self._close_after_flush,
                                     self._set_reading, cn, local=(str(local[0]),
                                                                   int(local[1])), tls=tls,
                                     totals=self.listener.totals,
                                     on_continue=self._schedule_continue)
        self.last_recv = self.last_send = self.loop.time()
        self.listener.protocols.add(self)
        self._timers.append(self.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout))
        log.debug("accepting stream connection %s", self.name,
                  extra={"event": "connection_accepted", "connection": self.name})

    def data_received(self, data: bytes) -> None:
        self.last_recv = self.loop.time()
        conn = self.conn
        if conn is None:
            return
        was_open = conn.state is OPEN
        conn.receive_data(data)
        committer = self.listener.amqp.committer
        if committer is not None:
            committer.poke()
        if not was_open and conn.state is OPEN:
            self._opened(conn)

    def _schedule_continue(self) -> None:
        self.loop.call_soon(self._continue_input)

    def _continue_input(self) -> None:
        """The connection yielded the loop last turn (a share of appends done): on with
        its input."""
        conn = self.conn
        if conn is None:
            return
        conn.continue_input()
        committer = self.listener.amqp.committer
        if committer is not None:
            committer.poke()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self.listener.protocols.discard(self)
        conn = self.conn
        if conn is not None:
            opened = conn.vhost is not None
            conn.connection_lost()
            committer = self.listener.amqp.committer
            if committer is not None:
                committer.poke()
            reason = conn.close_reason or "client unexpectedly closed TCP connection"
            level = logging.INFO if opened or not conn.refusal_logged else logging.DEBUG
            log.log(level, "closing stream connection %s (user: '%s'): %s", self.name,
                    conn.user, reason, extra={"event": "connection_closed",
                                              "connection": self.name, "reason": reason})

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.conn.set_transport_paused(True)

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.conn.set_transport_paused(False)

    def _set_reading(self, reading: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if reading and not t.is_reading():
            t.resume_reading()
        elif not reading and t.is_reading():
            t.pause_reading()

    # -- output ----------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        conn, t = self.conn, self.transport
        if conn is None or t is None or t.is_closing():
            return
        data = conn.take_output()
        if data:
            t.write(data)
            self.last_send = self.loop.time()
        if self._closing:
            if self.conn is not None and self.conn.tls is not None:
                # TLS sends its close_notify right behind the last answer, and a client
                # that reads both in one go may drop that answer (rstream 1.1 does, and
                # times out instead of reporting a refused login): close a moment later.
                self._timers.append(self.loop.call_later(TLS_CLOSE_LINGER, t.close))
            else:
                t.close()
            self._timers.append(self.loop.call_later(CLOSE_TIMEOUT, t.abort))
            return
        if conn.state is CLOSING and not self._close_timer:
            self._close_timer = True  # our Close waits this long for its answer
            self._timers.append(self.loop.call_later(CLOSE_TIMEOUT, t.abort))
        conn.output_flushed()

    def _close_after_flush(self) -> None:
        self._closing = True
        self._schedule_flush()

    # -- timers ----------------------------------------------------------------------

    def _handshake_timeout(self) -> None:
        conn = self.conn
        if conn is not None and conn.vhost is None and conn.state is not CLOSED \
                and self.transport is not None:
            log.info("closing stream connection %s: handshake timeout", self.name)
            self.transport.abort()

    def _opened(self, conn: StreamConnection) -> None:
        name = conn.client_properties.get("connection_name") or ""
        assert conn.vhost is not None
        log.info("stream connection %s%s: user '%s' authenticated and granted access to "
                 "vhost '%s'", self.name, f" ({name})" if name else "", conn.user,
                 conn.vhost.name, extra={"event": "connection_opened",
                                         "connection": self.name, "user": conn.user,
                                         "vhost": conn.vhost.name})
        if conn.heartbeat:
            self._heartbeat = self.loop.call_later(conn.heartbeat / 2, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        conn, t = self.conn, self.transport
        if conn is None or t is None or t.is_closing() or conn.state is CLOSED:
            return
        now = self.loop.time()
        if now - self.last_recv > conn.heartbeat * 2 and t.is_reading():
            log.warning("closing stream connection %s: missed heartbeats from client, "
                        "timeout: %ss", self.name, conn.heartbeat)
            t.abort()
            return
        if not t.is_reading():
            self.last_recv = now  # we chose not to read: its heartbeats wait in the socket
        if now - self.last_send >= conn.heartbeat / 2:
            t.write(HEARTBEAT_FRAME)
            self.last_send = now
        self._heartbeat = self.loop.call_later(conn.heartbeat / 2, self._heartbeat_tick)


class StreamListener:
    """Accepts stream-protocol connections, over TLS on the sockets listened on with an
    SSL context; shares the AMQP listener's node and group commit (``amqp``). Metadata and
    Open name ``advertised_host`` and ``advertised_port`` as where to connect (default: the
    address listened on, and its port), so a client behind NAT or in a container can be
    pointed elsewhere; TLS clients are told ``advertised_tls_port`` (default: the TLS
    port), as RabbitMQ's plugin does."""

    def __init__(self, amqp: Listener, advertised_host: str | None = None,
                 advertised_port: int | None = None,
                 advertised_tls_port: int | None = None) -> None:
        self.amqp = amqp
        self.node: Node = amqp.node
        self.advertised_host = advertised_host
        self.advertised_port = advertised_port
        self.advertised_tls_port = advertised_tls_port
        self.advertised = (advertised_host or "localhost", advertised_port or 5552)
        self.advertised_tls = (advertised_host or "localhost", advertised_tls_port or 5551)
        self.protocols: set[StreamProtocol] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.totals = StreamTotals()  # every connection's counts, for /metrics
        amqp.alarm_listeners.append(self._alarms_changed)

    def _alarms_changed(self) -> None:
        for conn in self.connections():
            conn.alarms_changed()

    def connections(self) -> list[StreamConnection]:
        return [p.conn for p in self.protocols if p.conn is not None]

    async def listen(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                     sockets: list[socket.socket] | None = None) -> int:
        if sockets is None:
            sockets = bind_sockets(host, port, "the stream protocol")
        bound = int(sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        try:
            while sockets:
                server = await loop.create_server(lambda: StreamProtocol(self),
                                                  sock=sockets[0], ssl=ssl_context)
                sockets.pop(0)
                self.servers.append(server)
        finally:
            close_sockets(sockets)
        host_named = host if host not in ("", "0.0.0.0", "::") else "localhost"
        if ssl_context is None:
            self.advertised = (self.advertised_host or host_named,
                               self.advertised_port or bound)
        else:
            self.advertised_tls = (self.advertised_host or host_named,
                                   self.advertised_tls_port or bound)
        return bound

    async def close(self, timeout: float = 5.0) -> None:
        await close_served(self.servers, self.protocols, _close_for_shutdown, timeout)


def _close_for_shutdown(p: StreamProtocol) -> None:
    if p.conn is not None:
        p.conn.close(frames.OK, "shutdown", hang_up=True)
