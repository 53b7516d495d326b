"""Publish and get over HTTP (as RabbitMQ), and leveret's non-destructive peek."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from mgmt_helpers import Api, q, unique
from mgmt_schemas import check, check_list

from leveret.runtime.threaded import BrokerThread


@pytest.fixture
def queue(api: Api) -> Iterator[str]:
    name = unique("mq")
    api.ok("PUT", f"/api/queues/%2F/{q(name)}", {})
    yield name
    api.delete(f"/api/queues/%2F/{q(name)}")


def publish(api: Api, routing_key: str, payload: str, encoding: str = "string",
            properties: dict | None = None, exchange: str = "amq.default") -> dict:
    reply = api.post(f"/api/exchanges/%2F/{q(exchange)}/publish", {
        "properties": properties or {}, "routing_key": routing_key, "payload": payload,
        "payload_encoding": encoding})
    assert reply.status == 200, reply
    return reply.json


def get(api: Api, queue: str, count: int = 10, ackmode: str = "ack_requeue_true",
        encoding: str = "auto", **extra: object) -> list[dict]:
    reply = api.post(f"/api/queues/%2F/{q(queue)}/get",
                     {"count": count, "ackmode": ackmode, "encoding": encoding, **extra})
    assert reply.status == 200, reply
    return check_list("message", reply.json)


def test_publish_and_get(api: Api, queue: str) -> None:
    props = {"delivery_mode": 2, "headers": {"a": 1, "b": "two"}, "content_type": "text/plain",
             "priority": 3, "message_id": "m1", "timestamp": 1700000000}
    assert publish(api, queue, "hello", properties=props) == {"routed": True}
    assert publish(api, queue, base64.b64encode(b"\xff\x00").decode(), "base64") == {
        "routed": True}
    messages = get(api, queue, count=5)
    assert [m["payload"] for m in messages] == ["hello", "/wA="]
    assert [m["payload_encoding"] for m in messages] == ["string", "base64"]
    first = messages[0]
    assert first["properties"] == props
    assert (first["exchange"], first["routing_key"], first["redelivered"]) == ("", queue, False)
    assert first["payload_bytes"] == 5 and first["message_count"] == 1
    # ack_requeue_true put them back, redelivered from then on
    again = get(api, queue, count=1, encoding="base64")
    assert again[0]["redelivered"] is True and again[0]["payload"] == "aGVsbG8="
    assert [m["payload"] for m in get(api, queue, ackmode="ack_requeue_false")] == [
        "hello", "/wA="]
    assert get(api, queue) == []


def test_get_truncate_and_reject(api: Api, queue: str) -> None:
    publish(api, queue, "0123456789")
    assert get(api, queue, truncate=4)[0]["payload"] == "0123"
    assert get(api, queue, ackmode="reject_requeue_true")[0]["payload_bytes"] == 10
    assert len(get(api, queue, ackmode="reject_requeue_false")) == 1
    assert api.get(f"/api/queues/%2F/{q(queue)}").json["messages"] == 0


def test_get_errors(api: Api, queue: str) -> None:
    reply = api.post(f"/api/queues/%2F/{q(queue)}/get", {"count": 1, "ackmode": "ack_requeue_true"})
    assert reply.status == 400 and reply.json["reason"] == "[{key_missing,encoding}]"
    reply = api.post(f"/api/queues/%2F/{q(queue)}/get",
                     {"count": 1, "ackmode": "bogus", "encoding": "auto"})
    assert reply.status == 400
    reply = api.post("/api/queues/%2F/no-such-queue/get",
                     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert reply.status == 404
    assert reply.json == {"error": "not_found",
                          "reason": "NOT_FOUND - no queue 'no-such-queue' in vhost '/'"}


def test_publish_errors_and_unroutable(api: Api) -> None:
    assert publish(api, unique("nowhere"), "x") == {"routed": False}
    base = "/api/exchanges/%2F/amq.default/publish"
    reply = api.post(base, {"properties": {}, "routing_key": "r", "payload": "x"})
    assert reply.json == {"error": "bad_request", "reason": "[{key_missing,payload_encoding}]"}
    reply = api.post(base, {"properties": {}, "routing_key": "r", "payload": "x",
                            "payload_encoding": "foo"})
    assert reply.json == {"error": "bad_request", "reason": ["unsupported_encoding", "foo"]}
    reply = api.post("/api/exchanges/%2F/nope/publish", {
        "properties": {}, "routing_key": "r", "payload": "x", "payload_encoding": "string"})
    assert reply.json == {"error": "bad_request",
                          "reason": "404 NOT_FOUND - no exchange 'nope' in vhost '/'"}
    name = unique("internal")
    api.ok("PUT", f"/api/exchanges/%2F/{name}", {"type": "fanout", "internal": True})
    reply = api.post(f"/api/exchanges/%2F/{name}/publish", {
        "properties": {}, "routing_key": "", "payload": "x", "payload_encoding": "string"})
    assert reply.status == 400 and "internal exchange" in reply.json["reason"]
    api.delete(f"/api/exchanges/%2F/{name}")


def test_published_message_reaches_an_amqp_consumer(api: Api, queue: str) -> None:
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, "/", pika.PlainCredentials("guest", "guest")))
    try:
        publish(api, queue, "over http", properties={"headers": {"n": 1}})
        _, props, body = conn.channel().basic_get(queue, auto_ack=True)
        assert body == b"over http" and props.headers == {"n": 1}
    finally:
        conn.close()


def test_peek_leaves_messages_as_they_are(api: Api, queue: str) -> None:
    for n in range(5):
        publish(api, queue, f"m{n}")
    peeked = check_list("message", api.get(f"/api/queues/%2F/{q(queue)}/peek?count=2&offset=1"
                                           ).json)
    assert [(m["payload"], m["position"], m["message_count"]) for m in peeked] == [
        ("m1", 1, 3), ("m2", 2, 2)]
    assert all(m["redelivered"] is False for m in peeked)
    assert api.get(f"/api/queues/%2F/{q(queue)}/peek").json[0]["payload"] == "m0"
    assert api.get(f"/api/queues/%2F/{q(queue)}/peek?offset=9").json == []
    assert api.get(f"/api/queues/%2F/{q(queue)}/peek?count=x").status == 400
    assert api.get(f"/api/queues/%2F/{q(queue)}/peek?encoding=base64").json[0]["payload"] == \
        "bTA="
    queue_json = api.get(f"/api/queues/%2F/{q(queue)}").json
    assert queue_json["messages"] == 5
    assert "get" not in queue_json.get("message_stats", {})
    got = get(api, queue, count=5, ackmode="ack_requeue_false")
    assert [m["payload"] for m in got] == [f"m{n}" for n in range(5)]
    assert not any(m["redelivered"] for m in got)  # peeking never marked them


def test_publish_needs_write_permission(api: Api) -> None:
    user = unique("writer")
    api.ok("PUT", f"/api/users/{user}", {"password": "pw", "tags": "management"})
    api.ok("PUT", f"/api/permissions/%2F/{user}", {"configure": "", "write": "^$",
                                                  "read": ".*"})
    try:
        reply = api.post("/api/exchanges/%2F/amq.fanout/publish", {
            "properties": {}, "routing_key": "", "payload": "x",
            "payload_encoding": "string"}, user=user, password="pw")
        assert reply.status == 400
        assert reply.json["reason"] == (f"403 ACCESS_REFUSED - access to exchange "
                                        f"'amq.fanout' in vhost '/' refused for user '{user}'")
        check("error", reply.json)
    finally:
        api.delete(f"/api/users/{user}")


def test_peek_reads_paged_out_messages(tmp_path: Path) -> None:
    """Messages past a queue's in-memory limit wait in its log: peek reads them there and
    leaves them, in delivery order (priority levels highest first)."""
    with BrokerThread(management_port=0, data_dir=tmp_path) as broker:
        api = Api(broker.broker.management_url, broker.port)
        api.ok("PUT", "/api/queues/%2F/paged", {"durable": True, "arguments": {
            "x-max-in-memory-length": 2}})
        api.ok("PUT", "/api/queues/%2F/paged-prio", {"durable": True, "arguments": {
            "x-max-in-memory-length": 1, "x-max-priority": 5}})
        for n in range(6):
            publish(api, "paged", f"m{n}", properties={"delivery_mode": 2})
        for n, priority in enumerate((1, 5, 1, 5)):
            publish(api, "paged-prio", f"p{n}", properties={"priority": priority})
        queue = check("queue", api.get("/api/queues/%2F/paged").json)
        assert queue["messages"] == 6 and queue["messages_paged_out"] > 0
        assert queue["messages_ram"] + queue["messages_paged_out"] == 6
        peeked = api.get("/api/queues/%2F/paged/peek?count=10").json
        assert [m["payload"] for m in peeked] == [f"m{n}" for n in range(6)]
        assert [m["position"] for m in peeked] == list(range(6))
        assert api.get("/api/queues/%2F/paged/peek?offset=4&count=5").json[0]["payload"] == \
            "m4"
        prio = api.get("/api/queues/%2F/paged-prio/peek?count=10").json
        assert [m["payload"] for m in prio] == ["p1", "p3", "p0", "p2"]
        got = get(api, "paged", count=10, ackmode="ack_requeue_false")
        assert [m["payload"] for m in got] == [f"m{n}" for n in range(6)]
        got = get(api, "paged-prio", count=10, ackmode="ack_requeue_false")
        assert [m["payload"] for m in got] == ["p1", "p3", "p0", "p2"]
