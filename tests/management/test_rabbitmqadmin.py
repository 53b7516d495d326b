"""RabbitMQ's own admin tool, rabbitmqadmin (served by the reference RabbitMQ's management
plugin at /cli/rabbitmqadmin), run unchanged against leveret's management API."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from mgmt_helpers import Api


@pytest.fixture(scope="module")
def rabbitmqadmin(reference: Api, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rabbitmqadmin") / "rabbitmqadmin"
    with urllib.request.urlopen(reference.base + "/cli/rabbitmqadmin", timeout=10) as r:
        path.write_bytes(r.read())
    return path


def run(tool: Path, api: Api, *args: str) -> str:
    port = api.base.rsplit(":", 1)[1].split("/")[0]
    done = subprocess.run([sys.executable, str(tool), "-P", port, *args], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr or done.stdout
    return done.stdout


def test_rabbitmqadmin_declares_publishes_gets_and_exports(rabbitmqadmin: Path, fresh_api: Api,
                                                           tmp_path: Path) -> None:
    api = fresh_api
    assert run(rabbitmqadmin, api, "declare", "queue", "name=ra", "durable=true").strip() == \
        "queue declared"
    run(rabbitmqadmin, api, "declare", "exchange", "name=rax", "type=topic")
    run(rabbitmqadmin, api, "declare", "binding", "source=rax", "destination=ra",
        "routing_key=a.#")
    assert "Message published" in run(rabbitmqadmin, api, "publish", "exchange=rax",
                                      "routing_key=a.b", "payload=hello")
    queues = json.loads(run(rabbitmqadmin, api, "-f", "raw_json", "list", "queues"))
    assert [(q["name"], q["messages"]) for q in queues] == [("ra", 1)]
    got = json.loads(run(rabbitmqadmin, api, "-f", "raw_json", "get", "queue=ra",
                         "ackmode=ack_requeue_false"))
    assert got[0]["payload"] == "hello" and got[0]["routing_key"] == "a.b"
    run(rabbitmqadmin, api, "declare", "user", "name=bob", "password=pw", "tags=monitoring")
    run(rabbitmqadmin, api, "declare", "permission", "vhost=/", "user=bob", "configure=.*",
        "write=.*", "read=.*")
    perms = json.loads(run(rabbitmqadmin, api, "-f", "raw_json", "list", "permissions"))
    assert {p["user"] for p in perms} == {"guest", "bob"}
    export = tmp_path / "defs.json"
    run(rabbitmqadmin, api, "export", str(export))
    defs = json.loads(export.read_text())
    assert {q["name"] for q in defs["queues"]} == {"ra"}
    assert {u["name"] for u in defs["users"]} == {"guest", "bob"}
    run(rabbitmqadmin, api, "delete", "queue", "name=ra")
    run(rabbitmqadmin, api, "delete", "user", "name=bob")
    overview = json.loads(run(rabbitmqadmin, api, "-f", "raw_json", "show", "overview"))
    assert overview[0]["object_totals"]["queues"] == 0
