"""The stream protocol over TLS (RabbitMQ's port 5551): rstream with an ssl_context against
leveret's ``stream_tls_port`` and RabbitMQ's ``stream.listeners.ssl``; Metadata names the
TLS port to TLS clients; EXTERNAL logs in as the client certificate's common name."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rstream import AMQPMessage, OffsetType, exceptions
from rstream.constants import SlasMechanism
from streamproto_helpers import (
    CLIENT_LEAKS_REFUSED_SOCKET,
    Target,
    client_context,
    producer,
    rabbit_target,
    read,
    tls_broker,
    unique,
)
from tls_certificates import Certs

from leveret.config import ConfigError, load
from leveret.runtime.embedded import Broker
from leveret.streamproto import frames as f


@pytest.fixture(params=["leveret", "rabbitmq"])
async def tls_target(request: pytest.FixtureRequest, tmp_path: Path,
                     stream_certs: Certs) -> AsyncIterator[Target]:
    """The broker, with ``stream_port`` set to its stream TLS port."""
    if request.param == "leveret":
        broker = tls_broker(stream_certs, tmp_path / "data")
        await broker.start()
        try:
            yield Target("leveret", "127.0.0.1", broker.stream_tls_port or 0, broker.url,
                         broker, tls_port=broker.stream_tls_port or 0)
        finally:
            await broker.stop()
    else:
        t = rabbit_target(request.getfixturevalue("stream_rabbit"))
        yield Target(t.kind, t.host, t.tls_port, t.amqp_url, tls_port=t.tls_port)


@pytest.fixture
async def leveret_tls(tmp_path: Path, stream_certs: Certs) -> AsyncIterator[Broker]:
    broker = tls_broker(stream_certs, tmp_path / "data")
    broker.node.failed_login_delay = 0.1
    broker.node.add_user("alice", None, tags=[])
    broker.node.set_permissions("/", "alice")
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def test_publish_and_read_over_tls(tls_target: Target, stream_certs: Certs) -> None:
    """rstream publishes through the broker that Metadata names: over TLS that has to be
    the TLS port, or its TLS handshake would meet the plain listener."""
    context = client_context(stream_certs, client_cert=False)
    stream = unique("tls")
    async with producer(tls_target, ssl_context=context) as p:
        await p.create_stream(stream)
        for i in range(5):
            await p.send_wait(stream, AMQPMessage(body=f"m{i}".encode()))
        client = await p._get_or_create_client(stream)  # (rstream's Metadata lookup)
        leader, _replicas = await client.query_leader_and_replicas(stream)
        assert leader.port == tls_target.tls_port
    got = await read(tls_target, stream, OffsetType.FIRST, count=5, ssl_context=context)
    assert [o for o, _ in got][:5] == [0, 1, 2, 3, 4]
    async with producer(tls_target, ssl_context=context) as p:
        await p.delete_stream(stream)


async def test_external_logs_in_as_the_certificate_common_name(
        leveret_tls: Broker, stream_certs: Certs) -> None:
    """EXTERNAL with a verified client certificate: the user is its CN ("alice"), who needs
    no password. (RabbitMQ 3.10.8's stream plugin crashes on EXTERNAL: its reader hands
    the wrong state to rabbit_auth_mechanism_ssl, fixed by rabbitmq-server#8488; so this
    runs against leveret only.)"""
    t = Target("leveret", "127.0.0.1", leveret_tls.stream_tls_port or 0, leveret_tls.url)
    stream = unique("ext")
    async with producer(t, username="", password="", ssl_context=client_context(stream_certs),
                        sasl_configuration_mechanism=SlasMechanism.MechanismExternal) as p:
        await p.create_stream(stream)
        await p.send_wait(stream, AMQPMessage(body=b"by alice"))
    users = {c.user for c in leveret_tls.stream_listener.connections()}
    assert users <= {"alice"}
    got = await read(t, stream, OffsetType.FIRST, ssl_context=client_context(stream_certs))
    assert got[0][1].endswith(b"by alice")


@CLIENT_LEAKS_REFUSED_SOCKET
async def test_external_needs_a_certificate_and_a_known_user(
        leveret_tls: Broker, stream_certs: Certs, tmp_path: Path) -> None:
    port = leveret_tls.stream_tls_port or 0
    # Without a client certificate EXTERNAL is not offered, and asking for it anyway is
    # "mechanism not supported".
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(stream_certs, client_cert=False))
    writer.write(f.request(f.PEER_PROPERTIES, 1, f.properties({})))
    writer.write(f.request(f.SASL_HANDSHAKE, 2))
    writer.write(f.request(f.SASL_AUTHENTICATE, 3, f.string("EXTERNAL") + f.bytes_field(b"")))
    answers = [await _frame(reader) for _ in range(3)]
    mechanisms = answers[1][1]
    assert b"PLAIN" in mechanisms and b"EXTERNAL" not in mechanisms
    assert answers[2][0] == f.SASL_AUTHENTICATE | f.RESPONSE
    assert int.from_bytes(answers[2][1][4:6], "big") == f.SASL_MECHANISM_NOT_SUPPORTED
    writer.close()
    # A certificate whose CN is no user: authentication failure.
    leveret_tls.node.delete_user("alice")
    t = Target("leveret", "127.0.0.1", port, leveret_tls.url)
    with pytest.raises(exceptions.AuthenticationFailure):
        async with producer(t, username="", password="",
                            ssl_context=client_context(stream_certs),
                            sasl_configuration_mechanism=SlasMechanism.MechanismExternal):
            pass
    gc.collect()  # rstream's leaked socket warns now, under this test's filter


async def _frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 10), "big")
    body = await reader.readexactly(size)
    return int.from_bytes(body[:2], "big"), body[4:]


async def test_plain_clients_are_told_the_plain_port(leveret_tls: Broker) -> None:
    t = Target("leveret", "127.0.0.1", leveret_tls.stream_port or 0, leveret_tls.url)
    stream = unique("plain")
    async with producer(t) as p:
        await p.create_stream(stream)
        client = await p._get_or_create_client(stream)
        leader, _ = await client.query_leader_and_replicas(stream)
        assert leader.port == leveret_tls.stream_port != leveret_tls.stream_tls_port


def test_the_tls_port_needs_the_amqps_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[stream\] tls_port .* \[amqps\] cert"):
        load(env={}, flags={("stream", "tls_port"): "5551"})
    with pytest.raises(ValueError, match="stream_tls_port needs the tls settings"):
        Broker(port=0, stream_tls_port=0)


