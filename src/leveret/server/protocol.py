"""asyncio adapter for one AMQP connection: bytes between a transport and ServerConnection.

It decides nothing about AMQP; it only moves bytes, runs timers (heartbeats, handshake and
close timeouts) and applies backpressure both ways:
- a client that stops reading: ``pause_writing`` marks the connection unwritable, so queues
  stop delivering to it, and we stop reading from it until its buffer drains;
- a resource alarm (memory, disk): the listener blocks connections that publish, which get
  connection.blocked and are no longer read from until the alarm clears.

It also keeps one busy client from starving the others: at most ``INPUT_FRAMES`` frames of
its input are handled per turn of the event loop, the rest (left where it was received, in
the protocol machine's frame buffer: no copy) on later turns, reading paused meanwhile, so
every other connection is served between one flood's shares.

It also logs each connection's life: accepted, opened (user, vhost, client-provided name),
closed (with the reason), with structured fields for the JSON log format.

It sees the listener that accepted it (listener.py) only through ``ConnectionListener``,
declared here, so this module does not import listener.py back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from leveret.amqp.frames import HEARTBEAT_FRAME
from leveret.broker.connection import CLOSED, CLOSING, RUNNING, ServerConnection
from leveret.server.tls import peer_common_name

if TYPE_CHECKING:
    from leveret.broker.node import Node
    from leveret.server.commit import Committer

log = logging.getLogger("leveret.server")

HANDSHAKE_TIMEOUT = 10.0
CLOSE_OK_TIMEOUT = 3.0
WRITE_HIGH_WATER = 1 << 20
WRITE_LOW_WATER = 1 << 18
# Frames of one connection's input handled per turn of the event loop: ~200 small publishes,
# about a millisecond of work, so a flood delays another client by that much, not by the
# 256 KiB a socket read can bring (bench/fairness.py: a 16 KiB share gave a quiet client
# 3 ms beside a flood, 64 KiB 10 ms, unsliced 53 ms; the flood's own rate did not change).
# Counted in frames, not bytes: a frame's cost is mostly per frame, and a share in bytes
# cut large bodies into pieces that had to be copied and joined again (docs/benchmarks.md,
# "Large bodies without copies").
INPUT_FRAMES = 600
# The share of a publisher into a queue whose consumers are behind (Queue.behind): three
# small publishes. With 600 frames a turn, a consumer at its prefetch limit (acks come round
# once a turn) fell further behind every turn, until its queue paged to disk; with 75 (25
# publishes, about what such a consumer drains a turn) the backlog still grew and paged
# within seconds on a slower day; with 9 the consumer drains more than the publisher adds,
# and shorter turns bring its acks round sooner (docs/benchmarks.md, "Issue 14: side by
# side" and "A publisher's share when consumers are behind").
INPUT_FRAMES_BEHIND = 9
# A connection that holds a receive ring (the start of a large frame, or frames it may not
# handle yet) and has sent nothing for this long keeps only those bytes, in a buffer of their
# own size: so a client that sends part of a large frame and stops makes us hold what it
# sent, not 256 KiB.
RING_IDLE = 1.0
# After a framing error nothing the client sends can be parsed: it is read and dropped, so a
# client that hangs up is seen at once, but past this much we stop reading altogether and
# the close timeout ends the connection (a client that keeps writing gets nothing more).
DROP_AFTER_ERROR = 1 << 20


class ConnectionListener(Protocol):
    """What a connection needs from the listener that accepted it (``Listener``)."""

    @property
    def node(self) -> Node: ...
    @property
    def protocols(self) -> set[AMQPProtocol]: ...  # the open connections; each adds itself
    @property
    def committer(self) -> Committer | None: ...  # poked after input: group commit
    @property
    def blocked_reason(self) -> str | None: ...  # set while a resource alarm blocks


# Where a connection's input is read when it is dropped unread (shared: never looked at).
_SCRATCH = memoryview(bytearray(64 << 10))


class AMQPProtocol(asyncio.BufferedProtocol):
    """One AMQP connection's transport events. Its socket reads land straight in the
    protocol machine's frame buffer (``get_buffer``), each frame copied out of it once."""

    def __init__(self, listener: ConnectionListener) -> None:
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.last_recv = 0.0
        self.last_send = 0.0
        self._closing = False
        self._paused_by_client = False
        self.paused_by_broker = False  # a resource alarm blocks this publisher
        self.paused_by_flow = False  # a queue it publishes into is congested
        self._timers: list[asyncio.TimerHandle] = []
        self._heartbeat_started = False
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._close_timer = False
        self._draining = False  # closed by the client: its input is dropped until it hangs up
        self._more_input = False  # whole frames received but not handled: wait their turn
        self._slice_scheduled = False
        self._dropped = 0  # bytes read and dropped after a framing error
        self._dropping = False  # the last get_buffer gave the scratch buffer
        self._ring_timer: asyncio.TimerHandle | None = None  # see RING_IDLE
        self._unsent = 0  # our write buffer at the last heartbeat tick: does the client read?
        self.name = "?"  # "client:port -> server:port", as RabbitMQ names connections
        self.tls = False

    # -- transport events ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        t: asyncio.Transport = transport  # type: ignore[assignment]
        self.transport = t
        t.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("?", 0)
        self.name = f"{_address(peer)} -> {_address(local)}"
        self.conn = conn = ServerConnection(self.listener.node, peer, self._schedule_flush,
                                            self._close_after_flush, self._set_flow_paused)
        self.tls = transport.get_extra_info("sslcontext") is not None
        if self.tls:  # the handshake is done: a verified client certificate allows EXTERNAL
            conn.peer_cert_cn = peer_common_name(transport.get_extra_info("peercert"))
        self.last_recv = self.last_send = self.loop.time()
        self.listener.protocols.add(self)
        self._timers.append(self.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout))
        # debug: a connection's first info line is its opening (or why it ended unopened)
        log.debug("accepting AMQP connection %s%s", self.name, " (TLS)" if self.tls else "",
                 extra={"event": "connection_accepted", "connection": self.name,
                        "client_address": _address(peer), "tls": self.tls,
                        "peer_cert_cn": conn.peer_cert_cn})

    def get_buffer(self, sizehint: int) -> memoryview:
        conn = self.conn
        if conn is None or self._draining or not conn.taking_input:
            self._dropping = True  # read, then dropped: see DROP_AFTER_ERROR
            return _SCRATCH
        self._dropping = False
        return conn.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_recv = self.loop.time()
        conn = self.conn
        if self._dropping:
            if conn is not None and conn.input_closed and not self._draining:
                self._dropped += nbytes
                if self._dropped > DROP_AFTER_ERROR:
                    self._update_reading()
            return
        assert conn is not None
        conn.buffer_updated(nbytes)
        self._handle()  # (a TLS transport may hand over bytes after pausing: queued)
        if self._ring_timer is None and conn.holds_input_ring:
            self._ring_timer = self.loop.call_later(RING_IDLE, self._idle_ring)

    def _idle_ring(self) -> None:
        self._ring_timer = None
        conn = self.conn
        if conn is None or not conn.holds_input_ring:
            return
        if self.loop.time() - self.last_recv >= RING_IDLE:
            conn.shrink_input()
        else:
            self._ring_timer = self.loop.call_later(RING_IDLE, self._idle_ring)

    def _schedule_slice(self) -> None:
        if not self._slice_scheduled:
            self._slice_scheduled = True
            self.loop.call_soon(self._next_slice)

    def _next_slice(self) -> None:
        self._slice_scheduled = False
        t = self.transport
        if t is None or t.is_closing() or not self._more_input or self._held():
            return  # when nothing holds the input any more, _update_reading calls us again
        self._handle()

    def _handle(self) -> None:
        conn = self.conn
        assert conn is not None
        more = conn.receive_data(b"", INPUT_FRAMES_BEHIND if conn.publishing_behind
                                 else INPUT_FRAMES)
        if more or self._more_input:  # pause reading for the next share, or read again
            self._more_input = more  # (not after a framing error: nothing after it parses)
            self._update_reading()
        committer = self.listener.committer
        if committer is not None:
            committer.poke()
        if not self._heartbeat_started and conn.state == RUNNING:
            self._heartbeat_started = True
            self._log_opened(conn)
            if conn.heartbeat:
                self._schedule_heartbeat()
        reason = self.listener.blocked_reason
        if reason is not None and conn.published and not self.paused_by_broker:
            self._block(reason)  # its first publish since the alarm was set

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ring_timer is not None:
            self._ring_timer.cancel()
        for t in self._timers:
            t.cancel()
        self._timers.clear()
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        self.listener.protocols.discard(self)
        conn = self.conn
        if conn is not None:
            opened = self._heartbeat_started
            conn.connection_lost()
            if self.listener.committer is not None:
                self.listener.committer.poke()
            reason = conn.close_reason or (
                "client unexpectedly closed TCP connection"
                if exc is None or isinstance(exc, ConnectionResetError | BrokenPipeError)
                else f"connection error: {exc}")
            fields: dict[str, object] = {"event": "connection_closed", "connection": self.name,
                      "client_address": _address(conn.peer), "reason": reason}
            if opened:
                fields.update(user=conn.user, vhost=conn.vhost.name,
                              connection_name=self._client_name(conn))
                log.info("closing AMQP connection %s (vhost: '%s', user: '%s'): %s",
                         self.name, conn.vhost.name, conn.user, reason, extra=fields)
            else:  # after a refusal, its one warning line has said why
                log.log(logging.DEBUG if conn.refusal_logged else logging.INFO,
                        "AMQP connection %s closed before it was opened: %s", self.name,
                        reason, extra=fields)

    def pause_writing(self) -> None:
        assert self.conn is not None and self.transport is not None
        self.conn.set_transport_paused(True)
        self._paused_by_client = True
        self._unsent = self.transport.get_write_buffer_size()
        self._update_reading()

    def resume_writing(self) -> None:
        assert self.conn is not None
        self._paused_by_client = False
        self._update_reading()
        self.conn.set_transport_paused(False)

    def _set_flow_paused(self, paused: bool) -> None:
        self.paused_by_flow = paused
        self._update_reading()

    def alarms_changed(self, reason: str | None) -> None:
        """The listener's alarms changed: ``reason`` is connection.blocked's text, or None
        once every alarm cleared. Only connections that have published are blocked now."""
        conn = self.conn
        if reason is None:
            if self.paused_by_broker:
                self.paused_by_broker = False
                if conn is not None:
                    conn.set_blocked(False)
                self._update_reading()
        elif conn is not None and conn.published and not self.paused_by_broker:
            self._block(reason)

    def _block(self, reason: str) -> None:
        self.paused_by_broker = True
        if self.conn is not None:
            self.conn.set_blocked(True, reason)
        self._update_reading()

    def _held(self) -> bool:
        """Something stops us handling this client's input: its own unread output, an
        alarm, a congested queue, or more input after a framing error than we drop. Nothing
        holds input that is only dropped while the client hangs up."""
        if self._draining:
            return False
        return (self._paused_by_client or self.paused_by_broker or self.paused_by_flow
                or self._dropped > DROP_AFTER_ERROR)

    def _update_reading(self) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if self._held() or self._more_input:
            if t.is_reading():
                t.pause_reading()
            if self._more_input and not self._held():
                self._schedule_slice()
        elif not t.is_reading():
            t.resume_reading()

    # -- output ----------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        conn, t = self.conn, self.transport
        if conn is None or t is None or t.is_closing():
            return
        parts = conn.take_output_parts()
        if len(parts) > 1 or parts[0]:
            committer = self.listener.committer
            if committer is not None:  # delivered marks reach the OS before deliveries
                committer.write_ahead()  # leave (a kill -9 then brings them redelivered)
            # may call pause_writing() before it returns; large bodies as they are, in one
            # vectored write (uvloop: writev; asyncio's default loop joins them)
            if len(parts) == 1:
                t.write(parts[0])
            else:
                t.writelines(parts)
            self.last_send = self.loop.time()
        conn.output_flushed()
        if self._closing and conn.closed_by_client:
            if not self._draining:
                self._drain_until_hangup()
        elif self._closing:
            t.close()  # once what is buffered is written: a client that reads no more
            self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, self._abort))
        elif conn.state == CLOSING and not self._close_timer:
            self._close_timer = True
            self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, self._abort))

    def _close_after_flush(self) -> None:
        self._closing = True
        self._schedule_flush()

    def _drain_until_hangup(self) -> None:
        """The client closed and close-ok is on its way: let it hang up first, as RabbitMQ
        does, reading and dropping what it still sends. Closing now would reset the
        connection when frames it wrote before reading close-ok are still arriving (the
        kernel answers close() with unread input by RST): amqplib, for one, writes
        connection.close ahead of the publishes it still buffers, then gets ECONNRESET
        instead of close-ok. Its EOF closes the transport (eof_received); a client that
        does not hang up is closed after the timeout."""
        self._draining = True
        self._more_input = False
        self._update_reading()
        self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, self._hang_up))

    def _hang_up(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.close()
            self._timers.append(self.loop.call_later(CLOSE_OK_TIMEOUT, self._abort))

    def _abort(self) -> None:
        """Hang up now, dropping unsent output: close() would wait for a client that may
        never read it (a dead peer, one that ignores our close)."""
        if self.transport is not None:
            self.transport.abort()

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
        if self.paused_by_broker or self.paused_by_flow:
            # We chose not to read: its heartbeats wait in the socket (RabbitMQ, too,
            # pauses its heartbeat monitor while it blocks a connection).
            self.last_recv = now
        elif self._paused_by_client:
            # It does not read what we send, so we do not read from it either; it is alive
            # only if our output to it drains. A client that neither reads nor sends is
            # closed on its missed heartbeats like any other.
            unsent = t.get_write_buffer_size()
            if unsent < self._unsent:
                self.last_recv = now
            self._unsent = unsent
        if now - self.last_recv > conn.heartbeat * 2:
            log.warning("closing connection from %s:%s: missed heartbeats from client, "
                        "timeout: %ss", *conn.peer[:2], conn.heartbeat)
            self._abort()
            return
        if now - self.last_send >= conn.heartbeat / 2:
            t.write(HEARTBEAT_FRAME)
            self.last_send = now
        self._schedule_heartbeat()

    # -- logging ---------------------------------------------------------------------

    @staticmethod
    def _client_name(conn: ServerConnection) -> str | None:
        name = conn.client_properties.get("connection_name")
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return name if isinstance(name, str) else None

    def _log_opened(self, conn: ServerConnection) -> None:
        client_name = self._client_name(conn)
        log.info("connection %s%s: user '%s' authenticated and granted access to vhost '%s'",
                 self.name, f" ({client_name})" if client_name else "", conn.user,
                 conn.vhost.name, extra={
                     "event": "connection_opened", "connection": self.name,
                     "client_address": _address(conn.peer), "user": conn.user,
                     "vhost": conn.vhost.name, "connection_name": client_name,
                     "tls": self.tls})


def _address(addr: tuple[str, int] | tuple[str, int, int, int] | str) -> str:
    if isinstance(addr, str):  # a Unix socket path
        return addr
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
