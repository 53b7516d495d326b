"""Connection level: protocol header, login, tuning, heartbeats, framing errors, closing."""

from __future__ import annotations

import asyncio
import socket
import time

import aiormq
import amqp
import pika
import pytest
from pamqp import commands as C

from ._raw import PROTOCOL_HEADER, raw_frame

EXPECTED_CAPABILITIES = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
]

LOGIN_REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism {}. "
    "For details see the broker logfile."
)


# -- protocol header ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"AMQP\x00\x00\x08\x00", id="amqp-0-8-style"),
        pytest.param(b"AMQP\x00\x01\x00\x00", id="amqp-1.0"),
        pytest.param(b"AMQP\x03\x01\x00\x00", id="amqp-1.0-sasl"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http"),
        pytest.param(b"XXXXXXXX", id="garbage"),
    ],
)
def test_wrong_protocol_header_gets_the_0_9_1_header_and_close(raw, header):
    r = raw(handshake=False)
    r.send_bytes(header)
    assert r.read_until_closed() == PROTOCOL_HEADER


def test_connection_start(raw):
    r = raw(handshake=False)
    r.send_bytes(PROTOCOL_HEADER)
    start = r.expect(C.Connection.Start, channel=0)
    assert (start.version_major, start.version_minor) == (0, 9)
    assert set(start.mechanisms.split()) >= {"PLAIN", "AMQPLAIN"}
    assert "en_US" in start.locales.split()


def test_server_properties(raw):
    r = raw()
    props = r.server_properties
    for key in ("product", "version", "platform"):
        assert isinstance(props[key], str) and props[key], key
    caps = props["capabilities"]
    for cap in EXPECTED_CAPABILITIES:
        assert caps.get(cap) is True, cap


def test_server_properties_seen_by_pika(connect):
    conn = connect()
    props = conn._impl.server_properties
    assert {"product", "version", "platform", "capabilities"} <= set(props)
    for cap in EXPECTED_CAPABILITIES:
        assert props["capabilities"][cap] is True, cap


def test_tune_defaults(raw):
    """RabbitMQ proposes channel_max 2047, frame_max 131072, heartbeat 60."""
    r = raw(handshake=False)
    tune = r.handshake()
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)


# -- login ---------------------------------------------------------------------------------------


def test_plain_login_pika(connect):
    conn = connect()
    assert conn.is_open
    ch = conn.channel()
    assert ch.queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")


@pytest.mark.parametrize("method", ["AMQPLAIN", "PLAIN"])
def test_login_py_amqp(amqp_params, method):
    c = amqp.Connection(
        f"{amqp_params.host}:{amqp_params.port}",
        userid=amqp_params.user,
        password=amqp_params.password,
        virtual_host=amqp_params.vhost,
        login_method=method,
    )
    c.connect()
    try:
        assert c.connected
        ch = c.channel()
        assert ch.queue_declare("", exclusive=True).queue.startswith("amq.gen-")
    finally:
        c.close()


def test_bad_password_pika(amqp_params):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as ei:
        pika.BlockingConnection(pika.URLParameters(amqp_params.with_(password="wrong")))
    assert "403" in str(ei.value)
    assert LOGIN_REFUSED.format("PLAIN") in str(ei.value)


@pytest.mark.parametrize("method", ["AMQPLAIN", "PLAIN"])
def test_bad_password_py_amqp(amqp_params, method):
    c = amqp.Connection(
        f"{amqp_params.host}:{amqp_params.port}",
        userid=amqp_params.user,
        password="wrong",
        virtual_host=amqp_params.vhost,
        login_method=method,
    )
    with pytest.raises(amqp.exceptions.AccessRefused) as ei:
        c.connect()
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == LOGIN_REFUSED.format(method)
    c.collect()


