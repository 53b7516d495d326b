"""The broker driven through ServerConnection with bytes in and bytes out: no sockets,
no event loop. Prefetch, acks, requeue order and confirms at the protocol level."""

from __future__ import annotations

from typing import Any

from leveret.amqp import frames, spec
from leveret.amqp.frames import FrameBuffer
from leveret.broker.connection import CLOSED, CLOSING, RUNNING, ServerConnection
from leveret.broker.node import Node


class Peer:
    """A client speaking to a ServerConnection in memory."""

    def __init__(self, node: Node) -> None:
        self.conn = ServerConnection(node, peer=("127.0.0.1", 40000))
        self.inbox = FrameBuffer(1 << 20)
        self.conn.receive_data(frames.PROTOCOL_HEADER)
        self.send(0, spec.ConnectionStartOk(
            client_properties={"capabilities": {"consumer_cancel_notify": True}},
            mechanism="PLAIN", response=b"\x00guest\x00guest"))
        self.send(0, spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=0))
        self.send(0, spec.ConnectionOpen(virtual_host="/"))
        self.send(1, spec.ChannelOpen())
        assert self.conn.state == RUNNING
        self.received()

    def send(self, channel: int, method: spec.Method) -> None:
        self.conn.receive_data(frames.encode_method(channel, method))

    def publish(self, routing_key: str, body: bytes, exchange: str = "") -> None:
        self.conn.receive_data(
            frames.encode_method(1, spec.BasicPublish(exchange=exchange, routing_key=routing_key))
            + frames.encode_content(1, 60, b"\x00\x00", body, 131072))

    def received(self) -> list[Any]:
        """Methods received since the last call; content bodies follow their method."""
        self.inbox.feed(self.conn.take_output())
        self.conn.output_flushed()
        out: list[Any] = []
        while (frame := self.inbox.next_frame()) is not None:
            ftype, _channel, payload = frame
            if ftype == frames.METHOD:
                cls = spec.METHODS[int.from_bytes(payload[:4], "big")]
                out.append(cls.decode(payload, 4))
            elif ftype == frames.BODY:
                out.append(payload)
        return out


def deliveries(items: list[Any]) -> list[tuple[int, bool, bytes]]:
    result = []
    for i, item in enumerate(items):
        if isinstance(item, spec.BasicDeliver):
            body = items[i + 1] if i + 1 < len(items) and isinstance(items[i + 1], bytes) else b""
            result.append((item.delivery_tag, item.redelivered, body))
    return result


def test_prefetch_limits_unacked_deliveries() -> None:
    peer = Peer(Node())
    peer.send(1, spec.QueueDeclare(queue="q"))
    peer.send(1, spec.BasicQos(prefetch_count=2))
    for i in range(5):
        peer.publish("q", b"m%d" % i)
    peer.received()
    peer.send(1, spec.BasicConsume(queue="q", consumer_tag="c"))
    assert [d[2] for d in deliveries(peer.received())] == [b"m0", b"m1"]
    peer.send(1, spec.BasicAck(delivery_tag=2, multiple=True))
    assert [d[2] for d in deliveries(peer.received())] == [b"m2", b"m3"]


def test_nack_requeues_to_original_position_marked_redelivered() -> None:
    peer = Peer(Node())
    peer.send(1, spec.QueueDeclare(queue="q"))
    for i in range(3):
        peer.publish("q", b"m%d" % i)
    peer.send(1, spec.BasicQos(prefetch_count=2))
    peer.send(1, spec.BasicConsume(queue="q", consumer_tag="c"))
    assert [d[2] for d in deliveries(peer.received())] == [b"m0", b"m1"]
    peer.send(1, spec.BasicNack(delivery_tag=2, multiple=True, requeue=True))
    got = deliveries(peer.received())
    assert [(d[1], d[2]) for d in got] == [(True, b"m0"), (True, b"m1")]


def test_channel_close_requeues_unacked() -> None:
    node = Node()
    peer = Peer(node)
    peer.send(1, spec.QueueDeclare(queue="q"))
    peer.publish("q", b"only")
    peer.send(1, spec.BasicConsume(queue="q", consumer_tag="c"))
    assert len(deliveries(peer.received())) == 1
    peer.send(1, spec.ChannelClose(reply_code=200, reply_text="bye"))
    q = node.vhosts["/"].queues["q"]
    assert [e.message.body for e in q.ready] == [b"only"] and q.ready[0].redelivered


