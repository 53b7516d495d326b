"""Connections, channels and consumers, and closing a connection over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest
from mgmt_helpers import Api, q, unique
from mgmt_schemas import check, check_list


@pytest.fixture
def client(api: Api) -> Iterator[tuple[pika.BlockingConnection, str, str]]:
    """A pika connection named uniquely with a consumer (prefetch 7) and a confirm
    channel; yields it, its name as the API shows it, and its queue."""
    label = unique("conn")
    queue = unique("cq")
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, "/", pika.PlainCredentials("guest", "guest"),
        client_properties={"connection_name": label}))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=7)
    ch.queue_declare(queue)
    ch.basic_consume(queue, lambda *a: None, consumer_tag=f"{label}-tag",
                     arguments={"x-priority": 3})
    publisher = conn.channel()
    publisher.confirm_delivery()
    publisher.basic_publish("", queue, b"x")
    conn.process_data_events(0.1)
    found = [c for c in api.get("/api/connections").json
             if c.get("user_provided_name") == label]
    assert len(found) == 1
    yield conn, found[0]["name"], queue
    if conn.is_open:
        conn.close()


def test_connection(api: Api, client: tuple[pika.BlockingConnection, str, str]) -> None:
    _, name, _ = client
    conn = check("connection", api.get(f"/api/connections/{q(name)}").json)
    assert conn["protocol"] == "AMQP 0-9-1" and conn["state"] == "running"
    assert conn["user"] == "guest" and conn["vhost"] == "/" and conn["channels"] == 2
    assert conn["port"] == api.amqp_port and conn["host"] == "127.0.0.1"
    assert name == f"{conn['peer_host']}:{conn['peer_port']} -> 127.0.0.1:{api.amqp_port}"
    assert conn["client_properties"]["product"] == "Pika Python Client Library"
    assert conn["recv_oct"] > 0 and conn["send_oct"] > 0
    assert conn["timeout"] == 60
    listed = check_list("connection", api.get("/api/vhosts/%2F/connections").json)
    assert name in {c["name"] for c in listed}
    assert api.get("/api/connections/nope").status == 404


def test_channels(api: Api, client: tuple[pika.BlockingConnection, str, str]) -> None:
    _, name, _ = client
    channels = check_list("channel", api.get(f"/api/connections/{q(name)}/channels").json)
    by_number = {c["number"]: c for c in channels}
    consumer, publisher = by_number[1], by_number[2]
    assert consumer["name"] == f"{name} (1)"
    assert consumer["prefetch_count"] == 7 and consumer["consumer_count"] == 1
    assert consumer["messages_unacknowledged"] == 1
    assert consumer["message_stats"]["deliver"] == 1
    assert consumer["connection_details"]["name"] == name
    assert publisher["confirm"] is True and publisher["transactional"] is False
    assert publisher["message_stats"]["publish"] == 1
    assert publisher["message_stats"]["confirm"] == 1
    one = check("channel", api.get(f"/api/channels/{q(name + ' (1)')}").json)
    assert one["number"] == 1
    assert f"{name} (2)" in {c["name"] for c in api.get("/api/channels").json}
    assert f"{name} (2)" in {c["name"] for c in api.get("/api/vhosts/%2F/channels").json}
    assert api.get(f"/api/channels/{q(name + ' (9)')}").status == 404


def test_consumers(api: Api, client: tuple[pika.BlockingConnection, str, str]) -> None:
    _, name, queue = client
    consumers = [c for c in check_list("consumer", api.get("/api/consumers/%2F").json)
                 if c["queue"]["name"] == queue]
    assert len(consumers) == 1
    consumer = consumers[0]
    assert consumer["ack_required"] is True and consumer["prefetch_count"] == 7
    assert consumer["arguments"] == {"x-priority": 3} and consumer["active"] is True
    assert consumer["channel_details"]["connection_name"] == name
    assert consumer["channel_details"]["name"] == f"{name} (1)"
    assert consumer in api.get("/api/consumers").json
    details = api.get(f"/api/queues/%2F/{q(queue)}").json["consumer_details"]
    assert details == [consumer]


def test_close_connection(api: Api, client: tuple[pika.BlockingConnection, str, str]) -> None:
    conn, name, _ = client
    reply = api.delete(f"/api/connections/{q(name)}", headers={"X-Reason": "bye now"})
    assert reply.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.process_data_events(2)
    assert (info.value.reply_code, info.value.reply_text) == (320, "CONNECTION_FORCED - bye now")
    assert api.get(f"/api/connections/{q(name)}").status == 404


def test_close_connection_default_reason(api: Api,
                                         client: tuple[pika.BlockingConnection, str, str]
                                         ) -> None:
    conn, name, _ = client
    assert api.delete(f"/api/connections/{q(name)}").status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.process_data_events(2)
    assert info.value.reply_text == "CONNECTION_FORCED - Closed via management plugin"


def test_exclusive_queue_names_its_owner(api: Api,
                                         client: tuple[pika.BlockingConnection, str, str]
                                         ) -> None:
    conn, name, _ = client
    queue = unique("excl")
    conn.channel().queue_declare(queue, exclusive=True)
    found = check("queue", api.get(f"/api/queues/%2F/{q(queue)}").json)
    assert found["exclusive"] is True
    assert found["owner_pid_details"]["name"] == name
