"""One AMQP 0-9-1 connection as a sans-I/O state machine that either role can drive.

Bytes go in through ``receive_data``; what they mean goes out as calls on the machine's
``Owner`` (the broker's ``ServerConnection`` or the client's ``Connection``); methods go out
through ``send``, which keeps the states in step and hands bytes to the owner's ``write``.
The machine validates every frame once: frame types, heartbeats only on channel 0, method
before content header before bodies, methods a peer of that role may never send, which
methods each connection and channel state accepts, and the negotiated frame_max and
channel_max. It answers close with close-ok itself and assembles content (``amqp.content``).
The owner decides what only one role can: logins, vhost admission, what a method does.

The rules are data, in the tables below; the machine only looks them up:

    C: protocol-header  S: start  C: start-ok  (S: secure  C: secure-ok)*  S: tune
    C: tune-ok  C: open  S: open-ok  -> running -> (close) closing -> (close-ok) closed

Why calls rather than h11's ``next_event()``: a published message is three frames, and an
event object per frame (or per message) costs more than the broker's per-message budget
allows (``bench/hotpath.py``). The ``Owner`` methods are the events, each called once.

Errors are ``leveret.errors`` exceptions, with RabbitMQ's reply texts. Hard (connection)
errors propagate out of ``receive_data``: the owner answers them with ``close``. Soft
(channel) errors raised while a channel's method or content is handled get that method's
class and method ids and close only the channel: ``Owner.channel_failed``, then
channel.close. A method the table does not allow raises the state's error, except while
we are closing, when everything but close and close-ok is discarded.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from leveret.amqp import frames, spec
from leveret.amqp.content import ContentAssembler, ContentHead, head_ids
from leveret.amqp.frames import FrameBuffer, decode_publish, encode_method
from leveret.errors import (
    AMQPError,
    ChannelError,
    ChannelErrorHard,
    CommandInvalid,
    FrameError,
    InternalError,
    NotAllowed,
    NotUTF8,
    UnexpectedFrame,
    UnknownFieldType,
)


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"

    @property
    def peer(self) -> Role:
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT


class ConnectionState(enum.Enum):
    """Named after what happens next (who sends it is in the table)."""

    HEADER = "header"  # the client sends the protocol header
    START = "start"
    START_OK = "start-ok"
    TUNE = "tune"  # the server sends tune, or secure for another round of login
    SECURE_OK = "secure-ok"
    TUNE_OK = "tune-ok"
    OPEN = "open"
    OPEN_OK = "open-ok"
    RUNNING = "running"
    CLOSING = "closing"  # we sent connection.close: everything but close/close-ok is dropped
    CLOSED = "closed"


class ChannelState(enum.Enum):
    CLOSED = "closed"  # no such channel (yet, or any more)
    OPENING = "opening"  # channel.open sent, open-ok due
    OPEN = "open"
    CLOSING = "closing"  # we sent channel.close: everything but close/close-ok is dropped


class Action(enum.Enum):
    """What the machine does with a received event the table accepts, besides changing state."""

    PASS = "pass it to the owner"
    PEER_CLOSE = "the peer closes: tell the owner, then answer close-ok"
    CROSSED_CLOSE = "the peer closes while we close too: answer close-ok"
    CLOSE_OK = "our close is answered: tell the owner"


class ProtocolHeader:
    """The 8 bytes that open a connection: an event of the table, though not a method."""

    NAME: Final = "protocol-header"
    INDEX: Final = 0  # no method has index 0 (class 0 does not exist)


CLIENT, SERVER = Role.CLIENT, Role.SERVER
C, Ch = ConnectionState, ChannelState
Event = type[spec.Method] | type[ProtocolHeader]

# -- the tables ----------------------------------------------------------------------------

# The opening handshake and the running connection, by sender: (state, who sends what) -> next.
CONNECTION_TRANSITIONS: Final[Mapping[ConnectionState, Mapping[tuple[Role, Event],
                                                               ConnectionState]]] = {
    C.HEADER: {(CLIENT, ProtocolHeader): C.START},
    C.START: {(SERVER, spec.ConnectionStart): C.START_OK},
    C.START_OK: {
        (CLIENT, spec.ConnectionStartOk): C.TUNE,
        # A secure-ok with no secure before it: RabbitMQ treats it as a login attempt, so it
        # goes to the server, which refuses it (403) rather than call it out of order.
        (CLIENT, spec.ConnectionSecureOk): C.TUNE,
    },
    C.TUNE: {(SERVER, spec.ConnectionSecure): C.SECURE_OK,
             (SERVER, spec.ConnectionTune): C.TUNE_OK},
    C.SECURE_OK: {(CLIENT, spec.ConnectionSecureOk): C.TUNE},
    C.TUNE_OK: {(CLIENT, spec.ConnectionTuneOk): C.OPEN},
    C.OPEN: {(CLIENT, spec.ConnectionOpen): C.OPEN_OK},
    C.OPEN_OK: {(SERVER, spec.ConnectionOpenOk): C.RUNNING},
    C.RUNNING: {
        (SERVER, spec.ConnectionBlocked): C.RUNNING,
        (SERVER, spec.ConnectionUnblocked): C.RUNNING,
        (CLIENT, spec.ConnectionUpdateSecret): C.RUNNING,
        (SERVER, spec.ConnectionUpdateSecretOk): C.RUNNING,
    },
}
_NOT_CLOSING = tuple(s for s in ConnectionState if s not in (C.CLOSING, C.CLOSED))

# Closing is the same for both roles, so it is written by direction instead of by sender.
CONNECTION_CLOSE_SENT: Final[Mapping[ConnectionState, ConnectionState]] = {
    s: C.CLOSING for s in _NOT_CLOSING}
CONNECTION_CLOSE_RECEIVED: Final[Mapping[ConnectionState, Mapping[Event, tuple[
        ConnectionState, Action]]]] = {
    **{s: {spec.ConnectionClose: (C.CLOSED, Action.PEER_CLOSE)} for s in _NOT_CLOSING},
    C.CLOSING: {spec.ConnectionClose: (C.CLOSED, Action.CROSSED_CLOSE),
                spec.ConnectionCloseOk: (C.CLOSED, Action.CLOSE_OK)},
}

# Channel states, by sender, for the methods of the channel class. Every method of the
# classes after it (access, exchange, queue, basic, confirm, tx) is passed to the owner
# while the channel is open.
CHANNEL_TRANSITIONS: Final[Mapping[ChannelState, Mapping[tuple[Role, type[spec.Method]],
                                                         ChannelState]]] = {
    Ch.CLOSED: {(CLIENT, spec.ChannelOpen): Ch.OPENING},
    Ch.OPENING: {(SERVER, spec.ChannelOpenOk): Ch.OPEN},
    Ch.OPEN: {(sender, method): Ch.OPEN for sender in Role
              for method in (spec.ChannelFlow, spec.ChannelFlowOk)},
}
CHANNEL_CLOSE_SENT: Final[Mapping[ChannelState, ChannelState]] = {
    Ch.OPENING: Ch.CLOSING, Ch.OPEN: Ch.CLOSING}
CHANNEL_CLOSE_RECEIVED: Final[Mapping[ChannelState, Mapping[type[spec.Method], tuple[
        ChannelState, Action]]]] = {
    Ch.OPENING: {spec.ChannelClose: (Ch.CLOSED, Action.PEER_CLOSE)},
    Ch.OPEN: {spec.ChannelClose: (Ch.CLOSED, Action.PEER_CLOSE)},
    # both ends closed at once: answer, and still wait for the answer to ours
    Ch.CLOSING: {spec.ChannelClose: (Ch.CLOSING, Action.CROSSED_CLOSE),
                 spec.ChannelCloseOk: (Ch.CLOSED, Action.CLOSE_OK)},
}

# Methods on channels only a server sends: a client sending one on an open channel gets 503
# "unimplemented method" (with a content-carrying one, once its content has arrived, as
# RabbitMQ's channel sees it then). On channel 0 the connection table decides instead.
SERVER_ONLY: Final = frozenset(m.INDEX for m in (
    spec.ChannelOpenOk, spec.AccessRequestOk, spec.ExchangeDeclareOk, spec.ExchangeDeleteOk,
    spec.ExchangeBindOk, spec.ExchangeUnbindOk, spec.QueueDeclareOk, spec.QueueBindOk,
    spec.QueuePurgeOk, spec.QueueDeleteOk, spec.QueueUnbindOk, spec.BasicQosOk,
    spec.BasicConsumeOk, spec.BasicCancelOk, spec.BasicReturn, spec.BasicDeliver,
    spec.BasicGetOk, spec.BasicGetEmpty, spec.BasicRecoverOk, spec.TxSelectOk,
    spec.TxCommitOk, spec.TxRollbackOk, spec.ConfirmSelectOk,
))
# Methods only a client sends; a server sending one gets the same answer.
CLIENT_ONLY: Final = frozenset(m.INDEX for m in (
    spec.ChannelOpen, spec.AccessRequest,
    spec.ExchangeDeclare, spec.ExchangeDelete, spec.ExchangeBind, spec.ExchangeUnbind,
    spec.QueueDeclare, spec.QueueBind, spec.QueuePurge, spec.QueueDelete, spec.QueueUnbind,
    spec.BasicQos, spec.BasicConsume, spec.BasicPublish, spec.BasicGet, spec.BasicReject,
    spec.BasicRecoverAsync, spec.BasicRecover, spec.TxSelect, spec.TxCommit, spec.TxRollback,
    spec.ConfirmSelect,
))
REFUSED_FROM: Final[Mapping[Role, frozenset[int]]] = {CLIENT: SERVER_ONLY, SERVER: CLIENT_ONLY}


# RabbitMQ's names for the connection states, which its error texts quote.
RABBITMQ_STATE_NAMES: Final[Mapping[ConnectionState, str]] = {
    C.HEADER: "pre_init", C.START: "starting", C.START_OK: "starting", C.TUNE: "securing",
    C.SECURE_OK: "securing", C.TUNE_OK: "tuning", C.OPEN: "opening", C.OPEN_OK: "opening",
    C.RUNNING: "running", C.CLOSING: "closing", C.CLOSED: "closed"}


def unexpected_connection_method(state: ConnectionState, m: spec.Method) -> AMQPError | None:
    """The error for a method on channel 0 the table does not allow in ``state`` (None: drop
    it): RabbitMQ's 504, whatever the method, even one only a server sends."""
    if state is C.CLOSING:
        return None
    return ChannelErrorHard(f"unexpected method in connection state "
                            f"{RABBITMQ_STATE_NAMES[state]}", m.CLASS_ID, m.METHOD_ID)


