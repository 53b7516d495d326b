"""Differential tests: the same requests to leveret's management API and to the reference
RabbitMQ's, comparing status codes, error bodies, the keys of the response objects and the
JSON types of their values, and the values that must be equal (names, arguments, payloads,
properties, counts). Node names, timestamps, hashes and rates differ by nature.

Keys RabbitMQ has and leveret leaves out are listed per object kind with the reason (Erlang
VM internals, mirroring, paging to disk); any other missing or extra key fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from mgmt_helpers import Api, Reply, q, unique

# Erlang VM and classic-queue-internals fields with no meaning in leveret.
ERLANG = {"garbage_collection", "reductions", "reductions_details", "memory",
          "backing_queue_status"}
NOT_PROVIDED: dict[str, set[str]] = {
    "queue": ERLANG | {"messages_persistent", "message_bytes_persistent", "idle_since",
                       "slave_nodes", "synchronised_slave_nodes"},
    "connection": ERLANG | {"recv_cnt", "send_cnt", "send_pend", "auth_mechanism"},
    "channel": ERLANG | {"idle_since"},
    "overview": {"churn_rates", "contexts[0].cowboy_opts", "message_stats.disk_reads",
                 "message_stats.disk_reads_details", "message_stats.disk_writes",
                 "message_stats.disk_writes_details"},
    "vhost": set(),
}
# Keys leveret adds: vhost metadata in the definitions export, so that a leveret -> file ->
# leveret round trip keeps descriptions and tags (RabbitMQ 3.10 exports only the name).
EXTRA: dict[str, set[str]] = {
    "definitions": {"vhosts[0].description", "vhosts[0].metadata", "vhosts[0].tags"},
}
# Maps whose keys are data, not schema: their values are compared elsewhere or not at all.
FREE_FORM = {"arguments", "client_properties", "definition", "effective_policy_definition",
             "cluster_state", "limits", "value", "properties", "headers", "socket_opts",
             "capabilities"}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def shape_problems(ours: Any, theirs: Any, missing_ok: set[str], extra_ok: set[str],
                   path: str = "") -> list[str]:
    """How the keys and value types of ``ours`` differ from ``theirs`` (recursively);
    ``missing_ok`` / ``extra_ok`` name keys by path ("message_stats.disk_reads")."""
    if json_type(ours) != json_type(theirs):
        if "null" in (json_type(ours), json_type(theirs)):
            return []  # nullable: both sides use null for "none"
        return [f"{path or '.'}: {json_type(ours)} here, {json_type(theirs)} in RabbitMQ"]
    if isinstance(ours, list):
        if ours and theirs:
            return shape_problems(ours[0], theirs[0], missing_ok, extra_ok, f"{path}[0]")
        return []
    if not isinstance(ours, dict):
        return []

    def at(key: str) -> str:
        # relative to the object itself, whether it came alone, in a list or in a page
        full = f"{path}.{key}".lstrip(".")
        for prefix in ("items[0].", "[0]."):
            full = full.removeprefix(prefix)
        return full

    problems = [f"{at(k)}: missing" for k in sorted(set(theirs) - set(ours))
                if at(k) not in missing_ok]
    problems += [f"{at(k)}: not in RabbitMQ" for k in sorted(set(ours) - set(theirs))
                 if at(k) not in extra_ok]
    for key in sorted(set(ours) & set(theirs)):
        if key not in FREE_FORM:
            problems += shape_problems(ours[key], theirs[key], missing_ok, extra_ok,
                                       f"{path}.{key}")
    return problems


def assert_same_shape(ours: Any, theirs: Any, kind: str | None = None) -> None:
    problems = shape_problems(ours, theirs, NOT_PROVIDED.get(kind or "", set()),
                              EXTRA.get(kind or "", set()))
    assert not problems, "\n".join(problems)


class Pair:
    """One request to both brokers."""

    def __init__(self, leveret: Api, rabbit: Api) -> None:
        self.leveret = leveret
        self.rabbit = rabbit

    def call(self, method: str, path: str, body: Any = None, **kw: Any
             ) -> tuple[Reply, Reply]:
        ours = self.leveret.call(method, path, body, **kw)
        theirs = self.rabbit.call(method, path, body, **kw)
        assert ours.status == theirs.status, (method, path, ours, theirs)
        return ours, theirs

    def same(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        """Same status and the same body."""
        ours, theirs = self.call(method, path, body, **kw)
        assert ours.json == theirs.json, (method, path, ours.json, theirs.json)
        return ours.json

    def shaped(self, path: str, kind: str | None = None) -> tuple[Any, Any]:
        ours, theirs = self.call("GET", path)
        assert_same_shape(ours.json, theirs.json, kind)
        return ours.json, theirs.json


def unordered(items: list[Any]) -> list[str]:
    """A JSON list as a sorted list of its items' canonical JSON: for lists whose order
    RabbitMQ does not fix (it comes from its tables, it does not sort them)."""
    return sorted(json.dumps(x, sort_keys=True) for x in items)


def wait_for(fetch: Callable[[], Any], ready: Callable[[Any], bool], timeout: float = 15.0
             ) -> Any:
    """RabbitMQ's statistics arrive every 5 s: poll until they are there."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(0.25)
        value = fetch()
    return value


