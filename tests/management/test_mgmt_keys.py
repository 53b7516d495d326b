"""Key sets against the reference RabbitMQ: after the same setup on both brokers (a vhost,
a queue with traffic through a topic exchange, a consumer, a policy), every key RabbitMQ
shows on /api/overview, /api/queues, /api/exchanges and /api/definitions (nested keys as
dotted paths, list items as ``[]``) must be in leveret's answer too, except the documented
exceptions below (docs/management.md, "Differences from RabbitMQ").

Skipped when the reference is not reachable (see conftest.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from mgmt_helpers import Api, q, unique

# Maps whose keys are data (argument names, client properties, ...), not schema.
FREE_FORM = {"arguments", "client_properties", "definition", "effective_policy_definition",
             "cluster_state", "limits", "value", "properties", "headers", "socket_opts",
             "capabilities", "metadata", "cowboy_opts", "readers"}

# Keys RabbitMQ 3.10 shows that leveret does not, each with the reason (the same list is in
# docs/management.md).
EXCEPTIONS: dict[str, dict[str, str]] = {
    "overview": {
        "churn_rates": "connection/channel/queue creation and closing rates: not counted",
        "message_stats.disk_reads": "classic queue index reads from disk: RabbitMQ-internal",
        "message_stats.disk_reads_details": "as disk_reads",
        "message_stats.disk_writes": "classic queue index writes to disk: RabbitMQ-internal",
        "message_stats.disk_writes_details": "as disk_writes",
        "contexts[].cowboy_opts": "options of RabbitMQ's HTTP server (cowboy)",
    },
    "queue": {
        "garbage_collection": "Erlang process garbage collection settings",
        "reductions": "Erlang VM reductions (scheduler work units)",
        "reductions_details": "as reductions",
        "memory": "the Erlang queue process's memory",
        "backing_queue_status": "classic-queue-internal (the variable queue's state)",
        "messages_persistent": "persistent messages are not counted apart",
        "message_bytes_persistent": "as messages_persistent",
        "idle_since": "not recorded",
        "slave_nodes": "mirroring: one node",
        "synchronised_slave_nodes": "mirroring: one node",
    },
    "exchange": {
        "user_who_performed_action": "who declared an exchange is not recorded",
    },
    "definitions": {},
}


def key_paths(value: Any, path: str = "") -> set[str]:
    """Every key of ``value`` as a dotted path (list items as ``[]``); free-form maps
    count as their own key only."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            full = f"{path}.{key}" if path else key
            found.add(full)
            if key not in FREE_FORM:
                found |= key_paths(inner, full)
    elif isinstance(value, list):
        for item in value:
            found |= key_paths(item, f"{path}[]")
    return found


def item_paths(value: Any) -> set[str]:
    """The key paths of an object, or the union of a list's items' (without ``[]``)."""
    if isinstance(value, list):
        return set().union(*(key_paths(item) for item in value))
    return key_paths(value)


def missing(ours: Any, theirs: Any, kind: str) -> list[str]:
    allowed = EXCEPTIONS[kind]
    return sorted(k for k in item_paths(theirs) - item_paths(ours)
                  if k not in allowed and not any(k.startswith(a + ".") or
                                                  k.startswith(a + "[")
                                                  for a in allowed))


def wait_for(fetch: Callable[[], Any], ready: Callable[[Any], bool], timeout: float = 20.0
             ) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ready(value) and time.monotonic() < deadline:
        time.sleep(0.25)
        value = fetch()
    return value


def setup_traffic(api: Api, port: int, vhost: str) -> pika.BlockingConnection:
    v = q(vhost)
    api.ok("PUT", f"/api/vhosts/{v}", {})
    api.ok("PUT", f"/api/permissions/{v}/guest", {"configure": ".*", "write": ".*",
                                                  "read": ".*"})
    api.ok("PUT", f"/api/policies/{v}/lim", {"pattern": "^keys", "apply-to": "queues",
                                             "definition": {"max-length": 1000}})
    api.ok("PUT", f"/api/exchanges/{v}/keys.x", {"type": "topic", "durable": True})
    api.ok("PUT", f"/api/queues/{v}/keys.q", {"durable": True})
    api.ok("PUT", f"/api/queues/{v}/keys.idle", {"durable": False})
    api.ok("POST", f"/api/bindings/{v}/e/keys.x/q/keys.q", {"routing_key": "a.#"})
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest")))
    ch = conn.channel()
    ch.confirm_delivery()
    for _ in range(5):
        ch.basic_publish("keys.x", "a.b", b"payload")
    ch.basic_publish("keys.x", "nowhere", b"x")
    ch.basic_get("keys.q", auto_ack=False)
    ch.basic_qos(prefetch_count=2)
    ch.basic_consume("keys.q", lambda *a: None, consumer_tag="keys")
    conn.process_data_events(0.3)
    return conn


@pytest.fixture
def both(api: Api, reference: Api) -> Iterator[tuple[Api, Api, str]]:
    vhost = unique("keys")
    conns = [setup_traffic(api, api.amqp_port or 5672, vhost),
             setup_traffic(reference, 5673, vhost)]
    try:
        yield api, reference, vhost
    finally:
        for conn in conns:
            conn.close()
        for side in (api, reference):
            side.delete(f"/api/vhosts/{q(vhost)}")


def test_keys_are_a_superset_of_rabbitmqs(both: tuple[Api, Api, str]) -> None:
    ours_api, theirs_api, vhost = both
    v = q(vhost)

    def queue_ready(x: Any) -> bool:
        return "message_stats" in x and x["message_stats"].get("deliver", 0) >= 1 \
            and x.get("consumers") == 1

    def exchange_ready(x: Any) -> bool:
        return "message_stats" in x and "publish_out" in x["message_stats"]

    paths = {
        "overview": ("/api/overview", lambda x: "message_stats" in x),
        "queue": (f"/api/queues/{v}/keys.q", queue_ready),
        "queues": (f"/api/queues/{v}", lambda x: all(
            queue_ready(i) for i in x if i["name"] == "keys.q")),
        "exchange": (f"/api/exchanges/{v}/keys.x", exchange_ready),
        "exchanges": (f"/api/exchanges/{v}", lambda x: all(
            exchange_ready(i) for i in x if i["name"] == "keys.x")),
        "definitions": ("/api/definitions", lambda x: True),
    }
    problems = []
    for kind, (path, ready) in paths.items():
        theirs = wait_for(lambda p=path: theirs_api.get(p).json, ready)  # type: ignore[misc]
        ours = wait_for(lambda p=path: ours_api.get(p).json, ready)  # type: ignore[misc]
        exceptions = kind.rstrip("s") if kind != "definitions" else kind
        for key in missing(ours, theirs if not isinstance(theirs, list) else
                           [i for i in theirs if i["name"] != "amq.rabbitmq.trace"],
                           exceptions):
            problems.append(f"{path}: {key}")
    assert not problems, "keys RabbitMQ has and leveret lacks:\n" + "\n".join(problems)


def test_exceptions_are_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "management.md").read_text()
    for kind, keys in EXCEPTIONS.items():
        for key in keys:
            assert f"`{key}`" in doc, (kind, key)
