"""The broker's side of one stream-protocol connection (RabbitMQ's rabbit_stream_reader):
bytes in, frames out, no I/O. server/stream_protocol.py moves the bytes and runs the
heartbeat.

The handshake, as a table (``TRANSITIONS``): PeerProperties, SaslHandshake,
SaslAuthenticate (PLAIN, or EXTERNAL with a verified TLS client certificate), then the
server's Tune and the client's, then Open on a vhost. Logins are the AMQP listener's: the
same users, loopback rule, failed-login delay and rate-limited log lines (logins.py).

Once open: streams are created and deleted (configure permission on the queue), published
to (write) and read (read). A publish is confirmed once its entries are durable, by the
group commit that AMQP confirms wait for; named producers are de-duplicated by publishing
id (stream_tracking.py). A subscription is credit in chunks: each Deliver is one chunk of
the durable entries from the subscription's position, up to ``CHUNK_ENTRIES`` entries and
the frame size, and costs one credit.

Bounded memory: a frame above the negotiated size closes the connection before it is
buffered; reading stops while more than ``MAX_UNCONFIRMED`` publishes await their confirm
or the output is backed up; a malformed frame closes the connection with a reason, and a
bug closes only this connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from leveret.broker.access import Grants
from leveret.broker.logins import Refused
from leveret.broker.queues.stream import StreamQueue
from leveret.broker.stream_session import StreamSession
from leveret.broker.stream_stats import StreamTotals
from leveret.errors import FrameError
from leveret.streamproto import frames as f
from leveret.streamproto.frames import FrameBuffer, FrameTooLarge

if TYPE_CHECKING:
    from leveret.broker.clock import Timer
    from leveret.broker.node import Node
    from leveret.broker.tls_session import TLSSession
    from leveret.broker.vhost import VirtualHost

log = logging.getLogger("leveret.stream")

# Connection states and the commands each accepts (anything else closes the connection).
PEER_PROPERTIES, AUTHENTICATING, TUNING, TUNED, OPEN, CLOSING, CLOSED = (
    "peer_properties", "authenticating", "tuning", "tuned", "open", "closing", "closed")
TRANSITIONS: dict[str, frozenset[int]] = {
    PEER_PROPERTIES: frozenset({f.PEER_PROPERTIES}),
    AUTHENTICATING: frozenset({f.SASL_HANDSHAKE, f.SASL_AUTHENTICATE}),
    TUNING: frozenset({f.TUNE}),
    TUNED: frozenset({f.OPEN}),
}
SERVER_FRAME_MAX = 1 << 20  # offered in Tune (RabbitMQ's default)
SERVER_HEARTBEAT = 60
HANDSHAKE_FRAME_MAX = 1 << 20  # the largest frame before Tune
MAX_FRAME = 16 << 20  # what "no limit" (0) in the client's Tune means here
MAX_UNCONFIRMED = 50_000  # RabbitMQ's initial credits: stop reading beyond this
DISK_ALARM = "disk"  # (server/alarms.py names the alarms in node.alarms)
RESUME_UNCONFIRMED = 12_500
OUTPUT_BATCH = 1 << 20  # output bytes before deliveries wait for the flush


class StreamConnection:
    def __init__(self, node: Node, peer: tuple[str, int] = ("?", 0),
                 advertised: tuple[str, int] = ("localhost", 5552),
                 on_write: Callable[[], None] = lambda: None,
                 on_close: Callable[[], None] = lambda: None,
                 on_reading: Callable[[bool], None] = lambda reading: None,
                 peer_cert_cn: str | None = None, *,
                 local: tuple[str, int] = ("?", 0), tls: TLSSession | None = None,
                 totals: StreamTotals | None = None,
                 on_continue: Callable[[], None] | None = None) -> None:
        self.node = node
        self.peer = peer
        self.local = local  # the address it was accepted on (its name in the management API)
        self.tls = tls
        self.connected_at = int(node.clock.now() * 1000)
        self.recv_oct = self.recv_cnt = self.send_oct = self.send_cnt = 0
        self.auth_mechanism = ""
        self.totals = totals if totals is not None else StreamTotals()  # the listener's
        self.advertised = advertised
        self.on_write = on_write  # schedule a flush of take_output()
        self.on_close = on_close  # close the transport after the next flush
        self.on_reading = on_reading  # resume (True) or pause (False) reading input
        # Call continue_input at the next turn of the event loop (None: never yield).
        self.on_continue = on_continue
        self._yielding = False  # waiting for that turn, reading paused
        self.peer_cert_cn = peer_cert_cn
        self.state = PEER_PROPERTIES
        self.buffer = FrameBuffer(HANDSHAKE_FRAME_MAX)
        self.out: list[bytes] = []
        self.out_bytes = 0
        self._flush_requested = False
        self.transport_paused = False
        self.user = ""
        self.vhost: VirtualHost | None = None
        self.client_properties: dict[str, str] = {}
        self.frame_max = SERVER_FRAME_MAX
        self.heartbeat = SERVER_HEARTBEAT
        self.close_reason = ""
        self.refusal_logged = False
        self._refusal: Timer | None = None
        self._grants: Grants | None = None
        self._access_version = -1
        self._correlation = 0
        self._reading = True
        self.session = StreamSession(self)

    # -- output --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if data[4] & 0x80 and self.state is OPEN:  # count an error answered once open
            self._count_response(data)  # (RabbitMQ does not count the handshake's)
        self.out.append(data)
        self.out_bytes += len(data)
        if not self._flush_requested:
            self._flush_requested = True
            self.on_write()

    def write_parts(self, parts: list[bytes]) -> None:
        self.out.extend(parts)
        self.out_bytes += sum(len(p) for p in parts)
        if not self._flush_requested:
            self._flush_requested = True
            self.on_write()

    def _count_response(self, frame: bytes) -> None:
        key = int.from_bytes(frame[4:6], "big") & 0x7FFF
        if key == f.CREDIT:  # (no correlation id)
            self.totals.answered(int.from_bytes(frame[8:10], "big"))
        elif key != f.METADATA and len(frame) >= 14:  # (Metadata's codes are per stream)
            self.totals.answered(int.from_bytes(frame[12:14], "big"))

    def take_output(self) -> bytes:
        self._flush_requested = False
        data = b"".join(self.out)
        self.out.clear()
        self.out_bytes = 0
        if data:
            self.send_oct += len(data)
            self.send_cnt += 1
        return data

    @property
    def writable(self) -> bool:
        return not self.transport_paused and self.out_bytes < OUTPUT_BATCH

    def output_flushed(self) -> None:
        """The adapter wrote the output: subscriptions held by a full batch go on."""
        if self.state is OPEN and self.writable:
            self.session.deliver_all()

    def set_transport_paused(self, paused: bool) -> None:
        self.transport_paused = paused
        if not paused:
            self.output_flushed()
        self.update_reading()

    def store_synced(self) -> None:
        """A group commit finished: confirm the publishes it made durable."""
        if self.state is OPEN:
            self.session.store_synced()

    @property
    def blocked(self) -> bool:
        """Reading from the client is paused (unconfirmed publishes, or output backed up)."""
        return not self._reading

    def update_reading(self) -> None:
        unconfirmed = self.session.unconfirmed
        reading = unconfirmed <= (RESUME_UNCONFIRMED if not self._reading
                                  else MAX_UNCONFIRMED) and not self.transport_paused \
            and not self.blocked_by_alarm and not self._yielding
        if reading != self._reading:
            self._reading = reading
            self.on_reading(reading)

    @property
    def blocked_by_alarm(self) -> bool:
        """RabbitMQ's stream plugin stops reading from a connection that has publishers
        while the disk alarm is set (the memory alarm does not block stream connections:
        checked on 3.10.8); one without publishers goes on being served."""
        return bool(self.session.publishers) and DISK_ALARM in self.node.alarms

    def alarms_changed(self) -> None:
        if self.state is OPEN:
            self.update_reading()

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is CLOSED or self._refusal is not None:
            return
        self.recv_oct += len(data)
        self.recv_cnt += 1
        self.buffer.feed(data)
        if not self._yielding:  # (else the turn already asked for goes on with them)
            self._process_input()

    def continue_input(self) -> None:
        """The next turn of the event loop after this connection yielded: on with the
        entries and frames left."""
        self._yielding = False
        if self.state is not CLOSED and self._refusal is None:
            self._process_input()
        else:
            self.update_reading()

    def _must_yield(self) -> bool:
        """Fairness: a connection that appended its share this turn stops (its reading
        paused, the rest of its input kept) and goes on at the next turn, so that a flood
        of sub-entry batches does not hold the event loop from the other connections."""
        return self.on_continue is not None and self.session.busy

    def _process_input(self) -> None:
        buffer = self.buffer
        session = self.session
        session.turn_offsets = 0
        try:
            session.continue_publish()
            if not self._must_yield():
                for frame in buffer.frames():
                    self._frame(frame)
                    if self.state is CLOSED or self._refusal is not None:
                        buffer.buf.clear()
                        break
                    if self._must_yield():
                        break
        except FrameTooLarge as exc:
            buffer.buf.clear()
            self.close(f.FRAME_TOO_LARGE, str(exc), hang_up=True)
        except FrameError as exc:
            buffer.buf.clear()
            self.close(f.UNKNOWN_FRAME, f"malformed frame: {exc}", hang_up=True)
        except Exception as exc:  # a bug must end one connection, never the broker
            log.exception("internal error on stream connection from %s:%s", *self.peer[:2])
            buffer.buf.clear()
            self.close(f.INTERNAL_ERROR, f"internal error: {exc}", hang_up=True)
        finally:
            if self.on_continue is not None and self.state is not CLOSED and (
                    session.busy and (session.deferred is not None or buffer.buffered)):
                self._yielding = True
                self.on_continue()
            session.after_input()
            self.update_reading()

    def _frame(self, frame: bytes) -> None:
        fields = f.Fields(frame)
        key = fields.u16()
        version = fields.u16()
        if self.state is CLOSING:
            if key == f.CLOSE | f.RESPONSE:
                self._closed()
            return  # after our Close, only its answer matters
        if key & f.RESPONSE:
            if key == f.CONSUMER_UPDATE | f.RESPONSE and self.state is OPEN:
                self.session.consumer_update_answered(fields)
            return  # (the server asks nothing else but Close, answered above)
        allowed = TRANSITIONS.get(self.state)
        if key == f.HEARTBEAT:
            return
        if key == f.CLOSE:
            self._client_close(fields)
            return
        if allowed is not None and key not in allowed:
            raise FrameError(f"command 0x{key:04x} is not expected in state {self.state}")
        handshake = self.HANDSHAKE.get(key)
        if handshake is not None:
            if self.state is OPEN:
                raise FrameError(f"command 0x{key:04x} after the connection was opened")
            handshake(self, fields)
        else:
            self.session.command(key, version, fields)

    # -- the handshake -------------------------------------------------------------------

    def peer_properties(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        self.client_properties = fields.properties()
        fields.done()
        props = {k: str(v) for k, v in self.node.server_properties().items()
                 if isinstance(v, str)}
        self.write(f.response(f.PEER_PROPERTIES, correlation, f.OK, f.properties(props)))
        self.state = AUTHENTICATING

    def sasl_handshake(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        mechanisms = ["PLAIN"] + (["EXTERNAL"] if self.peer_cert_cn else [])
        self.write(f.response(f.SASL_HANDSHAKE, correlation, f.OK,
                              f.array(f.string(m) for m in mechanisms)))

    def sasl_authenticate(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        mechanism = fields.text()
        data = fields.bytes_() or b""
        login: object
        user: str | None = None
        if mechanism == "PLAIN":
            parts = data.split(b"\x00")
            if len(parts) != 3:
                self._refuse_login(correlation, mechanism, None,
                                   Refused("malformed_response", "malformed PLAIN response"),
                                   f.SASL_ERROR)
                return
            try:
                user, password = parts[1].decode(), parts[2].decode()
            except UnicodeDecodeError:
                self._refuse_login(correlation, mechanism, None,
                                   Refused("malformed_response", "malformed PLAIN response"),
                                   f.SASL_ERROR)
                return
            login = self.node.login(user, password, self.peer[0])
        elif mechanism == "EXTERNAL" and self.peer_cert_cn:
            user = self.peer_cert_cn
            login = self.node.login_external(user, self.peer[0])
        else:
            self.write(f.response(f.SASL_AUTHENTICATE, correlation,
                                  f.SASL_MECHANISM_NOT_SUPPORTED))
            return
        if isinstance(login, Refused):
            code = (f.SASL_AUTHENTICATION_FAILURE_LOOPBACK if login.reason == "loopback_only"
                    else f.AUTHENTICATION_FAILURE)
            self._refuse_login(correlation, mechanism, user, login, code)
            return
        self.user = getattr(login, "name", user or "")
        self.auth_mechanism = mechanism
        self.write(f.response(f.SASL_AUTHENTICATE, correlation, f.OK))  # no challenge data
        self.write(f.command(f.TUNE, 1, f.u32(SERVER_FRAME_MAX) + f.u32(SERVER_HEARTBEAT)))
        self.state = TUNING

    def _refuse_login(self, correlation: int, mechanism: str, user: str | None,
                      refused: Refused, code: int) -> None:
        """Log why, and answer once the node's failed-login delay has passed, then close
        (the AMQP listener's behaviour; RabbitMQ's stream plugin answers, then closes)."""
        address = f"{self.peer[0]}:{self.peer[1]}"
        self.node.refusal_log.warning(
            refused.reason, "%s login refused from %s (stream protocol): %s", mechanism,
            address, refused.text, extra={"event": "auth_failure", "user": user,
                                          "mechanism": mechanism, "client_address": address})
        self.refusal_logged = True
        self.close_reason = f"login refused using mechanism {mechanism}"

        def answer() -> None:
            self._refusal = None
            if self.state is CLOSED:
                return
            self.write(f.response(f.SASL_AUTHENTICATE, correlation, code))
            self._hang_up()

        delay = self.node.failed_login_delay
        if delay > 0:
            self._refusal = self.node.timers.call_later(delay, answer)
        else:
            answer()

    def tune(self, fields: f.Fields) -> None:
        frame_max = fields.u32()
        heartbeat = fields.u32()
        fields.done()
        self.frame_max = min(frame_max or MAX_FRAME, MAX_FRAME)
        self.heartbeat = heartbeat
        self.buffer.limit = max(self.frame_max, 4096)
        self.state = TUNED

    def open(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        vhost = fields.text()
        refused = self.node.check_connection_allowed(self.user, vhost)
        if refused is not None:
            address = f"{self.peer[0]}:{self.peer[1]}"
            self.node.refusal_log.warning(
                refused.reason, "stream connection from %s refused: %s", address,
                refused.text, extra={"event": "connection_refused", "user": self.user,
                                     "vhost": vhost, "client_address": address})
            self.refusal_logged = True
            self.close_reason = refused.text
            self.write(f.response(f.OPEN, correlation, f.VIRTUAL_HOST_ACCESS_FAILURE))
            self._hang_up()
            return
        self.vhost = self.node.vhosts[vhost]
        self.node.stream_connections.add(self)
        host, port = self.advertised
        self.write(f.response(f.OPEN, correlation, f.OK, f.properties(
            {"advertised_host": host, "advertised_port": str(port)})))
        self.state = OPEN

    HANDSHAKE: dict[int, Callable[[StreamConnection, f.Fields], None]] = {
        f.PEER_PROPERTIES: peer_properties, f.SASL_HANDSHAKE: sasl_handshake,
        f.SASL_AUTHENTICATE: sasl_authenticate, f.TUNE: tune, f.OPEN: open}

    # -- access --------------------------------------------------------------------------

    @property
    def grants(self) -> Grants:
        version = self.node.access_version
        if self._grants is None or version != self._access_version:
            assert self.vhost is not None
            self._grants = self.node.grants(self.vhost.name, self.user)
            self._access_version = version
        return self._grants

    def allowed(self, action: str, stream: str) -> bool:
        return self.grants.allowed(action, "queue", stream)

    def stream(self, name: str) -> StreamQueue | None:
        assert self.vhost is not None
        q = self.vhost.queues.get(name)
        return q if isinstance(q, StreamQueue) and not q.deleted else None

    # -- closing -------------------------------------------------------------------------

    def next_correlation(self) -> int:
        self._correlation += 1
        return self._correlation

    def _client_close(self, fields: f.Fields) -> None:
        correlation = fields.u32()
        code = fields.u16()
        reason = fields.string() or ""
        self.close_reason = f"closed by the client ({code} {reason!r})"
        self.write(f.response(f.CLOSE, correlation, f.OK))
        self._hang_up()

    def close(self, code: int, reason: str, hang_up: bool = False) -> None:
        """Close from the server's side: a Close request, then (``hang_up``, or when the
        client answers) the transport."""
        if self.state in (CLOSING, CLOSED):
            return
        self.close_reason = self.close_reason or f"closed by broker: {code} {reason}"
        if self.state is OPEN:
            self.totals.answered(code)
        self.write(f.request(f.CLOSE, self.next_correlation(), f.u16(code) +
                             f.string(reason)))
        self.session.release()
        if hang_up:
            self._hang_up()
        else:
            self.state = CLOSING

    def shut_down(self, reason: str) -> None:
        """Hang up without a Close frame, as RabbitMQ does when the management API
        deletes a stream connection."""
        if self.state is CLOSED:
            return
        self.close_reason = f"closed via the management API: {reason}"
        self._hang_up()

    def force_close(self, reason: str) -> None:
        log.info("closing stream connection from %s:%s: %s", *self.peer[:2], reason)
        self.close(f.INTERNAL_ERROR if reason != "shutdown" else f.OK, reason)

    def _closed(self) -> None:
        self._hang_up()

    def _hang_up(self) -> None:
        self.session.release()
        self.node.stream_connections.discard(self)
        self.state = CLOSED
        self.on_close()

    def connection_lost(self) -> None:
        if self._refusal is not None:
            self._refusal.cancel()
            self._refusal = None
        self.session.release()
        self.node.stream_connections.discard(self)
        self.state = CLOSED

