"""Malformed input on the wire: the same bytes to leveret and to RabbitMQ, the same answer.

Each case opens a raw TCP connection, goes through the handshake as far as its ``stage``
says, sends its bytes and then a probe (channel.open on channel 99, or connection.open
before the connection is open). The answer is what comes back first: a connection.close
(code, class id, method id), a channel.close, the socket closed without a close method, or
the probe's reply, which means the input was accepted (or is still waiting for more).

The expected answers are data: ``rabbitmq`` is what RabbitMQ 3.10 answers (checked against
the reference broker when one is reachable), ``leveret`` is what leveret answers where it
deliberately answers better (each such line is in docs/compatibility.md). So the leveret
half runs everywhere, and the reference half keeps the data honest.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import pytest

from leveret.amqp import frames, spec

Answer = tuple[object, ...]
ACCEPTED: Answer = ("accepted",)
HANGS_UP: Answer = ("socket closed without connection.close",)
FRAME_MAX = 131072  # both brokers' default, which the handshake accepts
PROBE_TIMEOUT = 5.0


def closes(code: int, class_id: int = 0, method_id: int = 0) -> Answer:
    return ("connection.close", code, class_id, method_id)


def closes_channel(code: int, class_id: int = 0, method_id: int = 0) -> Answer:
    return ("channel.close", code, class_id, method_id)


# -- building the input -----------------------------------------------------------------------

def frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + end


def method(channel: int, m: spec.Method) -> bytes:
    return frames.encode_method(channel, m)


def raw_method(channel: int, class_id: int, method_id: int, arguments: bytes) -> bytes:
    return frame(1, channel, struct.pack(">HH", class_id, method_id) + arguments)


def shortstr(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def table(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def nested_tables(depth: int) -> bytes:
    inner = table(b"")
    for _ in range(depth):
        inner = table(b"\x01aF" + inner)
    return inner


def nested_arrays(depth: int) -> bytes:
    inner = table(b"")
    for _ in range(depth):
        inner = table(b"A" + inner)
    return table(b"\x01aA" + inner)


def declare(arguments: bytes, name: bytes = b"", flags: int = 0x04) -> bytes:
    """queue.declare on channel 1: exclusive and named by the server, so nothing outlives the
    connection or collides with anyone's queue."""
    return raw_method(1, 50, 10, b"\x00\x00" + shortstr(name) + bytes([flags]) + arguments)


def header(size: int, properties: bytes, channel: int = 1, class_id: int = 60,
           weight: int = 0) -> bytes:
    return frame(2, channel, struct.pack(">HHQ", class_id, weight, size) + properties)


def body(data: bytes, channel: int = 1) -> bytes:
    return frame(3, channel, data)


def flags(value: int, values: bytes = b"") -> bytes:
    return struct.pack(">H", value) + values


PUBLISH = method(1, spec.BasicPublish(routing_key="wire-nowhere"))  # unroutable: dropped
NO_PROPS = flags(0)
QUEUE_DECLARE = declare(table(b""))


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    rabbitmq: Answer
    leveret: Answer | None = None  # None: RabbitMQ's answer
    stage: str = "channel"  # "tune", "tuned", "open" or "channel" (1 is open)

    @property
    def expected(self) -> Answer:
        return self.rabbitmq if self.leveret is None else self.leveret


