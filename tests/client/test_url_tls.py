"""amqps:// URIs with RabbitMQ's query parameters: the parse table (and its errors, with
RabbitMQ 3.10.8's reason terms), then real TLS connections to leveret's AMQPS listener with
certificates made here: verify_peer with a CA file, client certificates, the wrong CA, SNI,
verify_none, EXTERNAL and AMQPLAIN logins, chain depth, and file errors that say what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tls_certificates import Certs, Pem, make_certs

import leveret
from leveret.amqp import uri as amqp_uri
from leveret.amqp.uri import TLSOptions, UriError
from leveret.client import (
    ClientError,
    ConnectionClosed,
    NoSuitableMechanism,
    TLSError,
    TLSSetupError,
    connect,
    parse_url,
)
from leveret.server.tls import TLSConfig, server_context

pytestmark = pytest.mark.timeout(120)

# -- the parse table ------------------------------------------------------------------------

PARSED: list[tuple[str, dict[str, Any]]] = [
    ("amqps://h", {"port": 5671, "tls": TLSOptions()}),
    ("amqps://u:p@h:5999/v?cacertfile=/etc/ca%20file.pem&certfile=/c.pem&keyfile=/k.pem"
     "&verify=verify_peer&server_name_indication=broker.example&password=p%26w&depth=2"
     "&fail_if_no_peer_cert=true",
     {"port": 5999, "vhost": "v", "username": "u", "password": "p",
      "tls": TLSOptions(cacertfile="/etc/ca file.pem", certfile="/c.pem", keyfile="/k.pem",
                        password="p&w", verify="verify_peer", fail_if_no_peer_cert=True,
                        server_name_indication="broker.example", depth=2)}),
    ("amqps://h?verify=verify_none&server_name_indication=disable",
     {"tls": TLSOptions(verify="verify_none", server_name_indication="disable")}),
    # TLS options on amqp:// are ignored, as RabbitMQ ignores them
    ("amqp://h?cacertfile=/x&verify=bogus", {"tls": None, "port": 5672}),
    ("amqp://h?heartbeat=5&connection_timeout=2500&channel_max=10&frame_max=8192&foo=bar",
     {"heartbeat": 5, "connect_timeout": 2.5, "channel_max": 10, "frame_max": 8192}),
    ("amqp://h?heartbeat=0", {"heartbeat": 0}),
    ("amqp://h?heartbeat=1&heartbeat=x", {"heartbeat": 1}),  # the first one wins
    ("amqp://h?heartbeat", {"heartbeat": 60}),  # no "=": not a parameter (uri_parser)
    ("amqp://h?auth_mechanism=external&auth_mechanism=amqp_auth_mechanisms:plain",
     {"auth_mechanisms": ("EXTERNAL", "PLAIN")}),
    ("amqp://h?auth_mechanism=AMQPLAIN", {"auth_mechanisms": ("AMQPLAIN",)}),
    ("amqp://h", {"auth_mechanisms": ("PLAIN", "AMQPLAIN"), "heartbeat": 60}),
    # no host (a shovel's own broker; RabbitMQ's direct connection): network options ignored
    ("amqp://?heartbeat=abc&auth_mechanism=bogus", {"host": "127.0.0.1", "heartbeat": 60}),
    # the vhost: no path is "/"; the path "/" is "" to RabbitMQ, "/" to this client (as pika)
    ("amqp://h", {"vhost": "/"}),
    ("amqp://h/", {"vhost": "/"}),
    ("amqp:///", {"host": "127.0.0.1", "vhost": "/"}),
    ("amqp://h/%2f", {"vhost": "/"}),
    ("amqp://h/%c3%a9%2Bx", {"vhost": "é+x"}),
    # RabbitMQ's structure: the first @ ends the user, a signed port, an unclosed [ is a host
    ("amqp://u%40x:p%2Fw@H.Example:+5", {"username": "u@x", "password": "p/w",
                                         "host": "H.Example", "port": 5}),
    ("amqp://[::1", {"host": "::1", "port": 5672}),
    ("amqp://[::1]:5999", {"host": "::1", "port": 5999}),
    ("amqp://@h", {"username": "guest"}),
    # the client's reading, kept: the password is all after the first ":" (RabbitMQ: "p")
    ("amqp://u:p:x@h", {"username": "u", "password": "p:x"}),
]


@pytest.mark.parametrize(("url", "vhost"), [
    ("amqp://", "/"), ("amqp:///", ""), ("amqp:///%2f", "/"), ("amqp:///v", "v"),
    ("amqp://h", "/"), ("amqp://h/", ""), ("amqps://h/%2F", "/")])
def test_vhost_as_rabbitmq_reads_it(url: str, vhost: str) -> None:
    """What shovel and federation validation go by (amqp_uri's reading)."""
    assert amqp_uri.parse(url).vhost == vhost


@pytest.mark.parametrize(("url", "expected"), PARSED)
def test_parse(url: str, expected: dict[str, Any]) -> None:
    params = parse_url(url)
    assert {k: getattr(params, k) for k in expected} == expected


# (URI, the parameter named, words of the message, RabbitMQ 3.10.8's reason or None where
# RabbitMQ accepts the URI and leveret refuses what could never connect)
ERRORS: list[tuple[str, str | None, str, str | None]] = [
    ("amqps://h?verify=sometimes", "verify", "must be verify_peer or verify_none", None),
    ("amqps://h?fail_if_no_peer_cert=maybe", "fail_if_no_peer_cert", "true or false",
     '{invalid_ssl_parameter,fail_if_no_peer_cert,"maybe",[{"fail_if_no_peer_cert","maybe"}]'
     ',{require_boolean,maybe}}'),
    ("amqps://h?depth=x", "depth", "must be an integer",
     '{invalid_ssl_parameter,depth,"x",[{"depth","x"}],{not_an_integer,"x"}}'),
    ("amqps://h?cacertfile=%zz", "cacertfile", "invalid %-escape",
     '{invalid_ssl_parameter,cacertfile,"%zz",[{"cacertfile","%zz"}],'
     "{invalid_entitiy,['%',122,122]}}"),
    ("amqps://h?cacertfile=%z", "cacertfile", "unterminated",
     '{invalid_ssl_parameter,cacertfile,"%z",[{"cacertfile","%z"}],'
     "{unterminated_entity,['%',122]}}"),
    ("amqps://h?certfile=", "certfile", "must not be empty", None),
    ("amqps://h?server_name_indication=", "server_name_indication", "must not be empty",
     None),
    ("amqp://h?heartbeat=abc", "heartbeat", "must be an integer",
     '{invalid_amqp_params_parameter,heartbeat,"abc",[{"heartbeat","abc"}],'
     '{not_an_integer,"abc"}}'),
    ("amqps://h?heartbeat=", "heartbeat", "must be an integer",
     '{invalid_amqp_params_parameter,heartbeat,[],[{"heartbeat",[]}],{not_an_integer,[]}}'),
    ("amqp://h?heartbeat=-1", "heartbeat", "between 0 and 65535", None),
    ("amqp://h?channel_max=70000", "channel_max", "between 0 and 65535", None),
    ("amqps://h?connection_timeout=1.5", "connection_timeout", "must be an integer",
     '{invalid_amqp_params_parameter,connection_timeout,"1.5",[{"connection_timeout","1.5"}],'
     '{not_an_integer,"1.5"}}'),
    ("amqps://h?password=x&username=y", "username", "cannot be set in a URI's query",
     '{invalid_amqp_params_parameter,username,"y",[{"password","x"},{"username","y"}],'
     '{parameter_unconfigurable_in_query,username,"y"}}'),
    ("amqp://h?auth_mechanism=bogus", "auth_mechanism", "must be one of plain, amqplain, "
     "external", None),
    ("amqp://h?auth_mechanism=crdemo", "auth_mechanism", "must be one of", None),
    ("amqp://h?auth_mechanism=my_module:plain", "auth_mechanism", "Erlang module", None),
    ("amqp://h?auth_mechanism=", "auth_mechanism", "not a mechanism", "{not_mechanism,[]}"),
    ("amqp://h?auth_mechanism=a:b:c", "auth_mechanism", "not a mechanism",
     "{not_mechanism,[a,b,c]}"),
    ("amqp://h:70000", None, "out of range", "{port_out_of_range,70000}"),
    ("amqp://h:0", None, "out of range", "{port_out_of_range,0}"),
    ("amqp://h/a/b", None, "unescaped '/'", '{invalid_vhost,"a/b"}'),
    ("amqp://:5672", None, "a port needs a host", "port_requires_host"),
    ("http://h", None, "not an AMQP URI", '{unexpected_uri_scheme,"http"}'),
    ("localhost", None, "no scheme", "{unable_to_parse_uri,no_scheme}"),
    ("amqp:foo", None, "does not start with '/'", '{case_clause,"foo"}'),
    ("amqp://h:", None, "is not a number",
     """{unable_to_parse_uri,{malformed_uri,"amqp://h:",{'EXIT',{badarg,[]}}}}"""),
    ("amqp://[::1]x", None, "after the IPv6 address",
     '{unable_to_parse_uri,{malformed_uri,"amqp://[::1]x",{invalid_port,"x"}}}'),
    ("amqp://h/%zz", None, "invalid %-escape", "{invalid_entitiy,['%',122,122]}"),
    ("amqp://u%4x@h", None, "invalid %-escape", "{invalid_entitiy,['%',52,120]}"),
    ("amqp://u:p%4@h", None, "unterminated", "{unterminated_entity,['%',52]}"),
    ("amqp://h/%-1", None, "not a byte", "badarg"),
    ("amqp://h%-1", None, "not a byte", None),  # RabbitMQ takes it in a host
    ("amqp://u:p:%zz@h", None, "invalid %-escape", None),  # RabbitMQ reads "p" only
    ("amqp://h/a/é", None, "unescaped '/'", '{invalid_vhost,"a/é"}'),
    ("amqp://h/Ā/x", None, "unescaped '/'", "{invalid_vhost,[196,128,47,120]}"),
    ("amqp://h?heartbeat=a\n\"b", "heartbeat", "must be an integer",
     '{invalid_amqp_params_parameter,heartbeat,"a\\n\\"b",[{"heartbeat","a\\n\\"b"}],'
     '{not_an_integer,"a\\n\\"b"}}'),
    ("amqps://h?fail_if_no_peer_cert=And", "fail_if_no_peer_cert", "true or false",
     '{invalid_ssl_parameter,fail_if_no_peer_cert,"And",[{"fail_if_no_peer_cert","And"}],'
     "{require_boolean,'And'}}"),
    ("amqp://h?auth_mechanism=a:and:c", "auth_mechanism", "not a mechanism",
     "{not_mechanism,[a,'and',c]}"),
    # RabbitMQ's checks come first: its reason, not leveret's earlier-named complaint
    ("amqps://h?verify=sometimes&heartbeat=x", "heartbeat", "must be an integer",
     '{invalid_amqp_params_parameter,heartbeat,"x",[{"verify","sometimes"},{"heartbeat","x"}]'
     ',{not_an_integer,"x"}}'),
    # without a host, amqps:// still checks its TLS options (as RabbitMQ does)
    ("amqps:///v?depth=x", "depth", "must be an integer",
     '{invalid_ssl_parameter,depth,"x",[{"depth","x"}],{not_an_integer,"x"}}'),
]


# recorded from RabbitMQ 3.10.8 with the shovel plugin (PUT /api/parameters/shovel, ~p's
# line breaks removed); tests/test_shovels_differential.py compares such texts live
RABBIT_TEXTS = [
    ("amqp://h/a\t\x1b\"\\/x",
     '"amqp://h/a\t\x1b\"\\/x" not a valid URI: {{invalid_vhost,"a\\t\\e\\\"\\\\/x"},'
     '"amqp://h/a\\t\\e\\\"\\\\/x"}'),
    ("amqp://h/a/é", '"amqp://h/a/é" not a valid URI: {{invalid_vhost,"a/é"},"amqp://h/a/é"}'),
    ("amqp://h/Ā/x", '"amqp://h/Ā/x" not a valid URI: {{invalid_vhost,[196,128,47,120]},'
     "[97,109,113,112,58,47,47,104,47,196,128,47,120]}"),
    ("amqp://h/%-1", '"amqp://h/%-1" not a valid URI: {badarg,"amqp://h/%-1"}'),
    ("amqp://h?auth_mechanism=bogus", None),
    ("amqps://h?verify=sometimes", '"amqps://h?verify=sometimes" not a valid URI: URI query '
     "parameter verify: must be verify_peer or verify_none, got 'sometimes'"),
]


@pytest.mark.parametrize(("url", "text"), RABBIT_TEXTS[:-2])
def test_validation_texts(url: str, text: str) -> None:
    assert amqp_uri.validation_error(url) == text


def test_validation_of_what_only_leveret_refuses() -> None:
    """RabbitMQ takes these (they fail when it connects): leveret's words, no term."""
    assert amqp_uri.validation_error("amqp://h?auth_mechanism=plain") is None
    for url, text in RABBIT_TEXTS[-2:]:
        assert amqp_uri.validation_error(url) == (text or (
            f'"{url}" not a valid URI: URI query parameter auth_mechanism: must be one of '
            "plain, amqplain, external, got 'bogus'"))


@pytest.mark.parametrize(("url", "parameter", "words", "reason"), ERRORS)
def test_parse_errors(url: str, parameter: str | None, words: str, reason: str | None) -> None:
    with pytest.raises(UriError) as caught:
        amqp_uri.parse(url)
    assert caught.value.parameter == parameter
    assert words in str(caught.value)
    if parameter is not None:
        assert str(caught.value).startswith(f"URI query parameter {parameter}: ")
    assert caught.value.reason == reason
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        parse_url(url)  # the client's parser raises the same (a ValueError)


# -- a leveret AMQPS listener ---------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("amqps-certs"))


@contextlib.asynccontextmanager
async def tls_broker(certs: Certs, verify: str = "verify_none", server: Pem | None = None,
                     **kwargs: Any) -> AsyncIterator[leveret.Broker]:
    server = server or certs.server
    config = TLSConfig(server.cert, server.key, certs.ca.pem, verify=verify)
    broker = leveret.Broker(port=0, tls=config, tls_port=0, **kwargs)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


def amqps(broker: leveret.Broker, host: str = "127.0.0.1", user: str = "guest:guest@",
          **query: object) -> str:
    q = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in query.items())
    return f"amqps://{user}{host}:{broker.tls_port}/%2f?{q}"