@pytest.fixture
def pair(api: Api, reference: Api) -> Iterator[tuple[Pair, str, str]]:
    """Both brokers with the same fresh vhost and management user; cleaned up after."""
    vhost, user = unique("diff"), unique("diffuser")
    both = Pair(api, reference)
    try:
        yield both, vhost, user
    finally:
        for side in (api, reference):
            side.delete(f"/api/vhosts/{q(vhost)}")
            side.delete(f"/api/users/{user}")


def test_vhosts_users_permissions(pair: tuple[Pair, str, str]) -> None:
    p, vhost, user = pair
    v = q(vhost)
    p.same("PUT", f"/api/vhosts/{v}", {"description": "diff", "tags": "a,b"})
    p.same("PUT", f"/api/vhosts/{v}", {"description": "diff", "tags": "a,b"})
    ours, theirs = p.shaped(f"/api/vhosts/{v}?disable_stats=true", "vhost")
    for key in ("name", "description", "tags", "metadata", "tracing"):
        assert ours[key] == theirs[key], key
    p.same("GET", "/api/vhosts/no-such-vhost")
    p.same("PUT", f"/api/users/{user}", {"password": "pw", "tags": "management"})
    p.same("PUT", f"/api/users/{unique('u')}", {"password": "pw"})
    ours, theirs = p.shaped(f"/api/users/{user}")
    assert {k: v for k, v in ours.items() if k != "password_hash"} == \
        {k: v for k, v in theirs.items() if k != "password_hash"}
    perms = {"configure": "^x", "write": ".*", "read": ".*"}
    p.same("PUT", f"/api/permissions/{v}/{user}", perms)
    p.same("PUT", f"/api/permissions/{v}/{user}", {"configure": ".*"})
    p.same("PUT", f"/api/permissions/no-such-vhost/{user}", perms)
    p.same("GET", f"/api/permissions/{v}/{user}")
    p.same("GET", f"/api/users/{user}/permissions")
    p.same("PUT", f"/api/topic-permissions/{v}/{user}",
           {"exchange": "amq.topic", "write": "^a", "read": ".*"})
    p.same("GET", f"/api/users/{user}/topic-permissions")
    p.same("PUT", f"/api/vhost-limits/{v}/max-queues", {"value": 10})
    p.same("GET", f"/api/vhost-limits/{v}")
    p.same("DELETE", f"/api/vhost-limits/{v}/max-queues")
    p.same("PUT", f"/api/user-limits/{user}/max-channels", {"value": 5})
    p.same("GET", f"/api/user-limits/{user}")
    # clearing what is not set: limits succeed, topic permissions are 404; no such user: 400
    p.same("DELETE", f"/api/vhost-limits/{v}/max-queues")
    p.same("DELETE", f"/api/user-limits/{user}/max-channels")
    p.same("DELETE", f"/api/user-limits/{user}/max-channels")
    p.same("DELETE", f"/api/topic-permissions/{v}/{user}")
    p.same("DELETE", f"/api/topic-permissions/{v}/{user}")
    p.same("PUT", "/api/user-limits/no-such-user/max-channels", {"value": 5})
    # the user's view: only its vhost, no administration
    as_user = {"user": user, "password": "pw"}
    p.same("GET", "/api/whoami", **as_user)
    assert [x["name"] for x in p.call("GET", "/api/vhosts", **as_user)[0].json] == [vhost]
    p.same("GET", "/api/users", **as_user)
    p.same("GET", "/api/queues/%2F", **as_user)
    p.same("GET", "/api/nodes", **as_user)
    p.same("DELETE", f"/api/permissions/{v}/{user}")
    p.same("DELETE", f"/api/permissions/{v}/{user}")