CASES = [
    # -- frames
    Case("bad frame end octet", QUEUE_DECLARE[:-1] + b"\x00", closes(501)),
    Case("bad frame end octet on a body frame", PUBLISH + header(1, NO_PROPS) +
         body(b"x")[:-1] + b"\x01", closes(501)),
    Case("bad frame end octet on a heartbeat", frame(8, 0, b"", end=b"\xcd"), closes(501)),
    Case("frame type 0", frame(0, 1, b"x"), closes(501)),
    Case("frame type 4", frame(4, 1, b"x"), closes(501)),
    Case("frame type 7", frame(7, 0, b""), closes(501)),
    Case("frame type 9", frame(9, 1, b"hi"), closes(501)),
    Case("frame type 255", frame(255, 0, b""), closes(501)),
    Case("frame over frame_max", frame(1, 1, b"\x00" * (FRAME_MAX + 1)), closes(501)),
    Case("frame size 2^32-1", struct.pack(">BHI", 1, 1, 0xFFFFFFFF), closes(501)),
    Case("body frame of frame_max - 8 bytes", PUBLISH + header(FRAME_MAX - 8, NO_PROPS) +
         body(b"x" * (FRAME_MAX - 8)), ACCEPTED),
    Case("body frame of frame_max bytes", PUBLISH + header(FRAME_MAX, NO_PROPS) +
         body(b"x" * FRAME_MAX), ACCEPTED),
    Case("body frame of frame_max + 1 bytes", PUBLISH + header(FRAME_MAX + 1, NO_PROPS) +
         body(b"x" * (FRAME_MAX + 1)), closes(501)),
    Case("heartbeat on channel 1", frame(8, 1, b""), closes(505)),
    Case("heartbeat with a payload", frame(8, 0, b"abc"), closes(501)),
    Case("heartbeat with a payload on channel 1", frame(8, 1, b"abc"), closes(501)),
    Case("empty method frame", frame(1, 1, b""), closes(501)),
    Case("method frame of 3 bytes", frame(1, 1, b"\x00\x32\x00"), closes(501)),
    Case("content header on channel 0", header(0, NO_PROPS, channel=0), closes(505)),
    Case("content body on channel 0", body(b"x", channel=0), closes(505)),
    Case("basic.publish on channel 0", method(0, spec.BasicPublish()), closes(504, 60, 40)),
    Case("queue.declare on channel 0", method(0, spec.QueueDeclare(queue="wire-q")),
         closes(504, 50, 10)),
    Case("method on a channel not open", method(5, spec.BasicQos()), closes(504, 60, 10)),
    Case("content header on a channel not open", header(0, NO_PROPS, channel=5),
         closes(505)),
    Case("content body on a channel not open", body(b"x", channel=5), closes(505)),
    Case("basic.publish on a channel not open", method(5, spec.BasicPublish()), ACCEPTED,
         leveret=closes(504, 60, 40)),
    Case("channel.open above channel_max", method(2048, spec.ChannelOpen()), ACCEPTED),
    Case("channel.open on channel 65535", method(65535, spec.ChannelOpen()), ACCEPTED),
    Case("second channel.open", method(1, spec.ChannelOpen()), closes(504, 20, 10)),
    Case("channel.close-ok nobody asked for", method(1, spec.ChannelCloseOk()),
         closes(503, 20, 41)),
    Case("channel.flow-ok nobody asked for", method(1, spec.ChannelFlowOk(active=True)),
         closes(503, 20, 21)),
    Case("channel.flow active=false", method(1, spec.ChannelFlow(active=False)),
         closes(540, 20, 20)),
    # -- methods
    Case("unknown class", raw_method(1, 77, 10, b""), HANGS_UP),
    Case("unknown method", raw_method(1, 60, 999, b""), HANGS_UP),
    Case("class 0 method 0", raw_method(1, 0, 0, b""), HANGS_UP),
    Case("unknown connection method", raw_method(0, 10, 99, b""), HANGS_UP),
    Case("queue.declare cut after the ticket", raw_method(1, 50, 10, b"\x00\x00"),
         closes(501, 50, 10)),
    Case("queue.declare without arguments", raw_method(1, 50, 10, b""), closes(501, 50, 10)),
    Case("queue name running past the frame", raw_method(1, 50, 10, b"\x00\x00\x09wire"),
         closes(501, 50, 10)),
    Case("queue.declare without its table", declare(b""), closes(501, 50, 10)),
    Case("table running past the frame", declare(b"\x00\x00\x00\x09\x01a"),
         closes(501, 50, 10)),
    Case("extra bytes after queue.declare", frame(1, 1, spec.QueueDeclare(
        exclusive=True).encode() + b"zz"), closes(501, 50, 10)),
    Case("extra bytes after basic.publish", frame(1, 1, spec.BasicPublish(
        routing_key="wire-nowhere").encode() + b"zz") + header(0, NO_PROPS),
         closes(501, 60, 40)),
    Case("extra byte after basic.ack", frame(1, 1, spec.BasicAck().encode() + b"\x00"),
         closes(501, 60, 80)),
    Case("extra bytes after channel.open", frame(1, 2, spec.ChannelOpen().encode() + b"zz"),
         closes(501, 20, 10)),
    Case("basic.ack cut short", raw_method(1, 60, 80, b"\x00\x00"), closes(501, 60, 80)),
    Case("basic.publish cut short", raw_method(1, 60, 40, b"\x00\x00\x00"),
         closes(501, 60, 40)),
    Case("routing key running past the frame",
         raw_method(1, 60, 40, b"\x00\x00\x00\x30abc"), closes(501, 60, 40)),
    Case("unknown bits in queue.declare's flags", declare(table(b""), flags=0xE4), ACCEPTED),
    Case("connection.close cut short", frame(1, 0, spec.ConnectionClose(
        reply_code=200).encode()[:6]), closes(541), leveret=closes(501, 10, 50)),
    Case("extra bytes after connection.close", frame(1, 0, spec.ConnectionClose(
        reply_code=200).encode() + b"z"), closes(541), leveret=closes(501, 10, 50)),
    # -- field tables
    Case("unknown field type", declare(table(b"\x01aZ")), HANGS_UP),
    Case("field type U", declare(table(b"\x01aU\x00\x01")), HANGS_UP),
    Case("table key running past the table", declare(table(b"\x09ab")), HANGS_UP,
         leveret=closes(501, 50, 10)),
    Case("table value running past the table", declare(table(b"\x01aS\x00\x00\x00\x09ab")),
         HANGS_UP, leveret=closes(501, 50, 10)),
    Case("int cut short in a table", declare(table(b"\x01aI\x00\x01")), HANGS_UP,
         leveret=closes(501, 50, 10)),
    Case("array with an unknown field type", declare(table(b"\x01aA" + table(b"Z"))),
         HANGS_UP),
    Case("empty table key", declare(table(b"\x00t\x01")), ACCEPTED),
    Case("table key not UTF-8", declare(table(b"\x02\xff\xfet\x01")), ACCEPTED),
    Case("boolean 2", declare(table(b"\x01at\x02")), ACCEPTED),
    Case("decimal of scale 255", declare(table(b"\x01aD\xff\x00\x00\x00\x01")), ACCEPTED),
    Case("timestamp 2^64-1", declare(table(b"\x01aT" + b"\xff" * 8)), ACCEPTED),
    Case("tables nested 65 deep", declare(nested_tables(65)), ACCEPTED),
    Case("tables nested 1000 deep", declare(nested_tables(1000)), ACCEPTED,
         leveret=closes(501, 50, 10)),
    Case("tables nested as deep as a frame allows", declare(nested_tables(18000)), ACCEPTED,
         leveret=closes(501, 50, 10)),
    Case("arrays nested as deep as a frame allows", declare(nested_arrays(26000)), ACCEPTED,
         leveret=closes(501, 50, 10)),
    # -- text that is not UTF-8
    Case("queue name not UTF-8", declare(table(b""), name=b"wire-\xff"), closes(501)),
    Case("queue name with a UTF-16 surrogate", declare(table(b""), name=b"wire-\xed\xa0\x80"),
         ACCEPTED),
    Case("queue name with U+110000", declare(table(b""), name=b"wire-\xf4\x90\x80\x80"),
         ACCEPTED),
    Case("queue name with a NUL", declare(table(b""), name=b"wire-\x00"), ACCEPTED),
    Case("queue name with an overlong encoding", declare(table(b""), name=b"wire-\xc0\x80"),
         closes(501)),
    Case("queue name with a cut sequence", declare(table(b""), name=b"wire-\xe2\x82"),
         closes(501)),
    Case("queue name with a lone continuation byte", declare(table(b""), name=b"wire-\x80"),
         closes(501)),
    Case("queue name with a five-byte sequence",
         declare(table(b""), name=b"wire-\xf8\x88\x80\x80\x80"), closes(501)),
    Case("basic.get of a queue name not UTF-8",
         raw_method(1, 60, 70, b"\x00\x00" + shortstr(b"\xff") + b"\x00"), closes(501)),
    Case("channel.close reply text not UTF-8",
         raw_method(1, 20, 40, b"\x00\xc8" + shortstr(b"\xff") + b"\x00" * 4), closes(501)),
    Case("virtual host not UTF-8", raw_method(0, 10, 40, shortstr(b"\xff") + shortstr(b"")
                                              + b"\x00"), closes(501, 10, 40), stage="tuned"),
    Case("exchange name not UTF-8", raw_method(1, 40, 10, b"\x00\x00" + shortstr(b"wire-\xff")
                                               + shortstr(b"direct") + b"\x00" + table(b"")),
         closes(501)),
    Case("exchange type not UTF-8", raw_method(1, 40, 10, b"\x00\x00" + shortstr(b"wire-x")
                                               + shortstr(b"dir\xff") + b"\x00" + table(b"")),
         closes(501)),
    Case("routing key not UTF-8", raw_method(1, 60, 40, b"\x00\x00" + shortstr(b"")
                                             + shortstr(b"wire-\xff") + b"\x00")
         + header(0, NO_PROPS), ACCEPTED),
    Case("publish to an exchange name not UTF-8",
         raw_method(1, 60, 40, b"\x00\x00" + shortstr(b"wire-\xff") + shortstr(b"") + b"\x00")
         + header(0, NO_PROPS), closes_channel(404, 60, 40)),
    Case("consumer tag not UTF-8", raw_method(1, 60, 20, b"\x00\x00" + shortstr(b"wire-q")
                                              + shortstr(b"\xff") + b"\x00" + table(b"")),
         closes(501)),
    Case("binding key not UTF-8", raw_method(1, 50, 20, b"\x00\x00" + shortstr(b"wire-q")
                                             + shortstr(b"amq.direct") + shortstr(b"\xff")
                                             + b"\x00" + table(b"")), closes(501)),
    Case("content-type not UTF-8", PUBLISH + header(0, flags(0x8000, shortstr(b"\xff"))),
         ACCEPTED),
    # -- content
    Case("content header without a method", header(0, NO_PROPS), closes(505)),
    Case("content body without a method", body(b"x"), closes(505)),
    Case("content body without a header", PUBLISH + body(b"x"), closes(505, 60, 40)),
    Case("method where the content header is due", PUBLISH + PUBLISH, closes(505, 60, 40)),
    Case("method where the body is due", PUBLISH + header(3, NO_PROPS) + PUBLISH,
         closes(505, 60, 40)),
    Case("body larger than declared", PUBLISH + header(3, NO_PROPS) + body(b"abcde"),
         ACCEPTED, leveret=closes(505, 60, 40)),
    Case("body larger than declared, then a method", PUBLISH + header(3, NO_PROPS)
         + body(b"abcde") + method(1, spec.BasicQos()), closes(505, 60, 40)),
    Case("body after an empty message", PUBLISH + header(0, NO_PROPS) + body(b"x"),
         closes(505)),
    Case("content header of class 50", PUBLISH + header(0, NO_PROPS, class_id=50),
         closes(505, 60, 40)),
    Case("content header of 4 bytes", PUBLISH + frame(2, 1, b"\x00\x3c\x00\x00"),
         closes(501)),
    Case("content header with weight 1", PUBLISH + header(0, NO_PROPS, weight=1),
         closes(505, 60, 40)),
    Case("content header after a whole message", PUBLISH + header(0, NO_PROPS)
         + header(0, NO_PROPS), closes(505)),
    Case("two content headers", PUBLISH + header(3, NO_PROPS) + header(3, NO_PROPS),
         closes(505, 60, 40)),
    Case("property flags continue (bit 0)", PUBLISH + header(0, flags(0x0001)), ACCEPTED,
         leveret=closes(541)),
    Case("property flags continue into a second word",
         PUBLISH + header(0, flags(0x0001, b"\x00\x00")), closes(541)),
    Case("reserved property flag bit 1", PUBLISH + header(0, flags(0x0002)), ACCEPTED),
    Case("delivery-mode flag without its byte", PUBLISH + header(0, flags(0x1000)),
         closes(541)),
    Case("no property flags, one byte after", PUBLISH + header(0, flags(0x0000, b"\x02")),
         closes(541)),
    Case("delivery-mode and a byte after it", PUBLISH + header(0, flags(0x1000, b"\x02\x02")),
         closes(541)),
    Case("every property flag over zero bytes", PUBLISH + header(0, flags(0xFFFC)),
         closes(541)),
    Case("headers table cut short", PUBLISH + header(0, flags(0x2000, b"\x00\x00\x00\x09")),
         closes(541)),
    Case("content-type running past the header", PUBLISH + header(0, flags(0x8000, b"\x09ab")),
         closes(541)),
    Case("no property flags at all", PUBLISH + frame(2, 1, struct.pack(">HHQ", 60, 0, 0)),
         closes(541)),
    Case("delivery-mode 9", PUBLISH + header(0, flags(0x1000, b"\x09")),
         closes_channel(406, 60, 40)),
    Case("delivery-mode 0 and priority 255", PUBLISH + header(0, flags(0x1800, b"\x00\xff")),
         closes_channel(406, 60, 40)),
    Case("priority 255", PUBLISH + header(0, flags(0x0800, b"\xff")), ACCEPTED),
    Case("body size 2^62", PUBLISH + header(2**62, NO_PROPS), ACCEPTED,
         leveret=closes_channel(406, 60, 40)),
    Case("body size 128 MiB + 1", PUBLISH + header(128 * 2**20 + 1, NO_PROPS), ACCEPTED,
         leveret=closes_channel(406, 60, 40)),
    Case("body size 2^64-1", PUBLISH + header(2**64 - 1, NO_PROPS), ACCEPTED,
         leveret=closes_channel(406, 60, 40)),
    # -- methods out of place
    Case("channel.open before connection.open", method(1, spec.ChannelOpen()), closes(505),
         stage="tuned"),
    Case("basic.publish before connection.open", PUBLISH, closes(505), stage="tuned"),
    Case("content header before connection.open", header(0, NO_PROPS), closes(505),
         stage="tuned"),
    Case("heartbeat before connection.open", frames.HEARTBEAT_FRAME, ACCEPTED, stage="tuned"),
    Case("second tune-ok", method(0, spec.ConnectionTuneOk(channel_max=2047,
                                                            frame_max=FRAME_MAX)),
         closes(504, 10, 31), stage="tuned"),
    Case("connection.open before tune-ok", method(0, spec.ConnectionOpen()), HANGS_UP,
         stage="tune"),
    Case("second start-ok", method(0, spec.ConnectionStartOk(mechanism="PLAIN")),
         closes(504, 10, 11)),
    Case("second tune-ok once open", method(0, spec.ConnectionTuneOk()), closes(504, 10, 31)),
    Case("second connection.open", method(0, spec.ConnectionOpen()), closes(504, 10, 40)),
    Case("secure-ok once open", method(0, spec.ConnectionSecureOk()), closes(504, 10, 21)),
    # -- methods only a server sends
    Case("client sends connection.start", method(0, spec.ConnectionStart()),
         closes(504, 10, 10)),
    Case("client sends connection.secure", method(0, spec.ConnectionSecure()),
         closes(504, 10, 20)),
    Case("client sends connection.tune", method(0, spec.ConnectionTune()),
         closes(504, 10, 30)),
    Case("client sends connection.open-ok", method(0, spec.ConnectionOpenOk()),
         closes(504, 10, 41)),
    Case("client sends connection.blocked", method(0, spec.ConnectionBlocked(reason="x")),
         closes(504, 10, 60)),
    Case("client sends connection.unblocked", method(0, spec.ConnectionUnblocked()),
         closes(504, 10, 61)),
    Case("client sends connection.update-secret-ok",
         method(0, spec.ConnectionUpdateSecretOk()), closes(504, 10, 71)),
    Case("client sends channel.open-ok", method(1, spec.ChannelOpenOk()), closes(503, 20, 11)),
    Case("client sends queue.declare-ok", method(1, spec.QueueDeclareOk(queue="x")),
         closes(503, 50, 11)),
    Case("client sends basic.consume-ok", method(1, spec.BasicConsumeOk(consumer_tag="x")),
         closes(503, 60, 21)),
    Case("client sends basic.get-empty", method(1, spec.BasicGetEmpty()), closes(503, 60, 72)),
    Case("client sends basic.deliver", method(1, spec.BasicDeliver(consumer_tag="x")),
         ACCEPTED),
    Case("client sends basic.deliver on channel 0", method(0, spec.BasicDeliver()),
         closes(504, 60, 60)),
    Case("client sends queue.declare-ok on channel 0", method(0, spec.QueueDeclareOk()),
         closes(504, 50, 11)),
    Case("client sends queue.declare-ok on a channel not open",
         method(5, spec.QueueDeclareOk()), closes(504, 50, 11)),
    Case("client sends basic.deliver on a channel not open", method(5, spec.BasicDeliver()),
         ACCEPTED, leveret=closes(504, 60, 60)),
    Case("client sends basic.deliver with content",
         method(1, spec.BasicDeliver(consumer_tag="x")) + header(1, NO_PROPS) + body(b"x"),
         closes(503, 60, 60)),
    Case("client sends basic.deliver, then a method",
         method(1, spec.BasicDeliver(consumer_tag="x")) + method(1, spec.BasicQos()),
         closes(505, 60, 60)),
    Case("client sends basic.get-ok", method(1, spec.BasicGetOk()), ACCEPTED),
    Case("client sends basic.return", method(1, spec.BasicReturn(reply_code=312)), ACCEPTED),
    Case("client sends basic.return with content",
         method(1, spec.BasicReturn(reply_code=312)) + header(0, NO_PROPS),
         closes(503, 60, 50)),
]


