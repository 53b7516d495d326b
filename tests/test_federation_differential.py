"""Federation, differential: the same upstream, upstream-set and policy definitions applied
to leveret and to a private RabbitMQ 3.10 node with the federation plugins
(``plugin_rabbit``), compared: status codes and error bodies of the parameter API, the
shapes of parameters and /api/federation-links, what a link builds on its upstream
(names, types, arguments, bindings), and what arrives where, with which headers.

Each scenario runs with RabbitMQ on both ends (two vhosts of the one node) as the
reference, then leveret -> RabbitMQ, RabbitMQ -> leveret and leveret -> leveret, and the
results must be the same once cluster names and ports are replaced by placeholders.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from leveret.amqp import spec
from leveret.amqp.fields import TypedInt
from leveret.client import connect
from tests.rabbit_node import PluginRabbit
from tests.test_shovels import Http, broker, eventually

UP, DOWN = "fed-up", "fed-down"  # the vhosts of the upstream and the downstream
CLUSTER, PORT = "<cluster>", "<port>"


@dataclass
class Side:
    """One broker as the scenarios use it: management API, AMQP port, cluster name."""

    label: str
    http: Http
    port: int
    cluster: str

    def url(self, vhost: str, credentials: bool = True) -> str:
        auth = "guest:guest@" if credentials else ""
        return f"amqp://{auth}127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.http.call(method, path, body)
        assert status in (200, 201, 204), (self.label, method, path, status, answer)
        return answer

    async def vhost(self, name: str) -> None:
        await self.ok("PUT", f"/api/vhosts/{quote(name, safe='')}", {})
        await self.ok("PUT", f"/api/permissions/{quote(name, safe='')}/guest",
                      {"configure": ".*", "write": ".*", "read": ".*"})

    async def drop_vhosts(self, *names: str) -> None:
        for name in names:
            await self.http.call("DELETE", f"/api/vhosts/{quote(name, safe='')}")


@pytest.fixture
def rabbit(plugin_rabbit: PluginRabbit) -> PluginRabbit:
    return plugin_rabbit


async def rabbit_side(node: PluginRabbit) -> Side:
    h = Http(node.http)
    _, body = await h.call("GET", "/api/cluster-name")
    return Side("rabbit", h, node.port, body["name"])


@contextlib.asynccontextmanager
async def leveret_side(label: str = "leveret") -> AsyncIterator[Side]:
    async with broker() as b:
        assert b.management_url is not None and b.port is not None
        yield Side(label, Http(b.management_url), b.port, b.node.cluster_name)


Scenario = Callable[[Side, Side], Awaitable[dict[str, Any]]]


async def across(node: PluginRabbit, scenario: Scenario, vhosts: tuple[str, str] = (UP, DOWN)
                 ) -> dict[str, dict[str, Any]]:
    """The scenario with (upstream, downstream) = RabbitMQ/RabbitMQ, leveret/RabbitMQ,
    RabbitMQ/leveret, leveret/leveret; the RabbitMQ vhosts are removed after each."""
    rabbit = await rabbit_side(node)
    results: dict[str, dict[str, Any]] = {}
    try:
        results["rabbit->rabbit"] = await scenario(rabbit, rabbit)
        await rabbit.drop_vhosts(*vhosts)
        async with leveret_side() as lev:
            results["leveret->rabbit"] = await scenario(lev, rabbit)
            await rabbit.drop_vhosts(*vhosts)
        async with leveret_side() as lev:
            results["rabbit->leveret"] = await scenario(rabbit, lev)
            await lev.drop_vhosts(*vhosts)  # the links stop before RabbitMQ's vhost goes
        await rabbit.drop_vhosts(*vhosts)
        async with leveret_side("up") as up, leveret_side("down") as down:
            results["leveret->leveret"] = await scenario(up, down)
    finally:
        await rabbit.drop_vhosts(*vhosts)
    return results


def same_everywhere(results: dict[str, dict[str, Any]]) -> None:
    reference = results["rabbit->rabbit"]
    for name, got in results.items():
        for key in reference:
            assert got[key] == reference[key], f"{name}: {key}"


def normal(value: Any, *clusters: str) -> Any:
    """Comparable across brokers: cluster names and ports replaced, field types kept."""
    if isinstance(value, dict):
        return {normal(k, *clusters): normal(v, *clusters) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v, *clusters) for v in value]
    if isinstance(value, TypedInt):
        return f"{value.type_name}:{int(value)}"
    if isinstance(value, str):
        for c in clusters:
            value = value.replace(c, CLUSTER)
        return re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{PORT}", value)
    return value


async def links(side: Side, vhost: str, n: int = 1, status: str = "running",
                channel: bool = False) -> list[dict[str, Any]]:
    """The vhost's link rows once there are ``n`` in ``status``; with ``channel``, once
    they show their ``local_channel`` too (RabbitMQ's only does once the channel's first
    statistics are in, a few seconds after the link started)."""
    rows: list[dict[str, Any]] = []

    async def ready() -> bool:
        nonlocal rows
        rows = (await side.http.call("GET", f"/api/federation-links/{quote(vhost, safe='')}"
                                     ))[1] or []
        return len(rows) == n and all(r["status"] == status for r in rows) and (
            not channel or all("local_channel" in r for r in rows))
    await eventually(ready, 30)
    return rows


def link_shape(row: dict[str, Any], up: Side, down: Side, channel: bool = False
               ) -> dict[str, Any]:
    """What must be the same in a link's row: the keys in order, the values that do not
    depend on the broker, and the forms of the others; with ``channel``, the keys of
    ``local_channel`` (see links)."""
    keys = [k for k in row if k != "local_channel"]  # (see links)
    stable = {k: row[k] for k in ("exchange", "upstream_exchange", "queue", "upstream_queue",
                                  "consumer_tag", "type", "vhost", "upstream", "status",
                                  "uri", "error") if k in row}
    return {"keys": keys, "values": normal(stable, up.cluster, down.cluster),
            "id": bool(re.fullmatch(r"[0-9a-f]{8}", row["id"])),
            "timestamp": bool(re.fullmatch(r"\d{4}-\d\d-\d\d \d?\d:\d\d:\d\d",
                                           row["timestamp"])),
            "local_channel": sorted(set(row["local_channel"]) - ERLANG_ONLY_CHANNEL_KEYS)
            if channel else None}


# what RabbitMQ's channel rows have and leveret's cannot (the Erlang process's), and what
# comes and goes with the channel's activity
ERLANG_ONLY_CHANNEL_KEYS = {"garbage_collection", "reductions", "reductions_details",
                            "idle_since", "message_stats"}


async def upstream_objects(side: Side, vhost: str, up: Side, down: Side) -> dict[str, Any]:
    """What the link built on the upstream, as its management API lists it."""
    v = quote(vhost, safe="")
    exchanges = (await side.http.call("GET", f"/api/exchanges/{v}"))[1]
    queues = (await side.http.call("GET", f"/api/queues/{v}"))[1]
    bindings = (await side.http.call("GET", f"/api/bindings/{v}"))[1]
    found = {
        "exchanges": sorted([e["name"], e["type"], e["durable"], e["auto_delete"],
                             e["internal"], e["arguments"]]
                            for e in exchanges if not e["name"].startswith("amq.")
                            and e["name"]),
        "queues": sorted([q["name"], q["durable"], q["auto_delete"], q["arguments"]]
                         for q in queues),
        "bindings": sorted([b["source"], b["destination"], b["destination_type"],
                            b["routing_key"], b["arguments"]] for b in bindings
                           if b["source"]),
    }
    return normal(found, up.cluster, down.cluster)


async def consume(url: str, queue: str, n: int, timeout: float = 20
                  ) -> list[tuple[str, bytes, bool, list[tuple[str, Any]]]]:
    """n messages from the queue: (routing key, body, redelivered, headers in order)."""
    got: list[tuple[str, bytes, bool, list[tuple[str, Any]]]] = []
    async with await connect(url) as c:
        ch = await c.channel()
        done = asyncio.get_running_loop().create_future()

        def on(tag: int, red: bool, _x: str, key: str, props: bytes, body: bytes) -> None:
            headers = spec.Properties.decode(props).headers or {} if props else {}
            got.append((key, body, red, list(headers.items())))
            ch.ack(tag)
            if len(got) >= n and not done.done():
                done.set_result(None)
        await ch.basic_consume(queue, on)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done, timeout)
        await asyncio.sleep(0.3)  # anything beyond shows up too
    return got


async def message_count(url: str, queue: str) -> int:
    async with await connect(url) as c:
        ch = await c.channel()
        return int((await ch.queue_declare(queue, passive=True)).message_count)


# -- the parameter API ------------------------------------------------------------------------

PARAMETER_CASES: list[tuple[str, str, Any]] = [
    ("federation-upstream", "u1", {"value": {"uri": "amqp://localhost:5999", "max-hops": 2}}),
    ("federation-upstream", "u1", {"value": {"uri": "amqp://localhost:5999"}}),  # again
    ("federation-upstream", "u2", {"value": {"uri": ["amqp://a", "amqp://b"],
                                             "expires": 1000, "message-ttl": 0,
                                             "prefetch-count": 10, "reconnect-delay": 1,
                                             "ack-mode": "on-publish", "trust-user-id": True,
                                             "exchange": "x", "queue": "q"}}),
    ("federation-upstream", "bad1", {"value": {}}),
    ("federation-upstream", "bad2", {"value": {"uri": "foo://x", "bogus": 1}}),
    ("federation-upstream", "bad3", {"value": {"uri": "amqp://a", "ack-mode": "x",
                                               "max-hops": "y", "trust-user-id": 1}}),
    ("federation-upstream", "bad4", {"nothing": 1}),
    ("federation-upstream-set", "s1", {"value": [{"upstream": "u1"},
                                                 {"upstream": "u2", "max-hops": 3}]}),
    ("federation-upstream-set", "s1", {"value": [{"upstream": "u1"}]}),
    ("federation-upstream-set", "bad5", {"value": [{"max-hops": 1}]}),
    ("federation-upstream-set", "bad6", {"value": [{"upstream": "u1", "uri": "amqp://"}]}),
]


async def parameter_api(side: Side) -> dict[str, Any]:
    v = quote(UP, safe="")
    await side.vhost(UP)
    answers = [await side.http.call("PUT", f"/api/parameters/{c}/{v}/{n}", body)
               for c, n, body in PARAMETER_CASES]
    missing_vhost = await side.http.call(
        "PUT", "/api/parameters/federation-upstream/no-such-vhost/u", {"value": {"uri": "amqp://"}})
    listed = (await side.http.call("GET", f"/api/parameters/federation-upstream/{v}"))[1]
    one = await side.http.call("GET", f"/api/parameters/federation-upstream-set/{v}/s1")
    every = (await side.http.call("GET", "/api/parameters/federation-upstream"))[1]
    deleted = [await side.http.call("DELETE", f"/api/parameters/federation-upstream/{v}/u2"),
               await side.http.call("DELETE", f"/api/parameters/federation-upstream/{v}/u2"),
               await side.http.call("GET", f"/api/parameters/federation-upstream/{v}/u2")]
    no_links = await side.http.call("GET", f"/api/federation-links/{v}")
    no_vhost = await side.http.call("GET", "/api/federation-links/no-such-vhost")
    return {"answers": answers, "missing_vhost": missing_vhost,
            "listed": sorted(listed, key=lambda r: r["name"]), "one": one,
            "every": sorted((r for r in every if r["vhost"] == UP), key=lambda r: r["name"]),
            "deleted": deleted, "no_links": no_links, "no_vhost": no_vhost}


async def test_parameter_api_answers_as_rabbitmq(rabbit: PluginRabbit) -> None:
    reference = await rabbit_side(rabbit)
    try:
        expected = await parameter_api(reference)
    finally:
        await reference.drop_vhosts(UP)
    async with leveret_side() as lev:
        got = await parameter_api(lev)
    for key in expected:
        assert got[key] == expected[key], key


async def definitions_import(side: Side, _other: Side) -> dict[str, Any]:
    """Upstreams, a set and policies through POST /api/definitions, as RabbitMQ exports
    them; then the export and the links they start."""
    await side.vhost(DOWN)
    definitions = {
        "parameters": [
            {"vhost": DOWN, "component": "federation-upstream", "name": "nowhere",
             "value": {"uri": "amqp://guest:guest@127.0.0.1:9", "reconnect-delay": 30}},
            {"vhost": DOWN, "component": "federation-upstream", "name": "wrong-password",
             "value": {"uri": f"amqp://guest:nope@127.0.0.1:{side.port}/{DOWN}",
                       "reconnect-delay": 30}},
            {"vhost": DOWN, "component": "federation-upstream", "name": "no-vhost",
             "value": {"uri": f"amqp://guest:guest@127.0.0.1:{side.port}/nowhere",
                       "reconnect-delay": 30}},
            {"vhost": DOWN, "component": "federation-upstream-set", "name": "them",
             "value": [{"upstream": "nowhere"}, {"upstream": "missing"},
                       {"upstream": "wrong-password"}, {"upstream": "no-vhost"}]},
        ],
        "policies": [{"vhost": DOWN, "name": "fed", "pattern": "^fed\\.", "apply-to": "all",
                      "definition": {"federation-upstream-set": "them"}, "priority": 0}],
        "exchanges": [{"vhost": DOWN, "name": "fed.x", "type": "fanout", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "queues": [{"vhost": DOWN, "name": "fed.q", "durable": True, "auto_delete": False,
                    "arguments": {}}],
    }
    status, _ = await side.http.call("POST", "/api/definitions", definitions)
    exported = (await side.http.call("GET", "/api/definitions"))[1]
    rows = await links(side, DOWN, 6, "error")
    return {
        "status": status in (200, 201, 204),
        "parameters": normal(sorted((p for p in exported["parameters"]
                                     if p["vhost"] == DOWN),
                                    key=lambda p: (p["component"], p["name"]))),
        "links": sorted((link_shape(r, side, side) for r in rows),
                        key=lambda s: (s["values"]["type"], s["values"]["upstream"])),
    }


async def test_definitions_import_as_rabbitmq(rabbit: PluginRabbit) -> None:
    """Upstreams that cannot be reached, refuse the login or lack the vhost: a federated
    exchange and a federated queue show an ``error`` link for each, with RabbitMQ's
    reasons; the set's missing upstream is skipped."""
    reference = await rabbit_side(rabbit)
    try:
        expected = await definitions_import(reference, reference)
    finally:
        await reference.drop_vhosts(DOWN)
    async with leveret_side() as lev:
        got = await definitions_import(lev, lev)
    assert got == expected
    assert [link["values"]["error"] for link in got["links"]] == [
        "not_allowed", "econnrefused", '{auth_failure,"ACCESS_REFUSED - Login was refused '
        'using authentication mechanism PLAIN. For details see the broker logfile."}'] * 2


