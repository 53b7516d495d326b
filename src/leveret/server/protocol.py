"""asyncio adapter for one AMQP connection: bytes between a transport and ServerConnection.

It decides nothing about AMQP; it only moves bytes, runs timers (heartbeats, handshake and
close timeouts) and applies backpressure both ways:
- a client that stops reading: ``pause_writing`` marks the connection unwritable, so queues
  stop delivering to it, and we stop reading from it until its buffer drains;
- a broker holding too much: the listener pauses reading from publishing connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from leveret.amqp.frames import HEARTBEAT_FRAME
from leveret.broker.connection import CLOSED, CLOSING, RUNNING, ServerConnection

if TYPE_CHECKING:
    from leveret.server.listener import Listener

log = logging.getLogger("leveret.server")

HANDSHAKE_TIMEOUT = 10.0
CLOSE_OK_TIMEOUT = 3.0
WRITE_HIGH_WATER = 1 << 20
WRITE_LOW_WATER = 1 << 18


class AMQPProtocol(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.last_recv = 0.0
        self.last_send = 0.0
        self._closing = False
        self._paused_by_client = False
        self.paused_by_broker = False  # memory watermark
        self.paused_by_flow = False  # a queue it publishes into is congested
        self._timers: list[asyncio.TimerHandle] = []
        self._heartbeat_started = False
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._close_timer = False

    # -- transport events ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        t: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = t
        t.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.conn = ServerConnection(self.listener.node, peer, self._schedule_flush,
                                     self._close_after_flush, self._set_flow_paused)
        self.last_recv = self.last_send = self.loop.time()
        self.listener.protocols.add(self)
        self._timers.append(self.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout))

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        assert conn is not None
        self.last_recv = self.loop.time()
        conn.receive_data(data)
        committer = self.listener.committer
        if committer is not None:
            committer.poke()
        if not self._heartbeat_started and conn.state == RUNNING:
            self._heartbeat_started = True
            if conn.heartbeat:
                self._schedule_heartbeat()

    def connection_lost(self, exc: Exception | None) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        self.listener.protocols.discard(self)
        if self.conn is not None:
            self.conn.connection_lost()
            if self.listener.committer is not None:
                self.listener.committer.poke()
            log.debug("connection from %s:%s closed", *self.conn.peer[:2])

    def pause_writing(self) -> None:
        assert self.conn is not None and self.transport is not None
        self.conn.set_transport_paused(True)
        self._paused_by_client = True
        self._update_reading()

    def resume_writing(self) -> None:
        assert self.conn is not None
        self._paused_by_client = False
        self._update_reading()
        self.conn.set_transport_paused(False)

    def _set_flow_paused(self, paused: bool) -> None:
        self.paused_by_flow = paused
        self._update_reading()

    def set_paused_by_broker(self, paused: bool) -> None:
        self.paused_by_broker = paused
        if self.conn is not None:
            self.conn.set_blocked(paused)
        self._update_reading()

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if self._paused_by_client or self.paused_by_broker or self.paused_by_flow:
            if t.is_reading():
                t.pause_reading()
        elif not t.is_reading():
            t.resume_reading()

    # -- output ----------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        conn, t = self.conn, self.transport
        if conn is None or t is None or t.is_closing():
            return
        data = conn.take_output()
        if data:
            t.write(data)  # may call pause_writing() before it returns
            self.last_send = self.loop.time()
        conn.output_flushed()
        if self._closing:
            t.close()
        elif conn.state == CLOSING and not self._close_timer:
            self._close_timer = True
            self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, self._abort))

    def _close_after_flush(self) -> None:
        self._closing = True
        self._schedule_flush()

    def _abort(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- timers ----------------------------------------------------------------------

    def _handshake_timeout(self) -> None:
        conn = self.conn
        if conn is not None and conn.state not in (RUNNING, CLOSING, CLOSED):
            log.info("closing connection from %s:%s: handshake timeout", *conn.peer[:2])
            self._abort()

    def _schedule_heartbeat(self) -> None:
        assert self.conn is not None
        self._heartbeat_timer = self.loop.call_later(self.conn.heartbeat / 2,
                                                     self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        conn, t = self.conn, self.transport
        if conn is None or t is None or t.is_closing() or conn.state == CLOSED:
            return
        now = self.loop.time()
        if now - self.last_recv > conn.heartbeat * 2:
            log.warning("closing connection from %s:%s: missed heartbeats from client, "
                        "timeout: %ss", *conn.peer[:2], conn.heartbeat)
            self._abort()
            return
        if now - self.last_send >= conn.heartbeat / 2:
            t.write(HEARTBEAT_FRAME)
            self.last_send = now
        self._schedule_heartbeat()
