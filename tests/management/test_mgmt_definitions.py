"""Definitions export and import: leveret -> file -> leveret, and RabbitMQ's export (a real
one, tests/management/data) -> leveret, with users logging in with their passwords."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pika
from mgmt_helpers import Api, q, unique
from mgmt_schemas import check

DATA = Path(__file__).parent / "data"
RABBITMQ_EXPORT = DATA / "rabbitmq-3.10.8-definitions.json"
# users in RABBITMQ_EXPORT and their passwords on the reference broker they came from
EXPORTED_PASSWORDS = {"alice-demo": "alice-pw", "bob-demo": "bob-pw"}


def amqp_login(api: Api, vhost: str, user: str, password: str) -> bool:
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", api.amqp_port, vhost, pika.PlainCredentials(user, password),
            connection_attempts=1))
    except pika.exceptions.AMQPConnectionError:
        return False
    conn.close()
    return True


def populate(api: Api, vhost: str, user: str) -> None:
    v = q(vhost)
    api.ok("PUT", f"/api/vhosts/{v}", {"description": "round trip", "tags": "rt"})
    api.ok("PUT", f"/api/users/{user}", {"password": "rt-pw", "tags": "management"})
    api.ok("PUT", f"/api/permissions/{v}/{user}", {"configure": "^rt", "write": ".*",
                                                   "read": ".*"})
    api.ok("PUT", f"/api/topic-permissions/{v}/{user}",
           {"exchange": "amq.topic", "write": "^rt\\.", "read": ".*"})
    api.ok("PUT", f"/api/user-limits/{user}/max-channels", {"value": 9})
    api.ok("PUT", f"/api/vhost-limits/{v}/max-connections", {"value": 50})
    api.ok("PUT", f"/api/policies/{v}/ttl", {"pattern": "^rt\\.", "definition": {
        "message-ttl": 1000}, "priority": 3, "apply-to": "queues"})
    api.ok("PUT", f"/api/exchanges/{v}/rt.events", {"type": "topic", "durable": True})
    api.ok("PUT", f"/api/exchanges/{v}/rt.fan", {"type": "fanout", "durable": True,
                                                 "arguments": {"alternate-exchange": "x"}})
    api.ok("PUT", f"/api/queues/{v}/rt.q", {"durable": True, "arguments": {
        "x-max-priority": 4, "x-dead-letter-exchange": "rt.fan"}})
    api.ok("PUT", f"/api/queues/{v}/rt.transient", {"durable": False})
    api.ok("POST", f"/api/bindings/{v}/e/rt.events/q/rt.q", {"routing_key": "a.*",
                                                              "arguments": {"k": "v"}})
    api.ok("POST", f"/api/bindings/{v}/e/rt.events/e/rt.fan", {"routing_key": "#"})


def comparable(defs: dict[str, Any]) -> dict[str, Any]:
    """A definitions document without what differs between two brokers by nature."""
    out = {}
    for key, value in defs.items():
        if isinstance(value, list):
            out[key] = sorted(json.dumps(v, sort_keys=True) for v in value)
        elif key not in ("product_version",):
            out[key] = value
    return out


def test_export_shape(api: Api) -> None:
    vhost, user = unique("defs"), unique("u")
    populate(api, vhost, user)
    defs = check("definitions", api.get("/api/definitions").json)
    assert defs["rabbit_version"] == defs["rabbitmq_version"] == "3.10.8"
    assert {"name": user, "password_hash": defs["users"][[u["name"] for u in defs["users"]]
                                                        .index(user)]["password_hash"],
            "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"],
            "limits": {"max-channels": 9}} in defs["users"]
    assert {"value": {"max-connections": 50}, "vhost": vhost, "component": "vhost-limits",
            "name": "limits"} in defs["parameters"]
    assert {"name": "rt.q", "vhost": vhost, "durable": True, "auto_delete": False,
            "arguments": {"x-max-priority": 4, "x-dead-letter-exchange": "rt.fan"}} \
        in defs["queues"]
    assert {"source": "rt.events", "vhost": vhost, "destination": "rt.fan",
            "destination_type": "exchange", "routing_key": "#", "arguments": {}} \
        in defs["bindings"]
    assert not any(x["name"].startswith("amq.") or x["name"] == "" for x in defs["exchanges"])
    one = check("vhost_definitions", api.get(f"/api/definitions/{q(vhost)}").json)
    assert {"name": "rt.transient", "durable": False, "auto_delete": False,
            "arguments": {}} in one["queues"]
    assert all("vhost" not in item for item in one["queues"] + one["bindings"])
    reply = api.get("/api/definitions?download=broker.json")
    assert reply.header("Content-Disposition") == "attachment; filename=broker.json"
    assert api.get("/api/definitions/nowhere").status == 404


def test_round_trip_leveret_file_leveret(api: Api, fresh_api: Api, tmp_path: Path) -> None:
    vhost, user = unique("defs"), unique("u")
    populate(api, vhost, user)
    exported = api.get("/api/definitions").json
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(exported))
    reply = fresh_api.call("POST", "/api/definitions", raw=path.read_bytes())
    assert reply.status == 204, reply
    reimported = fresh_api.get("/api/definitions").json
    assert comparable(reimported) == comparable(exported)
    assert amqp_login(fresh_api, vhost, user, "rt-pw")
    assert not amqp_login(fresh_api, vhost, user, "wrong")
    assert fresh_api.get(f"/api/queues/{q(vhost)}/rt.q").json["policy"] == "ttl"


def test_per_vhost_round_trip(api: Api, fresh_api: Api) -> None:
    vhost, user = unique("defs"), unique("u")
    populate(api, vhost, user)
    exported = api.get(f"/api/definitions/{q(vhost)}").json
    fresh_api.ok("PUT", "/api/vhosts/target", {})
    assert fresh_api.post("/api/definitions/target", exported).status == 204
    again = fresh_api.get("/api/definitions/target").json
    assert [p.pop("vhost") for p in again["policies"]] == ["target"]
    assert [p.pop("vhost") for p in exported["policies"]] == [vhost]
    # RabbitMQ keeps the vhost of parameters too
    assert {p.pop("vhost") for p in again["parameters"]} == {"target"}
    assert {p.pop("vhost") for p in exported["parameters"]} == {vhost}
    assert comparable(again) == comparable(exported)


def test_rabbitmq_export_imports(fresh_api: Api) -> None:
    export = json.loads(RABBITMQ_EXPORT.read_text())
    assert export["product_name"] == "RabbitMQ"
    assert fresh_api.post("/api/definitions", export).status == 204
    for user, password in EXPORTED_PASSWORDS.items():
        assert amqp_login(fresh_api, "export-demo", user, password), user
    assert fresh_api.get("/api/whoami", user="alice-demo", password="alice-pw").json == {
        "name": "alice-demo", "tags": ["management"]}
    reimported = fresh_api.get("/api/definitions").json
    for key in ("permissions", "topic_permissions", "policies", "queues", "exchanges",
                "bindings", "parameters"):
        for item in export[key]:
            assert item in reimported[key], (key, item)
    for item in export["users"]:
        assert item in reimported["users"]
    queues = {x["name"]: x for x in fresh_api.get("/api/queues/export-demo").json}
    assert queues["work"]["type"] == "quorum"
    assert queues["orders.created"]["policy"] == "ttl-orders"


def test_import_errors(fresh_api: Api) -> None:
    reply = fresh_api.post("/api/definitions", {"queues": [
        {"name": "x", "vhost": "nope", "durable": True, "auto_delete": False,
         "arguments": {}}]})
    assert reply.json == {"error": "bad_request", "reason": ["no_such_vhost", "nope"]}
    reply = fresh_api.call("POST", "/api/definitions", raw=b"[1, 2")
    assert reply.status == 400


def only(export: dict[str, Any], vhost: str, user: str) -> dict[str, Any]:
    """The part of a (shared) reference broker's export this test made."""
    out: dict[str, Any] = {}
    for key, value in export.items():
        if not isinstance(value, list):
            out[key] = value
        elif key == "users":
            out[key] = [u for u in value if u["name"] == user]
        elif key == "vhosts":
            out[key] = [v for v in value if v["name"] == vhost]
        elif key == "global_parameters":
            out[key] = value
        else:
            out[key] = [x for x in value if x.get("vhost") == vhost]
    return out