# -- federated exchanges ----------------------------------------------------------------------

async def exchange_federation(up: Side, down: Side) -> dict[str, Any]:
    await up.vhost(UP)
    await down.vhost(DOWN)
    async with await connect(down.url(DOWN)) as c:
        ch = await c.channel()
        await ch.exchange_declare("fed.x", "topic", durable=True)
        await ch.queue_declare("fed.q", durable=True)
        await ch.queue_bind("fed.q", "fed.x", "a.#")
        await ch.queue_bind("fed.q", "fed.x", "b.*", {"x-foo": "bar"})
    d = quote(DOWN, safe="")
    await down.ok("PUT", f"/api/parameters/federation-upstream/{d}/up", {"value": {
        "uri": up.url(UP), "expires": 600000, "message-ttl": 60000, "max-hops": 2}})
    await down.ok("PUT", f"/api/policies/{d}/fed", {
        "pattern": "^fed\\.x$", "apply-to": "exchanges",
        "definition": {"federation-upstream": "up"}})
    [row] = await links(down, DOWN, channel=True)
    built: dict[str, Any] = {}

    async def bound() -> bool:
        nonlocal built
        built = await upstream_objects(up, UP, up, down)
        return len([b for b in built["bindings"] if b[0] == "fed.x"]) == 2
    await eventually(bound)
    async with await connect(up.url(UP)) as c:
        ch = await c.channel()
        ch.publish(b"one", "fed.x", "a.1", spec.Properties(headers={"z": 1, "a": "x"}))
        ch.publish(b"none", "fed.x", "c.1")
        ch.publish(b"two", "fed.x", "b.2", spec.Properties(delivery_mode=2))
    got = await consume(down.url(DOWN), "fed.q", 2)
    for _key, _body, _red, headers in got:
        [entry] = dict(headers)["x-received-from"]
        assert entry["cluster-name"] == up.cluster  # who it came from
    # a downstream binding removed goes upstream too
    async with await connect(down.url(DOWN)) as c:
        ch = await c.channel()
        await ch.queue_unbind("fed.q", "fed.x", "b.*", {"x-foo": "bar"})

    async def unbound() -> bool:
        objects = await upstream_objects(up, UP, up, down)
        return len([b for b in objects["bindings"] if b[0] == "fed.x"]) == 1
    await eventually(unbound)
    return {"link": link_shape(row, up, down, channel=True), "upstream": built,
            "messages": normal(got, up.cluster, down.cluster)}