def test_confirms_are_one_multiple_ack_per_batch() -> None:
    peer = Peer(Node())
    peer.send(1, spec.ConfirmSelect())
    peer.send(1, spec.QueueDeclare(queue="q"))
    peer.received()
    batch = b"".join(
        frames.encode_method(1, spec.BasicPublish(routing_key="q")) +
        frames.encode_content(1, 60, b"\x00\x00", b"x", 131072) for _ in range(10))
    peer.conn.receive_data(batch)
    acks = [m for m in peer.received() if isinstance(m, spec.BasicAck)]
    assert acks == [spec.BasicAck(delivery_tag=10, multiple=True)]


def test_unknown_delivery_tag_closes_the_channel_with_406() -> None:
    peer = Peer(Node())
    peer.send(1, spec.BasicAck(delivery_tag=7))
    closes = [m for m in peer.received() if isinstance(m, spec.ChannelClose)]
    assert closes == [spec.ChannelClose(reply_code=406,
                                        reply_text="PRECONDITION_FAILED - unknown delivery tag 7",
                                        class_id=60, method_id=80)]


# -- the protocol rules as the server applies them (the same before and after the protocol
# machine moved to amqp/: these pass against either) ----------------------------------------

def closes(items: list[Any]) -> list[Any]:
    return [m for m in items if isinstance(m, spec.ConnectionClose | spec.ChannelClose)]


def test_publish_with_immediate_closes_the_connection_with_540() -> None:
    peer = Peer(Node())
    peer.send(1, spec.BasicPublish(routing_key="q", immediate=True))
    assert closes(peer.received()) == [spec.ConnectionClose(
        reply_code=540, reply_text="NOT_IMPLEMENTED - immediate=true", class_id=60,
        method_id=40)]
    assert peer.conn.state == CLOSING


def test_soft_error_closes_the_channel_and_drops_its_frames_until_close_ok() -> None:
    node = Node()
    peer = Peer(node)
    peer.send(1, spec.QueueDeclare(queue="q"))
    peer.publish("q", b"kept")
    peer.received()
    peer.send(1, spec.BasicPublish(exchange="missing", routing_key="q"))
    peer.conn.receive_data(frames.encode_content(1, 60, b"\x00\x00", b"lost", 131072))
    peer.publish("q", b"dropped: the channel is closing")
    peer.send(1, spec.BasicQos(prefetch_count=1))
    assert peer.received() == [spec.ChannelClose(
        reply_code=404, reply_text="NOT_FOUND - no exchange 'missing' in vhost '/'",
        class_id=60, method_id=40)]
    peer.send(1, spec.ChannelCloseOk())
    peer.send(1, spec.ChannelOpen())
    assert peer.received() == [spec.ChannelOpenOk()]
    assert [e.message.body for e in node.vhosts["/"].queues["q"].ready] == [b"kept"]


def test_message_over_max_size_closes_the_channel_with_406() -> None:
    node = Node()
    node.limits.max_message_size = 10
    peer = Peer(node)
    peer.publish("q", b"x" * 11)
    assert peer.received() == [spec.ChannelClose(
        reply_code=406, reply_text="PRECONDITION_FAILED - message size 11 is larger than "
        "configured max size 10", class_id=60, method_id=40)]


def test_content_out_of_order_closes_the_connection_with_505() -> None:
    peer = Peer(Node())
    peer.send(1, spec.BasicPublish(routing_key="q"))
    peer.send(1, spec.BasicQos(prefetch_count=1))
    assert closes(peer.received()) == [spec.ConnectionClose(
        reply_code=505, reply_text="UNEXPECTED_FRAME - expected content header for class 60, "
        "got non content header frame instead", class_id=60, method_id=40)]
    peer.send(0, spec.ConnectionCloseOk())
    assert peer.conn.state == CLOSED


def test_client_close_is_answered_and_frees_the_connection() -> None:
    node = Node()
    peer = Peer(node)
    peer.send(1, spec.QueueDeclare(queue="mine", exclusive=True))
    peer.send(0, spec.ConnectionClose(reply_code=200, reply_text="bye"))
    assert peer.received()[-1] == spec.ConnectionCloseOk()
    assert peer.conn.state == CLOSED and peer.conn not in node.connections
    assert peer.conn.close_reason == "closed by the client (connection.close 200 'bye')"
    assert "mine" not in node.vhosts["/"].queues


