"""Structured logs: connection accepted/opened/closed with client address, user, vhost and
client-provided name; authentication failures; alarms; text and JSON formats."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pika
import pika.exceptions
import pytest

from leveret.broker.connection import closed_by_client
from leveret.runtime.threaded import BrokerThread
from leveret.server.logs import JsonFormatter, configure_logging, record_fields


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def wait_for_event(caplog: pytest.LogCaptureFixture, name: str, n: int = 1) -> None:
    deadline = time.monotonic() + 5
    while len(events(caplog, name)) < n:
        assert time.monotonic() < deadline, f"no {name} log record"
        time.sleep(0.02)


def test_json_formatter_puts_fields_beside_the_message() -> None:
    record = logging.LogRecord("leveret.server", logging.WARNING, __file__, 1,
                               "login refused for user %r", ("bob",), None)
    record.user, record.mechanism = "bob", "PLAIN"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "warning" and entry["logger"] == "leveret.server"
    assert entry["message"] == "login refused for user 'bob'"
    assert entry["user"] == "bob" and entry["mechanism"] == "PLAIN"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert record_fields(record) == {"user": "bob", "mechanism": "PLAIN"}


def test_json_lines_with_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "json", stream)
        log = logging.getLogger("leveret.test")
        log.debug("not shown")
        log.info("plain", extra={"n": 1})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in lines] == ["plain", "failed"]
    assert lines[0]["n"] == 1
    assert "ValueError: boom" in lines[1]["exception"]


def test_connection_life_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "leveret")
    with BrokerThread() as broker:
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", broker.port, client_properties={"connection_name": "orders-api"}))
        wait_for_event(caplog, "connection_opened")
        host, port = conn._impl._transport._sock.getsockname()  # the client's side
        local = f"{host}:{port}"
        conn.close()
        wait_for_event(caplog, "connection_closed")

        accepted, = events(caplog, "connection_accepted")
        opened, = events(caplog, "connection_opened")
        closed, = events(caplog, "connection_closed")
        name = f"{local} -> 127.0.0.1:{broker.port}"
        assert accepted.connection == name and accepted.tls is False  # type: ignore
        assert accepted.levelname == "DEBUG"  # the opening is the first info line
        assert (opened.connection, opened.client_address, opened.user, opened.vhost,  # type: ignore
                opened.connection_name) == (name, local, "guest", "/", "orders-api")  # type: ignore
        assert "orders-api" in opened.getMessage() and "guest" in opened.getMessage()
        assert closed.reason == (  # type: ignore
            "closed by the client (connection.close 200 'Normal shutdown')")
        assert closed.levelname == "INFO"
        assert closed.connection_name == "orders-api"  # type: ignore

        # a client that drops the TCP connection, and one the broker closes
        sock = socket.create_connection(("127.0.0.1", broker.port))
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        wait_for_event(caplog, "connection_accepted", 2)
        sock.close()
        wait_for_event(caplog, "connection_closed", 2)
        assert events(caplog, "connection_closed")[1].reason == (  # type: ignore
            "client unexpectedly closed TCP connection")
        kept = pika.BlockingConnection(pika.URLParameters(broker.url))
        wait_for_event(caplog, "connection_opened", 2)
        broker.call(lambda: next(iter(broker.node.connections)).force_close("by a test"))
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
            kept.process_data_events(time_limit=5)
        wait_for_event(caplog, "connection_closed", 3)
        assert events(caplog, "connection_closed")[2].reason == (  # type: ignore
            "closed by broker: 320 CONNECTION_FORCED - by a test")


def test_a_client_close_without_code_or_text_is_logged_plainly(
        caplog: pytest.LogCaptureFixture) -> None:
    """py-amqp (kombu, Celery) closes with code 0 and no text: not "closed by client: 0 "."""
    import amqp

    caplog.set_level(logging.INFO, "leveret")
    with BrokerThread() as broker:
        conn = amqp.Connection(f"127.0.0.1:{broker.port}")
        conn.connect()
        conn.close()
        wait_for_event(caplog, "connection_closed")
        closed, = events(caplog, "connection_closed")
        assert closed.reason == "closed by the client"  # type: ignore[attr-defined]
        assert closed.getMessage().endswith("(vhost: '/', user: 'guest'): closed by the client")


def test_closed_by_client_reasons() -> None:
    assert closed_by_client(0, "") == "closed by the client"
    assert closed_by_client(200, "Goodbye") == (
        "closed by the client (connection.close 200 'Goodbye')")
    assert closed_by_client(0, "bye") == "closed by the client (connection.close 0 'bye')"


def refused_connection_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every info-or-louder record of connections (not of the broker starting)."""
    return [r for r in caplog.records if r.levelno >= logging.INFO
            and getattr(r, "event", None) != "log_suppressed"
            and r.name in ("leveret.server", "leveret.connection")
            and "listening" not in r.getMessage() and "stopped" not in r.getMessage()]


