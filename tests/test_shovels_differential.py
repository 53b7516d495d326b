"""Differential tests of dynamic shovels: each scenario runs against leveret (an embedded
broker with the management API) and against RabbitMQ 3.10.8 with rabbitmq_shovel and
rabbitmq_shovel_management (the private ``plugin_rabbit`` node), and the observable results
are compared: the parameter API's status codes and bodies, /api/shovels's rows, restart and
delete, what arrives where with which properties and headers, and definitions export and
import both ways.

Every shovel moves messages within its own broker (``amqp:///<vhost>`` on both sides, a
vhost made for the test with the same name on both), so both brokers do the same thing.
Only what must differ is normalised: node and cluster names, status timestamps, the value
of ``x-shovelled-timestamp``. The differences docs/shovels.md documents are asserted as
such (``DIFFERENCES``, the unreachable destination's state, Erlang's line breaks and stack
traces in URI errors).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from rabbit_node import PluginRabbit

import leveret
from leveret.amqp import spec
from leveret.amqp.fields import TypedInt
from leveret.client import connect

GUEST = ("guest", "guest")


@dataclass
class Side:
    """One broker under test: its management API, AMQP port, names, and the test's vhost."""

    name: str  # "leveret" or "rabbitmq"
    http: str
    port: int
    vhost: str
    session: aiohttp.ClientSession
    node: str = ""
    cluster: str = ""

    async def call(self, method: str, path: str, body: Any = None,
                   auth: tuple[str, str] = GUEST) -> tuple[int, Any]:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        async with self.session.request(method, self.http + path, json=body,
                                        headers={"Authorization": f"Basic {token}"}) as r:
            text = await r.text()
            try:
                return r.status, (json.loads(text) if text else None)
            except ValueError:
                return r.status, text

    @property
    def v(self) -> str:
        return quote(self.vhost, safe="")

    def param(self, name: str) -> str:
        return f"/api/parameters/shovel/{self.v}/{name}"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/{self.v}"


Sides = tuple[Side, Side]


@pytest.fixture
async def sides(plugin_rabbit: PluginRabbit, request: pytest.FixtureRequest
                ) -> AsyncIterator[Sides]:
    """(leveret, rabbitmq), each with a fresh vhost of the same name, where guest has
    every permission."""
    vhost = f"sd-{request.node.name[5:25]}-{uuid.uuid4().hex[:6]}"
    b = leveret.Broker(port=0, management_port=0)
    await b.start()
    assert b.management_url is not None and b.port is not None
    async with aiohttp.ClientSession() as session:
        lev = Side("leveret", b.management_url.rstrip("/"), b.port, vhost, session)
        rab = Side("rabbitmq", plugin_rabbit.http, plugin_rabbit.port, vhost, session)
        try:
            for side in (lev, rab):
                assert (await side.call("PUT", f"/api/vhosts/{side.v}"))[0] in (201, 204)
                side.node = (await side.call("GET", "/api/overview"))[1]["node"]
                side.cluster = (await side.call("GET", "/api/cluster-name"))[1]["name"]
            yield lev, rab
        finally:
            await rab.call("DELETE", f"/api/vhosts/{rab.v}")
            await b.stop()


async def both(sides: Sides, fn: Callable[[Side], Awaitable[Any]]) -> tuple[Any, Any]:
    """``fn`` run against each side at once: (leveret's result, RabbitMQ's)."""
    lev, rab = await asyncio.gather(fn(sides[0]), fn(sides[1]))
    return lev, rab


async def same(sides: Sides, fn: Callable[[Side], Awaitable[Any]], what: str = "") -> Any:
    """Runs ``fn`` on both sides and asserts that the normalised results are equal."""
    lev, rab = await both(sides, fn)
    lev, rab = normalise(lev, sides[0]), normalise(rab, sides[1])
    assert lev == rab, f"{what}\nleveret:  {lev!r}\nrabbitmq: {rab!r}"
    return rab


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d{1,2}:\d\d:\d\d$")


