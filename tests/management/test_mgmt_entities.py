"""Exchanges, queues, bindings and policies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mgmt_helpers import Api, q, unique
from mgmt_schemas import check, check_list


@pytest.fixture
def vhost(api: Api) -> Iterator[str]:
    name = unique("ent")
    api.ok("PUT", f"/api/vhosts/{q(name)}", {})
    yield name
    api.delete(f"/api/vhosts/{q(name)}")


def test_exchange_lifecycle(api: Api, vhost: str) -> None:
    v = q(vhost)
    body = {"type": "fanout", "durable": True, "arguments": {"alternate-exchange": "amq.direct"}}
    assert api.put(f"/api/exchanges/{v}/ex1", body).status == 201
    assert api.put(f"/api/exchanges/{v}/ex1", body).status == 204
    reply = api.put(f"/api/exchanges/{v}/ex1", {"type": "direct"})
    assert reply.status == 400
    assert reply.json["reason"] == (f"inequivalent arg 'type' for exchange 'ex1' in vhost "
                                    f"'{vhost}': received 'direct' but current is 'fanout'")
    ex = check("exchange", api.get(f"/api/exchanges/{v}/ex1").json)
    assert ex["arguments"] == {"alternate-exchange": "amq.direct"} and ex["durable"] is True
    assert ex["incoming"] == [] and ex["outgoing"] == []
    names = [e["name"] for e in check_list("exchange", api.get(f"/api/exchanges/{v}").json)]
    assert names == sorted(names) and {"", "amq.direct", "ex1"} <= set(names)
    assert api.get(f"/api/exchanges/{v}/amq.default").json["name"] == ""
    assert api.put(f"/api/exchanges/{v}/ex2", {}).status == 201  # direct, not durable
    assert api.get(f"/api/exchanges/{v}/ex2").json["type"] == "direct"
    assert api.put(f"/api/exchanges/{v}/bad", {"type": "bogus"}).json == {
        "error": "bad_request", "reason": "unknown exchange type 'bogus'"}
    assert api.put(f"/api/exchanges/{v}/amq.mine", {"type": "direct"}).json == {
        "error": "not_authorised", "reason": "Access refused."}
    assert api.put("/api/exchanges/nowhere/x", {"type": "direct"}).json == {
        "error": "not_found", "reason": "vhost_not_found"}
    assert api.delete(f"/api/exchanges/{v}/ex1").status == 204
    assert api.delete(f"/api/exchanges/{v}/ex1").status == 404
    assert api.get("/api/exchanges").status == 200


def test_queue_lifecycle(api: Api, vhost: str) -> None:
    v = q(vhost)
    body = {"durable": True, "arguments": {"x-max-length": 10}}
    assert api.put(f"/api/queues/{v}/q1", body).status == 201
    assert api.put(f"/api/queues/{v}/q1", body).status == 204
    reply = api.put(f"/api/queues/{v}/q1", {"durable": False})
    assert reply.status == 400 and reply.json["reason"].startswith("inequivalent arg 'durable'")
    queue = check("queue", api.get(f"/api/queues/{v}/q1").json)
    assert queue["arguments"] == {"x-max-length": 10} and queue["type"] == "classic"
    assert queue["messages"] == 0 and queue["consumer_details"] == []
    reply = api.put(f"/api/queues/{v}/q2", {"arguments": {"x-max-length": "x"}})
    assert reply.json["reason"] == (f"invalid arg 'x-max-length' for queue 'q2' in vhost "
                                    f"'{vhost}': \"expected integer, got longstr\"")
    assert api.put(f"/api/queues/{v}/amq.q", {}).status == 401
    assert api.put("/api/queues/nowhere/q", {}).json == {"error": "not_found",
                                                         "reason": "vhost_not_found"}
    assert api.put(f"/api/queues/{v}/qq", {"durable": True,
                                          "arguments": {"x-queue-type": "quorum"}}).status == 201
    assert api.get(f"/api/queues/{v}/qq").json["type"] == "quorum"
    assert "cannot delete queue 'qq'" in api.delete(f"/api/queues/{v}/qq?if-empty=true"
                                                    ).json["reason"]
    listed = check_list("queue", api.get(f"/api/queues/{v}").json)
    assert [x["name"] for x in listed] == ["q1", "qq"]
    assert api.post(f"/api/queues/{v}/q1/actions", {"action": "sync"}).status == 204
    assert api.delete(f"/api/queues/{v}/q1").status == 204
    assert api.delete(f"/api/queues/{v}/q1").status == 404
    assert api.get(f"/api/queues/{v}/q1").status == 404


def test_queue_delete_if_unused_and_purge(api: Api, vhost: str) -> None:
    import pika

    v = q(vhost)
    api.ok("PUT", f"/api/queues/{v}/busy", {})
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, vhost, pika.PlainCredentials("guest", "guest")))
    try:
        ch = conn.channel()
        ch.basic_consume("busy", lambda *a: None)
        reply = api.delete(f"/api/queues/{v}/busy?if-unused=true")
        assert reply.status == 400 and reply.json["reason"].endswith("in use")
    finally:
        conn.close()
    for n in range(3):
        api.ok("POST", f"/api/exchanges/{v}/amq.default/publish",
               {"properties": {}, "routing_key": "busy", "payload": str(n),
                "payload_encoding": "string"})
    assert api.get(f"/api/queues/{v}/busy").json["messages"] == 3
    assert api.delete(f"/api/queues/{v}/busy/contents").status == 204
    assert api.get(f"/api/queues/{v}/busy").json["messages"] == 0


def test_bindings(api: Api, vhost: str) -> None:
    v = q(vhost)
    api.ok("PUT", f"/api/exchanges/{v}/src", {"type": "topic"})
    api.ok("PUT", f"/api/exchanges/{v}/dst", {"type": "fanout"})
    api.ok("PUT", f"/api/queues/{v}/bq", {})
    reply = api.post(f"/api/bindings/{v}/e/src/q/bq", {"routing_key": "a.#",
                                                       "arguments": {"x-foo": "bar"}})
    assert reply.status == 201
    location = reply.header("Location")  # the key quoted once more, as RabbitMQ does
    assert location.startswith("bq/a.%2523~")
    key = location.split("/", 1)[1].replace("%25", "%")
    assert api.post(f"/api/bindings/{v}/e/src/q/bq", {}).header("Location") == "bq/~"
    assert api.post(f"/api/bindings/{v}/e/src/e/dst", {"routing_key": "x"}).status == 201
    assert api.post(f"/api/bindings/{v}/e/nope/q/bq", {}).status == 404
    between = check_list("binding", api.get(f"/api/bindings/{v}/e/src/q/bq").json)
    assert {b["properties_key"] for b in between} == {key, "~"}
    one = check("binding", api.get(f"/api/bindings/{v}/e/src/q/bq/{key}").json)
    assert one["arguments"] == {"x-foo": "bar"} and one["routing_key"] == "a.#"
    assert api.get(f"/api/bindings/{v}/e/amq.default/q/bq").json == [
        {"source": "", "vhost": vhost, "destination": "bq", "destination_type": "queue",
         "routing_key": "bq", "arguments": {}, "properties_key": "bq"}]
    assert len(check_list("binding", api.get(f"/api/bindings/{v}").json)) == 4
    assert len(api.get(f"/api/queues/{v}/bq/bindings").json) == 3
    assert len(api.get(f"/api/exchanges/{v}/src/bindings/source").json) == 3
    assert api.get(f"/api/exchanges/{v}/dst/bindings/destination").json[0]["source"] == "src"
    assert api.get(f"/api/bindings/{v}/e/src/e/dst/x").json["destination_type"] == "exchange"
    assert api.delete(f"/api/bindings/{v}/e/src/q/bq/{key}").status == 204
    assert api.delete(f"/api/bindings/{v}/e/src/q/bq/{key}").status == 404
    assert api.delete(f"/api/bindings/{v}/e/src/e/dst/x").status == 204
    assert api.get(f"/api/exchanges/{v}/dst/bindings/destination").json == []
    reply = api.delete(f"/api/exchanges/{v}/src?if-unused=true")
    assert reply.status == 400 and reply.json["reason"].endswith("in use")


def test_policies(api: Api, vhost: str) -> None:
    v = q(vhost)
    api.ok("PUT", f"/api/queues/{v}/orders", {})
    body = {"pattern": "^orders$", "definition": {"max-length": 5}, "priority": 1,
            "apply-to": "queues"}
    assert api.put(f"/api/policies/{v}/p1", body).status == 201
    assert api.put(f"/api/policies/{v}/p1", body).status == 204
    policy = check("policy", api.get(f"/api/policies/{v}/p1").json)
    assert policy == {"vhost": vhost, "name": "p1", "pattern": "^orders$",
                      "apply-to": "queues", "definition": {"max-length": 5}, "priority": 1}
    queue = api.get(f"/api/queues/{v}/orders").json
    assert queue["policy"] == "p1"
    assert queue["effective_policy_definition"] == {"max-length": 5}
    assert check_list("policy", api.get(f"/api/policies/{v}").json) == [policy]
    assert policy in api.get("/api/policies").json
    assert api.put(f"/api/policies/{v}/p2", {"pattern": "^q"}).json["reason"] == \
        "[{key_missing,definition}]"
    reply = api.put(f"/api/policies/{v}/p2", {"pattern": "^q", "definition": {"bogus": 1}})
    assert reply.status == 400 and "are not recognised policy settings" in reply.json["reason"]
    assert api.put(f"/api/policies/{v}/p3", {"pattern": "^q", "definition": {"max-length": 1},
                                            "apply-to": "nothing"}).status == 400
    assert api.delete(f"/api/policies/{v}/p1").status == 204
    assert api.delete(f"/api/policies/{v}/p1").status == 404
    assert api.get(f"/api/queues/{v}/orders").json["policy"] is None
