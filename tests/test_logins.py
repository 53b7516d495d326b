"""Refused logins: answered after the node's delay without holding up anyone else, and
logged with their reason, at most a few lines per reason however many fail."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from leveret.amqp import frames, spec
from leveret.amqp.frames import FrameBuffer
from leveret.broker.clock import ManualClock
from leveret.broker.connection import CLOSED, CLOSING, ServerConnection
from leveret.broker.logins import LOG_BURST
from leveret.broker.node import Node
from leveret.runtime.threaded import BrokerThread

DELAY = 1.0


@pytest.fixture
def broker() -> Iterator[BrokerThread]:
    with BrokerThread() as broker:
        broker.node.failed_login_delay = DELAY
        yield broker


def refusals(caplog: pytest.LogCaptureFixture, event: str = "auth_failure"
             ) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def start_ok(port: int, user: str, password: str, capable: bool = True) -> socket.socket:
    """A raw client that sends its credentials and waits for nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(frames.PROTOCOL_HEADER)
    inbox = FrameBuffer(1 << 20)
    while inbox.next_frame() is None:  # connection.start
        inbox.feed(sock.recv(65536))
    sock.sendall(frames.encode_method(0, spec.ConnectionStartOk(
        client_properties={"capabilities": {"authentication_failure_close": capable}},
        mechanism="PLAIN", response=f"\x00{user}\x00{password}".encode(), locale="en_US")))
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return data


def test_a_refused_login_is_answered_after_the_delay(broker: BrokerThread) -> None:
    started = time.monotonic()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError, match="403"):
        pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", broker.port, credentials=pika.PlainCredentials("guest", "wrong")))
    assert DELAY <= time.monotonic() - started < DELAY + 1.5


def test_without_the_capability_the_socket_closes_after_the_delay(
        broker: BrokerThread) -> None:
    assert broker.port is not None
    sock = start_ok(broker.port, "guest", "wrong", capable=False)
    started = time.monotonic()
    assert read_until_closed(sock) == b""  # no connection.close: RabbitMQ's silent close
    assert DELAY - 0.1 <= time.monotonic() - started < DELAY + 1.5


def test_refusals_wait_side_by_side_and_a_good_login_does_not_wait(
        broker: BrokerThread) -> None:
    assert broker.port is not None
    pending = [start_ok(broker.port, "guest", f"wrong-{i}") for i in range(5)]
    started = time.monotonic()
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))  # same address
    assert time.monotonic() - started < DELAY / 2
    conn.close()
    answered: list[float] = []

    def wait(sock: socket.socket) -> None:
        reply = b""
        while b"ACCESS_REFUSED" not in reply:
            reply += sock.recv(65536)
        answered.append(time.monotonic() - started)
        sock.close()
    threads = [threading.Thread(target=wait, args=(s,)) for s in pending]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(answered) == 5  # each after its own delay, not one delay apart
    assert min(answered) >= DELAY - 0.1 and max(answered) < DELAY + 1


def test_a_flood_of_refusals_logs_a_few_lines_and_a_summary(
        broker: BrokerThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "leveret")
    broker.node.failed_login_delay = 0
    broker.node.refusal_log.interval = 2.0
    assert broker.port is not None
    for i in range(100):
        start_ok(broker.port, "guest" if i % 2 else "lc-nobody", "wrong").close()
    deadline = time.monotonic() + 10
    while sum(getattr(r, "suppressed", 0) for r in refusals(caplog, "log_suppressed")) < (
            100 - 2 * LOG_BURST):
        assert time.monotonic() < deadline, "no summary line"
        time.sleep(0.05)
    lines = refusals(caplog)
    assert len(lines) == 2 * LOG_BURST  # LOG_BURST for each of the two reasons
    by_reason = {r.reason: r for r in lines}  # type: ignore[attr-defined]
    assert set(by_reason) == {"invalid_password", "unknown_user"}
    assert by_reason["invalid_password"].getMessage().endswith(
        "user 'guest' - invalid password")
    assert by_reason["unknown_user"].getMessage().endswith("user 'lc-nobody' - no such user")
    assert by_reason["unknown_user"].client_address.startswith(  # type: ignore[attr-defined]
        "127.0.0.1:")
    summaries = sorted(r.getMessage() for r in refusals(caplog, "log_suppressed"))
    assert summaries == [
        "suppressed 40 similar messages (invalid_password) in the last 2 s",
        "suppressed 40 similar messages (unknown_user) in the last 2 s"]
    # nothing else per refused connection: no accepted or closed lines that would
    # multiply with the flood the limit is there for
    noisy = [r for r in caplog.records if r.levelno >= logging.INFO
             and getattr(r, "event", None) not in ("auth_failure", "log_suppressed")]
    assert not noisy, [r.getMessage() for r in noisy[:3]]


def test_a_refused_vhost_is_logged_with_its_reason(
        broker: BrokerThread, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "leveret")
    broker.call(broker.node.add_user, "lc-nowhere", "pw")
    url = f"amqp://lc-nowhere:pw@127.0.0.1:{broker.port}/"
    started = time.monotonic()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError, match="530"):
        pika.BlockingConnection(pika.URLParameters(url))
    assert time.monotonic() - started < DELAY  # as RabbitMQ: only a failed login waits
    refused, = refusals(caplog, "connection_refused")
    assert refused.reason == "vhost_access_refused"  # type: ignore[attr-defined]
    assert refused.getMessage().endswith("access to vhost '/' refused for user 'lc-nowhere'")


def test_the_answer_waits_for_the_clock_and_input_is_ignored_meanwhile() -> None:
    clock = ManualClock()
    node = Node(clock=clock)
    conn = ServerConnection(node, ("10.0.0.7", 40000))
    conn.receive_data(frames.PROTOCOL_HEADER)
    conn.take_output()
    conn.receive_data(frames.encode_method(0, spec.ConnectionStartOk(
        client_properties={"capabilities": {"authentication_failure_close": True}},
        mechanism="PLAIN", response=b"\x00guest\x00guest")))  # loopback-only guest
    conn.receive_data(b"garbage that would otherwise close the connection at once")
    clock.advance(node.failed_login_delay - 0.01)
    assert conn.take_output() == b"" and conn.state is not CLOSED
    clock.advance(0.01)
    inbox = FrameBuffer(1 << 20)
    inbox.feed(conn.take_output())
    frame = inbox.next_frame()
    assert frame is not None and conn.state is CLOSING
    assert spec.ConnectionClose.decode(frame[2], 4) == spec.ConnectionClose(
        reply_code=403, reply_text="ACCESS_REFUSED - Login was refused using authentication "
        "mechanism PLAIN. For details see the broker logfile.", class_id=0, method_id=0)


def test_a_client_that_hangs_up_cancels_its_answer() -> None:
    clock = ManualClock()
    node = Node(clock=clock)
    conn = ServerConnection(node, ("127.0.0.1", 40000))
    conn.receive_data(frames.PROTOCOL_HEADER + frames.encode_method(0, spec.ConnectionStartOk(
        mechanism="PLAIN", response=b"\x00guest\x00wrong")))
    assert len(node.timers) == 1
    conn.connection_lost()
    assert len(node.timers) == 0
