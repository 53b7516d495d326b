"""Shovels and federation links over amqps:// URIs with RabbitMQ's TLS query options, end
to end between two leveret brokers (the destination requires a client certificate), their
heartbeats on an idle link, and the 400s a bad TLS option gets (RabbitMQ 3.10.8's text where
RabbitMQ refuses the URI too, compared live against a RabbitMQ node with the shovel plugin
when one can start)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from rabbit_node import PluginRabbit
from test_shovels import Http, count, drain, eventually, http, publish
from tls_certificates import Certs, make_certs

import leveret
from leveret.client import connect
from leveret.server.tls import TLSConfig

pytestmark = pytest.mark.timeout(120)
IDLE = 5  # seconds without a message: five heartbeat intervals of 1 s


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("shovel-certs"))


@contextlib.asynccontextmanager
async def broker(tls: TLSConfig | None = None, **kw: Any) -> AsyncIterator[leveret.Broker]:
    extra: dict[str, Any] = {"tls": tls, "tls_port": 0} if tls else {}
    b = leveret.Broker(port=0, management_port=0, **extra, **kw)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


def plain_url(b: leveret.Broker) -> str:
    return f"amqp://guest:guest@127.0.0.1:{b.port}/%2f"


def tls_uri(b: leveret.Broker, certs: Certs, **extra: object) -> str:
    query = {"cacertfile": certs.ca.pem, "certfile": certs.alice.cert,
             "keyfile": certs.alice.key, "verify": "verify_peer",
             "server_name_indication": "localhost", **extra}
    q = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in query.items())
    return f"amqps://guest:guest@127.0.0.1:{b.tls_port}/%2f?{q}"


def requiring_client_certs(certs: Certs) -> TLSConfig:
    return TLSConfig(certs.server.cert, certs.server.key, certs.ca.pem,
                     verify="fail_if_no_peer_cert")


def tls_connections(b: leveret.Broker) -> list[Any]:
    """B's connections from a client that presented alice's certificate."""
    return [c for c in b.node.connections if c.peer_cert_cn == "alice"]


async def test_shovel_to_a_tls_port_with_a_client_certificate_and_heartbeats(
        certs: Certs) -> None:
    async with broker() as a, broker(requiring_client_certs(certs)) as b:
        dest = tls_uri(b, certs, heartbeat=1)
        status, _ = await http(a).call("PUT", "/api/parameters/shovel/%2f/to-b", {"value": {
            "src-uri": "amqp://", "src-queue": "src", "dest-uri": dest, "dest-queue": "dst"}})
        assert status == 201
        await publish(plain_url(a), "src", 5)
        got = await drain(plain_url(b), "dst", 5)
        assert sorted(body for _, body, _ in got) == [str(i).encode() for i in range(5)]
        rows = (await http(a).call("GET", "/api/shovels"))[1]
        assert rows[0]["state"] == "running"
        # shown as RabbitMQ shows it: no credentials, no query (no TLS key passphrase)
        assert rows[0]["dest_uri"] == f"amqps://127.0.0.1:{b.tls_port}/%2f"
        [link] = tls_connections(b)
        assert link.heartbeat == 1  # negotiated down from the server's 60
        # idle far past the server's 2 x heartbeat timeout: the client's heartbeats keep
        # the link open (and the server's keep the client's side from giving up)
        await asyncio.sleep(IDLE)
        assert tls_connections(b) == [link]
        assert (await http(a).call("GET", "/api/shovels"))[1][0]["state"] == "running"
        await publish(plain_url(a), "src", 3, declare=False)

        async def moved() -> bool:
            return await count(plain_url(b), "dst") == 3
        await eventually(moved)
        assert tls_connections(b) == [link]


async def test_shovel_with_a_wrong_ca_is_terminated_with_a_clear_reason(
        certs: Certs) -> None:
    async with broker() as a, broker(requiring_client_certs(certs)) as b:
        dest = tls_uri(b, certs, cacertfile=certs.other_ca.pem)
        await http(a).call("PUT", "/api/parameters/shovel/%2f/bad-ca", {"value": {
            "src-uri": "amqp://", "src-queue": "src", "dest-uri": dest, "dest-queue": "dst"}})

        async def terminated() -> bool:
            rows = (await http(a).call("GET", "/api/shovels"))[1]
            return bool(rows) and rows[0]["state"] == "terminated"
        await eventually(terminated)
        reason = (await http(a).call("GET", "/api/shovels"))[1][0]["reason"]
        assert "failed verification" in reason and str(certs.other_ca.pem) in reason


async def test_federation_link_over_tls_survives_idle_heartbeats(certs: Certs) -> None:
    async with (broker(requiring_client_certs(certs)) as up, broker() as down,
                await connect(plain_url(up)) as cu, await connect(plain_url(down)) as cd):
        chu, chd = await cu.channel(), await cd.channel()
        await chu.exchange_declare("fx", "fanout", durable=True)
        await chd.exchange_declare("fx", "fanout", durable=True)
        await chd.queue_declare("fq", durable=True)
        await chd.queue_bind("fq", "fx", "")
        h = http(down)
        assert (await h.call("PUT", "/api/parameters/federation-upstream/%2f/up", {
            "value": {"uri": tls_uri(up, certs, heartbeat=1), "reconnect-delay": 1}}))[0] \
            == 201
        assert (await h.call("PUT", "/api/policies/%2f/fed", {
            "pattern": "^fx$", "apply-to": "exchanges",
            "definition": {"federation-upstream": "up"}}))[0] in (201, 204)

        async def linked() -> bool:
            rows = (await h.call("GET", "/api/federation-links"))[1]
            return len(rows) == 1 and rows[0]["status"] == "running"
        await eventually(linked)
        [link] = tls_connections(up)
        assert link.heartbeat == 1
        await asyncio.sleep(IDLE)
        assert tls_connections(up) == [link]
        chu.publish(b"after idle", "fx", "")

        async def arrived() -> bool:
            return await count(plain_url(down), "fq") == 1
        await eventually(arrived)


# -- validation --------------------------------------------------------------------------------

# RabbitMQ 3.10.8 refuses these too: its reason terms, recorded from a node with the shovel
# plugin (~p's line breaks removed)
RABBIT_REFUSES = [
    ("amqps://h?fail_if_no_peer_cert=maybe",
     '{{invalid_ssl_parameter,fail_if_no_peer_cert,"maybe",[{"fail_if_no_peer_cert","maybe"}],'
     '{require_boolean,maybe}},"amqps://h?fail_if_no_peer_cert=maybe"}'),
    ("amqps://h?heartbeat=abc",
     '{{invalid_amqp_params_parameter,heartbeat,"abc",[{"heartbeat","abc"}],'
     '{not_an_integer,"abc"}},"amqps://h?heartbeat=abc"}'),
    ("amqps://h?cacertfile=%zz",
     '{{invalid_ssl_parameter,cacertfile,"%zz",[{"cacertfile","%zz"}],'
     "{invalid_entitiy,['%',122,122]}},\"amqps://h?cacertfile=%zz\"}"),
    ("amqps://h?depth=x",
     '{{invalid_ssl_parameter,depth,"x",[{"depth","x"}],{not_an_integer,"x"}},'
     '"amqps://h?depth=x"}'),
    ("amqps://h:70000", '{{port_out_of_range,70000},"amqps://h:70000"}'),
]
# RabbitMQ 3.10.8 accepts these and fails when it connects; leveret refuses them at once
LEVERET_REFUSES = [
    ("amqps://h?verify=sometimes",
     "URI query parameter verify: must be verify_peer or verify_none, got 'sometimes'"),
    ("amqps://h?auth_mechanism=bogus",
     "URI query parameter auth_mechanism: must be one of plain, amqplain, external, got "
     "'bogus'"),
]


def shovel_with(uri: str) -> dict[str, Any]:
    return {"value": {"src-uri": "amqp://", "src-queue": "q", "dest-uri": uri,
                      "dest-queue": "d"}}


def unwrapped(reason: str) -> str:
    """RabbitMQ's ~p breaks long terms over indented lines: join them."""
    return re.sub(r"\n +", "", reason)


