"""Durable exchanges, queues, bindings and policies survive a restart and kill -9;
transient and exclusive ones do not; the data directory is locked."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

import aio_pika
import pika
import pytest
from served import serve

import leveret
from leveret.store.base import StoreLocked


async def test_definitions_survive_a_restart(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        x = await ch.declare_exchange("orders", "topic", durable=True,
                                      arguments={"alternate-exchange": "lost", "n": 2**40})
        await ch.declare_exchange("lost", "fanout", durable=True)
        q = await ch.declare_queue("billing", durable=True,
                                   arguments={"x-max-length": 5, "x-dead-letter-exchange": ""})
        gone = await ch.declare_queue("scratch")
        await ch.declare_queue("", exclusive=True, durable=True)
        await q.bind(x, "orders.#")
        await gone.bind(x, "orders.#")
        await (await ch.declare_exchange("fan", "fanout", durable=True)).bind(x, "e2e")
        deleted = await ch.declare_queue("deleted", durable=True)
        await deleted.delete()
        await conn.close()
        broker.node.vhosts["/"].set_policy("cap", "^billing$", {"message-ttl": 1000})
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        vhost = broker.node.vhosts["/"]
        assert {"orders", "lost", "fan"} <= set(vhost.exchanges)
        assert set(vhost.queues) == {"billing"}
        orders = vhost.exchanges["orders"]
        assert orders.type == "topic" and orders.durable
        assert orders.arguments == {"alternate-exchange": "lost", "n": 2**40}
        assert {(b.routing_key, b.destination.name) for b in orders.bindings.values()} == {
            ("orders.#", "billing"), ("e2e", "fan")}
        assert vhost.queues["billing"].arguments["x-max-length"] == 5
        assert vhost.queues["billing"].policy == "cap"
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        await ch.declare_queue("billing", durable=True, passive=True)
        await conn.close()


async def test_a_second_broker_cannot_use_the_same_data_directory(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path):
        with pytest.raises(StoreLocked, match="in use by another leveret process"):
            async with leveret.Broker(port=0, data_dir=tmp_path):
                pass


def test_declared_definitions_survive_kill_9(tmp_path) -> None:
    proc, port = serve(tmp_path / "data")
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.exchange_declare("events", "direct", durable=True)
        ch.queue_declare("audit", durable=True)
        ch.queue_bind("audit", "events", "k")  # bind-ok: on disk before the reply
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            conn.process_data_events(time_limit=1)
        with contextlib.suppress(Exception):
            conn.close()
    finally:
        proc.kill()
        proc.stderr.close()
    proc, port = serve(tmp_path / "data")
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.exchange_declare("events", passive=True)
        ch.queue_declare("audit", passive=True)
        ch.basic_publish("events", "k", b"routed")
        assert ch.queue_declare("audit", passive=True).method.message_count == 1
        conn.close()
        second = subprocess.run([sys.executable, "-m", "leveret", "serve", "--port", "0",
                                 "--data-dir", str(tmp_path / "data")],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "in use by another leveret process" in second.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stderr.close()


async def test_users_vhosts_permissions_and_limits_survive_a_restart(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        node = broker.node
        node.add_vhost("shop", description="the shop", tags=["prod"])
        node.add_user("alice", "s3cret", tags=["management"])
        node.set_permissions("shop", "alice", "^alice", ".*", ".*")
        node.set_topic_permissions("shop", "alice", "amq.topic", "^orders\\.", ".*")
        node.set_vhost_limits("shop", {"max-queues": 10})
        node.set_user_limits("alice", {"max-connections": 3})
        node.add_user("bob", "pw")
        node.delete_user("bob")
        node.add_vhost("gone")
        node.delete_vhost("gone")
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        node = broker.node
        assert set(node.vhosts) == {"/", "shop"}
        assert node.vhosts["shop"].description == "the shop"
        assert node.vhosts["shop"].tags == ["prod"]
        assert set(node.users) == {"guest", "alice"}
        alice = node.users["alice"]
        assert alice.tags == ["management"] and alice.limits == {"max-connections": 3}
        assert "s3cret" not in alice.password_hash
        assert node.permissions[("shop", "alice")].configure == "^alice"
        assert node.topic_permissions[("shop", "alice", "amq.topic")].write == "^orders\\."
        assert node.vhost_limits["shop"] == {"max-queues": 10}
        assert node.vhosts["shop"].max_queues == 10
        conn = await aio_pika.connect(f"amqp://alice:s3cret@127.0.0.1:{broker.port}/shop")
        await conn.close()


async def test_a_deleted_guest_stays_deleted(tmp_path) -> None:
    """The default user is created on the first start only, as RabbitMQ does."""
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        broker.node.add_user("admin", "pw", tags=["administrator"])
        broker.node.set_permissions("/", "admin")
        broker.node.delete_user("guest")
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        assert set(broker.node.users) == {"admin"}