async def test_federated_exchange_as_rabbitmq(rabbit: PluginRabbit) -> None:
    """The upstream gets the same exchange, queue, internal exchange and bindings
    (x-bound-from), the messages the same x-received-from entries, whichever broker is
    at either end."""
    results = await across(rabbit, exchange_federation)
    same_everywhere(results)
    reference = results["rabbit->rabbit"]
    queue = f"federation: fed.x -> {CLUSTER}:{DOWN}:fed.x"
    assert [queue, True, False, {"x-expires": 600000, "x-internal-purpose": "federation",
                                 "x-message-ttl": 60000}] in reference["upstream"]["queues"]
    assert [f"{queue} B", "x-federation-upstream", True, True, True, {
        "x-downstream-name": CLUSTER, "x-downstream-vhost": DOWN,
        "x-internal-purpose": "federation", "x-max-hops": 2}] in reference["upstream"]["exchanges"]
    assert [m[1] for m in reference["messages"]] == [b"one", b"two"]


async def exchange_from_a_set(up: Side, down: Side) -> dict[str, Any]:
    """An upstream set whose entry names another upstream exchange (which exists, of
    another type) and overrides max-hops and expires."""
    await up.vhost(UP)
    await down.vhost(DOWN)
    async with await connect(up.url(UP)) as c:
        await (await c.channel()).exchange_declare("fed.src", "fanout", durable=True)
    async with await connect(down.url(DOWN)) as c:
        ch = await c.channel()
        await ch.exchange_declare("fed.r", "direct", durable=True)
        await ch.queue_declare("fed.rq", durable=True)
        await ch.queue_bind("fed.rq", "fed.r", "k")
    d = quote(DOWN, safe="")
    await down.ok("PUT", f"/api/parameters/federation-upstream/{d}/up",
                  {"value": {"uri": up.url(UP), "expires": 1000}})
    await down.ok("PUT", f"/api/parameters/federation-upstream-set/{d}/renamed", {"value": [
        {"upstream": "up", "exchange": "fed.src", "max-hops": 3, "expires": 50000}]})
    await down.ok("PUT", f"/api/policies/{d}/fedr", {
        "pattern": "^fed\\.r$", "apply-to": "exchanges",
        "definition": {"federation-upstream-set": "renamed"}})
    [row] = await links(down, DOWN)
    built: dict[str, Any] = {}

    async def bound() -> bool:
        nonlocal built
        built = await upstream_objects(up, UP, up, down)
        return any(b[0] == "fed.src" for b in built["bindings"])
    await eventually(bound)
    async with await connect(up.url(UP)) as c:
        (await c.channel()).publish(b"r", "fed.src", "k")
    got = await consume(down.url(DOWN), "fed.rq", 1)
    return {"link": link_shape(row, up, down), "upstream": built,
            "messages": normal(got, up.cluster, down.cluster)}