def test_exchanges_queues_bindings_policies(pair: tuple[Pair, str, str]) -> None:
    p, vhost, _ = pair
    v = q(vhost)
    p.same("PUT", f"/api/vhosts/{v}", {})
    p.same("PUT", f"/api/exchanges/{v}/ex1", {"type": "topic", "durable": True,
                                             "arguments": {"alternate-exchange": "amq.fanout"}})
    p.same("PUT", f"/api/exchanges/{v}/ex1", {"type": "direct"})
    p.same("PUT", f"/api/exchanges/{v}/ex2", {"type": "bogus"})
    p.same("PUT", f"/api/exchanges/{v}/amq.nope", {"type": "direct"})
    p.same("PUT", "/api/exchanges/no-such-vhost/x", {"type": "direct"})
    ours, theirs = p.call("GET", f"/api/exchanges/{v}/ex1")
    expected_extra = {"user_who_performed_action"}  # who declared it: not recorded
    assert set(theirs.json) - set(ours.json) <= expected_extra
    assert {k: theirs.json[k] for k in ours.json} == ours.json
    p.same("PUT", f"/api/queues/{v}/q1", {"durable": True, "arguments": {"x-max-length": 10}})
    p.same("PUT", f"/api/queues/{v}/q1", {"durable": True, "arguments": {"x-max-length": 10}})
    p.same("PUT", f"/api/queues/{v}/q1", {"durable": False})
    p.same("PUT", f"/api/queues/{v}/q2", {"arguments": {"x-max-length": "x"}})
    p.same("PUT", f"/api/queues/{v}/amq.q", {})
    p.same("PUT", "/api/queues/no-such-vhost/q", {})
    p.same("GET", f"/api/queues/{v}/no-such-queue")
    p.same("DELETE", f"/api/queues/{v}/no-such-queue")
    p.same("DELETE", f"/api/exchanges/{v}/no-such-exchange")
    ours, theirs = p.call("POST", f"/api/bindings/{v}/e/ex1/q/q1", {"routing_key": "a.#",
                                                                   "arguments": {"x": 1}})
    assert ours.header("Location").split("~")[0] == theirs.header("Location").split("~")[0] \
        == "q1/a.%2523"
    ours, theirs = p.call("POST", f"/api/bindings/{v}/e/ex1/q/q1", {"routing_key": "b"})
    assert ours.header("Location") == theirs.header("Location") == "q1/b"
    odd = "orders.* x/y%z+@!"
    ours, theirs = p.call("POST", f"/api/bindings/{v}/e/ex1/q/q1", {"routing_key": odd})
    assert ours.header("Location") == theirs.header("Location")
    ours, theirs = p.call("GET", f"/api/bindings/{v}/e/ex1/q/q1")
    [mine] = [b for b in ours.json if b["routing_key"] == odd]
    assert mine in theirs.json
    key = mine["properties_key"]
    p.same("GET", f"/api/bindings/{v}/e/ex1/q/q1/{key}")  # as listed
    p.same("DELETE", f"/api/bindings/{v}/e/ex1/q/q1/{q(key)}")  # quoted once more
    p.same("POST", f"/api/bindings/{v}/e/ex1/e/amq.direct", {"routing_key": ""})
    p.same("POST", f"/api/bindings/{v}/e/no-such-exchange/q/q1", {"routing_key": "b"})
    p.same("GET", f"/api/bindings/{v}/e/ex1/q/q1/b")
    p.same("GET", f"/api/bindings/{v}/e/ex1/e/amq.direct")
    p.same("GET", f"/api/exchanges/{v}/amq.direct/bindings/destination")
    p.same("GET", f"/api/bindings/{v}/e/amq.default/q/q1")
    ours, theirs = p.call("GET", f"/api/queues/{v}/q1/bindings")
    # listed in the order of RabbitMQ's binding tables, not sorted: compare as multisets
    strip = [{k: b[k] for k in b if k != "properties_key"} for b in ours.json]
    assert unordered(strip) == unordered(
        [{k: b[k] for k in b if k != "properties_key"} for b in theirs.json])
    p.same("DELETE", f"/api/bindings/{v}/e/ex1/q/q1/b")
    p.same("DELETE", f"/api/bindings/{v}/e/ex1/q/q1/b")
    p.same("DELETE", f"/api/exchanges/{v}/ex1?if-unused=true")
    policy = {"pattern": "^q", "definition": {"max-length": 5}, "priority": 1,
              "apply-to": "queues"}
    p.same("PUT", f"/api/policies/{v}/p1", policy)
    p.same("GET", f"/api/policies/{v}/p1")
    p.same("GET", f"/api/policies/{v}")
    p.same("PUT", f"/api/policies/{v}/p2", {"pattern": "^q"})
    assert p.call("PUT", f"/api/policies/{v}/p3", {"pattern": "^q",
                                                   "definition": {"bogus": 1}})[0].status == 400
    ours, theirs = p.call("GET", f"/api/definitions/{v}")
    for key in ("queues", "exchanges", "bindings", "policies", "parameters"):
        assert unordered(ours.json[key]) == unordered(theirs.json[key]), key
    p.same("DELETE", f"/api/policies/{v}/p1")
    p.same("DELETE", f"/api/policies/{v}/p1")
    p.same("GET", f"/api/queues/{v}?page=9&page_size=1")
    p.same("GET", f"/api/queues/{v}?page=x")
    ours, theirs = p.call("GET", f"/api/exchanges/{v}?columns=name,type&sort=name"
                                 "&sort_reverse=true")
    # amq.rabbitmq.trace serves RabbitMQ's firehose tracer, which leveret does not have
    assert ours.json == [x for x in theirs.json if x["name"] != "amq.rabbitmq.trace"]
    p.same("DELETE", f"/api/queues/{v}/q1")