def client(pem: Pem) -> dict[str, object]:
    return {"certfile": pem.cert, "keyfile": pem.key}


async def round_trip(url: str) -> None:
    """Connect, declare, publish with a confirm, consume it, close."""
    async with await connect(url) as conn:
        ch = await conn.channel()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        await ch.confirm_select()
        ch.publish(b"over TLS", "", queue)
        await ch.wait_for_confirms()
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        await ch.basic_consume(queue, lambda *m: got.done() or got.set_result(m[-1]),
                               no_ack=True)
        assert await asyncio.wait_for(got, 10) == b"over TLS"


async def test_verify_peer_with_the_ca_file(certs: Certs) -> None:
    async with tls_broker(certs) as b:
        await round_trip(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer"))
        # the URI's host is checked: 127.0.0.1 is in the certificate's subjectAltName
        await round_trip(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer",
                               server_name_indication="localhost"))


async def test_the_wrong_ca_fails_with_a_clear_error(certs: Certs) -> None:
    async with tls_broker(certs) as b:
        with pytest.raises(TLSError) as caught:
            await connect(amqps(b, cacertfile=certs.other_ca.pem, verify="verify_peer"))
        text = str(caught.value)
        assert "failed verification" in text and str(certs.other_ca.pem) in text
        assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
        # verify_none: the same CA file, nothing checked, encrypted all the same
        await round_trip(amqps(b, cacertfile=certs.other_ca.pem, verify="verify_none"))


