"""Streams in RabbitMQ definitions documents: exported as RabbitMQ exports them
(``"x-queue-type": "stream"`` among the arguments), imported as streams (from a file,
over /api/definitions, from the reference RabbitMQ's live export), and after a restart
the stream is there with its entries and its offsets go on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pika
from mgmt_helpers import Api, q, unique

from leveret.runtime.threaded import BrokerThread

STREAM_ARGUMENTS = {"x-queue-type": "stream", "x-max-age": "7D",
                    "x-max-length-bytes": 20_000_000,
                    "x-stream-max-segment-size-bytes": 1_000_000}

# The shape of ``rabbitmqctl export_definitions`` from RabbitMQ 3.10.8 with a stream and a
# stream policy in it.
RABBITMQ_DOCUMENT: dict[str, Any] = {
    "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8", "product_name": "RabbitMQ",
    "product_version": "3.10.8", "users": [], "vhosts": [{"name": "streams"}],
    "permissions": [{"user": "guest", "vhost": "streams", "configure": ".*",
                     "write": ".*", "read": ".*"}],
    "topic_permissions": [], "parameters": [], "global_parameters": [],
    "policies": [{"vhost": "streams", "name": "retain", "pattern": "^events\\.",
                  "apply-to": "queues", "priority": 0,
                  "definition": {"max-age": "1D", "max-length-bytes": 10_000_000}}],
    "queues": [
        {"name": "events.audit", "vhost": "streams", "durable": True, "auto_delete": False,
         "arguments": STREAM_ARGUMENTS},
        {"name": "work", "vhost": "streams", "durable": True, "auto_delete": False,
         "arguments": {"x-queue-type": "quorum"}},
    ],
    "exchanges": [{"name": "audit", "vhost": "streams", "type": "fanout", "durable": True,
                   "auto_delete": False, "internal": False, "arguments": {}}],
    "bindings": [{"source": "audit", "vhost": "streams", "destination": "events.audit",
                  "destination_type": "queue", "routing_key": "", "arguments": {}}],
}


def publish(port: int, vhost: str, exchange: str, count: int, start: int = 0) -> None:
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest")))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(start, start + count):
            ch.basic_publish(exchange, "", f"audit-{i}".encode(),
                             pika.BasicProperties(delivery_mode=2))
    finally:
        conn.close()


def read_all(port: int, vhost: str, queue: str, expected: int) -> list[tuple[int, bytes]]:
    """(x-stream-offset header, body) of every entry, from the first."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("guest", "guest")))
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=100)
        got: list[tuple[int, bytes]] = []

        def on_message(c: Any, method: Any, props: Any, body: bytes) -> None:
            got.append((props.headers["x-stream-offset"], body))
            c.basic_ack(method.delivery_tag)

        ch.basic_consume(queue, on_message, arguments={"x-stream-offset": "first"})
        conn.process_data_events(0.1)
        for _ in range(50):
            if len(got) >= expected:
                break
            conn.process_data_events(0.1)
        return got
    finally:
        conn.close()


def test_rabbitmq_document_with_a_stream_survives_a_restart(tmp_path: Path) -> None:
    with BrokerThread(management_port=0, data_dir=tmp_path) as broker:
        api = Api(broker.broker.management_url, broker.port)
        assert api.post("/api/definitions", RABBITMQ_DOCUMENT).status == 204
        item = api.get("/api/queues/streams/events.audit").json
        assert item["type"] == "stream" and item["durable"]
        assert item["arguments"] == STREAM_ARGUMENTS
        assert item["policy"] == "retain"
        # the lower of argument and policy: the policy's byte limit, the policy's age
        assert item["stream"]["retention"] == {"max_length_bytes": 10_000_000,
                                               "max_age_seconds": 86400,
                                               "max_segment_size_bytes": 1_000_000}
        assert api.get("/api/queues/streams/work").json["type"] == "quorum"
        publish(broker.port, "streams", "audit", 5)
        exported = api.get("/api/definitions").json
        [stream] = [x for x in exported["queues"] if x["name"] == "events.audit"]
        assert stream == RABBITMQ_DOCUMENT["queues"][0]
        per_vhost = api.get("/api/definitions/streams").json
        assert {"name": "events.audit", "durable": True, "auto_delete": False,
                "arguments": STREAM_ARGUMENTS} in per_vhost["queues"]
    with BrokerThread(management_port=0, data_dir=tmp_path) as broker:
        api = Api(broker.broker.management_url, broker.port)
        item = api.get("/api/queues/streams/events.audit").json
        assert item["type"] == "stream" and item["policy"] == "retain"
        assert item["messages"] == 5
        assert (item["stream"]["first_offset"], item["stream"]["next_offset"]) == (0, 5)
        publish(broker.port, "streams", "audit", 2, start=5)
        entries = read_all(broker.port, "streams", "events.audit", 7)
        assert entries == [(i, f"audit-{i}".encode()) for i in range(7)]


def test_stream_round_trip_leveret_file_leveret(tmp_path: Path) -> None:
    """An export from leveret imports into another leveret as the same stream."""
    with BrokerThread(management_port=0) as first:
        api = Api(first.broker.management_url, first.port)
        api.ok("PUT", "/api/queues/%2F/ledger", {"durable": True, "arguments": {
            "x-queue-type": "stream", "x-max-age": "12h"}})
        exported = api.get("/api/definitions").json
    with BrokerThread(management_port=0) as second:
        api = Api(second.broker.management_url, second.port)
        assert api.post("/api/definitions", exported).status == 204
        item = api.get("/api/queues/%2F/ledger").json
        assert item["type"] == "stream"
        assert item["arguments"] == {"x-queue-type": "stream", "x-max-age": "12h"}


def test_live_rabbitmq_stream_export_imports(reference: Api, fresh_api: Api) -> None:
    """A stream made on the reference RabbitMQ, exported and imported: a stream here."""
    vhost = unique("sdefs")
    try:
        reference.ok("PUT", f"/api/vhosts/{q(vhost)}", {})
        reference.ok("PUT", f"/api/queues/{q(vhost)}/s1", {
            "durable": True, "arguments": {"x-queue-type": "stream", "x-max-age": "7D",
                                           "x-stream-max-segment-size-bytes": 1_000_000}})
        reference.ok("PUT", f"/api/policies/{q(vhost)}/sp", {
            "pattern": "^s", "apply-to": "queues",
            "definition": {"max-length-bytes": 5_000_000}})
        export = reference.get(f"/api/definitions/{q(vhost)}").json
        [exported] = export["queues"]
        assert exported["arguments"]["x-queue-type"] == "stream"
        fresh_api.ok("PUT", f"/api/vhosts/{q(vhost)}", {})
        assert fresh_api.post(f"/api/definitions/{q(vhost)}", export).status == 204
        item = fresh_api.get(f"/api/queues/{q(vhost)}/s1").json
        assert item["type"] == "stream" and item["policy"] == "sp"
        assert item["arguments"] == exported["arguments"]
        assert item["stream"]["retention"]["max_length_bytes"] == 5_000_000
        ours = fresh_api.get(f"/api/definitions/{q(vhost)}").json
        assert ours["queues"] == export["queues"]
        assert ours["policies"] == export["policies"]
    finally:
        reference.delete(f"/api/vhosts/{q(vhost)}")