async def test_upstream_set_overrides_as_rabbitmq(rabbit: PluginRabbit) -> None:
    results = await across(rabbit, exchange_from_a_set)
    same_everywhere(results)
    reference = results["rabbit->rabbit"]
    assert reference["link"]["values"]["upstream_exchange"] == "fed.src"
    assert reference["upstream"]["queues"] == [[
        f"federation: fed.src -> {CLUSTER}:{DOWN}:fed.r", True, False,
        {"x-expires": 50000, "x-internal-purpose": "federation"}]]
    # x-received-from names the downstream exchange
    [[_key, body, _red, [(_name, [entry])]]] = reference["messages"]
    assert (body, entry["exchange"]) == (b"r", "fed.r")


async def federated_loop(a: Side, b: Side) -> dict[str, Any]:
    """Two brokers whose exchange ``fed.loop`` each federate the other's, max-hops 1: a
    message published on one reaches the other once and never comes back."""
    va, vb = ("fed-a", "fed-b") if a is b else ("fed-a", "fed-a")
    for side, vhost in ((a, va), (b, vb)):
        await side.vhost(vhost)
        async with await connect(side.url(vhost)) as c:
            ch = await c.channel()
            await ch.exchange_declare("fed.loop", "fanout", durable=True)
            await ch.queue_declare("seen", durable=True)
            await ch.queue_bind("seen", "fed.loop", "")
    for side, vhost, other, other_vhost in ((a, va, b, vb), (b, vb, a, va)):
        v = quote(vhost, safe="")
        await side.ok("PUT", f"/api/parameters/federation-upstream/{v}/peer", {"value": {
            "uri": other.url(other_vhost), "max-hops": 1}})
        await side.ok("PUT", f"/api/policies/{v}/loop", {
            "pattern": "^fed\\.loop$", "apply-to": "exchanges",
            "definition": {"federation-upstream": "peer"}})
    await links(a, va)
    await links(b, vb)
    await asyncio.sleep(0.5)  # the bindings reach the other side
    async with await connect(a.url(va)) as c:
        ch = await c.channel()
        await ch.confirm_select()
        ch.publish(b"m", "fed.loop", "")
        await ch.wait_for_confirms()

    async def arrived() -> bool:
        return await message_count(b.url(vb), "seen") >= 1
    await eventually(arrived)
    await asyncio.sleep(1.5)  # time to come back, were it to
    got = await consume(b.url(vb), "seen", 1)
    return {"counts": [await message_count(a.url(va), "seen"), len(got)],
            "headers": normal([h for *_, h in got], a.cluster, b.cluster)}


