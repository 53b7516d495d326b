"""Small helpers over rstream for the stream protocol tests."""

from __future__ import annotations

import asyncio
import ssl
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from rstream import Consumer, ConsumerOffsetSpecification, OffsetType, Producer

from leveret.streamproto import amqp10
from leveret.streamproto import frames as f

# rstream leaves the socket of a refused connection unclosed (its close() skips a connection
# the server already hung up): a client-side ResourceWarning, not the broker's. Tests marked
# with it are also garbage-collected before they end (conftest.py), so the warning is not
# reported against whichever test comes next.
CLIENT_LEAKS_REFUSED_SOCKET = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning")

if TYPE_CHECKING:
    from rabbit_node import PluginRabbit
    from tls_certificates import Certs

    from leveret.runtime.embedded import Broker


@dataclass
class Target:
    """One broker the same client-side scenario runs against."""

    kind: str  # "leveret" or "rabbitmq"
    host: str
    stream_port: int
    amqp_url: str
    broker: Broker | None = None  # leveret's, to look inside or restart
    tls_port: int = 0  # the stream protocol over TLS (0: not served)
    http: str = ""  # the management API's base URL
    metrics: str = ""  # the Prometheus endpoint


def client_context(certs: Certs, client_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca.pem))
    if client_cert:
        context.load_cert_chain(str(certs.alice.cert), str(certs.alice.key))
    return context

def tls_broker(certs: Certs, data_dir: Path, verify: str = "verify_peer") -> Broker:
    """leveret with AMQPS and the stream protocol, plain and over TLS, on free ports."""
    from leveret.runtime.embedded import Broker
    from leveret.server.tls import TLSConfig

    tls = TLSConfig(certs.server.cert, certs.server.key, cafile=certs.ca.pem, verify=verify)
    return Broker(port=0, tls=tls, tls_port=0, stream_port=0, stream_tls_port=0,
                  data_dir=data_dir)


def rabbit_target(node: PluginRabbit) -> Target:
    return Target("rabbitmq", "127.0.0.1", node.stream_port or 5552, node.url,
                  tls_port=node.port + 2, http=node.http,
                  metrics=f"http://127.0.0.1:{node.http_port + 1}/metrics")


def unique(prefix: str = "s") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def producer(t: Any, **kw: Any) -> Producer:
    return Producer(t.host, port=t.stream_port, username=kw.pop("username", "guest"),
                    password=kw.pop("password", "guest"), **kw)


def consumer(t: Any, **kw: Any) -> Consumer:
    return Consumer(t.host, port=t.stream_port, username=kw.pop("username", "guest"),
                    password=kw.pop("password", "guest"), **kw)


async def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def read(t: Any, stream: str, kind: OffsetType, offset: int | None = None,
               count: int = 1, settle: float = 0.0, ssl_context: Any = None,
               **subscribe: Any) -> list[tuple[int, bytes]]:
    """(offset, raw AMQP 1.0 message) of what a subscription from ``kind`` gets: at least
    ``count`` entries, then whatever arrives in ``settle`` more seconds."""
    got: list[tuple[int, bytes]] = []

    async def on_message(msg: bytes, ctx: Any) -> None:
        got.append((ctx.offset, bytes(msg)))

    async with consumer(t, ssl_context=ssl_context) as c:
        await c.subscribe(stream, on_message, decoder=lambda b: b,
                          offset_specification=ConsumerOffsetSpecification(kind, offset),
                          **subscribe)
        await wait_for(lambda: len(got) >= count)
        if settle:
            await asyncio.sleep(settle)
    return got


def sections(raw: bytes) -> dict[str, Any]:
    """A message's sections as comparable plain values (maps as dicts, descriptors as
    codes), to compare what two brokers hand out."""
    out: dict[str, Any] = {}
    for v in amqp10.decode(raw):
        descriptor, value = v.value
        out[hex(descriptor.value)] = plain(value)
    return out


def plain(v: amqp10.Value) -> Any:
    if v.type == "map":
        return {plain(k): plain(x) for k, x in v.value}
    if v.type in ("list", "array"):
        items = [plain(x) for x in v.value]
        while v.type == "list" and items and items[-1] is None:
            items.pop()  # trailing nulls are optional in a list
        return items
    if v.type == "described":
        return (plain(v.value[0]), plain(v.value[1]))
    if v.type == "null":
        return None
    return (v.type, v.value)


# -- a raw client, for what rstream cannot be made to send ---------------------------------

async def raw_frames(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    """What the server sends until it hangs up: (key, rest of the frame)."""
    out = []
    while True:
        try:
            head = await asyncio.wait_for(reader.readexactly(4), 10)
        except (asyncio.IncompleteReadError, ConnectionError):
            return out
        (size,) = struct.unpack(">I", head)
        body = await reader.readexactly(size)
        out.append((int.from_bytes(body[:2], "big"), body[4:]))


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f.request(f.PEER_PROPERTIES, 1, f.properties({})))
    writer.write(f.request(f.SASL_HANDSHAKE, 2))
    writer.write(f.request(f.SASL_AUTHENTICATE, 3, f.string("PLAIN") +
                           f.bytes_field(b"\x00guest\x00guest")))
    writer.write(f.command(f.TUNE, 1, f.u32(1 << 20) + f.u32(0)))
    writer.write(f.request(f.OPEN, 4, f.string("/")))
    for key in (f.PEER_PROPERTIES, f.SASL_HANDSHAKE, f.SASL_AUTHENTICATE, f.TUNE, f.OPEN):
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        body = await reader.readexactly(size)
        assert int.from_bytes(body[:2], "big") & 0x7FFF == key
    return reader, writer