def unexpected_channel_method(state: ChannelState, m: spec.Method) -> AMQPError | None:
    """The error for a method the table does not allow on a channel in ``state`` (None: drop
    it)."""
    if state is Ch.CLOSING:
        return None
    if state is Ch.CLOSED:
        return ChannelErrorHard("expected 'channel.open'", m.CLASS_ID, m.METHOD_ID)
    if isinstance(m, spec.ChannelOpen):
        return ChannelErrorHard("second 'channel.open' seen", 20, 10)
    if state is Ch.OPEN:
        # RabbitMQ's channel has no use for it (a close-ok or flow-ok nobody asked for, a
        # connection method off channel 0).
        return CommandInvalid("unimplemented method", m.CLASS_ID, m.METHOD_ID)
    return ChannelErrorHard(f"unexpected method {m.NAME} in channel state {state.value}",
                            m.CLASS_ID, m.METHOD_ID)


# -- the tables, compiled for one role ------------------------------------------------------

_Received = dict[ConnectionState, dict[int, tuple[ConnectionState, Action]]]
_Sent = dict[ConnectionState, dict[int, ConnectionState]]
_ChannelReceived = dict[ChannelState, dict[int, tuple[ChannelState, Action]]]
_ChannelSent = dict[ChannelState, dict[int, ChannelState]]


