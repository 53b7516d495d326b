"""Vhosts, users, permissions, topic permissions and limits."""

from __future__ import annotations

import pika
import pytest
from mgmt_helpers import Api, q, unique
from mgmt_schemas import check, check_list


def test_vhost_lifecycle(api: Api) -> None:
    name = unique("vh")
    assert api.put(f"/api/vhosts/{q(name)}", {"description": "d", "tags": "a,b"}).status == 201
    assert api.put(f"/api/vhosts/{q(name)}", {"description": "again"}).status == 204
    vhost = check("vhost", api.get(f"/api/vhosts/{q(name)}").json)
    assert vhost["description"] == "again" and vhost["tags"] == []
    assert vhost["metadata"] == {"description": "again", "tags": []}
    assert vhost["default_queue_type"] == "undefined"
    assert name in {v["name"] for v in check_list("vhost", api.get("/api/vhosts").json)}
    # the creator gets full permissions in it, as in RabbitMQ
    perms = check_list("permission", api.get(f"/api/vhosts/{q(name)}/permissions").json)
    assert perms == [{"user": "guest", "vhost": name, "configure": ".*", "write": ".*",
                      "read": ".*"}]
    assert api.get(f"/api/vhosts/{q(name)}/topic-permissions").json == []
    assert api.delete(f"/api/vhosts/{q(name)}").status == 204
    assert api.get(f"/api/vhosts/{q(name)}").status == 404
    assert api.delete(f"/api/vhosts/{q(name)}").status == 404


def test_deleting_a_vhost_closes_its_connections(api: Api) -> None:
    name = unique("vh")
    api.ok("PUT", f"/api/vhosts/{q(name)}", {})
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, name, pika.PlainCredentials("guest", "guest")))
    api.ok("DELETE", f"/api/vhosts/{q(name)}")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.process_data_events(2)
    assert info.value.reply_code == 320


def test_user_lifecycle_and_login(api: Api) -> None:
    name = unique("user")
    assert api.put(f"/api/users/{name}", {"password": "pw1", "tags": "management"}).status \
        == 201
    user = check("user", api.get(f"/api/users/{name}").json)
    assert user["tags"] == ["management"] and user["limits"] == {}
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    assert api.get("/api/whoami", user=name, password="pw1").json == {
        "name": name, "tags": ["management"]}
    # changing only the tags keeps the password
    assert api.put(f"/api/users/{name}", {"tags": ["monitoring"]}).status == 204
    assert api.get("/api/whoami", user=name, password="pw1").json["tags"] == ["monitoring"]
    assert name in {u["name"] for u in check_list("user", api.get("/api/users").json)}
    assert name in {u["name"] for u in api.get("/api/users/without-permissions").json}
    assert api.delete(f"/api/users/{name}").status == 204
    assert api.get(f"/api/users/{name}").status == 404
    assert api.delete(f"/api/users/{name}").status == 404


def test_user_needs_tags(api: Api) -> None:
    reply = api.put(f"/api/users/{unique('user')}", {"password": "x"})
    assert reply.status == 400
    assert reply.json == {"error": "bad_request", "reason": "tags_not_present"}


def test_user_with_password_hash(api: Api) -> None:
    from leveret.broker.access import hash_password

    name = unique("user")
    api.ok("PUT", f"/api/users/{name}", {"password_hash": hash_password("hashed-pw"),
                                         "tags": "administrator"})
    assert api.get("/api/whoami", user=name, password="hashed-pw").status == 200
    api.ok("POST", "/api/users/bulk-delete", {"users": [name]})
    assert api.get(f"/api/users/{name}").status == 404


def test_permissions(api: Api) -> None:
    user = unique("user")
    api.ok("PUT", f"/api/users/{user}", {"password": "pw", "tags": ""})
    path = f"/api/permissions/%2F/{user}"
    assert api.get(path).status == 404
    reply = api.put(path, {"configure": ".*"})
    assert reply.status == 400
    assert reply.json["reason"] == "[{key_missing,write},{key_missing,read}]"
    assert api.put(path, {"configure": "^a", "write": ".*", "read": ""}).status == 201
    assert api.put(path, {"configure": "^b", "write": ".*", "read": ""}).status == 204
    assert check("permission", api.get(path).json)["configure"] == "^b"
    assert any(p["user"] == user for p in check_list("permission",
                                                      api.get("/api/permissions").json))
    assert api.get(f"/api/users/{user}/permissions").json == [
        {"user": user, "vhost": "/", "configure": "^b", "write": ".*", "read": ""}]
    reply = api.put(f"/api/permissions/nowhere/{user}",
                    {"configure": ".*", "write": ".*", "read": ".*"})
    assert reply.json == {"error": "bad_request", "reason": "vhost_or_user_not_found"}
    assert api.delete(path).status == 204
    assert api.delete(path).status == 404
    api.delete(f"/api/users/{user}")


def test_topic_permissions(api: Api) -> None:
    user = unique("user")
    api.ok("PUT", f"/api/users/{user}", {"password": "pw", "tags": ""})
    path = f"/api/topic-permissions/%2F/{user}"
    body = {"exchange": "amq.topic", "write": "^a\\.", "read": ".*"}
    assert api.put(path, body).status == 201
    listed = check_list("topic_permission", api.get(path).json)
    assert listed == [{"user": user, "vhost": "/", "exchange": "amq.topic", "write": "^a\\.",
                       "read": ".*"}]
    assert listed[0] in api.get("/api/topic-permissions").json
    assert api.get(f"/api/users/{user}/topic-permissions").json == listed
    assert api.delete(path).status == 204
    assert api.get(path).status == 404
    api.delete(f"/api/users/{user}")


def test_vhost_limits(api: Api) -> None:
    name = unique("vh")
    api.ok("PUT", f"/api/vhosts/{q(name)}", {})
    assert api.put(f"/api/vhost-limits/{q(name)}/max-queues", {"value": 1}).status == 204
    assert check_list("vhost_limit", api.get(f"/api/vhost-limits/{q(name)}").json) == [
        {"vhost": name, "value": {"max-queues": 1}}]
    assert {"vhost": name, "value": {"max-queues": 1}} in api.get("/api/vhost-limits").json
    assert api.put(f"/api/queues/{q(name)}/one", {}).status == 201
    reply = api.put(f"/api/queues/{q(name)}/two", {})
    assert reply.status == 400 and "queue limit" in reply.json["reason"]
    assert api.put(f"/api/vhost-limits/{q(name)}/max-bogus", {"value": 1}).status == 400
    assert api.delete(f"/api/vhost-limits/{q(name)}/max-queues").status == 204
    assert api.get(f"/api/vhost-limits/{q(name)}").json == []
    api.delete(f"/api/vhosts/{q(name)}")


def test_user_limits(api: Api) -> None:
    user = unique("user")
    api.ok("PUT", f"/api/users/{user}", {"password": "pw", "tags": ""})
    assert api.put(f"/api/user-limits/{user}/max-channels", {"value": 3}).status == 204
    assert check_list("user_limit", api.get(f"/api/user-limits/{user}").json) == [
        {"user": user, "value": {"max-channels": 3}}]
    assert api.get(f"/api/users/{user}").json["limits"] == {"max-channels": 3}
    assert api.delete(f"/api/user-limits/{user}/max-channels").status == 204
    assert api.get(f"/api/user-limits/{user}").json == []
    api.delete(f"/api/users/{user}")