# -- observing the answer ---------------------------------------------------------------------

class Peer:
    """A raw socket that reads whole frames; just enough client to see what a broker does."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
        self.buffer = b""

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except OSError:  # the broker hung up while we were still sending
            return False
        return True

    def next_method(self, deadline: float) -> tuple[int, int, int, bytes] | None:
        """``(channel, class_id, method_id, arguments)`` of the next method frame; None once
        the socket is closed. Raises TimeoutError at ``deadline``."""
        while True:
            if len(self.buffer) >= 7:
                size = int.from_bytes(self.buffer[3:7], "big")
                if len(self.buffer) >= size + 8:
                    ftype, channel = self.buffer[0], int.from_bytes(self.buffer[1:3], "big")
                    payload = self.buffer[7 : 7 + size]
                    self.buffer = self.buffer[size + 8 :]
                    if ftype == frames.METHOD:
                        class_id, method_id = struct.unpack_from(">HH", payload)
                        return channel, class_id, method_id, payload[4:]
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buffer += data

    def expect(self, class_id: int, method_id: int, deadline: float) -> None:
        got = self.next_method(deadline)
        assert got is not None and got[1:3] == (class_id, method_id), got

    def close(self) -> None:
        self.sock.close()


def handshake(peer: Peer, stage: str) -> None:
    deadline = time.monotonic() + PROBE_TIMEOUT
    peer.send(frames.PROTOCOL_HEADER)
    peer.expect(10, 10, deadline)
    peer.send(method(0, spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                                               response=b"\x00guest\x00guest")))
    peer.expect(10, 30, deadline)
    if stage == "tune":
        return
    peer.send(method(0, spec.ConnectionTuneOk(channel_max=2047, frame_max=FRAME_MAX)))
    if stage == "tuned":
        return
    peer.send(method(0, spec.ConnectionOpen(virtual_host="/")))
    peer.expect(10, 41, deadline)
    if stage == "open":
        return
    peer.send(method(1, spec.ChannelOpen()))
    peer.expect(20, 11, deadline)


def _close_fields(arguments: bytes) -> tuple[int, int, int]:
    (code,) = struct.unpack_from(">H", arguments)
    class_id, method_id = struct.unpack_from(">HH", arguments, 3 + arguments[2])
    return code, class_id, method_id


# How long an accepted probe waits for an error that may still follow (see answer).
ERROR_GRACE = 0.15


def answer(host: str, port: int, case: Case) -> Answer:
    peer = Peer(host, port)
    try:
        handshake(peer, case.stage)
        if case.stage in ("tune", "tuned"):
            probe = method(0, spec.ConnectionOpen(virtual_host="/"))
            reply = (0, 10, 41)
            if case.stage == "tune":
                probe = method(0, spec.ConnectionTuneOk(channel_max=2047,
                                                        frame_max=FRAME_MAX)) + probe
        else:
            probe, reply = method(99, spec.ChannelOpen()), (99, 20, 11)
        if peer.send(case.data):
            peer.send(probe)
        deadline = time.monotonic() + PROBE_TIMEOUT
        accepted = False
        while True:
            try:
                got = peer.next_method(deadline)
            except TimeoutError:
                if accepted:
                    return ACCEPTED
                raise
            if got is None:
                return HANGS_UP
            channel, class_id, method_id, arguments = got
            if (class_id, method_id) == (10, 50):
                peer.send(method(0, spec.ConnectionCloseOk()))
                return ("connection.close", *_close_fields(arguments))
            if (class_id, method_id) == (20, 40):
                return ("channel.close", *_close_fields(arguments))
            if (channel, class_id, method_id) == reply and not accepted:
                # RabbitMQ runs each channel in its own process: the probe's answer on
                # channel 99 may overtake the error on channel 1. Wait a moment for it.
                accepted = True
                deadline = min(deadline, time.monotonic() + ERROR_GRACE)
    finally:
        peer.close()


def _address(url: str) -> tuple[str, int]:
    rest = url.split("@", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host, int(port)


_IDS = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_leveret_answers(case: Case, leveret_url: str) -> None:
    assert answer(*_address(leveret_url), case) == case.expected


@pytest.mark.compat
@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_rabbitmq_answers(case: Case, rabbitmq_url: str) -> None:
    """The corpus's record of RabbitMQ's answers is still true of RabbitMQ."""
    assert answer(*_address(rabbitmq_url), case) == case.rabbitmq