class _Rules:
    """The tables as one role sees them: keyed by method index, split into what the peer
    may send (and what the machine then does) and what we may send."""

    def __init__(self, role: Role) -> None:
        self.received: _Received = {s: {} for s in ConnectionState}
        self.sent: _Sent = {s: {} for s in ConnectionState}
        for state, row in CONNECTION_TRANSITIONS.items():
            for (sender, event), target in row.items():
                if sender is role:
                    self.sent[state][event.INDEX] = target
                else:
                    self.received[state][event.INDEX] = (target, Action.PASS)
        for state, target in CONNECTION_CLOSE_SENT.items():
            self.sent[state][spec.ConnectionClose.INDEX] = target
        for state, close_row in CONNECTION_CLOSE_RECEIVED.items():
            for event, outcome in close_row.items():
                self.received[state][event.INDEX] = outcome
        self.channel_received: _ChannelReceived = {s: {} for s in ChannelState}
        self.channel_sent: _ChannelSent = {s: {} for s in ChannelState}
        for ch_state, ch_row in CHANNEL_TRANSITIONS.items():
            for (sender, method), ch_target in ch_row.items():
                if sender is role:
                    self.channel_sent[ch_state][method.INDEX] = ch_target
                else:
                    self.channel_received[ch_state][method.INDEX] = (ch_target, Action.PASS)
        for ch_state, ch_target in CHANNEL_CLOSE_SENT.items():
            self.channel_sent[ch_state][spec.ChannelClose.INDEX] = ch_target
        for ch_state, ch_close_row in CHANNEL_CLOSE_RECEIVED.items():
            for method, ch_outcome in ch_close_row.items():
                self.channel_received[ch_state][method.INDEX] = ch_outcome
        self.refused = REFUSED_FROM[role.peer]


