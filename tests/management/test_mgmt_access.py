"""Who may call what: RabbitMQ's management tags and vhost permissions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mgmt_helpers import Api, q, unique

PASSWORD = "secret-pw"


@pytest.fixture(scope="module")
def people(api: Api) -> Iterator[dict[str, str]]:
    """Users for each tag (names unique to this module) and a vhost only some may use."""
    vhost = unique("acl")
    names = {tag: unique(tag or "none") for tag in
             ("administrator", "monitoring", "policymaker", "management", "")}
    api.ok("PUT", f"/api/vhosts/{q(vhost)}", {})
    for tag, name in names.items():
        api.ok("PUT", f"/api/users/{name}", {"password": PASSWORD, "tags": tag})
    for tag in ("policymaker", "management"):
        api.ok("PUT", f"/api/permissions/{q(vhost)}/{names[tag]}",
               {"configure": ".*", "write": ".*", "read": ".*"})
    api.ok("PUT", f"/api/queues/{q(vhost)}/jobs", {})
    yield {"vhost": vhost, **{tag or "none": name for tag, name in names.items()}}
    for name in names.values():
        api.delete(f"/api/users/{name}")
    api.delete(f"/api/vhosts/{q(vhost)}")


def as_(api: Api, people: dict[str, str], who: str, method: str, path: str,
        body: object = None) -> int:
    return api.call(method, path, body if body is not None or method in ("GET", "DELETE")
                    else {}, user=people[who], password=PASSWORD).status


def test_no_management_tag_is_refused(api: Api, people: dict[str, str]) -> None:
    reply = api.get("/api/overview", user=people["none"], password=PASSWORD)
    assert reply.status == 401
    assert reply.json == {"error": "not_authorised", "reason": "Not management user"}


def test_every_management_tag_reads_the_overview(api: Api, people: dict[str, str]) -> None:
    for who in ("administrator", "monitoring", "policymaker", "management"):
        assert as_(api, people, who, "GET", "/api/overview") == 200
        assert as_(api, people, who, "GET", "/api/whoami") == 200


@pytest.mark.parametrize("path", ["/api/users", "/api/permissions", "/api/definitions",
                                  "/api/topic-permissions"])
def test_administrator_only_reads(api: Api, people: dict[str, str], path: str) -> None:
    assert as_(api, people, "administrator", "GET", path) == 200
    for who in ("monitoring", "policymaker", "management"):
        reply = api.get(path, user=people[who], password=PASSWORD)
        assert reply.status == 401
        assert reply.json == {"error": "not_authorised", "reason": "Not administrator user"}


def test_administrator_only_writes(api: Api, people: dict[str, str]) -> None:
    for who in ("monitoring", "policymaker", "management"):
        assert as_(api, people, who, "PUT", "/api/vhosts/not-made") == 401
        assert as_(api, people, who, "PUT", "/api/users/not-made", {"tags": ""}) == 401
        assert as_(api, people, who, "DELETE", f"/api/vhosts/{q(people['vhost'])}") == 401


def test_nodes_need_monitoring(api: Api, people: dict[str, str]) -> None:
    assert as_(api, people, "monitoring", "GET", "/api/nodes") == 200
    assert as_(api, people, "administrator", "GET", "/api/nodes") == 200
    reply = api.get("/api/nodes", user=people["management"], password=PASSWORD)
    assert reply.status == 401 and reply.json["reason"] == "Not monitor user"


def test_monitoring_sees_every_vhost(api: Api, people: dict[str, str]) -> None:
    names = {v["name"] for v in api.get("/api/vhosts", user=people["monitoring"],
                                        password=PASSWORD).json}
    assert {"/", people["vhost"]} <= names
    # but, as in RabbitMQ, not what is in them without permissions there
    assert as_(api, people, "monitoring", "GET", f"/api/queues/{q(people['vhost'])}") == 401


def test_management_sees_only_its_vhosts(api: Api, people: dict[str, str]) -> None:
    mine = api.get("/api/vhosts", user=people["management"], password=PASSWORD).json
    assert [v["name"] for v in mine] == [people["vhost"]]
    queues = api.get("/api/queues", user=people["management"], password=PASSWORD).json
    assert {x["vhost"] for x in queues} == {people["vhost"]}
    reply = api.get("/api/queues/%2F", user=people["management"], password=PASSWORD)
    assert reply.status == 401
    assert reply.json["reason"] == "User not authorised to access virtual host"


def test_management_may_declare_where_permitted(api: Api, people: dict[str, str]) -> None:
    vhost = q(people["vhost"])
    assert as_(api, people, "management", "PUT", f"/api/queues/{vhost}/mine") == 201
    assert as_(api, people, "management", "DELETE", f"/api/queues/{vhost}/mine") == 204
    assert as_(api, people, "management", "PUT", "/api/queues/%2F/not-mine") == 401
    # monitoring reads everything but has no permissions in the vhost to change it
    assert as_(api, people, "monitoring", "PUT", f"/api/queues/{vhost}/theirs") == 401


def test_permission_patterns_are_enforced(api: Api, people: dict[str, str]) -> None:
    vhost = people["vhost"]
    user = people["management"]
    api.ok("PUT", f"/api/permissions/{q(vhost)}/{user}",
           {"configure": "^own\\.", "write": ".*", "read": ".*"})
    try:
        assert as_(api, people, "management", "PUT", f"/api/queues/{q(vhost)}/own.q") == 201
        reply = api.put(f"/api/queues/{q(vhost)}/other.q", user=user, password=PASSWORD)
        assert reply.status == 401
        assert reply.json == {"error": "not_authorised", "reason": "Access refused."}
    finally:
        api.ok("PUT", f"/api/permissions/{q(vhost)}/{user}",
               {"configure": ".*", "write": ".*", "read": ".*"})


def test_policies_need_policymaker(api: Api, people: dict[str, str]) -> None:
    vhost = q(people["vhost"])
    body = {"pattern": "^jobs$", "definition": {"max-length": 10}}
    assert as_(api, people, "management", "PUT", f"/api/policies/{vhost}/p", body) == 401
    assert as_(api, people, "policymaker", "PUT", f"/api/policies/{vhost}/p", body) == 201
    assert as_(api, people, "management", "GET", f"/api/policies/{vhost}") == 200
    assert as_(api, people, "management", "GET", f"/api/policies/{vhost}/p") == 401
    assert as_(api, people, "policymaker", "GET", f"/api/policies/{vhost}/p") == 200
    assert as_(api, people, "management", "DELETE", f"/api/policies/{vhost}/p") == 401
    assert as_(api, people, "policymaker", "DELETE", f"/api/policies/{vhost}/p") == 204


def test_connections_of_others_hidden_from_management(api: Api,
                                                      people: dict[str, str]) -> None:
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, "/", pika.PlainCredentials("guest", "guest")))
    try:
        everyone = api.get("/api/connections", user=people["monitoring"],
                           password=PASSWORD).json
        assert any(c["user"] == "guest" for c in everyone)
        own = api.get("/api/connections", user=people["management"], password=PASSWORD).json
        assert all(c["user"] == people["management"] for c in own)
    finally:
        conn.close()
