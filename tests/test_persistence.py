"""Persistent messages in durable queues survive a restart and kill -9 (docs/storage.md):
transient messages and non-durable queues do not, acked messages stay gone, delivered but
unacked ones come back redelivered, and a publisher confirm means the message is on disk."""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import pika
import pytest
from served import kill, serve

import leveret
from leveret.amqp import frames, spec


async def _get_all(ch: aio_pika.abc.AbstractChannel, name: str) -> list[aio_pika.IncomingMessage]:
    q = await ch.declare_queue(name, passive=True)
    out = []
    while (msg := await q.get(no_ack=True, fail=False)) is not None:
        out.append(msg)
    return out


async def test_persistent_messages_survive_a_restart(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("jobs", durable=True)
        await ch.declare_queue("scratch", durable=False)
        for i in range(50):
            await ch.default_exchange.publish(aio_pika.Message(
                f"job {i}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"n": i, "big": 2**40}, content_type="text/plain",
                message_id=f"m{i}", priority=3), routing_key="jobs")
            await ch.default_exchange.publish(aio_pika.Message(b"transient"),
                                              routing_key="jobs")
            await ch.default_exchange.publish(aio_pika.Message(
                b"scratch", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="scratch")
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        assert set(broker.node.vhosts["/"].queues) == {"jobs"}
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        got = await _get_all(ch, "jobs")
        assert [m.body for m in got] == [f"job {i}".encode() for i in range(50)]
        for i, m in enumerate(got):
            assert m.headers == {"n": i, "big": 2**40}
            assert m.content_type == "text/plain" and m.message_id == f"m{i}"
            assert m.priority == 3 and m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            assert not m.redelivered
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        assert len(broker.node.vhosts["/"].queues["jobs"].ready) == 0  # no_ack gets stuck


async def test_acked_messages_stay_gone_and_unacked_come_back_redelivered(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("work", durable=True)
        for i in range(6):
            await ch.default_exchange.publish(aio_pika.Message(
                str(i).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="work")
        first = await q.get()
        await first.ack()
        second = await q.get()
        await second.reject(requeue=False)
        third = await q.get()  # delivered, never acked
        assert third.body == b"2"
        await asyncio.sleep(0.1)
    # the broker stopped with the connection open: the delivery was not acked
    with contextlib.suppress(Exception):
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        got = await _get_all(ch, "work")
        assert [m.body for m in got] == [b"2", b"3", b"4", b"5"]
        assert [m.redelivered for m in got] == [True, False, False, False]
        await conn.close()


async def test_purge_and_delete_are_durable(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        purged = await ch.declare_queue("purged", durable=True)
        deleted = await ch.declare_queue("deleted", durable=True)
        for name in ("purged", "deleted"):
            for _ in range(3):
                await ch.default_exchange.publish(aio_pika.Message(
                    b"x", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name)
        await purged.purge()
        await deleted.delete(if_unused=False, if_empty=False)
        await ch.declare_queue("deleted", durable=True)  # declared again: starts empty
        await ch.default_exchange.publish(aio_pika.Message(
            b"after", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="purged")
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        assert [m.body for m in await _get_all(ch, "purged")] == [b"after"]
        assert await _get_all(ch, "deleted") == []
        await ch.queue_delete("deleted")
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        assert set(broker.node.vhosts["/"].queues) == {"purged"}
        assert broker.store is not None
        assert ("/", "deleted") not in broker.store.queues()


async def test_consumer_acks_and_ttl_expiry_are_durable(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        q = await ch.declare_queue("c", durable=True)
        t = await ch.declare_queue("ttl", durable=True, arguments={"x-message-ttl": 50})
        for i in range(20):
            await ch.default_exchange.publish(aio_pika.Message(
                str(i).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="c")
        await ch.default_exchange.publish(aio_pika.Message(
            b"short", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="ttl")
        seen = []
        done = asyncio.Event()

        async def on_message(m: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(m.body)
            if len(seen) <= 10:
                await m.ack()
            if len(seen) == 20:
                done.set()

        await q.consume(on_message)
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.3)
        assert t is not None
    with contextlib.suppress(Exception):
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        got = await _get_all(ch, "c")
        assert [m.body for m in got] == [str(i).encode() for i in range(10, 20)]
        assert all(m.redelivered for m in got)
        assert await _get_all(ch, "ttl") == []
        await conn.close()


@pytest.mark.timeout(120)
def test_confirmed_messages_survive_kill_9(tmp_path) -> None:
    confirmed: list[bytes] = []
    for cycle in range(4):
        proc, port = serve(tmp_path / "data")
        conn = None
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            ch = conn.channel()
            ch.queue_declare("safe", durable=True)
            if cycle:
                # everything confirmed before the kill is there, in order, then the
                # consumer takes half of it with acks
                got = []
                while True:
                    method, _props, body = ch.basic_get("safe")
                    if method is None:
                        break
                    got.append((method.delivery_tag, body))
                assert [b for _, b in got] == confirmed
                half = len(got) // 2
                if half:
                    ch.basic_ack(got[half - 1][0], multiple=True)
                    confirmed = confirmed[half:]
                ch.basic_recover(requeue=True)
                ch.queue_declare("safe", passive=True)  # a round trip: acks processed
            ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2)
            for i in range(200):
                body = f"{cycle}-{i}".encode()
                ch.basic_publish("", "safe", body, props)  # returns once confirmed
                confirmed.append(body)
            # unconfirmed ones in flight at the kill may or may not be there
            if cycle % 2:
                conn.close()
        finally:
            kill(proc, conn)
    proc, port = serve(tmp_path / "data")
    conn = None
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        got = []
        while True:
            method, _props, body = ch.basic_get("safe", auto_ack=True)
            if method is None:
                break
            got.append(body)
        assert got == confirmed
    finally:
        kill(proc, conn)


async def test_interval_policy_fsyncs_after_the_interval(tmp_path) -> None:
    async with leveret.Broker(port=0, data_dir=tmp_path, fsync="interval:50") as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel(publisher_confirms=True)
        await ch.declare_queue("q", durable=True)
        for _ in range(20):
            await ch.default_exchange.publish(aio_pika.Message(
                b"x", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="q")
        store = broker.store
        assert store is not None
        for _ in range(50):
            if store.synced_seq == store.seq:
                break
            await asyncio.sleep(0.02)
        assert store.synced_seq == store.seq
        await conn.close()


def test_tx_commit_ok_means_on_disk(tmp_path) -> None:
    proc, port = serve(tmp_path / "data")
    conn = None
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.queue_declare("txq", durable=True)
        ch.tx_select()
        for i in range(10):
            ch.basic_publish("", "txq", str(i).encode(), pika.BasicProperties(delivery_mode=2))
        ch.tx_commit()
    finally:
        kill(proc, conn)
    proc, port = serve(tmp_path / "data")
    conn = None
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        assert ch.queue_declare("txq", passive=True).method.message_count == 10
    finally:
        kill(proc, conn)


async def test_pending_delayed_messages_survive_a_restart(tmp_path) -> None:
    """Persistent messages waiting in a durable x-delayed-message exchange are kept in the
    data directory with their due time, and routed when due after a restart."""
    import time as _time

    import aio_pika

    import leveret
    from leveret.broker.clock import ManualClock

    start = _time.time()
    async with leveret.Broker(port=0, data_dir=tmp_path, clock=ManualClock(start)) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()  # publisher confirms: returns once on disk
        x = await ch.declare_exchange("later", "x-delayed-message", durable=True,
                                      arguments={"x-delayed-type": "direct"})
        q = await ch.declare_queue("due", durable=True)
        await q.bind(x, "k")
        for delay, body in ((60_000, b"in a minute"), (3_600_000, b"in an hour")):
            await x.publish(aio_pika.Message(body, headers={"x-delay": delay},
                                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            "k")
        await x.publish(aio_pika.Message(b"transient", headers={"x-delay": 60_000}), "k")
        await conn.close()
    clock = ManualClock(start + 61)
    async with leveret.Broker(port=0, data_dir=tmp_path, clock=clock) as broker:
        clock.advance(0)  # run what fell due while the broker was down
        queue = broker.node.vhosts["/"].queues["due"]
        assert [e.message.body for e in queue.ready] == [b"in a minute"]
        clock.advance(3600)
        assert [e.message.body for e in queue.ready] == [b"in a minute", b"in an hour"]
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        queue = broker.node.vhosts["/"].queues["due"]
        # routed into the durable queue's own log; released from the exchange's
        assert [e.message.body for e in queue.ready] == [b"in a minute", b"in an hour"]
        assert broker.node.vhosts["/"].exchanges["later"].log is not None
        assert len(broker.node.vhosts["/"].exchanges["later"].log) == 0


async def test_deduplication_windows_survive_a_restart(tmp_path) -> None:
    import aio_pika

    import leveret

    def dup(key: str, body: bytes) -> aio_pika.Message:
        return aio_pika.Message(body, headers={"x-deduplication-header": key},
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        q = await ch.declare_queue("orders", durable=True,
                                   arguments={"x-message-deduplication": True})
        x = await ch.declare_exchange("in", "fanout", durable=True,
                                      arguments={"x-message-deduplication": True})
        await q.bind(x)
        await ch.default_exchange.publish(dup("o-1", b"first"), "orders")
        await x.publish(dup("x-1", b"via exchange"), "")
        await conn.close()
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        conn = await aio_pika.connect(broker.url)
        ch = await conn.channel()
        x = await ch.get_exchange("in")
        await ch.default_exchange.publish(dup("o-1", b"again"), "orders")  # seen by the queue
        await x.publish(dup("x-1", b"again"), "")  # seen by the exchange
        await ch.default_exchange.publish(dup("o-2", b"new"), "orders")
        q = await ch.declare_queue("orders", durable=True, passive=True)
        bodies = []
        while (m := await q.get(no_ack=True, fail=False)) is not None:
            bodies.append(m.body)
        assert bodies == [b"first", b"via exchange", b"new"]
        await conn.close()


async def test_a_routing_key_that_is_not_utf8_is_stored_and_recovered_as_sent(tmp_path) -> None:
    """basic.publish's routing key may be any bytes (as in RabbitMQ); a persistent message
    with one is written to the log and read back byte for byte (found by the fuzzer: it was
    an internal error)."""
    key = b"odd.\xff\xfe"
    text_key = key.decode("utf-8", "surrogateescape")
    session = frames.PROTOCOL_HEADER + b"".join(frames.encode_method(ch, m) for ch, m in (
        (0, spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                                   response=b"\x00guest\x00guest")),
        (0, spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=0)),
        (0, spec.ConnectionOpen(virtual_host="/")),
        (1, spec.ChannelOpen()),
        (1, spec.QueueDeclare(queue="odd-keys", durable=True)),
        (1, spec.QueueBind(queue="odd-keys", exchange="amq.topic", routing_key="#")),
        (1, spec.BasicPublish(exchange="amq.topic", routing_key=text_key)),
    )) + frames.encode_content(1, 60, spec.Properties(delivery_mode=2).encode(), b"kept",
                               131072)
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(session + frames.encode_method(1, spec.QueueDeclare(queue="odd-keys",
                                                                         passive=True)))
        received = b""
        while received.count(b"odd-keys") < 2:  # the two declare-oks: the publish is in
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            assert chunk, f"the broker hung up: {received!r}"
            received += chunk
        assert b"\x00\x0a\x00\x32" not in received  # no connection.close
        writer.close()
        assert broker.node.vhosts["/"].queues["odd-keys"].message_count == 1
    async with leveret.Broker(port=0, data_dir=tmp_path) as broker:
        _, entry = broker.node.vhosts["/"].get("odd-keys", True, None)
        assert entry is not None and entry.message.body == b"kept"
        assert entry.message.routing_key.encode("utf-8", "surrogateescape") == key