async def test_server_name_indication_match_and_mismatch(certs: Certs) -> None:
    async with tls_broker(certs) as b:
        with pytest.raises(TLSError, match=r"not valid for 'wrong\.example'"):
            await connect(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer",
                                server_name_indication="wrong.example"))
        await round_trip(amqps(b, host="localhost", cacertfile=certs.ca.pem,
                               verify="verify_peer"))
        # disable: no SNI and no name check, but the chain is still verified
        await round_trip(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer",
                               server_name_indication="disable"))
        with pytest.raises(TLSError):
            await connect(amqps(b, cacertfile=certs.other_ca.pem, verify="verify_peer",
                                server_name_indication="disable"))


async def test_the_sni_the_client_sends(certs: Certs) -> None:
    """A bare TLS server records the SNI of each handshake (and closes: no AMQP here)."""
    seen: list[str | None] = []
    context = server_context(TLSConfig(certs.server.cert, certs.server.key))
    context.sni_callback = lambda _obj, name, _ctx: seen.append(name)  # type: ignore[assignment,misc,return-value]

    async def hang_up(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    cases = [("localhost", ""), ("127.0.0.1", ""),
             ("127.0.0.1", "&server_name_indication=broker.example"),
             ("localhost", "&server_name_indication=disable")]
    async with server:
        for host, query in cases:
            with pytest.raises((ClientError, OSError, asyncio.TimeoutError)):
                await connect(f"amqps://{host}:{port}/?verify=verify_none"
                              f"&connection_timeout=5000{query}")
    assert seen == ["localhost", None, "broker.example", None]


async def test_a_client_certificate_when_the_server_requires_one(certs: Certs) -> None:
    async with tls_broker(certs, verify="fail_if_no_peer_cert") as b:
        with pytest.raises(ConnectionClosed, match="give certfile and keyfile"):
            await connect(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer"))
        await round_trip(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer",
                               **client(certs.alice)))
        # a key with a passphrase, given as password=
        await round_trip(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer",
                               password="s3cret pass", **client(certs.locked)))