async def test_max_hops_ends_a_loop_of_two_brokers_as_rabbitmq(rabbit: PluginRabbit) -> None:
    results = await across(rabbit, federated_loop, ("fed-a", "fed-b"))
    same_everywhere(results)
    assert results["rabbit->rabbit"]["counts"] == [1, 1]


# -- federated queues -------------------------------------------------------------------------

async def queue_federation(up: Side, down: Side) -> dict[str, Any]:
    await up.vhost(UP)
    await down.vhost(DOWN)
    async with await connect(up.url(UP)) as c:
        ch = await c.channel()
        await ch.queue_declare("fed.src", durable=True)
        await ch.confirm_select()
        for i in range(3):
            ch.publish(f"m{i}".encode(), "", "fed.src",
                       spec.Properties(headers={"CC": ["nowhere"], "n": i}))
        await ch.wait_for_confirms()
    async with await connect(down.url(DOWN)) as c:
        ch = await c.channel()
        await ch.queue_declare("fed.q", durable=True, arguments={"x-max-length": 100})
    d = quote(DOWN, safe="")
    await down.ok("PUT", f"/api/parameters/federation-upstream/{d}/up", {"value": {
        "uri": up.url(UP), "queue": "fed.src", "prefetch-count": 5}})
    await down.ok("PUT", f"/api/policies/{d}/fedq", {
        "pattern": "^fed\\.q$", "apply-to": "queues",
        "definition": {"federation-upstream": "up"}})
    [row] = await links(down, DOWN)
    await asyncio.sleep(1.0)
    waiting = await message_count(up.url(UP), "fed.src")  # no consumer downstream yet
    got = await consume(down.url(DOWN), "fed.q", 3)
    queues = (await up.http.call("GET", f"/api/queues/{quote(UP, safe='')}/fed.src"))[1]
    return {"link": link_shape(row, up, down), "waiting": waiting,
            "upstream_queue": [queues["durable"], queues["auto_delete"], queues["arguments"]],
            "messages": normal(sorted(got, key=lambda m: m[1]), up.cluster, down.cluster),
            "left": await message_count(up.url(UP), "fed.src")}