def normalise(value: Any, side: Side) -> Any:
    """Node and cluster names, status timestamps and the brokers' own AMQP ports: the only
    things that must differ."""
    if isinstance(value, dict):
        return {k: normalise(v, side) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(normalise(v, side) for v in value)
    if isinstance(value, str):
        value = value.replace(f"127.0.0.1:{side.port}/", "127.0.0.1:<port>/")
        if value == side.node:
            return "<node>"
        if value == side.cluster:
            return "<cluster>"
        if TIMESTAMP.match(value):
            return "<timestamp>"
    return value


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(0.1)


def local(side: Side) -> str:
    return f"amqp:///{side.v}"


# -- AMQP helpers ---------------------------------------------------------------------------


async def declare(side: Side, *queues: str, bind: tuple[str, str, str] | None = None) -> None:
    async with await connect(side.url) as c:
        ch = await c.channel()
        for q in queues:
            await ch.queue_declare(q, durable=True)
        if bind is not None:
            await ch.queue_bind(*bind)


async def publish(side: Side, exchange: str, key: str, bodies: list[bytes],
                  props: spec.Properties | None = None) -> None:
    async with await connect(side.url) as c:
        ch = await c.channel()
        await ch.confirm_select()
        for body in bodies:
            ch.publish(body, exchange, key, props or spec.Properties(delivery_mode=2))
        await ch.wait_for_confirms()


async def count(side: Side, queue: str) -> int:
    async with await connect(side.url) as c:
        ch = await c.channel()
        try:
            return int((await ch.queue_declare(queue, passive=True)).message_count)
        except Exception:
            return -1


def typed(value: Any) -> Any:
    """A header value with its AMQP field type, so types are compared too."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, TypedInt):
        return (value.type_name, int(value))
    return (type(value).__name__, value)


PROPERTY_NAMES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                  "type", "user_id", "app_id", "cluster_id")


async def drain(side: Side, queue: str, expect: int, timeout: float = 30
                ) -> list[dict[str, Any]]:
    """The messages in ``queue`` (consumed and acked): body, exchange, routing key and every
    property, headers with their field types."""
    got: list[dict[str, Any]] = []
    async with await connect(side.url) as c:
        ch = await c.channel()
        await ch.queue_declare(queue, durable=True)  # the shovel may not have yet
        enough = asyncio.get_running_loop().create_future()

        def on(tag: int, red: bool, ex: str, key: str, raw: bytes, body: bytes) -> None:
            props = spec.Properties.decode(raw) if raw else spec.Properties()
            row: dict[str, Any] = {"body": body, "exchange": ex, "routing_key": key,
                                   "redelivered": red}
            for name in PROPERTY_NAMES:
                value = getattr(props, name)
                row[name] = typed(value) if name == "headers" and value is not None else value
            got.append(row)
            ch.ack(tag)
            if len(got) >= expect and not enough.done():
                enough.set_result(None)

        await ch.basic_consume(queue, on)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(enough, timeout)
        await asyncio.sleep(0.3)  # anything beyond what was expected shows up too
    return got


# -- PUT/GET/DELETE of valid definitions ----------------------------------------------------

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1"

# each valid definition (RabbitMQ's keys and value forms); "{local}" is the test's vhost on
# the broker itself, "{unreachable}" a broker nobody listens for (so that a definition that
# would finish at once, like delete-after queue-length, stays to be read back)
VALID: list[dict[str, Any]] = [
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b"},
    {"src-uri": ["{local}", "{local}"], "src-queue": "a", "dest-uri": ["{local}"],
     "dest-queue": "b"},
    {"src-uri": [], "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b"},
    {"src-uri": "AMQP:///{v}", "src-queue": "a", "dest-uri": "{local}"},
    {"src-uri": "{unreachable}/x?heartbeat=10&frame_max=8192", "src-queue": "a",
     "dest-uri": "amqps://u:p@[::1]:5671/v?verify=verify_none&depth=2&x", "dest-queue": "b"},
    {"src-uri": "{local}", "src-exchange": "amq.topic", "src-exchange-key": "a.#",
     "dest-uri": "{local}", "dest-exchange": "amq.direct", "dest-exchange-key": "k"},
    {"src-uri": "{local}", "src-exchange": "amq.fanout", "dest-uri": "{local}",
     "dest-exchange": "amq.direct"},
    {"src-uri": "{local}", "src-exchange": "amq.fanout", "dest-uri": "{local}",
     "dest-exchange-key": "k"},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "src-prefetch-count": 10, "reconnect-delay": 1.5, "ack-mode": "on-publish"},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "prefetch-count": 5, "ack-mode": "no-ack", "reconnect-delay": 0},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "src-prefetch-count": -1, "ack-mode": "on-confirm"},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "src-delete-after": "never"},
    {"src-uri": "{unreachable}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "src-delete-after": "queue-length"},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "src-delete-after": 5},
    {"src-uri": "{unreachable}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "delete-after": 0},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "dest-add-forward-headers": True, "dest-add-timestamp-header": False},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "add-forward-headers": False, "add-timestamp-header": True},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "dest-publish-properties": {
         "content_type": "t", "content_encoding": "e", "delivery_mode": 2, "priority": 1,
         "correlation_id": "c", "reply_to": "r", "expiration": "60000", "message_id": "m",
         "timestamp": 1, "type": "t", "user_id": "guest", "app_id": "a",
         "cluster_id": "c"}},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "publish-properties": {"app_id": "legacy"}},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "dest-publish-properties": []},
    {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b",
     "src-queue-args": {"x-message-ttl": 60000}, "dest-queue-args": {"x-max-length": 10},
     "src-consumer-args": {"x-priority": 5}},
    {"src-protocol": "amqp091", "src-uri": "{local}", "src-queue": "a",
     "dest-protocol": "amqp091", "dest-uri": "amqp:///%2f", "dest-queue": "b"},
    # RabbitMQ's reading: a signed port, a signed escape, an unclosed [ (hosts that fail later)
    {"src-uri": "amqp://127.0.0.1:+1/%+1", "src-queue": "a",
     "dest-uri": "amqp://[nowhere.invalid", "dest-queue": "b"},
]


def fill(value: Any, side: Side) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, side) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, side) for v in value]
    if isinstance(value, str):
        return (value.replace("{local}", local(side)).replace("{v}", side.v)
                .replace("{unreachable}", UNREACHABLE))
    return value


async def test_put_get_delete_of_valid_definitions(sides: Sides) -> None:
    for i, definition in enumerate(VALID):
        name = f"s{i}"

        async def crud(side: Side, definition: dict[str, Any] = definition,
                       name: str = name) -> list[Any]:
            value = fill(definition, side)
            p = side.param(name)
            steps = [await side.call("PUT", p, {"value": value}),
                     await side.call("PUT", p, {"value": value}),
                     await side.call("GET", p)]
            listed = (await side.call("GET", f"/api/parameters/shovel/{side.v}"))[1]
            steps.append([row for row in listed if row["name"] == name])
            steps += [await side.call("DELETE", p), await side.call("DELETE", p),
                      await side.call("GET", p)]
            return steps

        steps = await same(sides, crud, f"definition {definition}")
        assert [s[0] for s in steps[:3]] == [201, 204, 200], steps


async def test_parameter_api_refusals(sides: Sides) -> None:
    """No value, an unknown vhost, unknown parameters."""
    async def calls(side: Side) -> list[Any]:
        v = {"src-uri": local(side), "src-queue": "a", "dest-uri": local(side)}
        return [await side.call("PUT", side.param("s"), {"src-uri": "x"}),
                await side.call("PUT", side.param("s"), {}),
                await side.call("PUT", "/api/parameters/shovel/nosuch/s", {"value": v}),
                await side.call("GET", "/api/parameters/shovel/nosuch"),
                await side.call("GET", "/api/parameters/shovel/nosuch/s"),
                await side.call("GET", side.param("nope")),
                await side.call("DELETE", side.param("nope"))]
    await same(sides, calls)


# -- invalid definitions --------------------------------------------------------------------

BASE = {"src-uri": "{local}", "src-queue": "a", "dest-uri": "{local}", "dest-queue": "b"}


def changed(keys: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """BASE with ``keys`` set and ``drop`` removed."""
    return {k: v for k, v in {**BASE, **keys}.items() if k not in drop}


# (what is wrong, the value)
INVALID: list[tuple[str, Any]] = [
    ("empty", {}),
    ("no source", {"src-uri": "{local}", "dest-uri": "{local}"}),
    ("no uris", {"src-queue": "a"}),
    ("both sources", {**BASE, "src-exchange": "x"}),
    ("both destinations", {**BASE, "dest-exchange": "x"}),
    ("uri a number", changed({"src-uri": 5})),
    ("uri list with a number", changed({"dest-uri": ["{local}", 5]})),
    ("uri list with a bad scheme", changed({"src-uri": ["{local}", "foo://x"]})),
    ("bad scheme", changed({"src-uri": "http://x"})),
    ("no scheme", changed({"src-uri": "foo"})),
    ("empty uri", changed({"dest-uri": ""})),
    ("port zero", changed({"src-uri": "amqp://h:0"})),
    ("port too big", changed({"src-uri": "amqp://h:70000"})),
    ("port without host", changed({"src-uri": "amqp://:5672"})),
    ("vhost with a slash", changed({"src-uri": "amqp:///a/b"})),
    ("bad escape", changed({"src-uri": "amqp://%zz"})),
    ("cut escape", changed({"src-uri": "amqp://h%4"})),
    ("lone percent", changed({"src-uri": "amqp://h%"})),
    ("no slashes", changed({"src-uri": "amqp:foo"})),
    ("heartbeat not a number", changed({"src-uri": "amqp://h/v?heartbeat=x"})),
    ("second query key bad", changed({"src-uri": "amqp://h?heartbeat=5&frame_max=x"})),
    ("username in the query", changed({"src-uri": "amqp://h?username=x"})),
    ("tls depth", changed({"dest-uri": "amqps://h?verify=verify_none&depth=x"})),
    ("tls boolean", changed({"dest-uri": "amqps://h?fail_if_no_peer_cert=maybe"})),
    ("ipv6 junk after the bracket", changed({"src-uri": "amqp://[::1]x"})),
    ("port not a number", changed({"src-uri": "amqp://h:notaport"})),
    ("empty port", changed({"src-uri": "amqp://h:"})),
    ("ipv6 port not a number", changed({"src-uri": "amqp://[::1]:x"})),
    ("vhost that is not there", changed({"dest-uri": "amqp:///nosuch"})),
    ("the empty vhost", changed({"src-uri": ["{local}", "amqp:///"]})),
    # how ~p prints the URI's bytes: latin-1 as it is, escapes, or a list of integers
    ("non-ASCII in a term", changed({"src-uri": "amqp://h/a/é"})),
    ("a byte ~p does not print", changed({"src-uri": "amqp://h/Ā/x"})),
    ("escapes in a term", changed({"src-uri": 'amqp://h?heartbeat=a\n\t\x1b"\\b'})),
    ("a reserved word as an atom", changed({"src-uri": "amqp://h?auth_mechanism=a:and:c"})),
    ("a bad escape in the user", changed({"src-uri": "amqp://u%zz@h"})),
    ("a negative escape in the vhost", changed({"src-uri": "amqp:///%-1"})),
    ("ipv6 port after junk", changed({"src-uri": "amqp://[::1]x:5/a/b"})),
    ("a bare key, then a bad value", changed({"src-uri": "amqp://h?heartbeat&heartbeat=x"})),
    ("amqps without a host: its tls options", changed({"dest-uri": "amqps:///v?depth=x"})),
    ("rabbitmq's reason before leveret's", changed(
        {"dest-uri": "amqps://h?verify=sometimes&auth_mechanism=bogus&heartbeat=x"})),
    ("unknown ack-mode", changed({"ack-mode": "bad"})),
    ("ack-mode a number", changed({"ack-mode": 1})),
    ("ack-mode null", changed({"ack-mode": None})),
    ("prefetch a string", changed({"src-prefetch-count": "x"})),
    ("prefetch a boolean", changed({"src-prefetch-count": True})),
    ("legacy prefetch a string", changed({"prefetch-count": "x"})),
    ("negative delete-after", changed({"src-delete-after": -1})),
    ("fractional delete-after", changed({"src-delete-after": 1.5})),
    ("unknown delete-after", changed({"src-delete-after": "x"})),
    ("boolean delete-after", changed({"src-delete-after": True})),
    ("no-ack with a count", changed({"src-delete-after": 3, "ack-mode": "no-ack"})),
    ("no-ack with a legacy count", changed({"delete-after": 0, "ack-mode": "no-ack"})),
    ("reconnect-delay a string", changed({"reconnect-delay": "x"})),
    ("forward headers a string", changed({"dest-add-forward-headers": "yes"})),
    ("timestamp header a number", changed({"dest-add-timestamp-header": 1})),
    ("legacy forward headers", changed({"add-forward-headers": "no"})),
    ("unknown property", changed({"dest-publish-properties": {"bogus": 1}})),
    ("property of the wrong type",
     changed({"dest-publish-properties": {"delivery_mode": "x"}})),
    ("string property a number", changed({"dest-publish-properties": {"app_id": 1}})),
    ("headers as a property", changed({"dest-publish-properties": {"headers": {"a": 1}}})),
    ("several property problems", changed({"publish-properties": {
        "delivery_mode": "2", "bogus": 1, "app_id": 5}})),
    ("properties a list", changed({"dest-publish-properties": [1]})),
    ("properties a string", changed({"dest-publish-properties": "x"})),
    ("queue a number", changed({"src-queue": 1})),
    ("destination queue too long", changed({"dest-queue": "q" * 256})),
    ("destination key a number", changed({"dest-exchange-key": 1}, ("dest-queue",))),
    ("unknown queue argument", changed({"src-queue-args": {"x-bogus": 1}})),
    ("queue arguments a list", changed({"dest-queue-args": [1]})),
    ("unknown consumer argument", changed({"src-consumer-args": {"x-bogus": 1}})),
    ("unknown keys, listed in order", changed({"z-unknown": 1, "a-unknown": "x"})),
    ("a list", [1, 2]),
]


def one_line(reason: str) -> str:
    """Erlang's pretty-printer breaks long terms over lines: leveret prints them on one."""
    return re.sub(r"\n +", "", reason)


EXIT = "{'EXIT',{badarg,[{erlang,list_to_integer,["


def short_exit(reason: str) -> str:
    """RabbitMQ prints the stack trace of a port list_to_integer could not read; leveret
    prints ``{'EXIT',{badarg,Port}}``."""
    start = reason.find(EXIT)
    if start < 0:
        return reason
    arg_start = start + len(EXIT)
    arg = reason[arg_start:reason.index("],[{error_info", arg_start)]
    depth, i = 0, start
    while True:
        depth += {"{": 1, "}": -1}.get(reason[i], 0)
        i += 1
        if depth == 0:
            break
    return reason[:start] + "{'EXIT',{badarg," + arg + "}}" + reason[i:]


async def test_invalid_definitions(sides: Sides) -> None:
    for what, change in INVALID:
        async def put(side: Side, change: Any = change) -> tuple[int, Any]:
            status, body = await side.call("PUT", side.param("bad"),
                                           {"value": fill(change, side)})
            if isinstance(body, dict) and isinstance(body.get("reason"), str):
                body["reason"] = short_exit(one_line(body["reason"]))
            return status, body

        status, _ = await same(sides, put, what)
        assert status == 400, (what, status)


# Where RabbitMQ 3.10.8 crashes (HTTP 500, no body) leveret answers 400 with a validation
# message; amqp10 shovels are refused (docs/shovels.md, "Differences from RabbitMQ").
DIFFERENCES: list[tuple[dict[str, Any] | str, int, str]] = [
    ("x", 500, 'Validation failed\n\nbad not a list &lt;&lt;"x"&gt;&gt;\n'),
    ({**BASE, "src-queue-args": 1}, 500,
     "Validation failed\n\nsrc-queue-args not a list 1\n"),
    ({**BASE, "src-protocol": "x"}, 500,
     'Validation failed\n\nsrc-protocol should be one of [&lt;&lt;"amqp10"&gt;&gt;,'
     '&lt;&lt;"amqp091"&gt;&gt;], actually was &lt;&lt;"x"&gt;&gt;\n'),
    ({**BASE, "src-protocol": "amqp10"}, 400,
     "Validation failed\n\nsrc-protocol amqp10 is not supported: leveret's shovels speak "
     "AMQP 0-9-1 only (amqp091)\n"),
]


async def test_documented_validation_differences(sides: Sides) -> None:
    for value, rabbit_status, leveret_reason in DIFFERENCES:
        async def put(side: Side, value: Any = value) -> tuple[int, Any]:
            return await side.call("PUT", side.param("bad"), {"value": fill(value, side)})

        (lev_status, lev_body), (rab_status, _) = await both(sides, put)
        assert rab_status == rabbit_status, value
        assert (lev_status, lev_body) == (400, {"error": "bad_request",
                                                "reason": leveret_reason}), value


# -- authorization ----------------------------------------------------------------------------


async def test_authorization(sides: Sides) -> None:
    """A monitoring user, a policymaker without permissions, a user without tags: the
    parameters need policymaker and permissions; the status needs monitoring."""
    tag = sides[0].vhost
    users = {"mon": "monitoring", "pm": "policymaker", "plain": "", "pmv": "policymaker"}

    async def calls(side: Side) -> list[Any]:
        for user, tags in users.items():
            await side.call("PUT", f"/api/users/{tag}-{user}", {"password": "p", "tags": tags})
            if user != "pm":
                await side.call("PUT", f"/api/permissions/{side.v}/{tag}-{user}",
                                {"configure": ".*", "write": ".*", "read": ".*"})
        try:
            v = {"src-uri": local(side), "src-queue": "a", "dest-uri": local(side),
                 "dest-queue": "b"}
            await side.call("PUT", side.param("s"), {"value": v})

            def as_(user: str) -> tuple[str, str]:
                return (f"{tag}-{user}", "p")
            out = [await side.call("PUT", side.param("m"), {"value": v}, as_("mon")),
                   await side.call("GET", "/api/parameters/shovel", auth=as_("mon")),
                   await side.call("GET", side.param("s"), auth=as_("mon")),
                   await side.call("PUT", side.param("p"), {"value": v}, as_("pm")),
                   await side.call("GET", side.param("s"), auth=as_("pm")),
                   await side.call("PUT", side.param("p"), {"value": v}, as_("pmv")),
                   await side.call("GET", side.param("p"), auth=as_("pmv")),
                   await side.call("GET", f"/api/shovels/{side.v}", auth=as_("plain")),
                   await side.call("GET", "/api/shovels", auth=as_("pmv")),
                   await side.call("DELETE", side.param("p"), auth=as_("pmv"))]
            rows = (await side.call("GET", f"/api/shovels/{side.v}", auth=as_("mon")))
            out.append((rows[0], sorted(r["name"] for r in rows[1])))
            return out
        finally:
            for user in users:
                await side.call("DELETE", f"/api/users/{tag}-{user}")

    await same(sides, calls)


# -- /api/shovels ---------------------------------------------------------------------------


async def rows(side: Side, path: str = "") -> list[dict[str, Any]]:
    status, body = await side.call("GET", path or f"/api/shovels/{side.v}")
    assert status == 200, (side.name, status, body)
    return sorted((r for r in body if r["vhost"] == side.vhost), key=lambda r: r["name"])


async def states(side: Side) -> dict[str, str]:
    return {r["name"]: r["state"] for r in await rows(side)}


async def test_status_rows_restart_and_delete(sides: Sides) -> None:
    async def setup(side: Side) -> list[Any]:
        await declare(side, "in", "out")
        defs = {
            "qq": {"src-uri": local(side), "src-queue": "in", "dest-uri": local(side),
                   "dest-queue": "out"},
            "xx": {"src-uri": [local(side)], "src-exchange": "amq.topic",
                   "src-exchange-key": "a.#", "dest-uri": local(side),
                   "dest-exchange": "amq.direct", "dest-exchange-key": "k"},
            "x-only": {"src-uri": local(side), "src-exchange": "amq.fanout",
                       "dest-uri": "amqp://guest:guest@127.0.0.1:"
                                   f"{side.port}/{side.v}?heartbeat=30",
                       "dest-exchange": "amq.direct"},
            # the source exchange is missing: the broker closes the shovel's channel
            "missing": {"src-uri": local(side), "src-exchange": "nosuch",
                        "dest-uri": local(side), "dest-queue": "out", "reconnect-delay": 0}}
        return [await side.call("PUT", side.param(n), {"value": v}) for n, v in defs.items()]

    await same(sides, setup)

    async def settled(side: Side) -> bool:
        return await states(side) == {"qq": "running", "xx": "running", "x-only": "running",
                                      "missing": "terminated"}
    await both(sides, lambda side: eventually(lambda: settled(side), what="states"))

    async def listings(side: Side) -> list[Any]:
        return [await rows(side), await rows(side, "/api/shovels"),
                await rows(side, f"/api/shovels/vhost/{side.v}/qq"),
                await side.call("GET", "/api/shovels/nosuch"),
                await side.call("GET", f"/api/shovels/vhost/{side.v}/nope")]
    listed = await same(sides, listings)
    by_name = {r["name"]: r for r in listed[0]}
    assert by_name["missing"]["reason"] == '"needed a restart"'
    assert by_name["x-only"]["dest_uri"] == (
        f"amqp://127.0.0.1:<port>/{sides[1].v}")  # no credentials, no query

    async def restart_and_delete(side: Side) -> list[Any]:
        out = [await side.call("DELETE", f"/api/shovels/vhost/{side.v}/qq/restart"),
               await side.call("DELETE", f"/api/shovels/vhost/{side.v}/nope/restart"),
               await side.call("DELETE", "/api/shovels/vhost/nosuch/qq/restart"),
               await side.call("DELETE", f"/api/shovels/vhost/{side.v}/xx"),
               await side.call("DELETE", f"/api/shovels/vhost/{side.v}/xx"),
               await side.call("GET", side.param("xx"))]
        await eventually(lambda: _running(side, "qq"), what="qq running after the restart")
        return [*out, sorted(await states(side))]
    await same(sides, restart_and_delete)


async def _running(side: Side, name: str) -> bool:
    return (await states(side)).get(name) == "running"


async def test_unreachable_destination_is_a_documented_difference(sides: Sides) -> None:
    """RabbitMQ 3.10.8 leaves a shovel that cannot connect "starting" (and only logs why);
    leveret shows it terminated with the reason (docs/shovels.md)."""
    async def put(side: Side) -> tuple[int, Any]:
        return await side.call("PUT", side.param("down"), {"value": {
            "src-uri": local(side), "src-queue": "in", "dest-uri": UNREACHABLE,
            "dest-queue": "out", "reconnect-delay": 0}})
    await same(sides, put)
    lev, rab = sides

    async def terminated() -> bool:
        return (await states(lev)).get("down") == "terminated"
    await eventually(terminated)
    await asyncio.sleep(1)
    lev_row, rab_row = (await rows(lev))[0], (await rows(rab))[0]
    assert rab_row["state"] == "starting" and "reason" not in rab_row
    assert lev_row["state"] == "terminated" and "111" in lev_row["reason"]  # ECONNREFUSED
    assert set(lev_row) - {"reason"} == set(rab_row)


# -- what arrives where ---------------------------------------------------------------------


async def test_queue_to_queue_with_forward_headers_timestamp_and_properties(sides: Sides
                                                                            ) -> None:
    props = spec.Properties(
        content_type="text/plain", content_encoding="gzip", delivery_mode=2, priority=3,
        correlation_id="corr", reply_to="back", expiration="600000", message_id="id-1",
        timestamp=1_700_000_000, type="kind", user_id="guest", app_id="origin",
        headers={"h": "v", "n": 7, "x-shovelled": [{"earlier": "hop"}]})

    async def run(side: Side) -> list[Any]:
        await declare(side, "src", "plain-src")
        await publish(side, "", "src", [b"one", b"two"], props)
        await publish(side, "", "plain-src", [b"three"], props)
        statuses = [await side.call("PUT", side.param("fwd"), {"value": {
            "src-uri": local(side), "src-queue": "src", "dest-uri": local(side),
            "dest-queue": "dst", "dest-add-forward-headers": True,
            "dest-add-timestamp-header": True,
            "dest-publish-properties": {"app_id": "shovel", "delivery_mode": 1,
                                        "priority": 0}}}),
            await side.call("PUT", side.param("plain"), {"value": {
                "src-uri": [local(side)], "src-queue": "plain-src",
                "dest-uri": local(side), "dest-queue": "plain-dst"}})]
        got = await drain(side, "dst", 2)
        plain = await drain(side, "plain-dst", 1)
        for message in got:
            stamp = message["headers"]["x-shovelled-timestamp"]
            assert stamp[0] == "long" and abs(stamp[1] - time.time()) < 300, stamp
            message["headers"]["x-shovelled-timestamp"] = ("long", "<now>")
        return [statuses, got, plain, await count(side, "src")]

    result = await same(sides, run)
    headers = result[1][0]["headers"]
    assert list(headers) == ["h", "n", "x-shovelled", "x-shovelled-timestamp"]
    assert headers["x-shovelled"][0] == {
        "shovelled-by": ("str", "<cluster>"), "shovel-type": ("str", "dynamic"),
        "shovel-name": ("str", "fwd"), "shovel-vhost": ("str", sides[1].vhost),
        "src-uri": ("str", local(sides[1])), "dest-uri": ("str", local(sides[1])),
        "src-queue": ("str", "src"), "dest-queue": ("str", "dst")}
    assert result[1][0]["app_id"] == "shovel" and result[2][0]["app_id"] == "origin"


async def test_exchange_to_exchange_with_and_without_keys(sides: Sides) -> None:
    async def run(side: Side) -> list[Any]:
        await declare(side, "sink1", bind=("sink1", "amq.direct", "k"))
        await declare(side, "sink2", bind=("sink2", "amq.topic", "in2"))
        out = [await side.call("PUT", side.param("x1"), {"value": {
            "src-uri": local(side), "src-exchange": "amq.topic", "src-exchange-key": "a.#",
            "dest-uri": local(side), "dest-exchange": "amq.direct",
            "dest-exchange-key": "k", "dest-add-forward-headers": True}}),
            await side.call("PUT", side.param("x2"), {"value": {
                "src-uri": local(side), "src-exchange": "amq.direct",
                "src-exchange-key": "in2", "dest-uri": local(side),
                "dest-exchange": "amq.topic"}})]

        async def running() -> bool:
            return await states(side) == {"x1": "running", "x2": "running"}
        await eventually(running)
        await publish(side, "amq.topic", "a.b", [b"yes"])
        await publish(side, "amq.topic", "b.b", [b"no"])
        await publish(side, "amq.direct", "in2", [b"kept key"])
        return [out, await drain(side, "sink1", 1, 10), await drain(side, "sink2", 1, 10)]

    result = await same(sides, run)
    assert [m["body"] for m in result[1]] == [b"yes"]
    assert (result[2][0]["exchange"], result[2][0]["routing_key"]) == ("amq.topic", "in2")
    assert result[1][0]["headers"]["x-shovelled"][0]["src-exchange-key"] == ("str", "a.#")


async def test_delete_after_moves_exactly_n_then_goes(sides: Sides) -> None:
    async def run(side: Side) -> list[Any]:
        await declare(side, "ten", "all")
        await publish(side, "", "ten", [str(i).encode() for i in range(10)])
        await publish(side, "", "all", [b"a", b"b", b"c"])
        out = [await side.call("PUT", side.param("four"), {"value": {
            "src-uri": local(side), "src-queue": "ten", "dest-uri": local(side),
            "dest-queue": "got-four", "src-delete-after": 4, "src-prefetch-count": 2}}),
            await side.call("PUT", side.param("length"), {"value": {
                "src-uri": local(side), "src-queue": "all", "dest-uri": local(side),
                "dest-queue": "got-all", "src-delete-after": "queue-length"}})]

        async def gone() -> bool:
            return (await side.call("GET", f"/api/parameters/shovel/{side.v}"))[1] == []
        await eventually(gone, what="the delete-after shovels' parameters gone")
        await asyncio.sleep(0.5)
        return [out, await rows(side), await count(side, "ten"),
                sorted(m["body"] for m in await drain(side, "got-four", 4, 10)),
                await count(side, "all"), await count(side, "got-all")]

    result = await same(sides, run)
    assert result[1:] == [[], 6, [b"0", b"1", b"2", b"3"], 0, 3]


async def test_every_ack_mode_moves_everything(sides: Sides) -> None:
    async def run(side: Side) -> list[Any]:
        for mode in ("on-confirm", "on-publish", "no-ack"):
            await declare(side, f"from-{mode}")
            await publish(side, "", f"from-{mode}", [b"m"] * 50)
            await side.call("PUT", side.param(mode), {"value": {
                "src-uri": local(side), "src-queue": f"from-{mode}", "dest-uri": local(side),
                "dest-queue": f"to-{mode}", "ack-mode": mode, "src-prefetch-count": 7}})

        async def moved() -> bool:
            return all([await count(side, f"to-{m}") == 50
                        for m in ("on-confirm", "on-publish", "no-ack")])
        await eventually(moved, what="50 messages moved in each ack mode")
        return [[await count(side, f"from-{m}") for m in ("on-confirm", "on-publish",
                                                         "no-ack")], await states(side)]

    assert await same(sides, run) == [[0, 0, 0], {"no-ack": "running",
                                                  "on-confirm": "running",
                                                  "on-publish": "running"}]


# -- definitions ----------------------------------------------------------------------------


async def test_definitions_export_and_import_both_ways(sides: Sides) -> None:
    lev, rab = sides
    value = {"src-uri": ["{local}", "{unreachable}"], "src-queue": "a",
             "dest-uri": "{unreachable}", "dest-exchange": "x", "dest-exchange-key": "k",
             "src-delete-after": "queue-length", "ack-mode": "on-publish",
             "dest-add-forward-headers": True, "dest-publish-properties": {"app_id": "a"},
             "reconnect-delay": 30, "src-prefetch-count": 20}

    async def export(side: Side) -> list[Any]:
        await side.call("PUT", side.param("exported"), {"value": fill(value, side)})
        everything = (await side.call("GET", "/api/definitions"))[1]["parameters"]
        mine = (await side.call("GET", f"/api/definitions/{side.v}"))[1]["parameters"]
        return [[p for p in everything if p["vhost"] == side.vhost], mine]
    exported = await same(sides, export)
    assert exported[0] == exported[1] == [
        {"value": fill(value, rab), "vhost": rab.vhost, "component": "shovel",
         "name": "exported"}]

    # each broker's export imported into the other
    (lev_export, rab_export) = await both(sides, export)

    def renamed(entries: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
        return [{**e, "name": name} for e in entries[0]]

    async def cross(side: Side) -> list[Any]:
        other = rab_export if side is lev else lev_export
        status = (await side.call("POST", "/api/definitions",
                                  {"parameters": renamed(other, "imported")}))[0]
        return [status, await side.call("GET", side.param("imported"))]
    result = await same(sides, cross)
    assert result[1][1]["value"] == fill(value, rab)

    async def bad_import(side: Side) -> tuple[int, Any]:
        return (await side.call("POST", "/api/definitions", {"parameters": [{
            "value": {"src-uri": local(side)}, "vhost": side.vhost, "component": "shovel",
            "name": "bad"}]}))[0], (await side.call("GET", side.param("bad")))[0]
    assert await same(sides, bad_import) == (400, 404)
