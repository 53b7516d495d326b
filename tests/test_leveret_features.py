"""Queue features leveret has beyond RabbitMQ 3.10: delayed retry of nacked messages,
deduplication windows, x-delivery-limit on classic queues, and policies; all driven with
the injectable clock so hours pass in milliseconds."""

from __future__ import annotations

import json
import subprocess
import sys

import pika
import pytest
from served import serve, stop

from leveret.broker.clock import ManualClock
from leveret.runtime.threaded import BrokerThread


@pytest.fixture
def broker():
    with BrokerThread(clock=ManualClock()) as b:
        yield b


@pytest.fixture
def ch(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    yield conn.channel()
    conn.close()


def count(ch, q: str) -> int:
    return ch.queue_declare(q, passive=True).method.message_count


def test_nacked_message_returns_after_exponential_backoff(broker, ch) -> None:
    ch.queue_declare("jobs", arguments={"x-retry-delay": 60_000, "x-retry-max-delay": 150_000})
    ch.basic_publish("", "jobs", b"job")
    for expected_delay in (60, 120, 150, 150):  # base, x2, capped, capped
        method, props, _ = ch.basic_get("jobs")
        assert method is not None
        ch.basic_nack(method.delivery_tag, requeue=True)
        assert ch.basic_get("jobs")[0] is None  # waiting in the broker, not in the queue
        broker.advance(expected_delay - 1)
        assert count(ch, "jobs") == 0
        broker.advance(1)
        assert count(ch, "jobs") == 1
    method, props, _ = ch.basic_get("jobs", auto_ack=True)
    assert method.redelivered and props.headers["x-delivery-count"] == 4


def test_retry_ends_in_the_dead_letter_queue_after_the_delivery_limit(broker, ch) -> None:
    ch.queue_declare("failed")
    ch.queue_declare("work", durable=True, arguments={
        "x-retry-delay": 1000, "x-delivery-limit": 2,
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": "failed"})
    ch.basic_publish("", "work", b"poison")
    for _ in range(3):
        method = ch.basic_get("work")[0]
        ch.basic_nack(method.delivery_tag, requeue=True)
        broker.advance(10)
    assert count(ch, "work") == 0
    _, props, body = ch.basic_get("failed", auto_ack=True)
    assert body == b"poison"
    assert props.headers["x-death"][0]["reason"] == "delivery_limit"


def test_delivery_limit_counts_returns_on_a_classic_durable_queue(ch) -> None:
    ch.queue_declare("limited", durable=True, arguments={"x-delivery-limit": 1})
    ch.basic_publish("", "limited", b"m")
    first = ch.basic_get("limited")[0]
    ch.basic_reject(first.delivery_tag, requeue=True)
    second, props, _ = ch.basic_get("limited")
    assert props.headers == {"x-delivery-count": 1}
    ch.basic_reject(second.delivery_tag, requeue=True)
    assert count(ch, "limited") == 0  # over the limit and no dead-letter exchange: dropped
    ch.queue_delete("limited")


def test_queue_deduplication_window(broker, ch) -> None:
    ch.confirm_delivery()
    ch.queue_declare("dedup", arguments={"x-message-deduplication": True, "x-cache-ttl": 5000})
    dup = pika.BasicProperties(headers={"x-deduplication-header": "order-1"})
    for _ in range(3):
        ch.basic_publish("", "dedup", b"once", dup)  # duplicates are confirmed, not queued
    ch.basic_publish("", "dedup", b"other",
                     pika.BasicProperties(headers={"x-deduplication-header": "order-2"}))
    assert count(ch, "dedup") == 2
    broker.advance(6)
    ch.basic_publish("", "dedup", b"again", dup)
    assert count(ch, "dedup") == 3


def test_exchange_deduplication_window(ch) -> None:
    ch.exchange_declare("orders", "fanout",
                        arguments={"x-message-deduplication": True, "x-cache-size": 2})
    for q in ("a", "b"):
        ch.queue_declare(q)
        ch.queue_bind(q, "orders")
    for key in ("k1", "k1", "k2", "k3", "k1"):  # k1 fell out of the 2-entry window
        ch.basic_publish("orders", "", key.encode(),
                         pika.BasicProperties(headers={"x-deduplication-header": key}))
    assert count(ch, "a") == count(ch, "b") == 4


def test_policy_applies_ttl_and_dead_lettering_to_existing_and_new_queues(broker, ch) -> None:
    ch.queue_declare("expired")
    ch.queue_declare("tasks.old")
    ch.basic_publish("", "tasks.old", b"before the policy")
    assert count(ch, "tasks.old") == 1
    broker.call(broker.node.vhosts["/"].set_policy, "tasks", "^tasks\\.", {
        "message-ttl": 3_600_000, "dead-letter-exchange": "",
        "dead-letter-routing-key": "expired"}, apply_to="queues")
    ch.queue_declare("tasks.new")
    ch.basic_publish("", "tasks.new", b"after the policy")
    broker.advance(3600)
    assert count(ch, "tasks.new") == 0 and count(ch, "expired") == 1
    # the policy set TTL for messages queued from then on; the earlier one has none
    assert count(ch, "tasks.old") == 1


def test_lower_limit_wins_between_policy_and_argument(broker, ch) -> None:
    broker.call(broker.node.vhosts["/"].set_policy, "cap", ".*", {"max-length": 3},
                apply_to="queues")
    ch.queue_declare("small", arguments={"x-max-length": 1})
    ch.queue_declare("capped")
    for i in range(5):
        ch.basic_publish("", "small", b"%d" % i)
        ch.basic_publish("", "capped", b"%d" % i)
    assert count(ch, "small") == 1 and count(ch, "capped") == 3
    broker.call(broker.node.vhosts["/"].clear_policy, "cap")
    for i in range(5):
        ch.basic_publish("", "capped", b"%d" % i)
    assert count(ch, "capped") == 8


def test_highest_priority_policy_wins(broker, ch) -> None:
    vhost = broker.node.vhosts["/"]
    broker.call(vhost.set_policy, "low", ".*", {"max-length": 10}, priority=0)
    broker.call(vhost.set_policy, "high", "^q$", {"max-length": 2}, priority=5)
    ch.queue_declare("q")
    assert vhost.queues["q"].policy == "high"
    for i in range(4):
        ch.basic_publish("", "q", b"%d" % i)
    assert count(ch, "q") == 2


def test_policy_sets_alternate_exchange(broker, ch) -> None:
    ch.exchange_declare("main", "direct")
    ch.exchange_declare("unrouted", "fanout")
    ch.queue_declare("lost")
    ch.queue_bind("lost", "unrouted")
    broker.call(broker.node.vhosts["/"].set_policy, "ae", "^main$",
                {"alternate-exchange": "unrouted"}, apply_to="exchanges")
    ch.basic_publish("main", "nowhere", b"m")
    assert count(ch, "lost") == 1


def test_serve_loads_policies_from_a_definitions_file(tmp_path) -> None:
    defs = tmp_path / "definitions.json"
    defs.write_text(json.dumps({"policies": [{
        "vhost": "/", "name": "ttl", "pattern": "^short$", "apply-to": "queues",
        "definition": {"max-length": 1}, "priority": 0}]}))
    proc, port = serve(tmp_path / "d", "--policies", str(defs))
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        c = conn.channel()
        c.queue_declare("short")
        for i in range(3):
            c.basic_publish("", "short", b"%d" % i)
        assert count(c, "short") == 1
        conn.close()
    finally:
        stop(proc)


def test_bad_policy_file_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps([{"name": "x", "pattern": "("}]))
    result = subprocess.run([sys.executable, "-m", "leveret", "serve", "--port", "0",
                             "--policies", str(bad)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "cannot load policies" in result.stderr


def test_consumer_timeout_is_opt_in_per_queue(broker) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    ch = conn.channel()
    ch.queue_declare("slow", arguments={"x-consumer-timeout": 60_000})
    ch.queue_declare("patient")
    for q in ("slow", "patient"):
        ch.basic_publish("", q, b"m")
    assert ch.basic_get("patient")[0] is not None  # no timeout: may stay unacked forever
    assert ch.basic_get("slow")[0] is not None
    broker.advance(59)
    assert ch.is_open
    broker.advance(2)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("slow", passive=True)
    assert info.value.reply_code == 406
    assert "delivery acknowledgement on channel 1 timed out" in info.value.reply_text
    other = conn.channel()
    assert other.queue_declare("slow", passive=True).method.message_count == 1  # requeued
    conn.close()