def test_publish_and_get(pair: tuple[Pair, str, str]) -> None:
    p, vhost, _ = pair
    v = q(vhost)
    p.same("PUT", f"/api/vhosts/{v}", {})
    p.same("PUT", f"/api/queues/{v}/q", {})
    publish = f"/api/exchanges/{v}/amq.default/publish"
    props = {"delivery_mode": 2, "headers": {"a": 1, "s": "x", "l": [1, "two"]},
             "content_type": "application/json", "correlation_id": "c1", "priority": 2}
    p.same("POST", publish, {"properties": props, "routing_key": "q", "payload": "hello",
                             "payload_encoding": "string"})
    p.same("POST", publish, {"properties": {}, "routing_key": "q", "payload": "/wA=",
                             "payload_encoding": "base64"})
    p.same("POST", publish, {"properties": {}, "routing_key": "nowhere", "payload": "x",
                             "payload_encoding": "string"})
    p.same("POST", publish, {"properties": {}, "routing_key": "q", "payload": "x"})
    p.same("POST", publish, {"properties": {}, "routing_key": "q", "payload": "x",
                             "payload_encoding": "foo"})
    p.same("POST", f"/api/exchanges/{v}/no-such-exchange/publish", {
        "properties": {}, "routing_key": "q", "payload": "x", "payload_encoding": "string"})
    get = f"/api/queues/{v}/q/get"
    p.same("POST", get, {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"})
    p.same("POST", get, {"count": 1, "ackmode": "reject_requeue_true", "encoding": "base64",
                         "truncate": 2})
    p.same("POST", get, {"count": 1, "ackmode": "ack_requeue_true"})
    p.same("POST", get, {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"})
    p.same("POST", get, {"count": 5, "ackmode": "ack_requeue_false", "encoding": "auto"})
    p.same("POST", f"/api/queues/{v}/no-such-queue/get",
           {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    p.same("DELETE", f"/api/queues/{v}/q/contents")


def test_statistics_shapes(pair: tuple[Pair, str, str], api: Api, reference: Api) -> None:
    """Queues, channels, connections and consumers with traffic, once RabbitMQ has
    published its statistics."""
    p, vhost, _ = pair
    v = q(vhost)
    p.same("PUT", f"/api/vhosts/{v}", {})
    label = unique("diffconn")
    clients = []
    for port in (api.amqp_port, 5673):
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest"),
            client_properties={"connection_name": label}))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=3)
        ch.queue_declare("stats", durable=True)
        ch.basic_consume("stats", lambda *a: None, consumer_tag="ctag")
        pub = conn.channel()
        pub.confirm_delivery()
        for _ in range(3):
            pub.basic_publish("", "stats", b"payload")
        pub.basic_publish("", "unrouted", b"x")
        conn.process_data_events(0.2)
        clients.append(conn)
    try:
        def queue_ready(x: Any) -> bool:
            # a consumer's channel_details is [] until its channel's statistics arrive
            return ("message_stats" in x and x["message_stats"].get("deliver") == 3
                    and x.get("consumers") == 1 and x.get("messages_unacknowledged") == 3
                    and all(c.get("channel_details") for c in x.get("consumer_details", [])))

        theirs = wait_for(lambda: reference.get(f"/api/queues/{v}/stats").json, queue_ready)
        ours = api.get(f"/api/queues/{v}/stats").json
        assert_same_shape(ours, theirs, "queue")
        for key in ("messages", "messages_ready", "messages_unacknowledged", "consumers",
                    "message_bytes", "arguments", "durable", "type", "state"):
            assert ours[key] == theirs[key], key
        assert ours["message_stats"]["deliver"] == theirs["message_stats"]["deliver"] == 3

        def conn_ready(x: Any) -> bool:
            # RabbitMQ fills in a connection's statistics (recv_oct, channels, state) in
            # more than one emission: wait for all of them
            return any(c.get("user_provided_name") == label
                       and {"recv_oct", "channels", "state"} <= c.keys() for c in x)

        theirs_conns = wait_for(lambda: reference.get(f"/api/vhosts/{v}/connections").json,
                                conn_ready)
        ours_conns = api.get(f"/api/vhosts/{v}/connections").json
        assert_same_shape(ours_conns[0], theirs_conns[0], "connection")

        def channels_ready(x: Any) -> bool:
            # (the consuming channel's prefetch_count shows up in a later emission than
            # its first message_stats: a CI run read 0 there)
            return len(x) == 2 and all("message_stats" in c for c in x) and any(
                c.get("prefetch_count") == 3 for c in x)

        theirs_chans = wait_for(lambda: reference.get(f"/api/vhosts/{v}/channels").json,
                                channels_ready)
        ours_chans = api.get(f"/api/vhosts/{v}/channels").json
        for ours_ch, theirs_ch in zip(sorted(ours_chans, key=lambda c: c["number"]),
                                      sorted(theirs_chans, key=lambda c: c["number"]),
                                      strict=True):
            assert_same_shape(ours_ch, theirs_ch, "channel")
            for key in ("number", "prefetch_count", "consumer_count", "confirm",
                        "messages_unacknowledged"):
                assert ours_ch[key] == theirs_ch[key], key
        ours_cons, theirs_cons = p.shaped(f"/api/consumers/{v}")
        assert ours_cons[0]["queue"] == theirs_cons[0]["queue"]
        assert ours_cons[0]["prefetch_count"] == theirs_cons[0]["prefetch_count"] == 3
        theirs_vhost = wait_for(lambda: reference.get(f"/api/vhosts/{v}").json,
                                lambda x: "message_stats" in x and "recv_oct" in x)
        assert_same_shape(api.get(f"/api/vhosts/{v}").json, theirs_vhost, "vhost")
        overview_ours = api.get("/api/overview").json
        overview_theirs = reference.get("/api/overview").json
        assert_same_shape(overview_ours, overview_theirs, "overview")
        page_ours, page_theirs = p.shaped(f"/api/queues/{v}?page=1&page_size=1", "queue")
        assert {k: v for k, v in page_ours.items() if k != "items"} == \
            {k: v for k, v in page_theirs.items() if k != "items"}
    finally:
        for conn in clients:
            conn.close()


def test_errors_and_auth(pair: tuple[Pair, str, str]) -> None:
    p, _, _ = pair
    ours, theirs = p.call("GET", "/api/overview", user="guest", password="wrong")
    assert ours.json == theirs.json
    assert ours.header("WWW-Authenticate") == theirs.header("WWW-Authenticate")
    p.same("GET", "/api/no-such-thing")
    p.call("POST", "/api/overview")
    p.same("GET", "/api/whoami")
    p.same("GET", "/api/aliveness-test/%2F")
    p.same("GET", "/api/health/checks/alarms")
    p.shaped("/api/definitions", "definitions")
