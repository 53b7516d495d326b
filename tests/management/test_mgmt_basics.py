"""The broker-wide endpoints, authentication, errors and the static UI."""

from __future__ import annotations

import re
import time

from mgmt_helpers import Api, q
from mgmt_schemas import check, check_list

from leveret.runtime.threaded import BrokerThread


def test_overview(api: Api) -> None:
    reply = api.get("/api/overview")
    assert reply.status == 200
    assert reply.header("Content-Type").startswith("application/json")
    body = check("overview", reply.json)
    assert body["product_name"] == "leveret"
    assert {t["name"] for t in body["exchange_types"]} >= {"direct", "fanout", "topic",
                                                          "headers"}
    assert body["object_totals"]["exchanges"] >= 6
    assert any(listener["protocol"] == "amqp" and listener["port"] == api.amqp_port
               for listener in body["listeners"])


def test_overview_without_stats(api: Api) -> None:
    body = api.get("/api/overview?disable_stats=true").json
    assert body["disable_stats"] is True
    assert "message_stats" not in body and "queue_totals" not in body


def test_nodes_and_node(api: Api) -> None:
    nodes = check_list("node", api.get("/api/nodes").json)
    assert len(nodes) == 1
    name = nodes[0]["name"]
    assert "@" in name and nodes[0]["running"] is True
    assert check("node", api.get(f"/api/nodes/{q(name)}").json)["name"] == name
    assert api.get("/api/nodes/rabbit@nowhere").status == 404


def test_whoami_extensions_cluster_name(api: Api) -> None:
    assert check("whoami", api.get("/api/whoami").json) == {"name": "guest",
                                                            "tags": ["administrator"]}
    assert api.get("/api/extensions").json == []
    # each broker has a name of its own, node-name-like (RabbitMQ's default is rabbit@host)
    original = api.get("/api/cluster-name").json["name"]
    assert re.fullmatch(r"leveret-[0-9a-f]{6}@\S+", original)
    assert api.put("/api/cluster-name", {"name": "renamed"}).status == 204
    assert api.get("/api/cluster-name").json == {"name": "renamed"}
    assert api.get("/api/overview").json["cluster_name"] == "renamed"
    api.put("/api/cluster-name", {"name": original})


def test_health_alarms_and_aliveness(api: Api) -> None:
    assert api.get("/api/health/checks/alarms").json == {"status": "ok"}
    assert api.get("/api/health/checks/local-alarms").json == {"status": "ok"}
    assert api.get("/api/aliveness-test/%2F").json == {"status": "ok"}
    assert api.get("/api/aliveness-test/nowhere").status == 404


def test_alarms_reported() -> None:
    """The health check reads the node's alarms (set by the resource monitor)."""
    with BrokerThread(management_port=0, memory_used=lambda: 1 << 60) as broker:
        api = Api(broker.broker.management_url)
        deadline = time.monotonic() + 5
        while "memory" not in broker.node.alarms and time.monotonic() < deadline:
            time.sleep(0.05)
        reply = api.get("/api/health/checks/alarms")
        assert reply.status == 503
        assert reply.json["status"] == "failed"
        assert [a["resource"] for a in reply.json["alarms"]] == ["memory"]
        assert api.get("/api/nodes").json[0]["mem_alarm"] is True


def test_login_failed_has_www_authenticate(api: Api) -> None:
    for reply in (api.get("/api/overview", user=""),
                  api.get("/api/overview", user="guest", password="wrong"),
                  api.get("/api/overview", user="nobody", password="x")):
        assert reply.status == 401
        assert reply.header("WWW-Authenticate") == 'Basic realm="RabbitMQ Management"'
        assert reply.json == {"error": "not_authorized", "reason": "Login failed"}


def test_not_found_and_method_not_allowed(api: Api) -> None:
    reply = api.get("/api/no-such-endpoint")
    assert reply.status == 404
    assert reply.json == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.get("/api/queues/%2F/no-such-queue").json == {
        "error": "Object Not Found", "reason": "Not Found"}
    assert api.post("/api/overview").status == 405
    assert api.call("PATCH", "/api/queues/%2F/x", {}).status == 405


def test_bad_json_is_400(api: Api) -> None:
    reply = api.call("PUT", "/api/vhosts/bad-json", raw=b"{not json")
    assert reply.status == 400
    assert check("error", reply.json)["error"] == "bad_request"


def test_static_index(api: Api) -> None:
    reply = api.get("/", user="")
    assert reply.status == 200 and "<html" in reply.text
    assert api.get("/../../etc/passwd", user="").status == 404
