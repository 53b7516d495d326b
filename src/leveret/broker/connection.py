"""The server side of one AMQP connection, sans I/O: bytes in, bytes out.

``receive_data`` parses every whole frame in the batch, runs it against the broker, and
queues replies and deliveries; the server writes ``take_output()`` once per batch. The
handshake, channel multiplexing, content assembly and the translation of errors into
channel.close / connection.close all live here, so the asyncio layer decides nothing.

    header -> start/start-ok -> tune/tune-ok -> open/open-ok -> open -> closing -> closed
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from leveret.amqp import frames, spec
from leveret.amqp.fields import decode_table
from leveret.amqp.frames import FrameBuffer, encode_method
from leveret.broker.access import Grants
from leveret.broker.channel import Channel
from leveret.broker.dispatch import HANDLERS
from leveret.broker.node import Node
from leveret.broker.queues import Queue
from leveret.broker.vhost import VirtualHost
from leveret.errors import (
    AccessRefusedHard,
    AMQPError,
    ChannelErrorHard,
    CommandInvalid,
    FrameError,
    InternalError,
    NotAllowed,
    PreconditionFailed,
    UnexpectedFrame,
    UnknownFieldType,
)

log = logging.getLogger("leveret.connection")

HEADER, START_OK, TUNE_OK, OPEN, RUNNING, CLOSING, CLOSED = range(7)

# Bytes of deliveries queued for one connection before they are written out and delivery
# continues on the next turn of the event loop.
OUTPUT_BATCH = 1 << 20

_BASIC_PUBLISH = spec.BasicPublish.INDEX  # handled before the HANDLERS lookup: the hot one

# Methods only a server sends: a client sending one gets 503 "unimplemented method".
CLIENT_METHODS_REFUSED = frozenset(m.INDEX for m in (
    spec.ConnectionStart, spec.ConnectionSecure, spec.ConnectionTune, spec.ConnectionOpenOk,
    spec.ChannelOpenOk, spec.AccessRequestOk, spec.ExchangeDeclareOk, spec.ExchangeDeleteOk,
    spec.ExchangeBindOk, spec.ExchangeUnbindOk, spec.QueueDeclareOk, spec.QueueBindOk,
    spec.QueuePurgeOk, spec.QueueDeleteOk, spec.QueueUnbindOk, spec.BasicQosOk,
    spec.BasicConsumeOk, spec.BasicCancelOk, spec.BasicReturn, spec.BasicDeliver,
    spec.BasicGetOk, spec.BasicGetEmpty, spec.BasicRecoverOk, spec.TxSelectOk,
    spec.TxCommitOk, spec.TxRollbackOk, spec.ConfirmSelectOk, spec.ConnectionUpdateSecretOk,
))


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
        self.blocked_sent = False
        self.last_routed: list[Queue] = []
        self.state = HEADER
        self.buffer = FrameBuffer(node.limits.frame_max)
        self.out: list[bytes] = []
        self._flush_requested = False
        # Deliveries stop while the client's socket is backed up (transport_paused) or a
        # batch of output is waiting to be written (output_full), so that one consumer's
        # backlog never becomes one huge write or an unbounded buffer.
        self.writable = True
        self.transport_paused = False
        self.output_full = False
        self.out_bytes = 0
        self.channels: dict[int, Channel] = {}
        self.closing_channels: set[int] = set()
        self._confirming: dict[int, Channel] = {}
        self.vhost: VirtualHost = node.vhosts.get("/") or VirtualHost("/")  # until open
        self.user = ""
        self._grants: Grants | None = None
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

    def send(self, channel: int, method: spec.Method) -> None:
        self.write(encode_method(channel, method))

    def take_output(self) -> bytes:
        self._flush_requested = False
        data = b"".join(self.out)
        self.out.clear()
        self.send_oct += self.out_bytes
        self.out_bytes = 0
        return data

    def output_flushed(self) -> None:
        """The server wrote the output batch: deliveries may resume if they were held."""
        if self.output_full:
            self.output_full = False
            self._update_writable()

    def confirm_ready(self, channel: Channel) -> None:
        self._confirming[channel.number] = channel

    def store_synced(self) -> None:
        """The store made more changes durable: release the confirms waiting for them."""
        if self.state == CLOSED:
            return
        for ch in list(self.channels.values()):
            if ch.unsynced and not ch.closing:
                ch.flush_confirms()

    # -- input -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state == CLOSED:
            return
        buf = self.buffer
        self.recv_oct += len(data)
        buf.feed(data)
        try:
            if self.state == HEADER and not self._read_protocol_header():
                return
            next_frame = buf.next_frame
            while self.state != CLOSED:
                frame = next_frame()
                if frame is None:
                    break
                ftype, channel, payload = frame
                if ftype == frames.BODY or ftype == frames.HEADER:
                    # two of every message's three frames: straight to their handler
                    self._content_frame(ftype, channel, payload)
                else:
                    self._frame(ftype, channel, payload)
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
        buf.compact()
        if self.last_routed:
            self._check_congestion()

    def _check_congestion(self) -> None:
        for q in self.last_routed:
            if q.congested() and not self.flow_paused:
                self.flow_paused = True
                q.waiting_publishers.add(self)
                self.on_flow(True)
        self.last_routed = []

    def flow_resume(self) -> None:
        if self.flow_paused:
            self.flow_paused = False
            self.on_flow(False)

    def _read_protocol_header(self) -> bool:
        head = self.buffer.take(8)
        if head is None:
            return False
        if head != frames.PROTOCOL_HEADER:
            self.write(frames.PROTOCOL_HEADER)
            self._close_transport()
            return False
        self.state = START_OK
        self.send(0, spec.ConnectionStart(
            version_major=0, version_minor=9, server_properties=self.node.server_properties(),
            mechanisms=b"EXTERNAL PLAIN AMQPLAIN" if self.peer_cert_cn else b"PLAIN AMQPLAIN",
            locales=b"en_US"))
        return True

    def _frame(self, ftype: int, channel: int, payload: bytes) -> None:
        if ftype == frames.METHOD:
            if channel:
                ch = self.channels.get(channel)
                if ch is not None and ch.pending is not None:
                    # Content was expected: the frame type alone is the error.
                    raise UnexpectedFrame(
                        "expected content body, got non content body frame instead"
                        if ch.pending_props else "expected content header for class 60, got "
                        "non content header frame instead", 60, 40)
            if len(payload) < 4:
                raise FrameError("method frame too short")
            index = int.from_bytes(payload[:4], "big")
            cls = spec.METHODS.get(index)
            if cls is None:
                raise UnknownFieldType(f"unknown method {index >> 16}.{index & 0xFFFF}")
            try:
                method = cls.decode(payload, 4)
            except UnknownFieldType:
                raise
            except Exception:  # FrameError, struct.error, IndexError, ValueError, ...
                raise FrameError(f"cannot decode {frames.erlang_binary(payload[4:])}",
                                 cls.CLASS_ID, cls.METHOD_ID) from None
            if index in CLIENT_METHODS_REFUSED:
                raise CommandInvalid("unimplemented method", cls.CLASS_ID, cls.METHOD_ID)
            if channel == 0:
                self._connection_method(method)
            else:
                self._channel_method(channel, method, ch)
        elif ftype == frames.HEADER or ftype == frames.BODY:
            self._content_frame(ftype, channel, payload)
        elif ftype == frames.HEARTBEAT:
            if channel != 0:
                raise UnexpectedFrame(f"type 8, all octets = {frames.erlang_binary(payload)}")
        else:
            raise FrameError(f"type {ftype}, all octets = {frames.erlang_binary(payload)}: "
                             "unknown_frame")

    # -- connection class --------------------------------------------------------------

    def _connection_method(self, m: spec.Method) -> None:
        state = self.state
        if state == CLOSING:
            if isinstance(m, spec.ConnectionCloseOk | spec.ConnectionClose):
                if isinstance(m, spec.ConnectionClose):
                    self.send(0, spec.ConnectionCloseOk())
                self._close_transport()
            return
        if isinstance(m, spec.ConnectionStartOk) and state == START_OK:
            self._start_ok(m)
        elif isinstance(m, spec.ConnectionSecureOk) and state == START_OK:
            raise AccessRefusedHard("secure-ok is not used by PLAIN or AMQPLAIN")
        elif isinstance(m, spec.ConnectionTuneOk) and state == TUNE_OK:
            self._tune_ok(m)
        elif isinstance(m, spec.ConnectionOpen) and state == OPEN:
            refused = self.node.check_connection_allowed(self.user, m.virtual_host)
            if refused is not None:
                log.warning("connection from %s:%s refused: %s", *self.peer[:2], refused)
                raise NotAllowed(refused, 10, 40)
            self.vhost = self.node.vhosts[m.virtual_host]
            self.state = RUNNING
            self.node.connections.add(self)
            self.send(0, spec.ConnectionOpenOk())
        elif isinstance(m, spec.ConnectionClose):
            self.close_reason = f"closed by client: {m.reply_code} {m.reply_text}"
            self.send(0, spec.ConnectionCloseOk())
            self._close_transport()
        elif isinstance(m, spec.ConnectionUpdateSecret) and state == RUNNING:
            self.send(0, spec.ConnectionUpdateSecretOk())
        elif isinstance(m, spec.ConnectionBlocked | spec.ConnectionUnblocked):
            pass  # a client may not block a server; ignore as RabbitMQ does
        elif state == RUNNING:
            raise ChannelErrorHard("unexpected method in connection state running",
                                   m.CLASS_ID, m.METHOD_ID)
        else:
            raise CommandInvalid(f"expected the next handshake method, got {m.NAME}",
                                 m.CLASS_ID, m.METHOD_ID)

    def _start_ok(self, m: spec.ConnectionStartOk) -> None:
        self.client_properties = m.client_properties
        user, password = self._credentials(m.mechanism, m.response)
        known = None
        if user is not None:
            known = (self.node.authenticate_external(user, self.peer[0])  # cert verified
                     if m.mechanism == "EXTERNAL"
                     else self.node.authenticate(user, password, self.peer[0]))
        if user is None or known is None:
            log.warning("login refused for user %r from %s using mechanism %s", user,
                        self.peer[0], m.mechanism, extra={
                            "event": "auth_failure", "user": user, "mechanism": m.mechanism,
                            "client_address": f"{self.peer[0]}:{self.peer[1]}"})
            self.close_reason = f"login refused using mechanism {m.mechanism}"
            if self.client_capability("authentication_failure_close"):
                raise AccessRefusedHard(
                    f"Login was refused using authentication mechanism {m.mechanism}. For "
                    "details see the broker logfile.")
            self._close_transport()
            return
        self.user = user
        self.state = TUNE_OK
        limits = self.node.limits
        self.send(0, spec.ConnectionTune(channel_max=limits.channel_max,
                                         frame_max=limits.frame_max, heartbeat=limits.heartbeat))

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

    def _tune_ok(self, m: spec.ConnectionTuneOk) -> None:
        limits = self.node.limits
        # 0 means "no limit", which is more than the server offered (RabbitMQ refuses it).
        frame_max = m.frame_max or 1 << 32
        if frame_max < frames.FRAME_MIN_SIZE:
            raise NotAllowed(f"negotiated frame_max = {frame_max} is lower than the minimum "
                             f"allowed value ({frames.FRAME_MIN_SIZE})", 10, 31)
        if frame_max > limits.frame_max:
            raise NotAllowed(f"negotiated frame_max = {frame_max} is higher than the maximum "
                             f"allowed value ({limits.frame_max})", 10, 31)
        channel_max = m.channel_max or 65536
        if channel_max > limits.channel_max:
            raise NotAllowed(f"negotiated channel_max = {channel_max} is higher than the "
                             f"maximum allowed value ({limits.channel_max})", 10, 31)
        self.frame_max = frame_max
        self.buffer.frame_max = frame_max
        self.channel_max = channel_max
        self.heartbeat = m.heartbeat
        self.state = OPEN

    @property
    def grants(self) -> Grants:
        """This user's permissions in this vhost, recompiled when they change (the node
        drops ``_grants`` of every connection then)."""
        grants = self._grants
        if grants is None:
            grants = self._grants = self.node.grants(self.vhost.name, self.user)
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

    # -- channels ----------------------------------------------------------------------

    def _channel_method(self, number: int, m: spec.Method, ch: Channel | None) -> None:
        """A method on channel ``number``; ``ch`` is ``self.channels.get(number)``, which
        the caller looked up already."""
        if self.state == CLOSING:
            return
        if self.state != RUNNING:
            raise CommandInvalid(f"channel method {m.NAME} before the connection is open",
                                 m.CLASS_ID, m.METHOD_ID)
        if number in self.closing_channels:
            # We sent channel.close: everything but close/close-ok is discarded.
            if isinstance(m, spec.ChannelCloseOk):
                self.closing_channels.discard(number)
            elif isinstance(m, spec.ChannelClose):
                self.send(number, spec.ChannelCloseOk())
            return
        if ch is None:
            if not isinstance(m, spec.ChannelOpen):
                raise ChannelErrorHard("expected 'channel.open'",
                                       m.CLASS_ID, m.METHOD_ID)
            if len(self.channels) >= self.channel_max:
                raise NotAllowed(f"number of channels opened ({len(self.channels)}) has reached "
                                 f"the negotiated channel_max ({self.channel_max})")
            self._check_user_channel_limit()
            self.channels[number] = Channel(self, number)
            self.send(number, spec.ChannelOpenOk())
            return
        try:
            if m.INDEX == _BASIC_PUBLISH:  # once per message: no trip through HANDLERS
                ch.start_publish(m)  # type: ignore[arg-type]
                return
            handler = HANDLERS.get(m.INDEX)
            if handler is None:
                raise CommandInvalid("unimplemented method", m.CLASS_ID, m.METHOD_ID)
            handler(self, ch, m)
        except AMQPError as exc:
            if exc.class_id is None:
                exc.class_id, exc.method_id = m.CLASS_ID, m.METHOD_ID
            if not exc.soft:
                raise
            self.channel_error(ch, exc)

    def _content_frame(self, ftype: int, number: int, payload: bytes) -> None:
        if self.state == CLOSING or number in self.closing_channels:
            return
        ch = self.channels.get(number)
        if ch is None or ch.pending is None:
            raise UnexpectedFrame("expected method frame, got non method frame instead")
        if not ch.pending_props:
            if ftype != frames.HEADER:
                raise UnexpectedFrame("expected content header for class 60, got non content "
                                      "header frame instead", 60, 40)
            class_id, size, props = frames.parse_content_header(payload)
            if class_id != 60:
                raise UnexpectedFrame(f"expected content header for class 60, got one for "
                                      f"class {class_id} instead", 60, 40)
            ch.pending_props = props or b"\x00\x00"
            ch.pending_size = size
            if size > self.node.limits.max_message_size:
                self._publish_error(ch, PreconditionFailed(
                    f"message size {size} is larger than configured max size "
                    f"{self.node.limits.max_message_size}", 60, 40))
                return
            if size == 0:
                self._complete_publish(ch, b"")
            return
        if ftype != frames.BODY:
            raise UnexpectedFrame("expected content body, got non content body frame instead",
                                  60, 40)
        ch.pending_received += len(payload)
        if ch.pending_received > ch.pending_size:
            raise UnexpectedFrame("expected content body, got non content body frame instead",
                                  60, 40)
        if ch.pending_received == ch.pending_size:
            parts = ch.pending_body
            if parts:
                parts.append(payload)
                body = b"".join(parts)
                parts.clear()
            else:
                body = payload
            self._complete_publish(ch, body)
        else:
            ch.pending_body.append(payload)

    def _complete_publish(self, ch: Channel, body: bytes) -> None:
        method = ch.pending
        props = ch.pending_props
        ch.pending = None
        ch.pending_props = b""
        ch.pending_received = 0
        ch.pending_body = []
        self.published += 1
        try:
            ch.publish(method, props, body)  # type: ignore[arg-type]
        except AMQPError as exc:
            if exc.class_id is None:
                exc.class_id, exc.method_id = 60, 40
            if not exc.soft:
                raise
            self.channel_error(ch, exc)

    def _publish_error(self, ch: Channel, exc: AMQPError) -> None:
        ch.pending = None
        ch.pending_props = b""
        ch.pending_received = 0
        ch.pending_body = []
        self.channel_error(ch, exc)

    def channel_error(self, ch: Channel, exc: AMQPError) -> None:
        """A soft error: close this channel only, as the spec says."""
        log.debug("channel %s error: %s", ch.number, exc.reply_text)
        self.close_channel(ch)
        self.closing_channels.add(ch.number)
        self.send(ch.number, spec.ChannelClose(reply_code=exc.reply_code,
                                               reply_text=exc.reply_text,
                                               class_id=exc.class_id or 0,
                                               method_id=exc.method_id or 0))

    def close_channel(self, ch: Channel) -> None:
        self.channels.pop(ch.number, None)
        self._confirming.pop(ch.number, None)
        ch.release()

    # -- direct reply-to ---------------------------------------------------------------

    def register_reply_queue(self, q: Queue) -> None:
        self.node.reply_queues[q.name] = q

    def unregister_reply_queue(self, q: Queue) -> None:
        self.node.reply_queues.pop(q.name, None)

    def node_reply_queue(self, name: str) -> Queue | None:
        return self.node.reply_queues.get(name)

    # -- closing -----------------------------------------------------------------------

    def _hard_error(self, exc: AMQPError) -> None:
        if self.state in (CLOSING, CLOSED):
            return
        log.info("closing connection from %s:%s: %s", *self.peer[:2], exc.reply_text)
        if isinstance(exc, UnknownFieldType) or (
                self.state in (START_OK, TUNE_OK) and not isinstance(exc, AccessRefusedHard)):
            # Before login completes RabbitMQ trusts the client with no explanation.
            self.close_reason = exc.reply_text
            self._close_transport()
            return
        self.close(exc.reply_code, exc.reply_text, exc.class_id or 0, exc.method_id or 0)

    def close(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Start closing from the server side (errors, shutdown): send connection.close and
        discard everything but close-ok, which the server waits for with a timeout."""
        if self.state in (CLOSING, CLOSED):
            return
        self.release()
        self.state = CLOSING
        self.close_reason = f"closed by broker: {code} {text}"
        self.send(0, spec.ConnectionClose(reply_code=code, reply_text=text, class_id=class_id,
                                          method_id=method_id))

    def _close_transport(self) -> None:
        self.release()
        self.state = CLOSED
        self.on_close()

    def release(self) -> None:
        """Free everything the connection holds; safe to call more than once."""
        for ch in list(self.channels.values()):
            self.close_channel(ch)
        self.node.connections.discard(self)
        for vh in self.node.vhosts.values():
            for q in [q for q in vh.queues.values() if q.exclusive_owner is self]:
                vh.drop_queue(q)

    def connection_lost(self) -> None:
        self.release()
        self.state = CLOSED

    def set_blocked(self, blocked: bool, reason: str = "low on memory") -> None:
        """Tell a client that understands connection.blocked why it is paused."""
        if self.state != RUNNING or blocked == self.blocked_sent:
            return
        if not self.client_capability("connection.blocked"):
            return
        self.blocked_sent = blocked
        self.send(0, spec.ConnectionBlocked(reason=reason) if blocked
                  else spec.ConnectionUnblocked())

    def set_transport_paused(self, paused: bool) -> None:
        self.transport_paused = paused
        self._update_writable()

    def _update_writable(self) -> None:
        was = self.writable
        self.writable = not (self.transport_paused or self.output_full)
        if self.writable and not was:
            for ch in list(self.channels.values()):
                ch.redispatch()