async def test_bad_tls_options_are_400s_with_rabbitmqs_text() -> None:
    async with broker() as a:
        for uri, term in RABBIT_REFUSES:
            status, body = await http(a).call("PUT", "/api/parameters/shovel/%2f/s",
                                              shovel_with(uri))
            assert (status, body["reason"]) == (
                400, f'Validation failed\n\n"{uri}" not a valid URI: {term}\n')
        for uri, text in LEVERET_REFUSES:
            status, body = await http(a).call("PUT", "/api/parameters/shovel/%2f/s",
                                              shovel_with(uri))
            assert status == 400
            assert body["reason"] == (f'Validation failed\n\n"{uri}" not a valid URI: '
                                      f"{text}\n")
        # federation upstreams share the check
        status, body = await http(a).call("PUT", "/api/parameters/federation-upstream/%2f/u",
                                          {"value": {"uri": RABBIT_REFUSES[0][0]}})
        assert status == 400 and "require_boolean" in body["reason"]
        # a good one, with every option, is taken
        good = ("amqps://u:p@h/%2f?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem"
                "&password=x&verify=verify_peer&fail_if_no_peer_cert=false"
                "&server_name_indication=disable&depth=3&heartbeat=5&auth_mechanism=external")
        assert (await http(a).call("PUT", "/api/parameters/shovel/%2f/ok",
                                   shovel_with(good)))[0] == 201


async def test_validation_texts_against_rabbitmq(plugin_rabbit: PluginRabbit) -> None:
    """The recorded texts above, checked live on RabbitMQ with the shovel plugin."""
    rabbit = Http(plugin_rabbit.http)
    async with broker() as a:
        for uri, _term in RABBIT_REFUSES:
            try:
                theirs = await rabbit.call("PUT", "/api/parameters/shovel/%2f/tls-probe",
                                           shovel_with(uri))
            except aiohttp.ClientError as exc:
                pytest.skip(f"the RabbitMQ node's management API is not answering: {exc}")
            ours = await http(a).call("PUT", "/api/parameters/shovel/%2f/tls-probe",
                                      shovel_with(uri))
            assert ours[0] == theirs[0] == 400
            assert ours[1]["reason"] == unwrapped(theirs[1]["reason"])
        for uri, _text in LEVERET_REFUSES:  # the deliberate difference, pinned
            status, _ = await rabbit.call("PUT", "/api/parameters/shovel/%2f/tls-probe",
                                          shovel_with(uri))
            assert status in (201, 204)
        await rabbit.call("DELETE", "/api/parameters/shovel/%2f/tls-probe")


def test_the_recorded_terms_are_unwrapped_as_rabbitmq_sends_them() -> None:
    sent = ('"amqps://h?heartbeat=abc" not a valid URI: {{invalid_amqp_params_parameter,\n'
            '                                             heartbeat,"abc",\n'
            '                                             [{"heartbeat","abc"}],\n'
            '                                             {not_an_integer,"abc"}},\n'
            '                                            "amqps://h?heartbeat=abc"}')
    assert unwrapped(sent) == f'"amqps://h?heartbeat=abc" not a valid URI: {RABBIT_REFUSES[1][1]}'

