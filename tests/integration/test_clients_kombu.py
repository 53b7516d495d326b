"""kombu: Connection, Producer, Consumer, SimpleQueue (over py-amqp), as Celery uses it."""

from __future__ import annotations

import threading
import time

import kombu
import pytest


@pytest.fixture
def kombu_conn(amqp_url):
    with kombu.Connection(amqp_url, transport="pyamqp", connect_timeout=5) as conn:
        conn.connect()
        yield conn


def test_producer_consumer(kombu_conn, names):
    exchange = kombu.Exchange(names.exchange(), type="direct", durable=False)
    queue = kombu.Queue(names.queue(), exchange=exchange, routing_key="video", durable=False)
    with kombu_conn.channel() as ch:
        producer = kombu.Producer(ch, exchange=exchange, serializer="json")
        for i in range(5):
            producer.publish(
                {"n": i}, routing_key="video", declare=[queue], retry=False, headers={"x-seq": i}
            )
    received = []

    def on_message(body, message):
        received.append((body, message.headers["x-seq"]))
        message.ack()

    with kombu.Consumer(kombu_conn, queues=[queue], callbacks=[on_message], accept=["json"]):
        while len(received) < 5:
            kombu_conn.drain_events(timeout=5)
    assert received == [({"n": i}, i) for i in range(5)]
    queue(kombu_conn.default_channel).delete()
    exchange(kombu_conn.default_channel).delete()


def test_simple_queue(kombu_conn, names):
    name = names.queue()
    q = kombu_conn.SimpleQueue(name)
    try:
        q.put({"hello": "world"})
        q.put("text")
        deadline = time.monotonic() + 5
        while q.qsize() != 2:  # RabbitMQ's declare-ok count may lag a fresh publish
            assert time.monotonic() < deadline
            time.sleep(0.01)
        m1 = q.get(block=True, timeout=5)
        assert m1.payload == {"hello": "world"}
        m1.ack()
        m2 = q.get(block=True, timeout=5)
        assert m2.payload == "text"
        m2.requeue()
        m3 = q.get(block=True, timeout=5)
        assert m3.payload == "text" and m3.delivery_info["redelivered"]
        m3.ack()
        with pytest.raises(q.Empty):
            q.get(block=False)
    finally:
        q.close()
        kombu_conn.default_channel.queue_delete(name)


def test_fanout_broadcast(kombu_conn, names):
    exchange = kombu.Exchange(names.exchange(), type="fanout", durable=False)
    queues = [kombu.Queue(exclusive=True, exchange=exchange) for _ in range(2)]
    got: list[list] = [[], []]
    consumers = [
        kombu.Consumer(
            kombu_conn.channel(),
            queues=[q],
            callbacks=[lambda body, m, i=i: (got[i].append(body), m.ack())],
        )
        for i, q in enumerate(queues)
    ]
    for c in consumers:
        c.consume()
    kombu.Producer(kombu_conn.default_channel).publish(
        "broadcast", exchange=exchange, declare=[exchange]
    )
    while not (got[0] and got[1]):
        kombu_conn.drain_events(timeout=5)
    assert got == [["broadcast"], ["broadcast"]]
    for c in consumers:
        c.cancel()
        c.channel.close()
    exchange(kombu_conn.default_channel).delete()


def test_a_cancelled_consumer_is_not_cancelled_again_by_the_queue_delete(kombu_conn, names):
    """Issue 11 as first read: prefetch 1, acks from a timer thread, the consumer cancelled
    on leaving its ``with``, the queue deleted right after. The broker owes no basic.cancel
    for a consumer the client cancelled (py-amqp raises ConsumerCancelled on one). (The
    sequence kombu's suite really ran deletes the queue inside the ``with``: see
    test_queue_deleted_under_its_consumer_answers_before_cancelling.)"""
    queue = kombu.Queue(names.queue(), routing_key=names.queue(), durable=False)
    timers: list[threading.Timer] = []

    def on_message(_body, message):
        timer = threading.Timer(0.01, message.ack)
        timers.append(timer)
        timer.start()

    with kombu_conn.channel() as ch:
        queue(ch).declare()
        producer = kombu.Producer(ch)
        for i in range(5):
            producer.publish({"n": i}, routing_key=queue.name, retry=False)
        with kombu.Consumer(ch, queues=[queue], callbacks=[on_message], prefetch_count=1):
            kombu_conn.drain_events(timeout=5)
            kombu_conn.drain_events(timeout=5)
        queue(ch).delete()
        with pytest.raises(TimeoutError):  # and not ConsumerCancelled
            kombu_conn.drain_events(timeout=0.3)
    for timer in timers:
        timer.join()


def test_queue_deleted_under_its_consumer_answers_before_cancelling(kombu_conn, names):
    """kombu's own t/integration test_ack_from_another_thread (issue 11): acks from a timer
    thread through the event loop's hub, then the queue deleted *inside* ``with consumer``.
    py-amqp's queue_delete waits for the delete-ok; the broker's basic.cancel for the
    consumer (kombu registers no on_cancel) must come after it, as from RabbitMQ, or
    py-amqp raises ConsumerCancelled out of queue_delete."""
    from kombu.asynchronous import Hub

    name = names.queue()
    queue = kombu.Queue(name, routing_key=name, durable=False)
    acked: list[int] = []
    hub = Hub()

    def ack(message):
        message.ack()
        acked.append(message.payload)

    def on_message(_body, message):
        threading.Timer(0.01, hub.call_soon, (ack, message)).start()

    with kombu_conn.channel() as ch:
        producer = kombu.Producer(ch)
        for body in range(2):
            producer.publish(body, routing_key=name, declare=[queue], retry=False)
    consumer = kombu.Consumer(kombu_conn, [queue], callbacks=[on_message], prefetch_count=1)
    with consumer:
        try:
            kombu_conn.register_with_event_loop(hub)
            deadline = time.monotonic() + 5
            while len(acked) < 2 and time.monotonic() < deadline:
                hub.run_once()
            assert acked == [0, 1]
        finally:
            hub.close()
            queue(consumer.channel).delete()  # raised ConsumerCancelled