_RULES = {role: _Rules(role) for role in Role}
# Connection and channel class methods go through the tables when sent; the rest (replies,
# deliveries, acks) change no state and go straight out.
_CONNECTION_CLASS = spec.ConnectionClose.CLASS_ID
_CHANNEL_CLASS = spec.ChannelClose.CLASS_ID


# -- the machine ---------------------------------------------------------------------------

class Owner(Protocol):
    """What the machine calls on the role-specific layer above it. Each call happens once per
    event, in the order the frames arrived; a method may raise ``leveret.errors``."""

    def header_received(self) -> None:
        """(Server) the client's protocol header is right: send connection.start."""

    def connection_method(self, method: spec.Method) -> None:
        """A method on channel 0 the table accepted (start, start-ok, tune, tune-ok, ...)."""

    def channel_method(self, number: int, method: spec.Method) -> None:
        """A method on an open channel, or channel.open for a channel the peer opens. For a
        content-carrying method (basic.publish, deliver, ...) its content comes next."""

    def content_received(self, number: int, head: ContentHead, properties: bytes,
                         body: bytes) -> None:
        """The content of the last content-carrying method on ``number`` is complete."""

    def channel_closed(self, number: int,
                       method: spec.ChannelClose | spec.ChannelCloseOk) -> None:
        """The channel is gone: the peer closed it (close-ok is sent after this returns),
        or it answered our channel.close."""

    def channel_failed(self, number: int, error: AMQPError) -> None:
        """A soft error on an open channel: release it; the machine sends channel.close."""

    def connection_closed(self, method: spec.ConnectionClose | None) -> None:
        """The connection is over: close the transport once the output is written.
        ``method`` is the peer's connection.close when the peer closed first."""


FastMethod = Callable[[int, bytes, ContentAssembler], None]


class ChannelMachine:
    """One channel's protocol state and the content it is receiving."""

    __slots__ = ("content", "refused", "state")

    def __init__(self, state: ChannelState, max_body_size: int | None) -> None:
        self.state = state
        self.content = ContentAssembler(max_body_size)
        # The content arriving belongs to a method the peer may not send (a client's
        # basic.deliver): refused once it is complete.
        self.refused = False