@pytest.mark.parametrize("user", ["guest", "no-such-user"])
def test_login_refused_raw(raw, user):
    """With the authentication_failure_close capability the client is told: 403, then close."""
    r = raw(handshake=False)
    r.send_bytes(PROTOCOL_HEADER)
    r.expect(C.Connection.Start)
    r.send(
        C.Connection.StartOk(
            client_properties={"capabilities": {"authentication_failure_close": True}},
            mechanism="PLAIN",
            response=f"\0{user}\0wrong",
        )
    )
    close = r.expect_connection_close()
    assert close.reply_code == 403
    assert close.reply_text == LOGIN_REFUSED.format("PLAIN")


def test_login_refused_without_capability_just_closes(raw):
    """Without authentication_failure_close the socket is closed, no connection.close."""
    r = raw(handshake=False)
    r.send_bytes(PROTOCOL_HEADER)
    r.expect(C.Connection.Start)
    r.send(C.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0wrong"))
    assert r.read_until_closed(timeout=10) == b""


def test_unknown_mechanism_closes(raw):
    r = raw(handshake=False)
    r.send_bytes(PROTOCOL_HEADER)
    r.expect(C.Connection.Start)
    r.send(C.Connection.StartOk(client_properties={}, mechanism="NO-SUCH", response="x"))
    assert r.read_until_closed(timeout=10) == b""


def test_unknown_vhost_pika(amqp_params):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as ei:
        pika.BlockingConnection(pika.URLParameters(amqp_params.with_(vhost="no-such-vhost")))
    assert "530" in str(ei.value)
    assert "NOT_ALLOWED - vhost no-such-vhost not found" in str(ei.value)


def test_unknown_vhost_raw(raw):
    r = raw(handshake=False)
    r.send_bytes(PROTOCOL_HEADER)
    r.expect(C.Connection.Start)
    r.send(C.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0guest"))
    tune = r.expect(C.Connection.Tune)
    r.send(C.Connection.TuneOk(tune.channel_max, tune.frame_max, 0))
    r.send(C.Connection.Open(virtual_host="no-such-vhost"))
    close = r.expect_connection_close()
    assert (close.reply_code, close.class_id, close.method_id) == (530, 10, 40)
    assert close.reply_text == "NOT_ALLOWED - vhost no-such-vhost not found"


# -- tuning --------------------------------------------------------------------------------------


def test_pika_negotiates_smaller_limits(connect):
    conn = connect(channel_max=10, frame_max=8192, heartbeat=30)
    params = conn._impl.params
    assert (params.channel_max, params.frame_max, params.heartbeat) == (10, 8192, 30)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = bytes(range(256)) * 200  # 51200 bytes: 7 body frames of at most 8184 bytes
    ch.basic_publish("", q, body)
    _method, _props, got = ch.basic_get(q, auto_ack=True)
    assert got == body


def test_channel_max_is_enforced(raw):
    r = raw(channel_max=2)
    r.open_channel(1)
    r.open_channel(2)
    r.send(C.Channel.Open(), 3)
    close = r.expect_connection_close()
    assert close.reply_code == 530
    assert close.reply_text == (
        "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
    )


def test_channel_max_counts_open_channels_not_numbers(raw):
    r = raw(channel_max=2)
    r.open_channel(1)
    r.open_channel(7)  # a number above channel_max is fine while fewer than 2 are open
    r.rpc(C.Channel.Close(200, "bye", 0, 0), C.Channel.CloseOk, 1)
    r.open_channel(9)


def test_frame_larger_than_negotiated_frame_max(raw):
    r = raw(frame_max=4096)
    r.open_channel(1)
    r.send_bytes(raw_frame(1, 1, b"\x00\x32\x00\x0a" + b"\x00" * 5000))
    # RabbitMQ takes its time to drop a connection after a framing error
    close = r.expect_connection_close(wait_closed=False)
    assert close.reply_code == 501
    assert close.reply_text.startswith("FRAME_ERROR")


def test_frame_max_below_minimum_is_refused(raw):
    """frame_max must be at least 4096: the server drops the connection instead of open-ok."""
    r = raw(handshake=False)
    r.send_bytes(PROTOCOL_HEADER)
    r.expect(C.Connection.Start)
    r.send(C.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0guest\0guest"))
    r.expect(C.Connection.Tune)
    r.send(C.Connection.TuneOk(2047, 1024, 0))
    r.send(C.Connection.Open(virtual_host="/"))
    assert r.read_until_closed(timeout=10) == b""


# -- heartbeats ------------------------------------------------------------------------------------


def test_pika_heartbeat_keeps_idle_connection_alive(connect):
    conn = connect(heartbeat=2)
    assert conn._impl.params.heartbeat == 2
    ch = conn.channel()
    conn.sleep(5)  # idle, but pika and the server exchange heartbeats
    assert conn.is_open
    assert ch.queue_declare("", exclusive=True).method.queue


async def test_aiormq_heartbeat_keeps_idle_connection_alive(amqp_params):
    conn = await aiormq.connect(amqp_params.with_(query="heartbeat=2"))
    try:
        assert conn.heartbeat_timeout == 2
        ch = await conn.channel()
        await asyncio.sleep(5)
        assert not conn.is_closed
        ok = await ch.queue_declare("", exclusive=True)
        assert ok.queue.startswith("amq.gen-")
    finally:
        await conn.close()


def test_server_sends_heartbeats(raw):
    r = raw(heartbeat_=1)
    start = time.monotonic()
    _ch, value = r.recv_frame(timeout=3, skip_heartbeats=False)
    assert type(value).__name__ == "Heartbeat"
    assert time.monotonic() - start < 2.5


def test_silent_client_is_disconnected_after_missed_heartbeats(raw):
    r = raw(heartbeat_=1)
    start = time.monotonic()
    with pytest.raises(EOFError):
        while True:  # read (and skip) the server's heartbeats, never send one
            r.recv_frame(timeout=15)
    assert time.monotonic() - start < 10


def test_heartbeat_disabled_by_zero(raw):
    r = raw(heartbeat_=0)
    with pytest.raises(TimeoutError):
        r.recv_frame(timeout=1.5, skip_heartbeats=False)


# -- framing errors --------------------------------------------------------------------------------


def test_garbage_after_handshake(raw):
    r = raw()
    r.send_bytes(b"\x00\x01garbage garbage garbage")
    # RabbitMQ takes its time to drop a connection after a framing error
    close = r.expect_connection_close(wait_closed=False)
    assert close.reply_code == 501
    assert close.reply_text.startswith("FRAME_ERROR - ")


def test_unknown_frame_type(raw):
    r = raw()
    r.send_bytes(raw_frame(9, 0, b"hello"))
    # RabbitMQ takes its time to drop a connection after a framing error
    close = r.expect_connection_close(wait_closed=False)
    assert close.reply_code == 501
    assert close.reply_text.startswith("FRAME_ERROR - ")


def test_bad_frame_end(raw):
    r = raw()
    r.open_channel(1)
    r.send_bytes(raw_frame(1, 1, b"\x00\x32\x00\x0a\x00\x00\x00\x00\x00", end=b"\x00"))
    # RabbitMQ takes its time to drop a connection after a framing error
    close = r.expect_connection_close(wait_closed=False)
    assert close.reply_code == 501
    assert close.reply_text.startswith("FRAME_ERROR - ")


def test_truncated_method_frame(raw):
    r = raw()
    r.open_channel(1)
    r.send_bytes(raw_frame(1, 1, b"\x00\x32\x00\x0a\x00"))  # queue.declare cut short
    # RabbitMQ takes its time to drop a connection after a framing error
    close = r.expect_connection_close(wait_closed=False)
    assert (close.reply_code, close.class_id, close.method_id) == (501, 50, 10)
    assert close.reply_text.startswith("FRAME_ERROR - ")


def test_content_body_without_method(raw):
    r = raw()
    r.open_channel(1)
    r.send_bytes(raw_frame(3, 1, b"x" * 10))
    close = r.expect_connection_close()
    assert close.reply_code == 505
    assert (
        close.reply_text == "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
    )


def test_heartbeat_on_nonzero_channel(raw):
    r = raw()
    r.open_channel(1)
    r.send_bytes(raw_frame(8, 1, b""))
    close = r.expect_connection_close()
    assert close.reply_code == 505
    assert close.reply_text.startswith("UNEXPECTED_FRAME - ")


def test_channel_method_on_channel_zero(raw):
    r = raw()
    r.send(C.Queue.Declare(queue="", exclusive=True), 0)
    close = r.expect_connection_close()
    assert (close.reply_code, close.class_id, close.method_id) == (504, 50, 10)
    assert close.reply_text == "CHANNEL_ERROR - unexpected method in connection state running"


# -- closing ---------------------------------------------------------------------------------------


def test_client_initiated_close_raw(raw):
    r = raw()
    r.open_channel(1)
    r.send(C.Connection.Close(200, "Goodbye", 0, 0))
    r.expect(C.Connection.CloseOk, channel=0)


def test_client_initiated_close_waits_for_the_client_to_hang_up(raw):
    """A client may still be writing after its connection.close (amqplib writes the close
    ahead of the publishes it buffers, and keeps writing until it reads close-ok). The
    server answers close-ok and drops those frames, but leaves hanging up to the client:
    closing first, with input still arriving, makes the kernel reset the connection, and
    the reset loses the close-ok (issue 11: amqplib then got ECONNRESET and left its
    heartbeat timers running, so its program never exited)."""
    r = raw()
    r.open_channel(1)
    r.send(C.Connection.Close(200, "Goodbye", 0, 0))
    time.sleep(0.2)  # the server has handled the close before the rest arrives
    for _ in range(200):
        r.publish(1, b"sent before close-ok was read", routing_key="it.nowhere")
    r.expect(C.Connection.CloseOk, channel=0)
    r.sock.settimeout(0.5)
    with pytest.raises(TimeoutError):  # the server waits for us (RabbitMQ: up to 30 s)
        r.sock.recv(1)
    r.sock.shutdown(socket.SHUT_WR)
    assert r.read_until_closed(timeout=2) == b""


def test_client_initiated_close_pika(connect):
    conn = connect()
    ch = conn.channel()
    conn.close()
    assert conn.is_closed
    assert ch.is_closed


def test_server_initiated_close_on_hard_error_pika(connect):
    conn = connect()
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.exchange_declare("it.unknown-type", "no-such-type")
    assert ei.value.reply_code == 503
    assert ei.value.reply_text == "COMMAND_INVALID - unknown exchange type 'no-such-type'"
    assert conn.is_closed


def test_server_initiated_close_raw(raw):
    """connection.close names the offending method; after close-ok the server closes."""
    r = raw()
    r.open_channel(1)
    r.send(C.Exchange.Declare(exchange="it.unknown-type", exchange_type="no-such-type"), 1)
    close = r.expect_connection_close()
    assert (close.reply_code, close.class_id, close.method_id) == (503, 40, 10)


def test_frames_after_connection_close_are_ignored(raw):
    """Between the server's connection.close and the client's close-ok, anything but
    close-ok is discarded."""
    r = raw()
    r.open_channel(1)
    r.send(C.Channel.Open(), 1)  # second open: hard error
    _ch, close = r.wait_for(C.Connection.Close)
    assert close.reply_code == 504
    r.send(C.Queue.Declare(queue="", exclusive=True), 1)
    with pytest.raises(TimeoutError):
        r.recv_frame(timeout=0.5)
    r.send(C.Connection.CloseOk())
    assert r.read_until_closed() == b""


def test_socket_closed_by_client_without_close(connect, raw, names):
    """A client that vanishes: its exclusive queue goes, other connections are unaffected."""
    q = names.queue()
    r = raw()
    r.open_channel(1)
    r.rpc(C.Queue.Declare(queue=q, exclusive=True), C.Queue.DeclareOk, 1)
    r.close()
    ch = connect().channel()
    deadline = time.monotonic() + 5
    while True:
        try:
            ch.queue_declare(q, passive=True)
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code == 404
            break
        assert time.monotonic() < deadline, "exclusive queue outlived its connection"
        time.sleep(0.05)


def test_many_connections(connect):
    conns = [connect() for _ in range(20)]
    for c in conns:
        c.channel().queue_declare("", exclusive=True)
    for c in conns:
        c.close()
    assert all(c.is_closed for c in conns)
