"""The server role of one AMQP connection, sans I/O: bytes in, bytes out.

The protocol itself (frames, the handshake's order, channel states, content assembly, the
close handshakes) is ``leveret.amqp.connection.ProtocolMachine``. ``ServerConnection`` is
its owner on the server side and decides what only a broker decides: logins
(``node.authenticate``), vhost admission (``node.check_connection_allowed``), per-user channel
limits, what each channel method does (``Channel`` and ``dispatch.HANDLERS``) and what a
closing connection frees (its channels and exclusive queues). Around that it batches output
(the server writes ``take_output_parts()`` once per batch), holds deliveries while the client's
socket is backed up, flushes publisher confirms once per batch and pauses publishers whose
queues are congested, so the asyncio layer decides nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from leveret.amqp import spec
from leveret.amqp.connection import ConnectionState, ProtocolMachine, Role
from leveret.amqp.content import ContentHead
from leveret.amqp.fields import decode_table
from leveret.amqp.frames import FRAME_END_BYTE, LARGE_BODY
from leveret.broker.access import Grants, User
from leveret.broker.channel import Channel
from leveret.broker.clock import Timer
from leveret.broker.dispatch import HANDLERS
from leveret.broker.logins import Refused
from leveret.broker.node import Node
from leveret.broker.queues import Queue
from leveret.broker.queues.base import STUCK_AFTER
from leveret.broker.vhost import VirtualHost
from leveret.errors import (
    AccessRefusedHard,
    AMQPError,
    CommandInvalid,
    FrameError,
    InternalError,
    NotAllowed,
    NotImplemented_,
    UnknownFieldType,
)

log = logging.getLogger("leveret.connection")

# The states other layers look at (server/protocol.py, management).
RUNNING: Final = ConnectionState.RUNNING
CLOSING: Final = ConnectionState.CLOSING
CLOSED: Final = ConnectionState.CLOSED
# Before the client has tuned the connection, RabbitMQ hangs up on a misbehaving client
# without a connection.close.
_BEFORE_TUNED = frozenset({ConnectionState.START_OK, ConnectionState.TUNE,
                           ConnectionState.SECURE_OK, ConnectionState.TUNE_OK})

# Bytes of deliveries queued for one connection before they are written out and delivery
# continues on the next turn of the event loop.
OUTPUT_BATCH: Final = 1 << 20

_BASIC_PUBLISH: Final = spec.BasicPublish  # handled before the HANDLERS lookup: the hot one


def closed_by_client(code: int, text: str) -> str:
    """The log's reason for a client's connection.close. Some clients (aiormq, aio-pika)
    send code 0 and no text: there is nothing more to say than who closed it."""
    if not code and not text:
        return "closed by the client"
    return f"closed by the client (connection.close {code} {text!r})"


def vectored_parts(out: list[bytes], large: int) -> list[bytes]:
    """The parts of one vectored write of ``out``: each piece of ``large`` bytes or more by
    itself, as it is; the runs of smaller pieces between them joined."""
    parts: list[bytes] = []
    start = 0
    for i, piece in enumerate(out):
        if len(piece) >= large:
            if start < i:
                parts.append(out[start] if start + 1 == i else b"".join(out[start:i]))
            parts.append(piece)
            start = i + 1
    if start < len(out):
        parts.append(b"".join(out[start:]))
    return parts


class ServerConnection:
    def __init__(self, node: Node, peer: tuple[str, int] = ("?", 0),
                 on_write: Callable[[], None] = lambda: None,
                 on_close: Callable[[], None] = lambda: None,
                 on_flow: Callable[[bool], None] = lambda paused: None) -> None:
        self.node = node
        self.peer = peer
        self.on_write = on_write  # schedule a flush of take_output(), once per batch
        self.on_close = on_close  # close the transport after the next flush
        self.on_flow = on_flow  # pause (True) or resume (False) reading from the client
        self.flow_paused = False
        self._congested_by: Queue | None = None  # the queue it waits on while flow_paused
        self._flow_timer: Timer | None = None
        self.blocked_sent = False
        self.last_routed: list[Queue] = []
        # a queue it last published into is behind its consumers (Queue.behind): the
        # protocol gives its input a smaller share of each turn of the event loop
        self.publishing_behind = False
        self.protocol = ProtocolMachine(Role.SERVER, self, self.write,
                                        frame_max=node.limits.frame_max,
                                        max_body_size=node.limits.max_message_size)
        self.out: list[bytes] = []
        self._large_out = False  # a large body is among ``out``: take_output_parts keeps it
        self._flush_requested = False
        # Deliveries stop while the client's socket is backed up (transport_paused) or a
        # batch of output is waiting to be written (output_full), so that one consumer's
        # backlog never becomes one huge write or an unbounded buffer.
        self.writable = True
        self.transport_paused = False
        self.transport_paused_at: float | None = None
        self.output_full = False
        self.out_bytes = 0
        self.channels: dict[int, Channel] = {}
        self._confirming: dict[int, Channel] = {}
        self.vhost: VirtualHost = node.vhosts.get("/") or VirtualHost("/")  # until open
        self.user = ""
        self.cached_grants: Grants | None = None
        self.client_properties: dict[str, Any] = {}
        self.channel_max = node.limits.channel_max
        self.frame_max = node.limits.frame_max
        self.heartbeat = 0
        self.published = 0  # messages received, for the server's flow control
        # For the management API: when it connected (ms since the epoch), bytes in and out.
        self.connected_at = int(node.clock.now() * 1000)
        self.recv_oct = 0
        self.send_oct = 0
        # Subject CN of a verified TLS client certificate, set by the server: allows EXTERNAL.
        self.peer_cert_cn: str | None = None
        self.close_reason = ""  # why the connection ended, for the server's log
        # Set when a refused login or connection.open was logged with its reason: that line
        # says all there is, so the server logs the connection's end at debug level only.
        self.refusal_logged = False
        # Set after a framing error: the byte stream is out of step, so nothing more can be
        # parsed (not even close-ok). The server drops what follows (and stops reading if
        # it goes on); the close timeout ends it.
        self.input_closed = False
        # Set when the client closed and we answered close-ok: it hangs up once it reads it
        # (close-ok tells "the recipient that it is safe to ... close the socket").
        self.closed_by_client = False
        self._refusal: Timer | None = None  # a refused login's answer, due after a delay

    @property
    def state(self) -> ConnectionState:
        return self.protocol.state

    def send(self, channel: int, method: spec.Method) -> None:
        self.protocol.send(channel, method)

    # -- output ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self.out_bytes += len(data)
        if self.out_bytes > OUTPUT_BATCH and not self.output_full:
            self.output_full = True
            self.writable = False
        if not self._flush_requested:
            self._flush_requested = True
            self.on_write()

    def write_body(self, head: bytes, body: bytes) -> None:
        """``head`` (frames up to a body frame's header), the body, the frame end: a body
        of ``LARGE_BODY`` or more stays its own piece of the output, shared, not copied."""
        self.write(head)
        self.out.append(body)
        self.out_bytes += len(body)
        self._large_out = True
        self.write(FRAME_END_BYTE)

    def take_output(self) -> bytes:
        """The output batch as one byte string."""
        return b"".join(self.take_output_parts())

    def take_output_parts(self) -> list[bytes]:
        """The output batch for a vectored write: runs of small pieces joined, each large
        body by itself (one join of everything when there is none)."""
        self._flush_requested = False
        out = self.out
        self.send_oct += self.out_bytes
        self.out_bytes = 0
        if not self._large_out:
            data = b"".join(out)
            out.clear()
            return [data]
        self._large_out = False
        parts = vectored_parts(out, LARGE_BODY)
        out.clear()
        return parts

    def output_flushed(self) -> None:
        """The server wrote the output batch: deliveries may resume if they were held."""
        if self.output_full:
            self.output_full = False
            self._update_writable()

    def confirm_ready(self, channel: Channel) -> None:
        self._confirming[channel.number] = channel

    def store_synced(self) -> None:
        """The store made more changes durable: release the confirms waiting for them."""
        if self.state is CLOSED:
            return
        for ch in list(self.channels.values()):
            if ch.unsynced and not ch.closing:
                ch.flush_confirms()

    # -- input -----------------------------------------------------------------------

    @property
    def taking_input(self) -> bool:
        """False once what the client sends is dropped unread (closed, refused, or after a
        framing error)."""
        return not (self.protocol.state is CLOSED or self.input_closed
                    or self._refusal is not None)

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next socket read goes (the protocol machine's frame buffer)."""
        return self.protocol.get_buffer(sizehint)

    @property
    def holds_input_ring(self) -> bool:
        return self.protocol.holds_input_ring

    def shrink_input(self) -> None:
        """The client has sent nothing for a while: what it sent before waits in a buffer
        of its own size, not in a 256 KiB ring (amqp/frames.py)."""
        self.protocol.shrink_input()

    def buffer_updated(self, nbytes: int) -> None:
        """``nbytes`` arrived in ``get_buffer``: ``receive_data(b"")`` handles them."""
        self.recv_oct += nbytes
        self.protocol.buffer_updated(nbytes)

    def receive_data(self, data: bytes, max_frames: int = 0) -> bool:
        """Handle what the client sent, at most ``max_frames`` frames of it (0: all). True
        if whole frames may be left: call again with ``b""`` (on a later turn) to go on."""
        if not self.taking_input:
            return False
        protocol = self.protocol
        self.recv_oct += len(data)
        more = False
        try:
            more = protocol.receive_data(data, max_frames)
        except AMQPError as exc:
            self._hard_error(exc)
        except Exception as exc:  # a bug must close one connection, never the broker
            log.exception("internal error on connection from %s:%s", *self.peer[:2])
            self._hard_error(InternalError(str(exc)))
        finally:
            if self._confirming:
                for ch in self._confirming.values():
                    if not ch.closing:
                        ch.flush_confirms()
                self._confirming.clear()
        if self.last_routed:
            self._check_congestion()
        return more and not self.input_closed

    def _check_congestion(self) -> None:
        behind = False
        for q in self.last_routed:
            if q.behind():
                behind = True
            if q.congested() and not self.flow_paused:
                self.flow_paused = True
                q.waiting_publishers.add(self)
                self._congested_by = q
                self._flow_timer = self.node.timers.call_later(STUCK_AFTER,
                                                               self._flow_timeout)
                self.on_flow(True)
        self.publishing_behind = behind
        self.last_routed = []

    def _flow_timeout(self) -> None:
        """Paused for STUCK_AFTER: go on. If the queue's consumers are still stuck, they
        no longer count and the next publish finds the queue uncongested; if they are only
        slow, it pauses again."""
        q = self._congested_by
        if q is not None:
            q.waiting_publishers.discard(self)
        self.flow_resume()

    def flow_resume(self) -> None:
        self._congested_by = None
        if self._flow_timer is not None:
            self._flow_timer.cancel()
            self._flow_timer = None
        if self.flow_paused:
            self.flow_paused = False
            self.on_flow(False)

    @property
    def stuck(self) -> bool:
        """Its socket has been full for STUCK_AFTER seconds: the client does not read."""
        since = self.transport_paused_at
        return since is not None and self.node.clock.now() - since >= STUCK_AFTER

    # -- the protocol machine's events: connection ---------------------------------------

    def header_received(self) -> None:
        self.send(0, spec.ConnectionStart(
            version_major=0, version_minor=9, server_properties=self.node.server_properties(),
            mechanisms=b"EXTERNAL PLAIN AMQPLAIN" if self.peer_cert_cn else b"PLAIN AMQPLAIN",
            locales=b"en_US"))

    def connection_method(self, m: spec.Method) -> None:
        if isinstance(m, spec.ConnectionStartOk):
            self._start_ok(m)
        elif isinstance(m, spec.ConnectionSecureOk):
            raise AccessRefusedHard("secure-ok is not used by PLAIN or AMQPLAIN")
        elif isinstance(m, spec.ConnectionTuneOk):
            protocol = self.protocol  # it checked the numbers against our offer
            self.frame_max = protocol.frame_max
            self.channel_max = protocol.channel_max
            self.heartbeat = protocol.heartbeat
        elif isinstance(m, spec.ConnectionOpen):
            refused = self.node.check_connection_allowed(self.user, m.virtual_host)
            if refused is not None:
                address = f"{self.peer[0]}:{self.peer[1]}"
                self.node.refusal_log.warning(
                    refused.reason, "connection from %s refused: %s", address, refused.text,
                    extra={"event": "connection_refused", "user": self.user,
                           "vhost": m.virtual_host, "client_address": address})
                self.refusal_logged = True
                raise NotAllowed(refused.text, 10, 40)
            self.vhost = self.node.vhosts[m.virtual_host]
            self.node.connections.add(self)
            self.send(0, spec.ConnectionOpenOk())
        elif isinstance(m, spec.ConnectionUpdateSecret):
            self.send(0, spec.ConnectionUpdateSecretOk())

    def connection_closed(self, method: spec.ConnectionClose | None) -> None:
        if method is not None:
            self.close_reason = closed_by_client(method.reply_code, method.reply_text)
            self.closed_by_client = True
        self.release()
        self.on_close()

    def _start_ok(self, m: spec.ConnectionStartOk) -> None:
        self.client_properties = m.client_properties
        user, password = self._credentials(m.mechanism, m.response)
        login: User | Refused
        if user is None:
            login = Refused("malformed_response", f"malformed {m.mechanism} response")
        elif m.mechanism == "EXTERNAL":  # the server verified the certificate naming user
            login = self.node.login_external(user, self.peer[0])
        else:
            login = self.node.login(user, password, self.peer[0])
        if isinstance(login, Refused):
            self._refuse_login(m.mechanism, user, login)
            return
        self.user = login.name
        limits = self.node.limits
        self.send(0, spec.ConnectionTune(channel_max=limits.channel_max,
                                         frame_max=limits.frame_max, heartbeat=limits.heartbeat))

    def _refuse_login(self, mechanism: str, user: str | None, refused: Refused) -> None:
        """Log why, and answer once the node's failed-login delay has passed (logins.py);
        the client's input is ignored meanwhile."""
        address = f"{self.peer[0]}:{self.peer[1]}"
        self.node.refusal_log.warning(
            refused.reason, "%s login refused from %s: %s", mechanism, address, refused.text,
            extra={"event": "auth_failure", "user": user, "mechanism": mechanism,
                   "client_address": address})
        self.refusal_logged = True
        self.close_reason = f"login refused using mechanism {mechanism}"
        delay = self.node.failed_login_delay
        if delay > 0:
            self._refusal = self.node.timers.call_later(
                delay, lambda: self._answer_refused_login(mechanism))
        else:
            self._answer_refused_login(mechanism)

    def _answer_refused_login(self, mechanism: str) -> None:
        self._refusal = None
        if self.state is CLOSED:
            return
        if self.client_capability("authentication_failure_close"):
            refused = AccessRefusedHard(f"Login was refused using authentication mechanism "
                                        f"{mechanism}. For details see the broker logfile.")
            self.close(refused.reply_code, refused.reply_text)  # no ids, as RabbitMQ
        else:
            self._close_transport()

    def _credentials(self, mechanism: str, response: bytes) -> tuple[str | None, str]:
        if mechanism == "EXTERNAL" and self.peer_cert_cn is not None:
            return self.peer_cert_cn, ""
        try:
            if mechanism == "PLAIN":
                _authzid, user, password = response.split(b"\x00", 2)
                return user.decode(), password.decode()
            if mechanism == "AMQPLAIN":
                # AMQPLAIN sends a field table without its 4-byte length prefix.
                table, _ = decode_table(len(response).to_bytes(4, "big") + response, 0)
                return str(table.get("LOGIN", "")), str(table.get("PASSWORD", ""))
        except (ValueError, UnicodeDecodeError, FrameError, IndexError):
            return None, ""
        raise CommandInvalid(f"unknown authentication mechanism '{mechanism}'", 10, 11)

    @property
    def grants(self) -> Grants:
        """This user's permissions in this vhost, recompiled when they change (the node
        drops ``cached_grants`` of every connection then)."""
        grants = self.cached_grants
        if grants is None:
            grants = self.cached_grants = self.node.grants(self.vhost.name, self.user)
        return grants

    def _check_user_channel_limit(self) -> None:
        user = self.node.users.get(self.user)
        limit = user.limits.get("max-channels") if user is not None else None
        if limit is None or limit < 0:
            return
        count = sum(len(c.channels) for c in self.node.connections if c.user == self.user)
        if count >= limit:
            raise NotAllowed(f"number of channels opened for user '{self.user}' has reached "
                             f"the maximum allowed user limit of ({limit})", 20, 10)

    def force_close(self, reason: str) -> None:
        """Close from the broker's side (management, vhost or user deleted): 320."""
        log.info("closing connection from %s:%s: %s", *self.peer[:2], reason)
        self.close(320, f"CONNECTION_FORCED - {reason}")

    def client_capability(self, name: str) -> bool:
        caps = self.client_properties.get("capabilities")
        return isinstance(caps, dict) and bool(caps.get(name))

    # -- the protocol machine's events: channels ------------------------------------------

    def channel_method(self, number: int, m: spec.Method) -> None:
        if type(m) is _BASIC_PUBLISH:  # once per message: no trip through HANDLERS
            if m.immediate:
                raise NotImplemented_("immediate=true")
            return  # its content comes next, to content_received
        ch = self.channels.get(number)
        if ch is None:  # channel.open: the machine checked channel_max
            self._check_user_channel_limit()
            self.channels[number] = Channel(self, number)
            self.send(number, spec.ChannelOpenOk())
            return
        handler = HANDLERS.get(m.INDEX)
        if handler is None:
            raise CommandInvalid("unimplemented method", m.CLASS_ID, m.METHOD_ID)
        handler(self, ch, m)

    def content_received(self, number: int, head: ContentHead, properties: bytes,
                         body: bytes) -> None:
        self.published += 1
        # the server role only ever receives basic.publish's content
        self.channels[number].publish(head, properties, body)  # type: ignore[arg-type]

    def channel_closed(self, number: int,
                       method: spec.ChannelClose | spec.ChannelCloseOk) -> None:
        ch = self.channels.get(number)
        if ch is not None:  # the client closed it; after our close it is released already
            self.close_channel(ch)

    def channel_failed(self, number: int, error: AMQPError) -> None:
        log.debug("channel %s error: %s", number, error.reply_text)
        ch = self.channels.get(number)
        if ch is not None:
            self.close_channel(ch)

    def channel_error(self, ch: Channel, exc: AMQPError) -> None:
        """A soft error found outside the protocol's own flow (a consumer timeout): close
        this channel only, as the spec says."""
        self.channel_failed(ch.number, exc)
        self.protocol.close_channel(ch.number, exc)

    def close_channel(self, ch: Channel) -> None:
        self.channels.pop(ch.number, None)
        self._confirming.pop(ch.number, None)
        ch.release()

    # -- closing -----------------------------------------------------------------------

    def _hard_error(self, exc: AMQPError) -> None:
        state = self.state
        if isinstance(exc, FrameError):
            self.input_closed = True
            self.protocol.discard_input()
        if state is CLOSING or state is CLOSED:
            return
        # debug: the server logs the connection's end with this reason (or a refusal did)
        log.debug("closing connection from %s:%s: %s", *self.peer[:2], exc.reply_text)
        if isinstance(exc, UnknownFieldType) or (
                state in _BEFORE_TUNED and not isinstance(exc, AccessRefusedHard)):
            # Before login completes RabbitMQ trusts the client with no explanation.
            self.close_reason = exc.reply_text
            self._close_transport()
            return
        self.close(exc.reply_code, exc.reply_text, exc.class_id or 0, exc.method_id or 0)

    def close(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Start closing from the server side (errors, shutdown): send connection.close and
        discard everything but close-ok, which the server waits for with a timeout."""
        if self.state is CLOSING or self.state is CLOSED:
            return
        self.release()
        self.close_reason = f"closed by broker: {code} {text}"
        self.send(0, spec.ConnectionClose(reply_code=code, reply_text=text, class_id=class_id,
                                          method_id=method_id))

    def _close_transport(self) -> None:
        self.release()
        self.protocol.transport_closed()
        self.on_close()

    def release(self) -> None:
        """Free everything the connection holds; safe to call more than once."""
        for ch in list(self.channels.values()):
            self.close_channel(ch)
        self.node.connections.discard(self)
        if self._congested_by is not None:
            self._congested_by.waiting_publishers.discard(self)
        if self._flow_timer is not None:
            self._flow_timer.cancel()
        for vh in self.node.vhosts.values():
            for q in [q for q in vh.queues.values() if q.exclusive_owner is self]:
                vh.drop_queue(q)

    def connection_lost(self) -> None:
        if self._refusal is not None:
            self._refusal.cancel()
            self._refusal = None
        self.release()
        self.protocol.transport_closed()

    def set_blocked(self, blocked: bool, reason: str = "low on memory") -> None:
        """Tell a client that understands connection.blocked why it is paused."""
        if self.state is not RUNNING or blocked == self.blocked_sent:
            return
        if not self.client_capability("connection.blocked"):
            return
        self.blocked_sent = blocked
        self.send(0, spec.ConnectionBlocked(reason=reason) if blocked
                  else spec.ConnectionUnblocked())

    def set_transport_paused(self, paused: bool) -> None:
        self.transport_paused = paused
        self.transport_paused_at = self.node.clock.now() if paused else None
        self._update_writable()

    def _update_writable(self) -> None:
        was = self.writable
        self.writable = not (self.transport_paused or self.output_full)
        if self.writable and not was:
            for ch in list(self.channels.values()):
                ch.redispatch()