async def test_federated_queue_as_rabbitmq(rabbit: PluginRabbit) -> None:
    """The downstream consumer gets the upstream queue's messages, and only once it
    consumes; the upstream queue is declared like the downstream one."""
    results = await across(rabbit, queue_federation)
    same_everywhere(results)
    reference = results["rabbit->rabbit"]
    assert reference["waiting"] == 3 and reference["left"] == 0
    assert [m[1] for m in reference["messages"]] == [b"m0", b"m1", b"m2"]


# -- bindings along a chain -------------------------------------------------------------------

async def chain(a: Side, b: Side, c: Side) -> dict[str, Any]:
    """A -> B -> C (messages' direction), max-hops 2: a binding made at C travels to B and
    on to A (x-bound-from, hops counting down), and a message published at A reaches C
    through B with both x-received-from entries."""
    sides = ((a, "fed-a"), (b, "fed-b"), (c, "fed-c"))
    for side, vhost in sides:
        await side.vhost(vhost)
        async with await connect(side.url(vhost)) as conn:
            await (await conn.channel()).exchange_declare("fed.chain", "direct", durable=True)
    for (down, vhost), (up, up_vhost) in ((sides[1], sides[0]), (sides[2], sides[1])):
        v = quote(vhost, safe="")
        await down.ok("PUT", f"/api/parameters/federation-upstream/{v}/prev", {"value": {
            "uri": up.url(up_vhost), "max-hops": 2}})
        await down.ok("PUT", f"/api/policies/{v}/chain", {
            "pattern": "^fed\\.chain$", "apply-to": "exchanges",
            "definition": {"federation-upstream": "prev"}})
    await links(b, "fed-b")
    await links(c, "fed-c")
    async with await connect(c.url("fed-c")) as conn:
        ch = await conn.channel()
        await ch.queue_declare("end", durable=True)
        await ch.queue_bind("end", "fed.chain", "k")
    clusters = (a.cluster, b.cluster, c.cluster)
    at_a: list[Any] = []

    async def reached_a() -> bool:
        nonlocal at_a
        at_a = [x for x in (await upstream_objects(a, "fed-a", a, b))["bindings"]
                if x[0] == "fed.chain"]
        return bool(at_a)
    await eventually(reached_a)
    at_b = [x for x in (await upstream_objects(b, "fed-b", b, c))["bindings"]
            if x[0] == "fed.chain"]
    async with await connect(a.url("fed-a")) as conn:
        (await conn.channel()).publish(b"far", "fed.chain", "k")
    got = await consume(c.url("fed-c"), "end", 1)
    return {"at_a": any_suffix(normal(at_a, *clusters)),
            "at_b": any_suffix(normal(at_b, *clusters)), "messages": normal(got, *clusters)}


