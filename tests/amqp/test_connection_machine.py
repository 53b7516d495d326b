"""The protocol machine alone: no event loop, no broker, both roles.

Each state of the connection and channel tables is crossed with every event a peer can
send; every cell either moves as the table says or raises the error the table's rules name.
Then content assembly's edge cases, closing (what is dropped), tune negotiation, frame-level
rules, and a client machine and a server machine talking to each other in memory.
"""

from __future__ import annotations

import pytest

from leveret.amqp import frames, spec
from leveret.amqp.connection import (
    CHANNEL_CLOSE_RECEIVED,
    CHANNEL_TRANSITIONS,
    CLIENT_ONLY,
    CONNECTION_CLOSE_RECEIVED,
    CONNECTION_TRANSITIONS,
    REFUSED_FROM,
    SERVER_ONLY,
    Action,
    ChannelMachine,
    ChannelState,
    ConnectionState,
    ProtocolMachine,
    Role,
    unexpected_channel_method,
    unexpected_connection_method,
)
from leveret.amqp.content import ContentAssembler, ContentHead
from leveret.errors import (
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

Event = tuple[object, ...]
ALL_METHODS = sorted(spec.METHODS.values(), key=lambda cls: cls.INDEX)
CONNECTION_METHODS = [cls for cls in ALL_METHODS if cls.CLASS_ID == 10]
CHANNEL_METHODS = [cls for cls in ALL_METHODS if cls.CLASS_ID == 20]


class Recorder:
    """An ``Owner`` that writes each event down and, when ``answer`` is set, answers the
    handshake the way the simplest peer of its role would."""

    def __init__(self, answer: bool = False) -> None:
        self.events: list[Event] = []
        self.answer = answer
        self.machine: ProtocolMachine | None = None

    @property
    def m(self) -> ProtocolMachine:
        assert self.machine is not None
        return self.machine

    def header_received(self) -> None:
        self.events.append(("header",))
        if self.answer:
            self.m.send(0, spec.ConnectionStart())

    def connection_method(self, method: spec.Method) -> None:
        self.events.append(("connection", method))
        if not self.answer:
            return
        if isinstance(method, spec.ConnectionStart):
            self.m.send(0, spec.ConnectionStartOk(mechanism="PLAIN", response=b"\0g\0g"))
        elif isinstance(method, spec.ConnectionStartOk):
            self.m.send(0, spec.ConnectionTune(channel_max=2, frame_max=4096, heartbeat=5))
        elif isinstance(method, spec.ConnectionTune):
            self.m.send(0, spec.ConnectionTuneOk(method.channel_max, method.frame_max,
                                                 method.heartbeat))
            self.m.send(0, spec.ConnectionOpen("/"))
        elif isinstance(method, spec.ConnectionOpen):
            self.m.send(0, spec.ConnectionOpenOk())

    def channel_method(self, number: int, method: spec.Method) -> None:
        self.events.append(("channel", number, method))
        if self.answer and isinstance(method, spec.ChannelOpen):
            self.m.send(number, spec.ChannelOpenOk())

    def content_received(self, number: int, head: ContentHead, properties: bytes,
                         body: bytes) -> None:
        self.events.append(("content", number, head, properties, body))

    def channel_closed(self, number: int,
                       method: spec.ChannelClose | spec.ChannelCloseOk) -> None:
        self.events.append(("channel closed", number, method))

    def channel_failed(self, number: int, error: AMQPError) -> None:
        self.events.append(("channel failed", number, error.reply_code))

    def connection_closed(self, method: spec.ConnectionClose | None) -> None:
        self.events.append(("connection closed", method))


def machine(role: Role, state: ConnectionState = ConnectionState.RUNNING,
            answer: bool = False, max_body_size: int | None = None,
            ) -> tuple[ProtocolMachine, Recorder, bytearray]:
    owner = Recorder(answer)
    out = bytearray()
    m = ProtocolMachine(role, owner, out.extend, frame_max=4096, max_body_size=max_body_size)
    owner.machine = m
    m.state = state
    m.channel_max = 2
    return m, owner, out


def with_channel(role: Role, state: ChannelState = ChannelState.OPEN, number: int = 1,
                 max_body_size: int | None = None,
                 ) -> tuple[ProtocolMachine, Recorder, bytearray]:
    m, owner, out = machine(role, max_body_size=max_body_size)
    if state is not ChannelState.CLOSED:
        m.channels[number] = ChannelMachine(state, max_body_size)
    return m, owner, out


def methods_in(data: bytes | bytearray) -> list[spec.Method]:
    buf = frames.FrameBuffer(1 << 20)
    buf.feed(bytes(data))
    found = []
    while (frame := buf.next_frame()) is not None:
        if frame[0] == frames.METHOD:
            payload = frame[2]
            found.append(spec.METHODS[int.from_bytes(payload[:4], "big")].decode(payload, 4))
    return found


def method_frame(channel: int, method: spec.Method) -> bytes:
    return frames.encode_method(channel, method)


def content(channel: int, body: bytes, frame_max: int = 4096, class_id: int = 60) -> bytes:
    return frames.encode_content(channel, class_id, b"\x00\x00", body, frame_max)


def header_frame(channel: int, size: int) -> bytes:
    payload = (60).to_bytes(2, "big") + bytes(2) + size.to_bytes(8, "big") + b"\x00\x00"
    return b"\x02" + channel.to_bytes(2, "big") + len(payload).to_bytes(4, "big") + payload + (
        b"\xce")


def body_frame(channel: int, body: bytes) -> bytes:
    return b"\x03" + channel.to_bytes(2, "big") + len(body).to_bytes(4, "big") + body + b"\xce"


def publish(channel: int = 1, body: bytes = b"hi") -> bytes:
    return method_frame(channel, spec.BasicPublish(routing_key="q")) + content(channel, body)


def deliver(channel: int = 1, body: bytes = b"hi") -> bytes:
    return method_frame(channel, spec.BasicDeliver("c", 1, False, "", "q")) + content(
        channel, body)


def raised(m: ProtocolMachine, data: bytes) -> AMQPError | None:
    try:
        m.receive_data(data)
    except AMQPError as exc:
        return exc
    return None


def same_error(got: AMQPError | None, want: AMQPError | None) -> bool:
    if got is None or want is None:
        return got is want
    return (type(got), got.reply_text, got.class_id, got.method_id) == (
        type(want), want.reply_text, want.class_id, want.method_id)


# -- the connection table --------------------------------------------------------------------

CONNECTION_STATES = [s for s in ConnectionState
                     if s not in (ConnectionState.HEADER, ConnectionState.CLOSED)]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", CONNECTION_STATES, ids=lambda s: s.value)
@pytest.mark.parametrize("cls", CONNECTION_METHODS, ids=lambda c: c.NAME)
def test_every_connection_state_and_method(role: Role, state: ConnectionState,
                                           cls: type[spec.Method]) -> None:
    m, owner, out = machine(role, state)
    sender = role.peer
    got = raised(m, method_frame(0, cls()))
    passed = CONNECTION_TRANSITIONS.get(state, {}).get((sender, cls))
    closing = CONNECTION_CLOSE_RECEIVED.get(state, {}).get(cls)
    if passed is not None:
        assert got is None and m.state is passed
        assert owner.events == [("connection", cls())]
    elif closing is not None:
        target, action = closing
        assert got is None and m.state is target
        close_ok = [spec.ConnectionCloseOk()] if action is not Action.CLOSE_OK else []
        assert methods_in(out) == close_ok
        peer_close = cls() if action is Action.PEER_CLOSE else None
        assert owner.events == [("connection closed", peer_close)]
    else:
        assert same_error(got, unexpected_connection_method(state, cls()))
        assert owner.events == []
        if got is None:  # closing: dropped
            assert state is ConnectionState.CLOSING and m.state is state


def test_connection_errors_use_rabbitmq_texts() -> None:
    m, _, _ = machine(Role.SERVER, ConnectionState.RUNNING)
    err = raised(m, method_frame(0, spec.ConnectionOpen()))
    assert isinstance(err, ChannelErrorHard)
    assert err.reply_text == "CHANNEL_ERROR - unexpected method in connection state running"
    m, _, _ = machine(Role.SERVER, ConnectionState.OPEN)
    err = raised(m, method_frame(0, spec.ConnectionTuneOk()))
    assert isinstance(err, ChannelErrorHard)
    assert err.reply_text == "CHANNEL_ERROR - unexpected method in connection state opening"
    assert (err.class_id, err.method_id) == (10, 31)
    # what only a server sends is no exception on channel 0 (RabbitMQ's table decides)
    m, _, _ = machine(Role.SERVER, ConnectionState.RUNNING)
    err = raised(m, method_frame(0, spec.ConnectionStart()))
    assert isinstance(err, ChannelErrorHard) and (err.class_id, err.method_id) == (10, 10)


def test_a_server_refuses_what_only_a_server_sends_and_the_client_the_converse() -> None:
    assert not SERVER_ONLY & CLIENT_ONLY
    m, _, _ = with_channel(Role.SERVER)
    err = raised(m, method_frame(1, spec.BasicGetEmpty()))
    assert isinstance(err, CommandInvalid)
    assert (err.reply_text, err.class_id, err.method_id) == (
        "COMMAND_INVALID - unimplemented method", 60, 72)
    m, _, _ = with_channel(Role.CLIENT)
    err = raised(m, method_frame(1, spec.BasicPublish()) + content(1, b"x"))
    assert isinstance(err, CommandInvalid) and (err.class_id, err.method_id) == (60, 40)


def test_a_refused_content_method_is_answered_once_its_content_is_whole() -> None:
    m, owner, _ = with_channel(Role.SERVER)
    assert raised(m, method_frame(1, spec.BasicDeliver()) + header_frame(1, 2)) is None
    err = raised(m, body_frame(1, b"hi"))
    assert isinstance(err, CommandInvalid) and (err.class_id, err.method_id) == (60, 60)
    assert owner.events == []
    m, _, _ = with_channel(Role.SERVER)  # and a method in its content's place is 505
    err = raised(m, method_frame(1, spec.BasicDeliver()) + method_frame(1, spec.BasicQos()))
    assert isinstance(err, UnexpectedFrame) and (err.class_id, err.method_id) == (60, 60)


def test_a_client_cannot_block_a_server() -> None:
    m, _, _ = machine(Role.SERVER, ConnectionState.RUNNING)
    err = raised(m, method_frame(0, spec.ConnectionBlocked("x")))
    assert isinstance(err, ChannelErrorHard) and (err.class_id, err.method_id) == (10, 60)
    m, owner, _ = machine(Role.CLIENT)
    m.receive_data(method_frame(0, spec.ConnectionBlocked("low on memory")))
    assert owner.events == [("connection", spec.ConnectionBlocked("low on memory"))]


# -- the channel table ---------------------------------------------------------------------

SAMPLE_CHANNEL_EVENTS = [*CHANNEL_METHODS, spec.BasicQos, spec.BasicDeliver,
                         spec.ConnectionOpen]


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", list(ChannelState), ids=lambda s: s.value)
@pytest.mark.parametrize("cls", SAMPLE_CHANNEL_EVENTS, ids=lambda c: c.NAME)
def test_every_channel_state_and_method(role: Role, state: ChannelState,
                                        cls: type[spec.Method]) -> None:
    m, owner, out = with_channel(role, state)
    sender = role.peer
    got = raised(m, method_frame(1, cls()))
    passed = CHANNEL_TRANSITIONS.get(state, {}).get((sender, cls))
    closing = CHANNEL_CLOSE_RECEIVED.get(state, {}).get(cls)
    now = m.channels[1].state if 1 in m.channels else ChannelState.CLOSED
    # the channel class goes through the table; the others are refused on open channels
    refused = (cls.INDEX in REFUSED_FROM[sender] and state is ChannelState.OPEN and
               cls.CLASS_ID > 20)
    if refused and cls.CONTENT:
        assert got is None and m.channels[1].refused  # refused once its content is whole
    elif refused:
        assert same_error(got, CommandInvalid("unimplemented method", cls.CLASS_ID,
                                              cls.METHOD_ID))
    elif passed is not None:
        assert got is None and now is passed
        assert owner.events == [("channel", 1, cls())]
    elif closing is not None:
        target, action = closing
        assert got is None and now is target
        replies = [spec.ChannelCloseOk()] if action in (Action.PEER_CLOSE,
                                                        Action.CROSSED_CLOSE) else []
        assert methods_in(out) == replies
        told = [("channel closed", 1, cls())] if action in (Action.PEER_CLOSE,
                                                           Action.CLOSE_OK) else []
        assert owner.events == told
    elif state is ChannelState.OPEN and cls.CLASS_ID > 20:
        assert got is None and owner.events == [("channel", 1, cls())]
    else:
        assert same_error(got, unexpected_channel_method(state, cls()))
        assert owner.events == []
        if got is None:
            assert state is ChannelState.CLOSING and now is state


def test_channel_open_is_checked_against_the_negotiated_channel_max() -> None:
    m, _, out = machine(Role.SERVER, answer=True)
    m.receive_data(method_frame(1, spec.ChannelOpen()) + method_frame(2, spec.ChannelOpen()))
    assert methods_in(out) == [spec.ChannelOpenOk(), spec.ChannelOpenOk()]
    err = raised(m, method_frame(3, spec.ChannelOpen()))
    assert isinstance(err, NotAllowed)
    assert err.reply_text == ("NOT_ALLOWED - number of channels opened (2) has reached the "
                              "negotiated channel_max (2)")
    assert err.class_id is None  # RabbitMQ names no method for it


def test_second_channel_open_and_methods_on_unopened_channels() -> None:
    m, _, _ = with_channel(Role.SERVER)
    err = raised(m, method_frame(1, spec.ChannelOpen()))
    assert isinstance(err, ChannelErrorHard)
    assert (err.reply_text, err.class_id, err.method_id) == (
        "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)
    m, _, _ = machine(Role.SERVER)
    err = raised(m, method_frame(5, spec.BasicQos()))
    assert isinstance(err, ChannelErrorHard)
    assert (err.reply_text, err.class_id, err.method_id) == (
        "CHANNEL_ERROR - expected 'channel.open'", 60, 10)


def test_frames_on_channels_before_the_connection_is_open() -> None:
    m, _, _ = machine(Role.SERVER, ConnectionState.OPEN)
    err = raised(m, method_frame(1, spec.ChannelOpen()))
    assert isinstance(err, UnexpectedFrame)
    assert (err.reply_text, err.class_id) == (
        "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>", None)
    m, _, _ = machine(Role.SERVER, ConnectionState.OPEN)
    err = raised(m, header_frame(1, 0))
    assert isinstance(err, UnexpectedFrame)
    assert err.reply_text.startswith("UNEXPECTED_FRAME - type 2, all octets = <<0,60,")


# -- sending -------------------------------------------------------------------------------

def test_sends_move_the_states_and_misfits_are_our_own_bug() -> None:
    m, _, out = machine(Role.CLIENT, ConnectionState.HEADER)
    m.send_protocol_header()
    assert (bytes(out), m.state) == (frames.PROTOCOL_HEADER, ConnectionState.START)
    with pytest.raises(InternalError):
        m.send(0, spec.ConnectionOpen())  # before start-ok
    m, _, _ = machine(Role.CLIENT)
    m.send(3, spec.ChannelOpen())
    assert m.channels[3].state is ChannelState.OPENING
    with pytest.raises(InternalError):
        m.send(3, spec.ChannelOpenOk())  # the server's to send
    m.send(3, spec.ChannelClose())
    assert m.channels[3].state is ChannelState.CLOSING
    m.send(0, spec.ConnectionClose())
    assert (m.state, m.channels) == (ConnectionState.CLOSING, {})
    with pytest.raises(InternalError):
        m.send(1, spec.ChannelOpen())  # channels only while running


def test_data_methods_are_sent_without_checks() -> None:
    m, _, out = machine(Role.SERVER)
    m.send(9, spec.BasicQosOk())
    assert methods_in(out) == [spec.BasicQosOk()] and m.channels == {}


# -- closing ------------------------------------------------------------------------------

def test_closing_connection_drops_all_but_close_and_close_ok() -> None:
    m, owner, out = with_channel(Role.SERVER)
    m.send(0, spec.ConnectionClose(320, "CONNECTION_FORCED - bye"))
    out.clear()
    m.receive_data(publish() + method_frame(1, spec.BasicQos()) +
                   method_frame(0, spec.ConnectionOpen()) + frames.HEARTBEAT_FRAME +
                   content(7, b"stray"))
    assert (owner.events, bytes(out), m.state) == ([], b"", ConnectionState.CLOSING)
    m.receive_data(method_frame(0, spec.ConnectionCloseOk()) + publish())
    assert owner.events == [("connection closed", None)]
    assert m.state is ConnectionState.CLOSED and bytes(out) == b""


def test_closes_that_cross_are_both_answered() -> None:
    m, owner, out = machine(Role.CLIENT)
    m.send(0, spec.ConnectionClose(200, "bye"))
    out.clear()
    m.receive_data(method_frame(0, spec.ConnectionClose(320, "forced")))
    assert methods_in(out) == [spec.ConnectionCloseOk()]
    assert owner.events == [("connection closed", None)]


def test_peer_close_is_answered_after_the_owner_heard_of_it() -> None:
    m, owner, out = with_channel(Role.CLIENT)
    m.receive_data(method_frame(1, spec.ChannelClose(404, "NOT_FOUND - no queue", 50, 10)))
    assert owner.events == [("channel closed", 1, spec.ChannelClose(404, "NOT_FOUND - no "
                                                                    "queue", 50, 10))]
    assert methods_in(out) == [spec.ChannelCloseOk()] and 1 not in m.channels
    m.receive_data(method_frame(0, spec.ConnectionClose(320, "forced")))
    assert owner.events[-1] == ("connection closed", spec.ConnectionClose(320, "forced"))
    assert m.state is ConnectionState.CLOSED


def test_closing_channel_drops_everything_until_close_ok() -> None:
    m, owner, out = with_channel(Role.SERVER)
    m.receive_data(method_frame(1, spec.BasicPublish()))  # its content is cut off by...
    m.send(1, spec.ChannelClose(406, "PRECONDITION_FAILED - x", 60, 40))  # ...our close
    owner.events.clear()
    out.clear()
    m.receive_data(content(1, b"late body") + method_frame(1, spec.BasicQos()) +
                   method_frame(1, spec.ChannelOpen()) + publish())
    assert (owner.events, bytes(out)) == ([], b"")
    m.receive_data(method_frame(1, spec.ChannelClose()))  # crossed: answered, still closing
    assert methods_in(out) == [spec.ChannelCloseOk()]
    assert m.channels[1].state is ChannelState.CLOSING
    m.receive_data(method_frame(1, spec.ChannelCloseOk()))
    assert owner.events == [("channel closed", 1, spec.ChannelCloseOk())]
    assert 1 not in m.channels


def test_soft_error_from_the_owner_closes_only_the_channel() -> None:
    class Refusing(Recorder):
        def channel_method(self, number: int, method: spec.Method) -> None:
            super().channel_method(number, method)
            raise PreconditionFailed("unknown delivery tag 7")

    owner = Refusing()
    out = bytearray()
    m = ProtocolMachine(Role.SERVER, owner, out.extend)
    m.state = ConnectionState.RUNNING
    m.channels[1] = ChannelMachine(ChannelState.OPEN, None)
    m.receive_data(method_frame(1, spec.BasicAck(7)) + method_frame(1, spec.BasicAck(8)))
    assert owner.events == [("channel", 1, spec.BasicAck(7)), ("channel failed", 1, 406)]
    assert methods_in(out) == [spec.ChannelClose(406, "PRECONDITION_FAILED - unknown "
                                                      "delivery tag 7", 60, 80)]


# -- content ------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"", b"x", b"y" * 4088, bytes(range(256)) * 40])
def test_content_of_any_size_arrives_whole(body: bytes) -> None:
    m, owner, _ = with_channel(Role.SERVER)
    m.receive_data(publish(1, body))
    assert owner.events[-1] == ("content", 1, spec.BasicPublish(routing_key="q"),
                                b"\x00\x00", body)
    m, owner, _ = with_channel(Role.CLIENT)
    data = deliver(1, body)
    for i in range(len(data)):  # one byte at a time: every frame split every way
        m.receive_data(data[i:i + 1])
    assert owner.events[-1][4] == body and owner.events[-1][2] == spec.BasicDeliver(
        "c", 1, False, "", "q")


def frame_errors(role: Role, data: bytes) -> AMQPError | None:
    m, _, _ = with_channel(role)
    return raised(m, data)


@pytest.mark.parametrize(("data", "text", "ids"), [
    (content(1, b"x"), "UNEXPECTED_FRAME - expected method frame, got non method frame "
     "instead", (None, None)),
    (method_frame(1, spec.BasicPublish()) + method_frame(1, spec.BasicQos()),
     "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame "
     "instead", (60, 40)),
    (method_frame(1, spec.BasicPublish()) + header_frame(1, 3) + method_frame(1, spec.BasicQos()),
     "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
     (60, 40)),
    (method_frame(1, spec.BasicPublish()) + content(1, b"x", class_id=50),
     "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
     (60, 40)),
    (method_frame(1, spec.BasicPublish()) + header_frame(1, 4) + body_frame(1, b"ab") +
     body_frame(1, b"abc"),
     "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
     (60, 40)),  # a body longer than the header said
    (method_frame(1, spec.BasicPublish()) + body_frame(1, b"x"),
     "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame "
     "instead", (60, 40)),  # a body before the header
    (method_frame(1, spec.BasicPublish()) + content(1, b"ab") + content(1, b"ab"),
     "UNEXPECTED_FRAME - expected method frame, got non method frame instead", (None, None)),
])
def test_content_out_of_order(data: bytes, text: str, ids: tuple[int | None, ...]) -> None:
    err = frame_errors(Role.SERVER, data)
    assert isinstance(err, UnexpectedFrame)
    assert (err.reply_text, (err.class_id, err.method_id)) == (text, ids)


def test_content_errors_name_the_clients_method() -> None:
    err = frame_errors(Role.CLIENT, method_frame(1, spec.BasicDeliver()) +
                       method_frame(1, spec.BasicCancel()))
    assert isinstance(err, UnexpectedFrame) and (err.class_id, err.method_id) == (60, 60)


def test_body_over_the_size_we_accept_closes_the_channel_and_drops_the_rest() -> None:
    m, owner, out = with_channel(Role.SERVER, max_body_size=3)
    m.receive_data(publish(1, b"four") + publish(1, b"ok"))
    assert owner.events == [("channel", 1, spec.BasicPublish(routing_key="q")),
                            ("channel failed", 1, 406)]
    assert methods_in(out) == [spec.ChannelClose(
        406, "PRECONDITION_FAILED - message size 4 is larger than configured max size 3",
        60, 40)]


def test_assembler_joins_many_body_frames_once() -> None:
    asm = ContentAssembler()
    asm.expect(spec.BasicPublish())
    assert asm.header(b"\x00\x3c\x00\x00" + (6).to_bytes(8, "big") + b"\x80\x00") is None
    assert asm.body(b"ab") is None and asm.body(b"cd") is None
    message = asm.body(b"ef")
    assert message == (spec.BasicPublish(), b"\x80\x00", b"abcdef")
    assert (asm.head, asm.properties, asm.received, asm.parts) == (None, b"", 0, [])


def test_fast_methods_run_beside_the_table() -> None:
    m, owner, _ = with_channel(Role.CLIENT)
    seen: list[tuple[int, bytes]] = []

    def fast_deliver(number: int, payload: bytes, asm: ContentAssembler) -> None:
        seen.append((number, payload[:4]))
        asm.expect((b"c", 1, False, "", "q"))

    m.fast_methods[spec.BasicDeliver.INDEX] = fast_deliver
    m.receive_data(deliver(1, b"body"))
    assert seen == [(1, b"\x00\x3c\x00\x3c")]
    assert owner.events == [("content", 1, (b"c", 1, False, "", "q"), b"\x00\x00", b"body")]


# -- frames and the handshake ---------------------------------------------------------------

@pytest.mark.parametrize(("data", "error", "text"), [
    (b"\x08\x00\x01\x00\x00\x00\x00\xce", UnexpectedFrame,
     "UNEXPECTED_FRAME - type 8, all octets = <<>>"),
    (b"\x05\x00\x00\x00\x00\x00\x01x\xce", FrameError,
     'FRAME_ERROR - type 5, all octets = <<"x">>: unknown_frame'),
    (b"\x01\x00\x00\x00\x00\x00\x02ab\xce", FrameError,
     'FRAME_ERROR - type 1, all octets = <<"ab">>: unknown_frame'),
    (b"\x08\x00\x00\x00\x00\x00\x01x\xce", FrameError,
     'FRAME_ERROR - type 8, all octets = <<"x">>: unknown_frame'),
    (b"\x01\x00\x01\x00\x00\x00\x09\x00\x3c\x00\x50" + bytes(9)[:5] + b"\xce", FrameError,
     "FRAME_ERROR - cannot decode <<0,0,0,0,0>>"),
    (b"\x01\x00\x00\x00\x00\x00\x04\x00\x63\x00\x01\xce", UnknownFieldType,
     "FRAME_ERROR - unknown method 99.1"),
    (b"\x01\x00\x01\x00\x00\x00\x05\x00\x3c\x00\x28\x00\xce", FrameError,
     "FRAME_ERROR - cannot decode <<0>>"),
])
def test_frame_rules(data: bytes, error: type[AMQPError], text: str) -> None:
    for role in Role:
        m, _, _ = machine(role)
        m.channels[1] = ChannelMachine(ChannelState.OPEN, None)
        err = raised(m, data)
        assert type(err) is error and err.reply_text == text


def test_heartbeats_on_channel_zero_are_fine_in_any_state() -> None:
    for state in (ConnectionState.TUNE_OK, ConnectionState.RUNNING, ConnectionState.CLOSING):
        m, owner, _ = machine(Role.SERVER, state)
        m.receive_data(frames.HEARTBEAT_FRAME * 3)
        assert (owner.events, m.state) == ([], state)


def test_wrong_protocol_header_is_answered_with_ours() -> None:
    m, owner, out = machine(Role.SERVER, ConnectionState.HEADER)
    m.receive_data(b"AMQP\x00\x00\x08\x00")
    assert bytes(out) == frames.PROTOCOL_HEADER
    assert (m.state, owner.events) == (ConnectionState.CLOSED, [("connection closed", None)])
    m, owner, _ = machine(Role.SERVER, ConnectionState.HEADER)
    m.receive_data(b"AMQP\x00")
    assert (m.state, owner.events) == (ConnectionState.HEADER, [])
    m, _, _ = machine(Role.CLIENT, ConnectionState.START)
    assert isinstance(raised(m, b"AMQP\x00\x00\x09\x00"), FrameError)


@pytest.mark.parametrize(("tune_ok", "text"), [
    (spec.ConnectionTuneOk(10, 1024, 0), "NOT_ALLOWED - negotiated frame_max = 1024 is lower "
     "than the minimum allowed value (4096)"),
    (spec.ConnectionTuneOk(10, 0, 0), "NOT_ALLOWED - negotiated frame_max = 4294967296 is "
     "higher than the maximum allowed value (8192)"),
    (spec.ConnectionTuneOk(11, 8192, 0), "NOT_ALLOWED - negotiated channel_max = 11 is higher "
     "than the maximum allowed value (10)"),
])
def test_tune_ok_is_checked_against_the_offer(tune_ok: spec.ConnectionTuneOk,
                                              text: str) -> None:
    m, _, _ = machine(Role.SERVER, ConnectionState.TUNE)
    m.send(0, spec.ConnectionTune(channel_max=10, frame_max=8192, heartbeat=60))
    err = raised(m, method_frame(0, tune_ok))
    assert isinstance(err, NotAllowed) and err.reply_text == text
    assert m.state is ConnectionState.TUNE_OK  # still: the error belongs to tune-ok


def test_a_client_and_a_server_machine_talk() -> None:
    server, server_owner, to_client = machine(Role.SERVER, ConnectionState.HEADER, answer=True)
    client, client_owner, to_server = machine(Role.CLIENT, ConnectionState.HEADER, answer=True)

    def pump() -> None:
        while to_client or to_server:
            data, to_server[:] = bytes(to_server), b""
            server.receive_data(data)
            data, to_client[:] = bytes(to_client), b""
            client.receive_data(data)

    client.send_protocol_header()
    pump()
    assert server.state is client.state is ConnectionState.RUNNING
    assert (server.frame_max, server.channel_max, server.heartbeat) == (4096, 2, 5)
    assert (client.frame_max, client.channel_max, client.heartbeat) == (4096, 2, 5)
    client.send(1, spec.ChannelOpen())
    pump()
    assert server.channels[1].state is client.channels[1].state is ChannelState.OPEN
    to_server += publish(1, b"x" * 10000)  # three body frames at frame_max 4096
    server.send(1, spec.BasicQosOk())
    to_client += deliver(1, b"y" * 5000)
    pump()
    assert server_owner.events[-1][4] == b"x" * 10000
    assert client_owner.events[-3:] == [
        ("channel", 1, spec.BasicQosOk()),
        ("channel", 1, spec.BasicDeliver("c", 1, False, "", "q")),
        ("content", 1, spec.BasicDeliver("c", 1, False, "", "q"), b"\x00\x00", b"y" * 5000)]
    client.send(1, spec.ChannelClose(200, "bye"))
    pump()
    assert client_owner.events[-1] == ("channel closed", 1, spec.ChannelCloseOk())
    assert server_owner.events[-1] == ("channel closed", 1, spec.ChannelClose(200, "bye"))
    server.send(0, spec.ConnectionClose(320, "CONNECTION_FORCED - shutdown"))
    pump()
    assert server.state is client.state is ConnectionState.CLOSED
    assert server_owner.events[-1] == ("connection closed", None)
    assert client_owner.events[-1] == ("connection closed", spec.ConnectionClose(
        320, "CONNECTION_FORCED - shutdown"))
