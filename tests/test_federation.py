"""Federation: RabbitMQ's ``federation-upstream`` and ``federation-upstream-set``
parameters (validation texts recorded on RabbitMQ 3.10.8 with the federation plugins),
durability, and federated exchanges and queues between two embedded leveret brokers over
real TCP, with /api/federation-links."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from typing import Any

import pytest

import leveret
from leveret.amqp import spec
from leveret.broker import federation
from leveret.broker.federation import HEADER
from leveret.client import connect
from leveret.runtime import federation_links
from tests.test_shovels import _free_port, _serve, broker, count, drain, eventually, http

# What RabbitMQ 3.10.8 answered (the reason, HTML-escaped as its management API does).
RABBIT_ANSWERS: list[tuple[str, Any, str | None]] = [
    ("federation-upstream", {"uri": "amqp://localhost:5687"}, None),
    ("federation-upstream", {}, 'Key "uri" not found in u'),
    ("federation-upstream", {"uri": 5, "exchange": 1, "queue": 2, "prefetch-count": "x",
                             "reconnect-delay": "y", "ack-mode": "bad", "max-hops": "z",
                             "expires": "e", "message-ttl": "m", "trust-user-id": "t",
                             "bogus": 1},
     'Unrecognised terms [{<<"bogus">>,1}] in u\n'
     'ack-mode should be one of [<<"no-ack">>,<<"on-publish">>,<<"on-confirm">>], '
     'actually was <<"bad">>\n'
     'trust-user-id should be boolean, actually was <<"t">>\n'
     'message-ttl should be a number, actually was <<"m">>\n'
     'expires should be a number, actually was <<"e">>\n'
     'max-hops should be a number, actually was <<"z">>\n'
     'reconnect-delay should be a number, actually was <<"y">>\n'
     'prefetch-count should be a number, actually was <<"x">>\n'
     'queue should be binary, actually was 2\n'
     'exchange should be binary, actually was 1\n'
     'uri should be list, actually was 5'),
    ("federation-upstream", {"uri": ["amqp://a", "foo://b"]},
     '"foo://b" not a valid URI: {{unexpected_uri_scheme,"foo"},"foo://b"}'),
    ("federation-upstream", {"uri": "amqp://a", "queue-type": "quorum", "ha-policy": "all",
                             "bind-nowait": True, "consumer-tag": "x",
                             "resource-cleanup-mode": "default",
                             "channel-use-mode": "multiple"},
     'Unrecognised terms [{<<"queue-type">>,<<"quorum">>}] in u'),
    ("federation-upstream", {"uri": "amqp://a", "ha-policy": 1, "bind-nowait": "x",
                             "consumer-tag": 2, "resource-cleanup-mode": "x",
                             "channel-use-mode": "y", "ack-mode": "bad"},
     'channel-use-mode should be one of [<<"multiple">>,<<"single">>], actually was '
     '<<"y">>\nbind-nowait should be boolean, actually was <<"x">>\n'
     'ha-policy should be binary, actually was 1\n'
     'resource-cleanup-mode should be one of [<<"default">>,<<"never">>], actually was '
     '<<"x">>\nack-mode should be one of [<<"no-ack">>,<<"on-publish">>,<<"on-confirm">>],'
     ' actually was <<"bad">>\nconsumer-tag should be binary, actually was 2'),
    ("federation-upstream", {"uri": [1]}, "uri should be list, actually was 1"),
    ("federation-upstream", {"uri": "amqp://a", "max-hops": 0, "expires": 0,
                             "message-ttl": -1, "prefetch-count": 0}, None),
    ("federation-upstream-set", [{"upstream": "u1"}, {"upstream": "u9", "max-hops": 2}],
     None),
    ("federation-upstream-set", [{"max-hops": 2}], 'Key "upstream" not found in u'),
    ("federation-upstream-set", [{"upstream": 1, "bogus": 2, "uri": 5}],
     'Unrecognised terms [{<<"bogus">>,2},{<<"uri">>,5}] in u\n'
     'upstream should be binary, actually was 1'),
    ("federation-upstream-set", [{"upstream": "x", "exchange": 3, "ack-mode": "z"}],
     'ack-mode should be one of [<<"no-ack">>,<<"on-publish">>,<<"on-confirm">>], '
     'actually was <<"z">>\nexchange should be binary, actually was 3'),
    ("federation-upstream-set", [], None),
]


@pytest.mark.parametrize(("component", "value", "reason"), RABBIT_ANSWERS)
def test_validation_texts_are_rabbitmqs(component: str, value: Any, reason: str | None
                                        ) -> None:
    errors = federation.validate(component, "u", value)
    assert "\n".join(errors) == (reason or "")


async def test_upstream_parameters_over_http_are_durable(tmp_path: Any) -> None:
    async with broker(data_dir=tmp_path) as b:
        h = http(b)
        path = "/api/parameters/federation-upstream/%2f/up1"
        assert (await h.call("PUT", path, {"value": {"uri": "amqp://h", "max-hops": 2}}))[0] \
            == 201
        assert (await h.call("PUT", path, {"value": {"uri": "amqp://h"}}))[0] == 204
        status, body = await h.call("PUT", path, {"value": {}})
        assert status == 400
        assert body["reason"] == 'Validation failed\n\nKey "uri" not found in up1\n'
        assert (await h.call("PUT", path, {}))[1]["reason"] == "[{key_missing,value}]"
        status, body = await h.call("PUT", "/api/parameters/federation-upstream/nov/x",
                                    {"value": {"uri": "amqp://"}})
        assert (status, body["reason"]) == (404, "vhost_not_found")
        set_path = "/api/parameters/federation-upstream-set/%2f/s1"
        assert (await h.call("PUT", set_path, {"value": [{"upstream": "up1"}]}))[0] == 201
        status, rows = await h.call("GET", "/api/parameters/federation-upstream")
        assert rows == [{"value": {"uri": "amqp://h"}, "vhost": "/",
                         "component": "federation-upstream", "name": "up1"}]
        status, row = await h.call("GET", set_path)
        assert row["component"] == "federation-upstream-set"
        status, defs = await h.call("GET", "/api/definitions")
        assert {p["component"] for p in defs["parameters"]} == set(federation.COMPONENTS)
    async with broker(data_dir=tmp_path) as b:
        h = http(b)
        status, row = await h.call("GET", "/api/parameters/federation-upstream/%2f/up1")
        assert (status, row["value"]) == (200, {"uri": "amqp://h"})
        assert (await h.call("DELETE", set_path))[0] == 204
        assert (await h.call("GET", set_path))[0] == 404
        status, _ = await h.call("POST", "/api/definitions", defs)
        assert status in (200, 204)
        assert (await h.call("GET", set_path))[0] == 200


def url(b: leveret.Broker) -> str:
    return f"amqp://guest:guest@127.0.0.1:{b.port}/"


async def federate_exchange(down: leveret.Broker, up: leveret.Broker, exchange: str,
                            **extra: Any) -> None:
    h = http(down)
    assert (await h.call("PUT", "/api/parameters/federation-upstream/%2f/up",
                         {"value": {"uri": url(up), "reconnect-delay": 1, **extra}}))[0] \
        == 201
    assert (await h.call("PUT", "/api/policies/%2f/fed",
                         {"pattern": f"^{exchange}$", "apply-to": "exchanges",
                          "definition": {"federation-upstream": "up"}}))[0] in (201, 204)


async def links_running(b: leveret.Broker, n: int = 1) -> None:
    async def check() -> bool:
        rows = (await http(b).call("GET", "/api/federation-links"))[1]
        return len(rows) == n and all(r["status"] == "running" for r in rows)
    await eventually(check)


async def test_federated_exchange_between_two_brokers() -> None:
    async with broker() as a, broker() as b:
        a.node.cluster_name, b.node.cluster_name = "A", "B"
        async with await connect(url(a)) as ca, await connect(url(b)) as cb:
            cha, chb = await ca.channel(), await cb.channel()
            await cha.exchange_declare("fx", "direct", durable=True)
            await chb.exchange_declare("fx", "direct", durable=True)
            await chb.queue_declare("q1", durable=True)
            await chb.queue_bind("q1", "fx", "k1")
            await federate_exchange(b, a, "fx")
            await links_running(b)
            row = (await http(b).call("GET", "/api/federation-links/%2f"))[1][0]
            assert {k: row[k] for k in ("type", "exchange", "upstream_exchange", "upstream",
                                        "vhost", "status", "uri")} == {
                "type": "exchange", "exchange": "fx", "upstream_exchange": "fx",
                "upstream": "up", "vhost": "/", "status": "running",
                "uri": f"amqp://127.0.0.1:{a.port}/"}
            assert "federation: fx -> B" in a.node.vhosts["/"].queues
            got: list[tuple[str, bytes, Any]] = []

            def on(tag: int, _r: bool, _e: str, key: str, props: bytes, body: bytes) -> None:
                got.append((key, body, spec.Properties.decode(props).headers))
                chb.ack(tag)
            await chb.basic_consume("q1", on)
            await chb.queue_declare("q2", durable=True)
            cha.publish(b"one", "fx", "k1")

            async def one() -> bool:
                return len(got) == 1
            await eventually(one)
            key, body, headers = got[0]
            assert (key, body) == ("k1", b"one")
            assert headers["x-received-from"] == [
                {"uri": f"amqp://127.0.0.1:{a.port}/", "exchange": "fx",
                 "redelivered": False, "cluster-name": "A", "vhost": "/"}]
            # a binding added later downstream is honoured upstream
            await chb.queue_bind("q2", "fx", "k2")
            await chb.basic_consume("q2", on)

            async def bound() -> bool:
                return any(bd.routing_key == "k2" for bd in
                           a.node.vhosts["/"].exchanges["fx"].bindings.values())
            await eventually(bound)
            cha.publish(b"two", "fx", "k2")
            cha.publish(b"none", "fx", "k3")

            async def two() -> bool:
                return len(got) == 2
            await eventually(two)
            assert got[1][:2] == ("k2", b"two")
            await asyncio.sleep(0.3)
            assert len(got) == 2


async def test_max_hops_ends_a_loop() -> None:
    async with broker() as a, broker() as b:
        a.node.cluster_name, b.node.cluster_name = "A", "B"
        for x in (a, b):
            async with await connect(url(x)) as c:
                ch = await c.channel()
                await ch.exchange_declare("loop", "fanout", durable=True)
                await ch.queue_declare("seen", durable=True)
                await ch.queue_bind("seen", "loop", "")
        await federate_exchange(b, a, "loop", **{"max-hops": 1})
        await federate_exchange(a, b, "loop", **{"max-hops": 1})
        await links_running(a)
        await links_running(b)
        async with await connect(url(a)) as c:
            ch = await c.channel()
            ch.publish(b"m", "loop", "")
        await asyncio.sleep(1.0)
        assert a.node.vhosts["/"].queues["seen"].message_count == 1
        assert b.node.vhosts["/"].queues["seen"].message_count == 1


async def test_federated_queue_pulls_when_consumers_are_idle() -> None:
    async with broker() as a, broker() as b:
        a.node.cluster_name, b.node.cluster_name = "A", "B"
        async with await connect(url(a)) as ca:
            cha = await ca.channel()
            await cha.queue_declare("fq", durable=True)
            for i in range(5):
                cha.publish(str(i).encode(), "", "fq")
            h = http(b)
            await h.call("PUT", "/api/parameters/federation-upstream/%2f/up",
                         {"value": {"uri": url(a), "reconnect-delay": 1}})
            await h.call("PUT", "/api/policies/%2f/fedq",
                         {"pattern": "^fq$", "apply-to": "queues",
                          "definition": {"federation-upstream-set": "all"}})
            async with await connect(url(b)) as cb:
                chb = await cb.channel()
                await chb.queue_declare("fq", durable=True)
                await links_running(b)
                await asyncio.sleep(0.5)
                assert a.node.vhosts["/"].queues["fq"].message_count == 5  # no consumer yet
                got: list[bytes] = []

                def on(tag: int, _r: bool, _e: str, _k: str, _p: bytes, body: bytes) -> None:
                    got.append(body)
                    chb.ack(tag)
                await chb.basic_consume("fq", on)

                async def all_five() -> bool:
                    return sorted(got) == [str(i).encode() for i in range(5)]
                await eventually(all_five)
                row = (await h.call("GET", "/api/federation-links"))[1][0]
                assert (row["type"], row["queue"], row["upstream_queue"]) == (
                    "queue", "fq", "fq")


async def test_each_broker_has_its_own_cluster_name_kept_in_its_data_directory(
        tmp_path: Any) -> None:
    """Federation tells brokers apart by cluster name (loops, upstream queue names), so
    two default brokers must not share one; a data directory keeps it, and a rename
    (PUT /api/cluster-name, a definitions import) is durable too."""
    async with broker() as a, broker() as b:
        assert a.node.cluster_name != b.node.cluster_name
        assert a.node.cluster_name.startswith("leveret-")
    async with broker(data_dir=tmp_path) as b:
        first = b.node.cluster_name
        status, body = await http(b).call("GET", "/api/cluster-name")
        assert (status, body) == (200, {"name": first})
        async with await connect(url(b)) as c:
            assert c.server_properties["cluster_name"] == first
    async with broker(data_dir=tmp_path) as b:
        assert b.node.cluster_name == first
        assert (await http(b).call("PUT", "/api/cluster-name", {"name": "east"}))[0] == 204
    async with broker(data_dir=tmp_path) as b:
        assert b.node.cluster_name == "east"
        status, _ = await http(b).call("POST", "/api/definitions", {
            "global_parameters": [{"name": "cluster_name", "value": "west"}]})
        assert status in (200, 204)
    async with broker(data_dir=tmp_path) as b:
        assert (await http(b).call("GET", "/api/overview"))[1]["cluster_name"] == "west"


# -- durability -------------------------------------------------------------------------------

async def declare_federated_exchange(b: leveret.Broker, upstream_url: str, **extra: Any
                                     ) -> None:
    async with await connect(url(b)) as c:
        ch = await c.channel()
        await ch.exchange_declare("fx", "direct", durable=True)
        await ch.queue_declare("got", durable=True)
        await ch.queue_bind("got", "fx", "k")
    h = http(b)
    await h.call("PUT", "/api/parameters/federation-upstream/%2f/up",
                 {"value": {"uri": upstream_url, **extra}})
    await h.call("PUT", "/api/policies/%2f/fed", {"pattern": "^fx$", "apply-to": "exchanges",
                                                  "definition": {"federation-upstream": "up"}})


async def publish_confirmed(target: str, exchange: str, key: str, n: int) -> None:
    async with await connect(target) as c:
        ch = await c.channel()
        await ch.confirm_select()
        for i in range(n):
            ch.publish(str(i).encode(), exchange, key, spec.Properties(delivery_mode=2))
            if i % 500 == 499:
                await ch.wait_unconfirmed(1000)
        await ch.wait_for_confirms()


async def test_links_come_back_with_the_broker_and_find_what_waited_upstream(
        tmp_path: Any) -> None:
    """Parameters and policies are durable: the link starts again with the broker. A
    broker that stops leaves its upstream queue, so what was published meanwhile
    arrives; the internal exchange alternates A/B at each start, as RabbitMQ's."""
    async with broker() as up:
        async with broker(data_dir=tmp_path) as down:
            await declare_federated_exchange(down, url(up), **{"reconnect-delay": 1})
            await links_running(down)
            queue = f"federation: fx -> {down.node.cluster_name}"
            assert f"{queue} B" in up.node.vhosts["/"].exchanges
        assert queue in up.node.vhosts["/"].queues  # left there by a stopping broker
        await publish_confirmed(url(up), "fx", "k", 100)
        assert up.node.vhosts["/"].queues[queue].message_count == 100
        async with broker(data_dir=tmp_path) as down:
            await links_running(down)

            async def arrived() -> bool:
                return down.node.vhosts["/"].queues["got"].message_count == 100
            await eventually(arrived)
            exchanges = up.node.vhosts["/"].exchanges
            assert f"{queue} A" in exchanges and f"{queue} B" not in exchanges
            # the policy goes: the link deletes what it made upstream
            assert (await http(down).call("DELETE", "/api/policies/%2f/fed"))[0] == 204

            async def cleaned() -> bool:
                return queue not in up.node.vhosts["/"].queues and not any(
                    n.startswith(queue) for n in up.node.vhosts["/"].exchanges)
            await eventually(cleaned)


