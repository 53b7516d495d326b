"""AMQPS: real certificates (tls_certificates.py: a CA, a server cert for 127.0.0.1/localhost,
client certs), pika and aio-pika over TLS, peer verification modes, and the EXTERNAL
mechanism."""

from __future__ import annotations

import base64
import logging
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pika
import pika.credentials
import pika.exceptions
import pytest
from tls_certificates import Certs, Pem, make_certs

from leveret.runtime.threaded import BrokerThread
from leveret.server.tls import TLSConfig, TLSConfigError, server_context

# -- certificates (tls_certificates.py) ------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def client_context(cafile: Path, client: Pem | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def tls_broker(certs: Certs, verify: str = "verify_none", **kwargs: object) -> BrokerThread:
    config = TLSConfig(certs.server.cert, certs.server.key, certs.ca.pem, verify=verify)
    return BrokerThread(tls=config, tls_port=0, **kwargs)  # type: ignore[arg-type]


def pika_params(broker: BrokerThread, context: ssl.SSLContext,
                credentials: pika.credentials.PlainCredentials
                | pika.credentials.ExternalCredentials | None = None,
                ) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        "127.0.0.1", broker.tls_port, ssl_options=pika.SSLOptions(context, "localhost"),
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=5, blocked_connection_timeout=5)


@pytest.fixture
def broker(certs: Certs) -> Iterator[BrokerThread]:
    with tls_broker(certs) as b:
        yield b


# -- tests -----------------------------------------------------------------------------------


def test_pika_publishes_and_consumes_over_tls(broker: BrokerThread, certs: Certs) -> None:
    conn = pika.BlockingConnection(pika_params(broker, client_context(certs.ca.pem)))
    ch = conn.channel()
    ch.queue_declare("tls-q")
    ch.confirm_delivery()
    ch.basic_publish("", "tls-q", b"over TLS")
    method, _props, body = ch.basic_get("tls-q", auto_ack=True)
    assert method is not None and body == b"over TLS"
    assert broker.call(lambda: [c.peer_cert_cn for c in broker.node.connections]) == [None]
    conn.close()
    # the plain listener keeps working beside the TLS one
    plain = pika.BlockingConnection(pika.URLParameters(broker.url))
    assert plain.channel().queue_declare("tls-q", passive=True).method.message_count == 0
    plain.close()


async def test_aio_pika_publishes_and_consumes_over_tls(certs: Certs) -> None:
    with tls_broker(certs) as broker:
        connection = await aio_pika.connect(
            f"amqps://guest:guest@127.0.0.1:{broker.tls_port}/",
            ssl_context=client_context(certs.ca.pem))
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("tls-aio", auto_delete=True)
            await channel.default_exchange.publish(aio_pika.Message(b"hello"), "tls-aio")
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        assert message.body == b"hello"
                    break


def test_client_with_the_wrong_ca_fails_the_handshake(broker: BrokerThread,
                                                      certs: Certs) -> None:
    context = client_context(certs.other_ca.pem)
    with pytest.raises(ssl.SSLCertVerificationError):
        pika.BlockingConnection(pika_params(broker, context))
    conn = pika.BlockingConnection(pika_params(broker, client_context(certs.ca.pem)))
    conn.close()


def test_fail_if_no_peer_cert_refuses_clients_without_one(certs: Certs) -> None:
    with tls_broker(certs, verify="fail_if_no_peer_cert") as broker:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika_params(broker, client_context(certs.ca.pem)))
        mallory = certs.other_ca.issue("mallory", server=False)
        with pytest.raises(pika.exceptions.AMQPConnectionError):  # a cert from another CA
            pika.BlockingConnection(pika_params(broker, client_context(certs.ca.pem, mallory)))
        # ...and the broker keeps serving the clients it trusts
        conn = pika.BlockingConnection(pika_params(
            broker, client_context(certs.ca.pem, certs.alice)))
        conn.channel().queue_declare("still-up")
        conn.close()


def test_verify_peer_accepts_clients_without_a_cert(certs: Certs) -> None:
    with tls_broker(certs, verify="verify_peer") as broker:
        conn = pika.BlockingConnection(pika_params(broker, client_context(certs.ca.pem)))
        assert conn.is_open
        conn.close()