def test_live_rabbitmq_export_imports(reference: Api, fresh_api: Api) -> None:
    """Made on the reference RabbitMQ now, exported, imported: the user logs in to leveret
    with the password given to RabbitMQ."""
    vhost, user = unique("defs"), unique("u")
    try:
        populate(reference, vhost, user)
        export = only(reference.get("/api/definitions").json, vhost, user)
        assert len(export["queues"]) == 2 and len(export["bindings"]) == 2
        assert fresh_api.post("/api/definitions", export).status == 204
        assert amqp_login(fresh_api, vhost, user, "rt-pw")
        reimported = fresh_api.get("/api/definitions").json
        for key in ("users", "permissions", "topic_permissions", "policies", "queues",
                    "exchanges", "bindings", "parameters"):
            for item in export[key]:
                assert item in reimported[key], (key, item)
    finally:
        reference.delete(f"/api/users/{user}")
        reference.delete(f"/api/vhosts/{q(vhost)}")


def test_definitions_need_administrator(api: Api) -> None:
    name = unique("mon")
    api.ok("PUT", f"/api/users/{name}", {"password": "pw", "tags": "monitoring"})
    try:
        assert api.get("/api/definitions", user=name, password="pw").status == 401
        assert api.post("/api/definitions", {}, user=name, password="pw").status == 401
        assert api.get("/api/definitions").status == 200
    finally:
        api.delete(f"/api/users/{name}")