_OPEN: Final = ChannelState.OPEN
_RUNNING: Final = ConnectionState.RUNNING
_CLOSED: Final = ConnectionState.CLOSED
_HEADER: Final = ConnectionState.HEADER
_START: Final = ConnectionState.START
_BODY: Final = frames.BODY
_CONTENT_FRAMES: Final = frozenset({frames.BODY, frames.HEADER})
_METHOD: Final = frames.METHOD
_METHODS: Final = spec.METHODS
_PUBLISH: Final = spec.BasicPublish.INDEX


def _decode_error(exc: Exception, cls: type[spec.Method], number: int,
                  payload: bytes) -> AMQPError:
    """What a method's arguments that do not decode are answered with: RabbitMQ's 501
    quoting them, or silence for an unknown field type (its reader crashes)."""
    if isinstance(exc, NotUTF8):  # RabbitMQ names the method only on channel 0
        exc.class_id, exc.method_id = (0, 0) if number else (cls.CLASS_ID, cls.METHOD_ID)
        return exc
    if isinstance(exc, UnknownFieldType):
        return exc
    return FrameError(f"cannot decode {frames.erlang_binary(payload[4:])}", cls.CLASS_ID,
                      cls.METHOD_ID)


def _refuse(ch: ChannelMachine, m: spec.Method) -> None:
    """A method the peer's role may not send, on an open channel: 503, though a content-
    carrying one only once its content is complete (RabbitMQ's channel sees it then)."""
    if not m.CONTENT:
        raise CommandInvalid("unimplemented method", m.CLASS_ID, m.METHOD_ID)
    ch.content.head = m
    ch.refused = True