async def test_external_login_with_the_client_certificate(certs: Certs) -> None:
    async with tls_broker(certs, verify="verify_peer",
                          users={"guest": "guest", "alice": "unused"}) as b:
        url = amqps(b, user="", cacertfile=certs.ca.pem, verify="verify_peer",
                    auth_mechanism="external", **client(certs.alice))
        async with await connect(url) as conn:
            await conn.channel()
            assert [c.user for c in b.node.connections] == ["alice"]
        # no certificate: the server does not offer EXTERNAL, and the error says why
        with pytest.raises(NoSuitableMechanism, match="certfile and keyfile"):
            await connect(amqps(b, user="", cacertfile=certs.ca.pem, verify="verify_peer",
                                auth_mechanism="external"))
        # EXTERNAL first, PLAIN next: without a certificate the second one is used
        await round_trip(amqps(b, cacertfile=certs.ca.pem, verify="verify_peer") +
                         "&auth_mechanism=external&auth_mechanism=plain")


async def test_amqplain_login() -> None:
    broker = leveret.Broker(port=0)
    await broker.start()
    try:
        url = f"amqp://guest:guest@127.0.0.1:{broker.port}/%2f?auth_mechanism=amqplain"
        async with await connect(url) as conn:
            await conn.channel()
            assert conn.params.auth_mechanisms == ("AMQPLAIN",)
    finally:
        await broker.stop()


