"""Message counters (broker/stats.py) as the API reports them, and sampled rates."""

from __future__ import annotations

import time

import pika
from mgmt_helpers import Api, q, unique
from mgmt_schemas import check

from leveret.broker.node import Node
from leveret.broker.stats import Counters, node_counters
from leveret.management.rates import RateSampler
from leveret.runtime.threaded import BrokerThread


def test_counters_add_up() -> None:
    a, b = Counters(), Counters()
    a.publish, a.deliver, b.get_no_ack, b.deliver_no_ack = 3, 2, 1, 4
    a.add(b)
    assert a.deliver_get == 2 + 1 + 4
    assert a.as_dict()["publish"] == 3
    node = Node()
    node.add_vhost("other")
    node.vhosts["/"].own_counters.publish = 2
    node.vhosts["other"].own_counters.publish = 5
    assert node_counters(node).publish == 7


def test_rate_sampler_divides_by_elapsed_time() -> None:
    node = Node()
    now = [100.0]
    sampler = RateSampler(node, clock=lambda: now[0])
    vhost = node.vhosts["/"]
    assert sampler.rates(vhost) == {}
    sampler.sample()
    vhost.own_counters.publish += 50
    now[0] += 5
    sampler.sample()
    assert sampler.rates(vhost)["publish"] == 10.0
    assert sampler.rates(node)["publish"] == 10.0
    now[0] += 5
    sampler.sample()
    assert sampler.rates(vhost)["publish"] == 0.0


def test_amqp_traffic_is_counted(api: Api) -> None:
    vhost = unique("stats")
    api.ok("PUT", f"/api/vhosts/{vhost}", {})
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, vhost, pika.PlainCredentials("guest", "guest")))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("counted")
        for _ in range(4):
            ch.basic_publish("", "counted", b"abc")
        ch.basic_publish("", "nowhere", b"x")
        with_ack = ch.basic_get("counted")[0]
        ch.basic_ack(with_ack.delivery_tag)
        ch.basic_get("counted", auto_ack=True)
        rejected = ch.basic_get("counted")[0]
        ch.basic_reject(rejected.delivery_tag, requeue=True)
        ch.basic_get("counted", auto_ack=True)  # the requeued one: a redelivery
        ch.basic_get("counted", auto_ack=True)
        ch.basic_get("counted", auto_ack=True)  # empty
        conn.process_data_events(0.1)
        queue = check("queue", api.get(f"/api/queues/{vhost}/counted").json)
        stats = queue["message_stats"]
        assert (stats["publish"], stats["get"], stats["get_no_ack"], stats["ack"],
                stats["redeliver"], stats["get_empty"]) == (4, 2, 3, 1, 1, 1)
        assert stats["deliver_get"] == 5
        assert queue["messages"] == 0
        totals = api.get(f"/api/vhosts/{vhost}").json["message_stats"]
        assert (totals["publish"], totals["drop_unroutable"], totals["confirm"]) == (5, 1, 5)
        overview = api.get("/api/overview").json["message_stats"]
        assert overview["publish"] >= 5
    finally:
        conn.close()
        api.delete(f"/api/vhosts/{vhost}")


def test_queue_depths_and_unacked_bytes(api: Api) -> None:
    name = unique("depth")
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", api.amqp_port, "/", pika.PlainCredentials("guest", "guest")))
    try:
        ch = conn.channel()
        ch.queue_declare(name)
        for body in (b"12345", b"123", b"1"):
            ch.basic_publish("", name, body)
        ch.basic_get(name)  # unacknowledged: 5 bytes
        conn.process_data_events(0.1)
        queue = api.get(f"/api/queues/%2F/{q(name)}").json
        assert (queue["messages"], queue["messages_ready"],
                queue["messages_unacknowledged"]) == (3, 2, 1)
        assert (queue["message_bytes"], queue["message_bytes_ready"],
                queue["message_bytes_unacknowledged"]) == (9, 4, 5)
        totals = api.get("/api/overview").json["queue_totals"]
        assert totals["messages_unacknowledged"] >= 1
    finally:
        conn.close()


def test_rates_come_from_samples() -> None:
    with BrokerThread(management_port=0) as broker:
        api = Api(broker.broker.management_url, broker.port)
        name = unique("rated")
        api.ok("PUT", f"/api/queues/%2F/{name}", {})
        sampler = broker.broker.management.sampler
        broker.call(sampler.sample)
        for _ in range(20):
            api.ok("POST", "/api/exchanges/%2F/amq.default/publish", {
                "properties": {}, "routing_key": name, "payload": "x",
                "payload_encoding": "string"})
        time.sleep(0.2)
        broker.call(sampler.sample)
        queue = api.get(f"/api/queues/%2F/{name}").json
        assert queue["message_stats"]["publish"] == 20
        assert queue["message_stats"]["publish_details"]["rate"] > 0
        assert queue["messages_details"]["rate"] > 0
        assert api.get("/api/overview").json["message_stats"]["publish_details"]["rate"] > 0
