"""pika BlockingConnection: a realistic producer / worker / RPC round trip."""

from __future__ import annotations

import json
import time
import uuid

import pika


def test_work_queue_round_trip(connect, names):
    exchange, queue = names.exchange(), names.queue()
    producer_conn = connect()
    producer = producer_conn.channel()
    producer.confirm_delivery()
    producer.exchange_declare(exchange, "topic", durable=True)
    producer.queue_declare(queue, durable=True)
    producer.queue_bind(queue, exchange, "orders.*")

    for i in range(20):
        producer.basic_publish(
            exchange,
            f"orders.{'created' if i % 2 else 'paid'}",
            json.dumps({"order": i}).encode(),
            pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                message_id=str(uuid.uuid4()),
                headers={"n": i},
            ),
            mandatory=True,
        )

    worker_conn = connect()
    worker = worker_conn.channel()
    worker.basic_qos(prefetch_count=5)
    seen = []
    for method, props, body in worker.consume(queue, inactivity_timeout=5):
        assert method is not None, "timed out"
        payload = json.loads(body)
        assert props.headers["n"] == payload["order"]
        assert props.content_type == "application/json"
        seen.append((method.routing_key, payload["order"]))
        worker.basic_ack(method.delivery_tag)
        if len(seen) == 20:
            break
    worker.cancel()
    assert [n for _k, n in seen] == list(range(20))
    assert seen[0][0] == "orders.paid" and seen[1][0] == "orders.created"
    assert producer.queue_declare(queue, passive=True).method.message_count == 0


def test_rpc_with_exclusive_callback_queue(connect, names):
    rpc_queue = names.queue()
    server_conn = connect()
    server = server_conn.channel()
    server.queue_declare(rpc_queue)

    def on_request(ch, method, props, body):
        ch.basic_publish(
            "",
            props.reply_to,
            str(int(body) ** 2).encode(),
            pika.BasicProperties(correlation_id=props.correlation_id),
        )
        ch.basic_ack(method.delivery_tag)

    server.basic_consume(rpc_queue, on_request)

    client_conn = connect()
    client = client_conn.channel()
    callback_queue = client.queue_declare("", exclusive=True).method.queue
    responses: dict[str, bytes] = {}
    client.basic_consume(
        callback_queue,
        lambda _c, _m, p, b: responses.__setitem__(p.correlation_id, b),
        auto_ack=True,
    )
    ids = []
    for n in range(5):
        corr = str(uuid.uuid4())
        ids.append(corr)
        client.basic_publish(
            "",
            rpc_queue,
            str(n).encode(),
            pika.BasicProperties(reply_to=callback_queue, correlation_id=corr),
        )
    deadline = time.monotonic() + 10
    while len(responses) < 5:
        assert time.monotonic() < deadline
        server_conn.process_data_events(time_limit=0.02)
        client_conn.process_data_events(time_limit=0.02)
    assert [responses[c] for c in ids] == [b"0", b"1", b"4", b"9", b"16"]


def test_fanout_pubsub(connect, names):
    exchange = names.exchange()
    conn = connect()
    ch = conn.channel()
    ch.exchange_declare(exchange, "fanout")
    subscribers = []
    for _ in range(3):
        sub = conn.channel()
        q = sub.queue_declare("", exclusive=True).method.queue
        sub.queue_bind(q, exchange)
        subscribers.append((sub, q))
    for i in range(3):
        ch.basic_publish(exchange, "", f"event-{i}".encode())
    for sub, q in subscribers:
        got = []
        for method, _p, body in sub.consume(q, auto_ack=True, inactivity_timeout=5):
            assert method is not None
            got.append(body)
            if len(got) == 3:
                break
        sub.cancel()
        assert got == [b"event-0", b"event-1", b"event-2"]


def test_get_with_acks_and_requeue(connect, names):
    q = names.queue()
    ch = connect().channel()
    ch.queue_declare(q, auto_delete=False)
    ch.basic_publish("", q, b"job")
    method, _p, body = ch.basic_get(q)
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _p, body = ch.basic_get(q)
    assert (body, method.redelivered) == (b"job", True)
    ch.basic_ack(method.delivery_tag)
    assert ch.queue_delete(q).method.message_count == 0