def record_upstream_deliveries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bool]]:
    """Every delivery the links receive from their upstream: (body, redelivered)."""
    seen: list[tuple[bytes, bool]] = []
    original = federation_links._Transfer.deliver

    def deliver(self: Any, tag: int, redelivered: bool, exchange: str, key: str,
                props: bytes, body: bytes) -> None:
        seen.append((body, redelivered))
        original(self, tag, redelivered, exchange, key, props, body)

    monkeypatch.setattr(federation_links._Transfer, "deliver", deliver)
    return seen


async def test_kill_9_upstream_mid_stream_loses_nothing(tmp_path: Any,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """``ack-mode: on-confirm``: the upstream (a ``leveret serve`` child process) is killed
    with SIGKILL while its federation queue drains, and restarted from its data directory;
    the link reconnects after ``reconnect-delay``. Every message arrives; the link makes
    no copies of its own and passes each delivery's ``redelivered`` on in x-received-from,
    so a message that arrives twice carries it. (The upstream fsyncs as by default: its
    delivered marks reach the OS before the deliveries leave, even while a commit's fsync
    runs, see server/commit.py's write_ahead.)"""
    n = 6000
    seen = record_upstream_deliveries(monkeypatch)
    port = _free_port()
    up_url = f"amqp://guest:guest@127.0.0.1:{port}/"
    proc = _serve(port, tmp_path / "up")
    try:
        async with broker(data_dir=tmp_path / "down") as down:
            await declare_federated_exchange(down, up_url, **{
                "reconnect-delay": 0.5, "ack-mode": "on-confirm", "prefetch-count": 100})
            await links_running(down)
        # the downstream is away: the messages wait in the upstream's federation queue
        await publish_confirmed(up_url, "fx", "k", n)
        async with broker(data_dir=tmp_path / "down") as down:
            got = down.node.vhosts["/"].queues["got"]

            async def some() -> bool:
                return got.message_count >= n // 5
            await eventually(some, 30)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            moved = got.message_count
            assert moved < n, "the transfer was over before the kill"

            async def noticed() -> bool:
                rows = (await http(down).call("GET", "/api/federation-links"))[1]
                return rows[0]["status"] != "running"
            await eventually(noticed)
            proc = _serve(port, tmp_path / "up")  # from its data directory
            await links_running(down)

            async def all_there() -> bool:
                return got.message_count >= n
            await eventually(all_there, 30)
            await asyncio.sleep(0.5)  # the last confirms reach the upstream
            assert await count(up_url, f"federation: fx -> {down.node.cluster_name}") == 0
            arrived = await drain(url(down), "got", n)
        copies = Counter((body, bool(p.headers and p.headers[HEADER][0]["redelivered"]))
                         for _, body, p in arrived)
        bodies = Counter(body for body, _ in copies.elements())
        assert set(bodies) == {str(i).encode() for i in range(n)}, "lost messages"
        assert not copies - Counter(seen), "copies the upstream did not deliver"
        duplicates = {body for body, times in bodies.items() if times > 1}
        flagged = {body for body, redelivered in copies if redelivered}
        assert duplicates <= flagged, f"unflagged: {sorted(duplicates - flagged)[:10]}"
        print(f"upstream killed with {moved} of {n} moved; {len(flagged)} redelivered, "
              f"{len(duplicates)} duplicates")
    finally:
        proc.kill()
        proc.wait()


# -- what the links write ---------------------------------------------------------------------

def test_bindings_travel_as_far_as_messages_could_come_back() -> None:
    """rabbit_federation_exchange_link:update_binding: hops count down from the tightest
    max-hops passed; a binding goes no further at 0 or back to where it came from."""
    def bind(args: dict[str, Any], max_hops: int) -> dict[str, Any] | None:
        return federation.upstream_binding(args, max_hops, "up", "/", "me", "v", "x", "B")

    first = bind({"x-match": "any"}, 3)
    assert first == {"x-bound-from": [{"cluster-name": "me", "vhost": "v",
                                       "exchange": "v:x B", "hops": 3}], "x-match": "any"}
    assert list(first) == ["x-bound-from", "x-match"]  # sorted, as RabbitMQ keeps tables
    prior = {"x-bound-from": [{"cluster-name": "far", "vhost": "/", "hops": 2}]}
    again = bind(prior, 5)
    assert again is not None
    assert [e["hops"] for e in again["x-bound-from"]] == [1, 2]
    assert bind({"x-bound-from": [{"cluster-name": "far", "hops": 1}]}, 5) is None
    assert bind({"x-bound-from": [{"cluster-name": "up", "vhost": "/", "hops": 3}]}, 5) is None


def test_queue_links_count_visits_per_upstream() -> None:
    """A message that went round federated queues (rabbit_federation_queue_link
    update_headers): the first pass records where it was published; each pass through the
    same upstream moves its entry first and counts it."""
    once = federation.queue_headers({"CC": ["a"]}, "amqp://u", "q", False, "ex", "rk")
    assert once == {"x-original-cc": ["a"], "x-original-exchange": "ex",
                    "x-original-routing-key": "rk", "x-received-from": [
                        {"uri": "amqp://u", "queue": "q", "redelivered": False,
                         "visit-count": 1}]}
    elsewhere = federation.queue_headers(once, "amqp://w", "q", True, "", "q")
    twice = federation.queue_headers(elsewhere, "amqp://u", "q", False, "", "q")
    assert twice["x-original-exchange"] == "ex"  # the first pass's, kept
    assert [(e["uri"], e["visit-count"]) for e in twice["x-received-from"]] == [
        ("amqp://u", 2), ("amqp://w", 1)]