def test_external_logs_in_as_the_certificate_cn(certs: Certs,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "leveret")
    with tls_broker(certs, verify="verify_peer",
                    users={"guest": "guest", "alice": "not-used"}) as broker:
        context = client_context(certs.ca.pem, certs.alice)
        conn = pika.BlockingConnection(pika_params(
            broker, context, pika.credentials.ExternalCredentials()))
        conn.channel().queue_declare("external-q")
        assert broker.call(lambda: [c.user for c in broker.node.connections]) == ["alice"]
        conn.close()
    opened = [r for r in caplog.records if getattr(r, "event", "") == "connection_opened"]
    assert [(r.user, r.tls) for r in opened] == [("alice", True)]  # type: ignore[attr-defined]


async def test_aio_pika_external_login(certs: Certs) -> None:
    with tls_broker(certs, verify="fail_if_no_peer_cert",
                    users={"guest": "guest", "alice": "x"}) as broker:
        connection = await aio_pika.connect(
            f"amqps://127.0.0.1:{broker.tls_port}/?auth=external",
            ssl_context=client_context(certs.ca.pem, certs.alice))
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue("aio-external", auto_delete=True)
        assert broker.call(lambda: broker.node.connections) == set()


def test_external_is_refused_without_a_verified_cert(certs: Certs) -> None:
    with tls_broker(certs, verify="verify_peer",
                    users={"guest": "guest", "alice": "x"}) as broker:
        external = pika.credentials.ExternalCredentials()
        # no client certificate: the broker does not offer EXTERNAL
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika_params(
                broker, client_context(certs.ca.pem), external))
        # nor on the plain listener
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", broker.port, credentials=external, connection_attempts=1))


def test_external_refuses_a_cn_that_is_not_a_user(certs: Certs) -> None:
    with (tls_broker(certs, verify="verify_peer") as broker,  # no user "alice"
          pytest.raises(pika.exceptions.ProbableAuthenticationError)):
        pika.BlockingConnection(pika_params(
            broker, client_context(certs.ca.pem, certs.alice),
            pika.credentials.ExternalCredentials()))


def test_tls_only_broker(certs: Certs) -> None:
    config = TLSConfig(certs.server.cert, certs.server.key)
    with BrokerThread(port=None, tls=config, tls_port=0) as broker:
        assert broker.url.startswith("amqps://")
        conn = pika.BlockingConnection(pika_params(broker, client_context(certs.ca.pem)))
        conn.close()


def test_server_context_errors_name_the_file(certs: Certs, tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match=r"missing\.pem"):
        server_context(TLSConfig(tmp_path / "missing.pem", certs.server.key))
    with pytest.raises(TLSConfigError, match="cannot load certificate"):
        server_context(TLSConfig(certs.server.cert, certs.alice.key))  # key of another cert
    with pytest.raises(TLSConfigError, match="needs a CA file"):
        TLSConfig(certs.server.cert, certs.server.key, verify="verify_peer")
    with pytest.raises(TLSConfigError, match="verify must be one of"):
        TLSConfig(certs.server.cert, certs.server.key, verify="sometimes")
    context = server_context(TLSConfig(certs.server.cert, certs.server.key, min_version="1.3"))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


def test_serve_with_amqps_and_management_https(certs: Certs, tmp_path: Path) -> None:
    """`leveret serve` with TLS flags: AMQPS only (--no-plain), and the management API over
    HTTPS with the same certificate."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "leveret", "serve", "--no-plain", "--amqps-port", "0",
         "--tls-cert", str(certs.server.cert), "--tls-key", str(certs.server.key),
         "--tls-ca", str(certs.ca.pem), "--tls-verify", "verify_peer",
         "--management-tls", "--management-port", "0", "--data-dir", str(tmp_path / "data")],
        stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        ports: dict[str, int] = {}
        deadline = time.monotonic() + 20
        while len(ports) < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert "listening on amqp://" not in line  # --no-plain
            for scheme in ("amqps", "https"):
                match = re.search(rf"{scheme}://127\.0\.0\.1:(\d+)", line)
                if match:
                    ports[scheme] = int(match.group(1))
        assert set(ports) == {"amqps", "https"}, ports
        context = client_context(certs.ca.pem)
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", ports["amqps"], ssl_options=pika.SSLOptions(context, "localhost"),
            connection_attempts=1))
        conn.channel().queue_declare("served-over-tls")
        request = urllib.request.Request(
            f"https://127.0.0.1:{ports['https']}/api/queues",
            headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            body = response.read().decode()
        assert response.status == 200 and "served-over-tls" in body
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)
        proc.stderr.close()