async def test_chain_depth(certs: Certs) -> None:
    async with tls_broker(certs, server=certs.deep_server) as b:  # root -> intermediate
        base = {"cacertfile": certs.ca.pem, "verify": "verify_peer"}
        await round_trip(amqps(b, **base))
        await round_trip(amqps(b, depth=1, **base))
        with pytest.raises(TLSError, match="1 intermediate CA"):
            await connect(amqps(b, depth=0, **base))


async def test_no_verify_is_verify_none_with_a_warning(
        certs: Certs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "leveret.client")
    async with tls_broker(certs) as b:
        await round_trip(amqps(b, cacertfile=certs.other_ca.pem))  # RabbitMQ 3.10.8's default
        await round_trip(amqps(b))
    warned = [r for r in caplog.records if getattr(r, "event", "") == "tls_unverified"]
    assert len(warned) == 2
    assert "certificate chain verification is not enabled" in warned[0].getMessage()


async def test_file_errors_name_the_file_and_what_to_do(certs: Certs, tmp_path: Path) -> None:
    url = "amqps://127.0.0.1:1/?verify=verify_peer&"
    missing = tmp_path / "missing.pem"
    cases: list[tuple[str, str]] = [
        (f"cacertfile={missing}", f"cannot read cacertfile {missing} (from the amqps URI): "
                                  f"no such file; give the absolute path of a PEM file"),
        (f"cacertfile={tmp_path}", "it is a directory"),
        (f"cacertfile={certs.alice.key}", f"cacertfile {certs.alice.key} holds no usable CA"),
        (f"certfile={missing}&keyfile={certs.alice.key}", f"cannot read certfile {missing}"),
        (f"certfile={certs.alice.cert}&keyfile={certs.server.key}",
         "check that the key belongs to the certificate"),
        (f"certfile={certs.locked.cert}&keyfile={certs.locked.key}",
         f"keyfile {certs.locked.key} is encrypted: give its passphrase in the URI as "
         f"password="),
        (f"certfile={certs.locked.cert}&keyfile={certs.locked.key}&password=wrong",
         "passphrase (password=...) is wrong"),
        (f"keyfile={certs.alice.key}", "without certfile"),
    ]
    for query, words in cases:
        with pytest.raises(TLSSetupError) as caught:
            await connect(url + query)
        assert words in str(caught.value), (query, str(caught.value))
        assert isinstance(caught.value, ValueError)