@pytest.mark.parametrize(("user", "password", "vhost", "event", "why"), [
    ("guest", "nope", "/", "auth_failure", "PLAIN login refused from 127.0.0.1:{port}: "
                                           "user 'guest' - invalid password"),
    ("lg-nobody", "x", "/", "auth_failure", "PLAIN login refused from 127.0.0.1:{port}: "
                                            "user 'lg-nobody' - no such user"),
    ("lg-nowhere", "pw", "/", "connection_refused",
     "connection from 127.0.0.1:{port} refused: access to vhost '/' refused for user "
     "'lg-nowhere'"),
    ("guest", "guest", "lg-none", "connection_refused",
     "connection from 127.0.0.1:{port} refused: vhost lg-none not found"),
])
def test_a_refused_login_is_one_line_that_says_why(
        caplog: pytest.LogCaptureFixture, user: str, password: str, vhost: str, event: str,
        why: str) -> None:
    caplog.set_level(logging.DEBUG, "leveret")
    with BrokerThread() as broker:
        broker.node.failed_login_delay = 0
        broker.call(broker.node.add_user, "lg-nowhere", "pw")  # a user without permissions
        caplog.clear()
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", broker.port, virtual_host=vhost,
                credentials=pika.PlainCredentials(user, password)))
        wait_for_event(caplog, "connection_closed")  # at debug level: the refusal said it
        line, = refused_connection_lines(caplog)
        assert line.levelname == "WARNING" and getattr(line, "event", None) == event
        port = line.client_address.split(":")[1]  # type: ignore[attr-defined]
        assert line.getMessage() == why.format(port=port)
        assert getattr(line, "user", None) == user
        closed, = events(caplog, "connection_closed")
        assert closed.levelname == "DEBUG"


def test_authentication_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "leveret")
    with BrokerThread() as broker:
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", broker.port, credentials=pika.PlainCredentials("guest", "nope")))
        failure, = events(caplog, "auth_failure")
        assert failure.levelname == "WARNING"
        assert (failure.user, failure.mechanism) == ("guest", "PLAIN")  # type: ignore
        assert failure.client_address.startswith("127.0.0.1:")  # type: ignore
        assert failure.reason == "invalid_password"  # type: ignore


def test_serve_json_logs_auth_failures_and_alarms(tmp_path: Path) -> None:
    """A real `leveret serve --log-format json`: every stderr line is a JSON object; a bad
    login and the disk alarm (a limit above any real free space) appear with their fields."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "leveret", "serve", "--port", "0", "--log-format", "json",
         "--data-dir", str(tmp_path / "data"), "--disk-free-limit", "1000000TB",
         "--no-management"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: list[dict[str, object]] = []

    def read_until(condition: str) -> dict[str, object]:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, f"serve exited; logged {seen}"
            entry = json.loads(line)
            seen.append(entry)
            if condition in json.dumps(entry):
                return entry
        raise AssertionError(f"no {condition!r} in {seen}")

    try:
        listening = read_until("listening on amqp://")
        port = int(str(listening["message"]).rsplit(":", 1)[1].split()[0])
        alarm = read_until('"alarm": "disk"')
        assert alarm["level"] == "warning" and alarm["alarm_state"] == "set"
        assert isinstance(alarm["disk_free_bytes"], int)
        assert alarm["limit_bytes"] == 10**18
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", port, credentials=pika.PlainCredentials("mallory", "x")))
        failure = read_until("auth_failure")
        assert failure["user"] == "mallory" and failure["mechanism"] == "PLAIN"
        proc.send_signal(signal.SIGTERM)
        read_until("shutting down")
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)
        proc.stderr.close()
