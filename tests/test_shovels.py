"""Dynamic shovels: RabbitMQ's ``shovel`` parameters, /api/shovels, and moving messages
over real TCP between real brokers (leveret -> leveret, within one broker, leveret <->
the reference RabbitMQ on its AMQP port), durability and definitions round trips, and a
destination killed with SIGKILL in the middle of a transfer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import leveret
from leveret.amqp import spec
from leveret.client import connect

REFERENCE_URL = os.environ.get("LEVERET_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5673/")


class Http:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    async def call(self, method: str, path: str, body: Any = None,
                   auth: tuple[str, str] = ("guest", "guest")) -> tuple[int, Any]:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as s, \
                s.request(method, self.base + path, json=body) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None)


@contextlib.asynccontextmanager
async def broker(**kw: Any) -> AsyncIterator[leveret.Broker]:
    b = leveret.Broker(port=0, management_port=0, **kw)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


def http(b: leveret.Broker) -> Http:
    assert b.management_url is not None
    return Http(b.management_url)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def publish(url: str, queue: str, n: int, declare: bool = True,
                  headers: dict[str, Any] | None = None) -> None:
    async with await connect(url) as c:
        ch = await c.channel()
        if declare:
            await ch.queue_declare(queue, durable=True)
        await ch.confirm_select()
        for i in range(n):
            ch.publish(str(i).encode(), "", queue,
                       spec.Properties(delivery_mode=2, message_id=str(i), headers=headers))
            if i % 500 == 499:
                await ch.wait_unconfirmed(1000)
        await ch.wait_for_confirms()


async def count(url: str, queue: str) -> int:
    async with await connect(url) as c:
        ch = await c.channel()
        try:
            return int((await ch.queue_declare(queue, passive=True)).message_count)
        except Exception:
            return -1


async def drain(url: str, queue: str, expect: int, timeout: float = 30
                ) -> list[tuple[bool, bytes, spec.Properties]]:
    got: list[tuple[bool, bytes, spec.Properties]] = []
    async with await connect(url) as c:
        ch = await c.channel()
        await ch.queue_declare(queue, durable=True)  # the shovel may not have yet
        await ch.basic_qos(2000)
        enough = asyncio.get_running_loop().create_future()

        def on(tag: int, red: bool, ex: str, key: str, props: bytes, body: bytes) -> None:
            got.append((red, body, spec.Properties.decode(props) if props else
                        spec.Properties()))
            ch.ack(tag)
            if len(got) >= expect and not enough.done():
                enough.set_result(None)

        await ch.basic_consume(queue, on)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(enough, timeout)
        await asyncio.sleep(0.2)  # anything beyond (duplicates) shows up too
    return got


def value(**kw: Any) -> dict[str, Any]:
    return {k.replace("_", "-"): v for k, v in kw.items()}


# -- the parameter API ---------------------------------------------------------------------


async def test_validation_errors_as_rabbitmq() -> None:
    async with broker() as b:
        h = http(b)
        p = "/api/parameters/shovel/%2f/s1"
        status, body = await h.call("PUT", p, {"value": {}})
        assert status == 400
        assert body == {"error": "bad_request", "reason": (
            "Validation failed\n\nMust specify 'src-exchange' or 'src-queue'\n"
            "Key \"dest-uri\" not found in s1\nKey \"src-uri\" not found in s1\n")}
        status, body = await h.call("PUT", p, {"value": value(
            src_uri="amqp://", src_queue="a", src_exchange="x", dest_uri="amqp://")})
        assert body["reason"] == ("Validation failed\n\nCannot specify 'src-exchange' and "
                                  "'src-queue'\n")
        status, body = await h.call("PUT", p, {"value": value(
            src_uri="foo://x", src_queue="a", dest_uri="amqp://")})
        assert body["reason"] == ('Validation failed\n\n"foo://x" not a valid URI: '
                                  '{{unexpected_uri_scheme,"foo"},"foo://x"}\n')
        status, body = await h.call("PUT", p, {"value": value(
            src_uri="amqp://", src_queue="a", dest_uri="amqp://", ack_mode="bad",
            src_delete_after="x")})
        assert body["reason"] == (
            'Validation failed\n\nsrc-delete-after should be a number greater than or equal'
            ' to 0, "never" or "queue-length", actually was &lt;&lt;"x"&gt;&gt;\nack-mode '
            'should be one of [&lt;&lt;"no-ack"&gt;&gt;,&lt;&lt;"on-publish"&gt;&gt;,'
            '&lt;&lt;"on-confirm"&gt;&gt;], actually was &lt;&lt;"bad"&gt;&gt;\n')
        status, body = await h.call("PUT", p, {"value": value(
            src_uri="amqp://", src_queue="a", dest_uri="amqp://", src_prefetch_count="x")})
        assert body["reason"] == ('Validation failed\n\nsrc-prefetch-count should be a '
                                  'number, actually was &lt;&lt;"x"&gt;&gt;\n')
        status, body = await h.call("PUT", p, {"value": value(
            src_uri="amqp://", src_queue="a", dest_uri="amqp://", dest_queue="b", bogus=1)})
        assert body["reason"] == ('Validation failed\n\nUnrecognised terms '
                                  '[{&lt;&lt;"bogus"&gt;&gt;,1}] in s1\n')
        status, body = await h.call("PUT", p, {"src-uri": "amqp://"})
        assert (status, body) == (400, {"error": "bad_request",
                                        "reason": "[{key_missing,value}]"})
        status, body = await h.call("PUT", p, {"value": value(
            src_uri="amqp://", src_queue="a", dest_uri="amqp://", src_protocol="amqp10")})
        assert status == 400 and "amqp10 is not supported" in body["reason"]
        status, body = await h.call("PUT", "/api/parameters/shovel/nosuch/s1", {
            "value": value(src_uri="amqp://", src_queue="a", dest_uri="amqp://")})
        assert (status, body) == (404, {"error": "not_found", "reason": "vhost_not_found"})
        status, _ = await h.call("GET", p)
        assert status == 404


async def test_parameter_api_and_status_shape() -> None:
    async with broker() as b:
        h = http(b)
        v = value(src_uri="amqp://", src_queue="a", dest_uri="amqp://", dest_queue="b")
        assert (await h.call("PUT", "/api/parameters/shovel/%2f/s1", {"value": v}))[0] == 201
        assert (await h.call("PUT", "/api/parameters/shovel/%2f/s1", {"value": v}))[0] == 204
        want = {"value": v, "vhost": "/", "component": "shovel", "name": "s1"}
        assert await h.call("GET", "/api/parameters/shovel/%2f/s1") == (200, want)
        assert await h.call("GET", "/api/parameters/shovel/%2f") == (200, [want])
        assert await h.call("GET", "/api/parameters/shovel") == (200, [want])

        async def running() -> bool:
            rows = (await h.call("GET", "/api/shovels"))[1]
            return bool(rows) and rows[0]["state"] == "running"
        await eventually(running)
        rows = (await h.call("GET", "/api/shovels/%2f"))[1]
        row = rows[0]
        assert set(row) == {"node", "timestamp", "name", "vhost", "type", "state", "src_uri",
                            "src_protocol", "dest_protocol", "dest_uri", "src_queue",
                            "dest_queue"}
        assert (row["name"], row["vhost"], row["type"], row["src_queue"], row["dest_queue"],
                row["src_uri"]) == ("s1", "/", "dynamic", "a", "b", "amqp://")
        assert (await h.call("DELETE", "/api/shovels/vhost/%2f/s1/restart"))[0] == 204
        assert (await h.call("DELETE", "/api/shovels/vhost/%2f/nope/restart"))[0] == 404
        assert (await h.call("DELETE", "/api/parameters/shovel/%2f/s1"))[0] == 204
        assert (await h.call("DELETE", "/api/parameters/shovel/%2f/s1"))[0] == 404
        await asyncio.sleep(0.1)
        assert await h.call("GET", "/api/shovels") == (200, [])


async def test_parameters_need_policymaker() -> None:
    async with broker() as b:
        h = http(b)
        assert (await h.call("PUT", "/api/users/mon", {"password": "p",
                                                       "tags": "monitoring"}))[0] == 201
        await h.call("PUT", "/api/permissions/%2f/mon", {"configure": ".*", "write": ".*",
                                                         "read": ".*"})
        mon = ("mon", "p")
        v = value(src_uri="amqp://", src_queue="a", dest_uri="amqp://", dest_queue="b")
        status, _ = await h.call("PUT", "/api/parameters/shovel/%2f/s1", {"value": v}, mon)
        assert status == 401
        assert (await h.call("GET", "/api/parameters/shovel", auth=mon))[0] == 401
        assert (await h.call("PUT", "/api/users/pm", {"password": "p",
                                                      "tags": "policymaker"}))[0] == 201
        pm = ("pm", "p")
        status, _ = await h.call("PUT", "/api/parameters/shovel/%2f/s1", {"value": v}, pm)
        assert status == 401  # no permissions in the vhost yet
        await h.call("PUT", "/api/permissions/%2f/pm", {"configure": ".*", "write": ".*",
                                                        "read": ".*"})
        status, _ = await h.call("PUT", "/api/parameters/shovel/%2f/s1", {"value": v}, pm)
        assert status == 201


# -- moving messages -----------------------------------------------------------------------


async def test_queue_to_queue_within_one_broker_with_forward_headers() -> None:
    async with broker() as b:
        h = http(b)
        await publish(b.url, "src", 100)
        v = value(src_uri="amqp://", src_queue="src", dest_uri="amqp://", dest_queue="dst",
                  dest_add_forward_headers=True, dest_add_timestamp_header=True,
                  dest_publish_properties={"app_id": "shovel"})
        assert (await h.call("PUT", "/api/parameters/shovel/%2f/s1", {"value": v}))[0] == 201
        got = await drain(b.url, "dst", 100)
        assert sorted(int(body) for _, body, _ in got) == list(range(100))
        props = got[0][2]
        assert props.app_id == "shovel" and props.delivery_mode == 2
        assert props.headers is not None
        assert props.headers["x-shovelled"] == [{
            "shovelled-by": b.node.cluster_name, "shovel-type": "dynamic",
            "shovel-name": "s1", "shovel-vhost": "/", "src-uri": "amqp://",
            "dest-uri": "amqp://", "src-queue": "src", "dest-queue": "dst"}]
        assert abs(props.headers["x-shovelled-timestamp"] - time.time()) < 60
        assert await count(b.url, "src") == 0


async def test_src_exchange_to_dest_exchange() -> None:
    async with broker() as b:
        h = http(b)
        async with await connect(b.url) as c:
            ch = await c.channel()
            await ch.exchange_declare("in", "topic")
            await ch.exchange_declare("out", "direct")
            await ch.queue_declare("sink", durable=True)
            await ch.queue_bind("sink", "out", "k2")
            v = value(src_uri="amqp://", src_exchange="in", src_exchange_key="a.#",
                      dest_uri="amqp://", dest_exchange="out", dest_exchange_key="k2")
            await h.call("PUT", "/api/parameters/shovel/%2f/x", {"value": v})

            async def running() -> bool:
                rows = (await h.call("GET", "/api/shovels"))[1]
                return bool(rows) and rows[0]["state"] == "running"
            await eventually(running)
            row = (await h.call("GET", "/api/shovels"))[1][0]
            assert (row["src_exchange"], row["src_exchange_key"], row["dest_exchange"],
                    row["dest_exchange_key"]) == ("in", "a.#", "out", "k2")
            ch.publish(b"yes", "in", "a.b")
            ch.publish(b"no", "in", "b.b")
        got = await drain(b.url, "sink", 1, timeout=5)
        assert [body for _, body, _ in got] == [b"yes"]


async def test_leveret_to_leveret_and_delete_after_queue_length() -> None:
    async with broker() as src, broker() as dst:
        await publish(src.url, "q", 1000)
        v = value(src_uri="amqp://", src_queue="q", dest_uri=dst.url, dest_queue="q2",
                  src_delete_after="queue-length", src_prefetch_count=50)
        status, _ = await http(src).call("PUT", "/api/parameters/shovel/%2f/once",
                                         {"value": v})
        assert status == 201

        async def gone() -> bool:
            return (await http(src).call("GET", "/api/parameters/shovel"))[1] == []
        await eventually(gone)
        assert await count(dst.url, "q2") == 1000
        assert await count(src.url, "q") == 0
        assert (await http(src).call("GET", "/api/shovels"))[1] == []
        # published after the shovel finished: stays
        await publish(src.url, "q", 5)
        await asyncio.sleep(0.3)
        assert await count(src.url, "q") == 5


async def test_reconnects_when_the_destination_comes_back(tmp_path: Path) -> None:
    port = _free_port()
    async with broker() as src:
        h = http(src)
        v = value(src_uri="amqp://", src_queue="q",
                  dest_uri=f"amqp://guest:guest@127.0.0.1:{port}", dest_queue="q",
                  reconnect_delay=0.2)
        await h.call("PUT", "/api/parameters/shovel/%2f/r", {"value": v})

        async def terminated() -> bool:
            rows = (await h.call("GET", "/api/shovels"))[1]
            return bool(rows) and rows[0]["state"] == "terminated" and bool(rows[0]["reason"])
        await eventually(terminated)
        await publish(src.url, "q", 10)
        dst = leveret.Broker(port=port)
        await dst.start()
        try:
            async def arrived() -> bool:
                return await count(dst.url, "q") == 10
            await eventually(arrived)
        finally:
            await dst.stop()


# -- durability ----------------------------------------------------------------------------


async def test_parameters_survive_a_restart_and_round_trip_definitions(tmp_path: Path
                                                                      ) -> None:
    v = value(src_uri="amqp://", src_queue="a", dest_uri="amqp://", dest_queue="b",
              ack_mode="on-publish")
    async with broker(data_dir=tmp_path / "d") as b:
        assert (await http(b).call("PUT", "/api/parameters/shovel/%2f/s1",
                                   {"value": v}))[0] == 201
    async with broker(data_dir=tmp_path / "d") as b:
        h = http(b)
        assert (await h.call("GET", "/api/parameters/shovel/%2f/s1"))[1]["value"] == v
        await publish(b.url, "a", 3)
        assert len(await drain(b.url, "b", 3, timeout=10)) == 3
        _, defs = await h.call("GET", "/api/definitions")
        assert defs["parameters"] == [{"value": v, "vhost": "/", "component": "shovel",
                                       "name": "s1"}]
        _, vdefs = await h.call("GET", "/api/definitions/%2f")
        assert vdefs["parameters"] == [{"value": v, "vhost": "/", "component": "shovel",
                                        "name": "s1"}]
    async with broker() as other:
        h = http(other)
        assert (await h.call("POST", "/api/definitions", defs))[0] in (200, 201, 204)
        assert (await h.call("GET", "/api/parameters/shovel"))[1] == [
            {"value": v, "vhost": "/", "component": "shovel", "name": "s1"}]
        bad = {"parameters": [{"value": {"src-uri": "amqp://"}, "vhost": "/",
                               "component": "shovel", "name": "bad"}]}
        status, body = await h.call("POST", "/api/definitions", bad)
        assert status == 400 and "Validation failed" in body["reason"]


# -- RabbitMQ ------------------------------------------------------------------------------


async def _reference() -> str:
    try:
        c = await connect(REFERENCE_URL, connect_timeout=2)
    except (TimeoutError, OSError) as exc:
        pytest.skip(f"reference RabbitMQ not reachable at {REFERENCE_URL}: {exc}")
    await c.close()
    return REFERENCE_URL


async def test_leveret_to_rabbitmq_and_back() -> None:
    ref = await _reference()
    tag = f"leveret-shovel-{os.getpid()}-{time.monotonic_ns()}"
    async with broker() as b:
        h = http(b)
        await publish(b.url, "out", 200)
        try:
            await h.call("PUT", "/api/parameters/shovel/%2f/to", {"value": value(
                src_uri="amqp://", src_queue="out", dest_uri=ref, dest_queue=tag,
                src_delete_after="queue-length")})
            await h.call("PUT", "/api/parameters/shovel/%2f/from", {"value": value(
                src_uri=ref, src_queue=tag, dest_uri="amqp://", dest_queue="back",
                dest_add_forward_headers=True)})
            got = await drain(b.url, "back", 200)
            assert sorted(int(body) for _, body, _ in got) == list(range(200))
            hdr = got[0][2].headers
            assert hdr is not None
            assert hdr["x-shovelled"][0]["src-uri"] == "amqp://guest@127.0.0.1:5673/" or \
                hdr["x-shovelled"][0]["src-uri"].startswith("amqp://127.0.0.1:5673")
        finally:
            await h.call("DELETE", "/api/parameters/shovel/%2f/from")
            await asyncio.sleep(0.2)
            async with await connect(ref) as c:
                ch = await c.channel()
                with contextlib.suppress(Exception):
                    await ch.queue_delete(tag)


# -- a destination killed mid-transfer -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, data: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(leveret.__file__).parent.parent)}
    p = subprocess.Popen([sys.executable, "-m", "leveret", "serve", "--port", str(port),
                          "--management-port", str(_free_port()), "--data-dir", str(data)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return p
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("the destination broker did not start")


async def test_kill_9_destination_mid_transfer_loses_nothing(tmp_path: Path) -> None:
    n = 10_000
    port = _free_port()
    dest_url = f"amqp://guest:guest@127.0.0.1:{port}/"
    proc = _serve(port, tmp_path / "dest")
    try:
        async with broker(data_dir=tmp_path / "src") as src:
            await publish(src.url, "q", n)
            async with await connect(dest_url) as c:
                await (await c.channel()).queue_declare("q", durable=True)
            await http(src).call("PUT", "/api/parameters/shovel/%2f/k", {"value": value(
                src_uri="amqp://", src_queue="q", dest_uri=dest_url, dest_queue="q",
                reconnect_delay=0.5, src_prefetch_count=200)})

            async def some() -> bool:
                return await count(dest_url, "q") >= 2000
            await eventually(some, 60)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            left = await count(src.url, "q")
            assert left > 0, "the transfer was over before the kill"
            await asyncio.sleep(0.5)
            proc = _serve(port, tmp_path / "dest")

            async def emptied() -> bool:
                return await count(src.url, "q") == 0
            await eventually(emptied, 90)
            got = await drain(dest_url, "q", n, timeout=60)
            ids = [int(body) for _, body, _ in got]
            assert set(ids) == set(range(n))  # none lost
            dupes = len(ids) - len(set(ids))
            assert dupes <= 200  # at most what was in flight (the prefetch) is repeated
            print(f"killed with {left} left at the source; {dupes} duplicates")
    finally:
        proc.kill()
        proc.wait()


def test_the_internal_user_logs_in_only_locally_with_the_process_secret() -> None:
    from leveret.broker.logins import Refused
    from leveret.broker.node import INTERNAL_USER, Node
    node = Node()
    assert isinstance(node.login(INTERNAL_USER, "guess", "127.0.0.1"), Refused)
    assert isinstance(node.login(INTERNAL_USER, node.internal_password, "10.0.0.1"), Refused)
    user = node.login(INTERNAL_USER, node.internal_password, "127.0.0.1")
    assert not isinstance(user, Refused) and user.name == INTERNAL_USER
    assert INTERNAL_USER not in node.users
    assert node.check_connection_allowed(INTERNAL_USER, "/") is None
    assert node.check_connection_allowed(INTERNAL_USER, "nosuch") is not None