class ProtocolMachine:
    """The protocol of one connection, as ``role`` speaks it.

    ``write`` receives every byte string the machine sends (the owner batches them).
    ``frame_max`` bounds received frames until tune-ok negotiates it; ``max_body_size``
    refuses larger contents (406, a server's max_message_size). ``fast_methods`` maps method
    indexes to hand-written handlers the owner wants for its hottest received methods on open
    channels; they run instead of decoding and get the channel's content assembler.
    """

    def __init__(self, role: Role, owner: Owner, write: Callable[[bytes], None],
                 frame_max: int = frames.DEFAULT_FRAME_MAX,
                 max_body_size: int | None = None) -> None:
        self.role = role
        self.state = ConnectionState.HEADER
        self.channels: dict[int, ChannelMachine] = {}
        self.frame_max = frame_max
        self.channel_max = 0  # until tune-ok: no channel may open before it anyway
        self.heartbeat = 0
        self.max_body_size = max_body_size
        self.fast_methods: dict[int, FastMethod] = {}
        self._owner = owner
        self._write = write
        self._rules = _RULES[role]
        self._buffer = FrameBuffer(frame_max)
        # What tune offered, to check the tune-ok against: (channel_max, frame_max).
        self._offered = (0, 0)

    # -- receiving ---------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Received bytes not yet handled: the start of a frame still arriving."""
        return len(self._buffer)

    def discard_input(self) -> None:
        """Drop what was received and not yet handled: after a framing error the rest of
        the stream cannot be parsed, and a client that keeps writing must not make us
        hold it."""
        self._buffer.release()

    @property
    def holds_input_ring(self) -> bool:
        """The frame buffer holds a ring for bytes still to be read (``shrink_input``)."""
        return self._buffer.holds_ring

    def shrink_input(self) -> None:
        """Keep what is buffered in a buffer of its own size, the ring back to its pool."""
        self._buffer.shrink()

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next socket read goes (asyncio's BufferedProtocol): then
        ``buffer_updated`` with how much arrived, then ``receive_data(b"")`` handles it."""
        return self._buffer.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._buffer.buffer_updated(nbytes)

    def receive_data(self, data: bytes, max_frames: int = 0) -> bool:
        """Handle the whole frames in the bytes received so far, at most ``max_frames`` of
        them if it is not 0 (a server's share of work per turn for one client). Returns
        True when it stopped there with more bytes buffered: call again, with ``b""`` or
        more data, to go on. Hard errors propagate. (Once per socket read: the frame loop
        is written out here, no call of its own.)"""
        buffer = self._buffer
        state = self.state
        if state is _START and data[:4] == b"AMQP" and not len(buffer):
            # the server answers a protocol version it does not speak with its own header
            raise FrameError(f"server refused the protocol version: {data[:8]!r}")
        if data:
            buffer.feed(data)
        left = max_frames
        try:
            if state is _HEADER and not self._read_protocol_header():
                return False
            next_frame = buffer.next_frame
            while self.state is not _CLOSED:
                frame = next_frame()
                if frame is None:
                    return False
                ftype, number, payload = frame
                # two of a message's three frames: straight to their handler
                if ftype in _CONTENT_FRAMES:
                    self._content_frame(ftype, number, payload)
                elif ftype == _METHOD:
                    self._method_frame(number, payload)
                elif ftype == frames.HEARTBEAT and not payload:
                    if number:
                        raise UnexpectedFrame("type 8, all octets = <<>>")
                else:  # an unknown type, or a heartbeat with a payload
                    raise FrameError(f"type {ftype}, all octets = "
                                     f"{frames.erlang_binary(payload)}: unknown_frame")
                if left:
                    left -= 1
                    if not left:  # this turn's share is done
                        return len(buffer) > 0
            return False
        finally:
            buffer.compact()

    def _read_protocol_header(self) -> bool:
        if self.role is not SERVER:
            raise FrameError("data received before the protocol header was sent")
        head = self._buffer.take(8)
        if head is None:
            return False
        if head != frames.PROTOCOL_HEADER:
            # The spec's answer to a header we do not speak: ours, then hang up.
            self._write(frames.PROTOCOL_HEADER)
            self._closed(None)
            return False
        self.state = self._rules.received[ConnectionState.HEADER][ProtocolHeader.INDEX][0]
        self._owner.header_received()
        return True

    def _content_frame(self, ftype: int, number: int, payload: bytes) -> None:
        ch = self.channels.get(number)
        if ch is None or ch.state is not _OPEN:
            if self.state is ConnectionState.CLOSING or (
                    ch is not None and ch.state is ChannelState.CLOSING):
                return
            if number and self.state is not _RUNNING:
                self._frame_before_open(ftype, payload)
            raise UnexpectedFrame("expected method frame, got non method frame instead")
        content = ch.content
        try:
            message = content.body(payload) if ftype == _BODY else content.header(payload)
        except ChannelError as exc:  # a body larger than we accept
            self._channel_failed(number, exc)
            return
        if message is None:
            return
        head, properties, body = message
        if ch.refused:
            ch.refused = False
            raise CommandInvalid("unimplemented method", *head_ids(head))
        try:
            self._owner.content_received(number, head, properties, body)
        except AMQPError as exc:
            self._handler_failed(number, *head_ids(head), exc)

    def _frame_before_open(self, ftype: int, payload: bytes) -> None:
        """A frame on a channel before the connection is open (or after it closed, in which
        case it is dropped): RabbitMQ's reader answers 505 quoting it."""
        if self.state is not ConnectionState.CLOSING:
            raise UnexpectedFrame(f"type {ftype}, all octets = "
                                  f"{frames.erlang_binary(payload)}")

    def _method_frame(self, number: int, payload: bytes) -> None:
        ch = None
        if number:
            ch = self.channels.get(number)
            if ch is None:
                if self.state is not _RUNNING:
                    self._frame_before_open(_METHOD, payload)
                    return
            elif ch.content.head is not None:
                # Content was due: the frame type alone is the error.
                raise ch.content.method_frame_error()
        if len(payload) < 4:
            raise FrameError(f"type 1, all octets = {frames.erlang_binary(payload)}: "
                             "unknown_frame")
        index = int.from_bytes(payload[:4], "big")
        if self.fast_methods and ch is not None and ch.state is _OPEN:
            fast = self.fast_methods.get(index)
            if fast is not None:
                fast(number, payload, ch.content)
                return
        cls = _METHODS.get(index)
        if cls is None:
            raise UnknownFieldType(f"unknown method {index >> 16}.{index & 0xFFFF}")
        try:
            # basic.publish, once per message: its hand-written decoder
            m = decode_publish(payload) if index == _PUBLISH else cls.decode(payload, 4)
        except Exception as exc:  # FrameError, struct.error, IndexError, ValueError, ...
            raise _decode_error(exc, cls, number, payload) from None
        if number == 0:
            self._connection_method(m)
        elif ch is not None and ch.state is _OPEN and m.CLASS_ID > _CHANNEL_CLASS:
            # The common case, inline: channels exist only while the connection runs, and
            # an open one takes every method after the channel class as it is.
            if index in self._rules.refused:
                _refuse(ch, m)
                return
            if m.CONTENT:
                ch.content.head = m  # ContentAssembler.expect, without a call per message
            try:
                self._owner.channel_method(number, m)
            except AMQPError as exc:
                self._handler_failed(number, m.CLASS_ID, m.METHOD_ID, exc)
        else:
            self._channel_method(number, m, ch)

    def _connection_method(self, m: spec.Method) -> None:
        state = self.state
        outcome = self._rules.received[state].get(m.INDEX)
        if outcome is None:
            error = unexpected_connection_method(state, m)
            if error is not None:
                raise error
            return
        target, action = outcome
        if action is Action.PASS:
            if isinstance(m, spec.ConnectionTuneOk):
                self._tuned(m, check=True)  # before the state moves: errors here are tune-ok's
            elif isinstance(m, spec.ConnectionTune):
                self._offered = (m.channel_max, m.frame_max)
            self.state = target
            self._owner.connection_method(m)
        elif action is Action.PEER_CLOSE:
            assert isinstance(m, spec.ConnectionClose)
            self._write(encode_method(0, spec.ConnectionCloseOk()))
            self._closed(m)
        elif action is Action.CROSSED_CLOSE:
            self._write(encode_method(0, spec.ConnectionCloseOk()))
            self._closed(None)
        elif action is Action.CLOSE_OK:
            self._closed(None)

    def _channel_method(self, number: int, m: spec.Method, ch: ChannelMachine | None) -> None:
        """A method of the channel class, or any method on a channel that is not open (the
        connection runs: ``_method_frame`` saw to that)."""
        state = ChannelState.CLOSED if ch is None else ch.state
        outcome = self._rules.channel_received[state].get(m.INDEX)
        if outcome is None:
            error = unexpected_channel_method(state, m)
            if error is not None:
                raise error
            return
        target, action = outcome
        owner = self._owner
        if ch is None:  # the peer opens a channel
            opened = sum(1 for c in self.channels.values() if c.state is not Ch.CLOSING)
            if opened >= self.channel_max:
                raise NotAllowed(f"number of channels opened ({opened}) has reached the "
                                 f"negotiated channel_max ({self.channel_max})")
            self.channels[number] = ChannelMachine(target, self.max_body_size)
            owner.channel_method(number, m)
        elif action is Action.PASS:
            ch.state = target
            try:
                owner.channel_method(number, m)
            except AMQPError as exc:
                self._handler_failed(number, m.CLASS_ID, m.METHOD_ID, exc)
        elif action is Action.PEER_CLOSE:
            assert isinstance(m, spec.ChannelClose)
            del self.channels[number]
            owner.channel_closed(number, m)
            self._write(encode_method(number, spec.ChannelCloseOk()))
        elif action is Action.CROSSED_CLOSE:
            self._write(encode_method(number, spec.ChannelCloseOk()))
        elif action is Action.CLOSE_OK:
            assert isinstance(m, spec.ChannelCloseOk)
            del self.channels[number]
            owner.channel_closed(number, m)

    def _handler_failed(self, number: int, class_id: int, method_id: int,
                        error: AMQPError) -> None:
        """The owner failed to handle a method (or content) on channel ``number``: the error
        names that method unless it names another; hard errors go on up, soft ones close
        the channel."""
        if error.class_id is None:
            error.class_id, error.method_id = class_id, method_id
        if not error.soft:
            raise error
        self._channel_failed(number, error)

    def _channel_failed(self, number: int, error: AMQPError) -> None:
        self._owner.channel_failed(number, error)
        self.close_channel(number, error)

    def _tuned(self, m: spec.ConnectionTuneOk, check: bool) -> None:
        """Apply tune-ok's numbers; ``check`` them against tune's offer when the peer chose."""
        # 0 means "no limit", which is more than any offer (RabbitMQ refuses it).
        frame_max = m.frame_max or 1 << 32
        channel_max = m.channel_max or 65536
        if check:
            offered_channels, offered_frame = self._offered
            if frame_max < frames.FRAME_MIN_SIZE:
                raise NotAllowed(f"negotiated frame_max = {frame_max} is lower than the "
                                 f"minimum allowed value ({frames.FRAME_MIN_SIZE})", 10, 31)
            if frame_max > (offered_frame or 1 << 32):
                raise NotAllowed(f"negotiated frame_max = {frame_max} is higher than the "
                                 f"maximum allowed value ({offered_frame})", 10, 31)
            if channel_max > (offered_channels or 65536):
                raise NotAllowed(f"negotiated channel_max = {channel_max} is higher than "
                                 f"the maximum allowed value ({offered_channels})", 10, 31)
        self.frame_max = frame_max
        self._buffer.frame_max = frame_max
        self.channel_max = channel_max
        self.heartbeat = m.heartbeat

    def _closed(self, method: spec.ConnectionClose | None) -> None:
        self.state = ConnectionState.CLOSED
        self.channels.clear()
        self._owner.connection_closed(method)

    # -- sending -----------------------------------------------------------------------

    def send_protocol_header(self) -> None:
        """(Client) open the connection."""
        self._transition(0, ProtocolHeader.INDEX, ProtocolHeader.NAME)
        self._write(frames.PROTOCOL_HEADER)

    def send(self, channel: int, method: spec.Method) -> None:
        """Send one method. Connection and channel methods must fit the table (a misfit is
        our own bug: InternalError); the others change no state and are not checked."""
        if method.CLASS_ID <= _CHANNEL_CLASS:
            self._transition(channel, method.INDEX, method.NAME)
            if isinstance(method, spec.ConnectionTune):
                self._offered = (method.channel_max, method.frame_max)
            elif isinstance(method, spec.ConnectionTuneOk):
                self._tuned(method, check=False)
        self._write(encode_method(channel, method))

    def _transition(self, channel: int, index: int, name: str) -> None:
        if channel == 0:
            target = self._rules.sent[self.state].get(index)
            if target is None:
                raise InternalError(f"cannot send {name} in connection state "
                                    f"{self.state.value}")
            self.state = target
            if target is ConnectionState.CLOSING:
                self.channels.clear()  # nothing on them matters any more
            return
        if self.state is not _RUNNING:  # so an open channel implies a running connection
            raise InternalError(f"cannot send {name} on channel {channel} in connection "
                                f"state {self.state.value}")
        ch = self.channels.get(channel)
        state = ChannelState.CLOSED if ch is None else ch.state
        ch_target = self._rules.channel_sent[state].get(index)
        if ch_target is None:
            raise InternalError(f"cannot send {name} on channel {channel} in state "
                                f"{state.value}")
        if ch is None:
            self.channels[channel] = ChannelMachine(ch_target, self.max_body_size)
        else:
            ch.state = ch_target
            if ch_target is ChannelState.CLOSING:
                ch.content.reset()

    def close_channel(self, number: int, error: AMQPError) -> None:
        """Close one channel because of a soft error: send channel.close and drop everything
        the peer sends on it until its close-ok."""
        self.send(number, spec.ChannelClose(reply_code=error.reply_code,
                                            reply_text=error.reply_text,
                                            class_id=error.class_id or 0,
                                            method_id=error.method_id or 0))

    def transport_closed(self) -> None:
        """The transport is gone (or about to be): nothing more is received."""
        self.state = ConnectionState.CLOSED
        self.channels.clear()
        self._buffer.release()