def any_suffix(value: Any) -> Any:
    """Internal exchange names with A or B alike: RabbitMQ's link may restart once
    when bindings arrive while they start (and then take the other letter)."""
    if isinstance(value, dict):
        return {k: any_suffix(v) for k, v in value.items()}
    if isinstance(value, list):
        return [any_suffix(v) for v in value]
    return re.sub(r"(fed\.chain) [AB]$", r"\1 <A|B>", value) if isinstance(value, str) \
        else value


async def test_bindings_travel_along_a_chain_as_rabbitmq(rabbit: PluginRabbit) -> None:
    reference = await rabbit_side(rabbit)
    vhosts = ("fed-a", "fed-b", "fed-c")
    results: dict[str, dict[str, Any]] = {}
    try:
        results["rabbit->rabbit->rabbit"] = await chain(reference, reference, reference)
        await reference.drop_vhosts(*vhosts)
        async with leveret_side("a") as a, leveret_side("c") as c:
            results["leveret->rabbit->leveret"] = await chain(a, reference, c)
            await c.drop_vhosts(*vhosts)
            await reference.drop_vhosts(*vhosts)
        async with leveret_side("b") as b:
            results["rabbit->leveret->rabbit"] = await chain(reference, b, reference)
            await reference.drop_vhosts(*vhosts)
    finally:
        await reference.drop_vhosts(*vhosts)
    expected = results["rabbit->rabbit->rabbit"]
    for name, got in results.items():
        assert got == expected, name
    [[*_, args]] = expected["at_a"]
    assert [entry["hops"] for entry in args["x-bound-from"]] == [1, 2]
    [[*_, headers]] = expected["messages"]
    assert [e["vhost"] for e in dict(headers)["x-received-from"]] == ["fed-b", "fed-a"]