def test_handshake_errors_before_tune_ok_hang_up_without_a_close() -> None:
    closed: list[bool] = []
    conn = ServerConnection(Node(), ("127.0.0.1", 40000), on_close=lambda: closed.append(True))
    conn.receive_data(frames.PROTOCOL_HEADER + frames.encode_method(0, spec.ConnectionStartOk(
        mechanism="PLAIN", response=b"\x00guest\x00guest")) + frames.encode_method(
        0, spec.ConnectionTuneOk(channel_max=0, frame_max=131072)))
    out = conn.take_output()
    assert b"connection.close" not in out and closed == [True] and conn.state == CLOSED
    assert conn.close_reason == ("NOT_ALLOWED - negotiated channel_max = 65536 is higher than "
                                 "the maximum allowed value (2047)")


def test_secure_ok_is_a_refused_login() -> None:
    conn = ServerConnection(Node())
    conn.receive_data(frames.PROTOCOL_HEADER + frames.encode_method(
        0, spec.ConnectionSecureOk(response=b"x")))
    inbox = FrameBuffer(1 << 20)
    inbox.feed(conn.take_output())
    inbox.next_frame()  # connection.start
    frame = inbox.next_frame()
    assert frame is not None
    assert spec.ConnectionClose.decode(frame[2], 4) == spec.ConnectionClose(
        reply_code=403, reply_text="ACCESS_REFUSED - secure-ok is not used by PLAIN or AMQPLAIN",
        class_id=0, method_id=0)


def test_wrong_protocol_header_gets_ours_and_a_hang_up() -> None:
    closed: list[bool] = []
    conn = ServerConnection(Node(), on_close=lambda: closed.append(True))
    conn.receive_data(b"AMQP\x01\x01\x00\x0a")
    assert conn.take_output() == frames.PROTOCOL_HEADER
    assert closed == [True] and conn.state == CLOSED


# -- large bodies: delivered as received, beside the frames around them ---------------------

def test_large_bodies_are_delivered_as_separate_pieces_of_the_output() -> None:
    peer = Peer(Node())
    peer.send(1, spec.QueueDeclare(queue="big"))
    peer.received()
    peer.send(1, spec.BasicConsume(queue="big", consumer_tag="c", no_ack=True))
    peer.received()
    bodies = [bytes(range(256)) * 256, b"small", b"z" * frames.LARGE_BODY, b"y" * 200000]
    for body in bodies:  # the last is larger than frame_max: split, joined as before
        peer.publish("big", body)
    parts = peer.conn.take_output_parts()
    q = peer.conn.node.vhosts["/"].queues["big"]
    assert q.message_count == 0
    # each body of a frame of its own is its own piece (the very object received), the
    # frames between them joined
    large = [p for p in parts if len(p) in (65536, frames.LARGE_BODY)]
    assert [len(p) for p in large] == [65536, frames.LARGE_BODY]
    peer.inbox.feed(b"".join(parts))
    peer.conn.output_flushed()
    got = peer.received()
    assert [d[2] for d in deliveries(got)] == [bodies[0], b"small", bodies[2],
                                               bodies[3][:131064]]
    assert b"".join(p for p in got if isinstance(p, bytes))[-200000:] == bodies[3]


def test_input_is_handled_a_share_of_frames_at_a_time() -> None:
    peer = Peer(Node())
    peer.send(1, spec.QueueDeclare(queue="q"))
    peer.received()
    one = (frames.encode_method(1, spec.BasicPublish(routing_key="q"))
           + frames.encode_content(1, 60, b"\x00\x00", b"x" * 70000, 131072))
    q = peer.conn.node.vhosts["/"].queues["q"]
    assert peer.conn.receive_data(one * 3, max_frames=4) is True  # 1 message + 1 frame
    assert q.message_count == 1
    assert peer.conn.receive_data(b"", max_frames=4) is True
    assert q.message_count == 2
    assert peer.conn.receive_data(b"", max_frames=4) is False  # 1 frame was left
    assert q.message_count == 3
    assert [e.message.body for e in q.ready] == [b"x" * 70000] * 3
