"""py-amqp (the amqp package, as used by Celery/kombu): a round trip with its API."""

from __future__ import annotations

import amqp
import pytest


@pytest.fixture
def connection(amqp_params):
    c = amqp.Connection(
        f"{amqp_params.host}:{amqp_params.port}",
        userid=amqp_params.user,
        password=amqp_params.password,
        virtual_host=amqp_params.vhost,
    )
    c.connect()
    yield c
    if c.connected:
        c.close()


def test_round_trip(connection, names):
    ch = connection.channel()
    exchange, queue = names.exchange(), names.queue()
    ch.exchange_declare(exchange, "topic", durable=False, auto_delete=False)
    ok = ch.queue_declare(queue, durable=False, auto_delete=False)
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    ch.queue_bind(queue, exchange, "task.#")
    for i in range(5):
        ch.basic_publish(
            amqp.Message(f"t{i}", content_type="text/plain", application_headers={"i": i}),
            exchange=exchange,
            routing_key=f"task.{i}",
        )
    received = []

    def on_message(message):
        received.append((message.body, message.headers["i"], message.delivery_info["routing_key"]))
        message.channel.basic_ack(message.delivery_tag)

    tag = ch.basic_consume(queue, callback=on_message)
    while len(received) < 5:
        connection.drain_events(timeout=5)
    ch.basic_cancel(tag)
    assert [r[1] for r in received] == list(range(5))
    assert received[2][2] == "task.2"
    assert received[0][0] in ("t0", b"t0")
    assert ch.queue_delete(queue) == 0
    ch.exchange_delete(exchange)


def test_get_and_reject(connection):
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).queue
    ch.basic_publish(amqp.Message(b"job"), routing_key=q)
    m = ch.basic_get(q)
    assert m.body == b"job"
    assert m.delivery_info["message_count"] == 0
    ch.basic_reject(m.delivery_tag, requeue=True)
    m = ch.basic_get(q)
    assert m.delivery_info["redelivered"] is True
    ch.basic_ack(m.delivery_tag)
    assert ch.basic_get(q) is None


def test_publisher_confirms(connection):
    ch = connection.channel()
    ch.confirm_select()
    q = ch.queue_declare("", exclusive=True).queue
    for i in range(5):
        ch.basic_publish_confirm(amqp.Message(str(i)), routing_key=q)
    assert ch.queue_declare(q, passive=True).message_count == 5


def test_transactions(connection):
    ch = connection.channel()
    q = ch.queue_declare("", exclusive=True).queue
    ch.tx_select()
    ch.basic_publish(amqp.Message(b"rolled back"), routing_key=q)
    ch.tx_rollback()
    ch.basic_publish(amqp.Message(b"committed"), routing_key=q)
    ch.tx_commit()
    assert ch.basic_get(q, no_ack=True).body == b"committed"
    assert ch.basic_get(q) is None


def test_channel_error(connection, names):
    ch = connection.channel()
    with pytest.raises(amqp.exceptions.NotFound) as ei:
        ch.queue_declare(names.queue(), passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text.startswith("NOT_FOUND - no queue ")
    assert connection.connected
    connection.channel().queue_declare("", exclusive=True)


def test_server_cancel_notification(connection, names):
    ch = connection.channel()
    q = names.queue()
    ch.queue_declare(q, auto_delete=False)
    cancelled = []
    ch.basic_consume(q, callback=lambda m: None, on_cancel=cancelled.append)
    connection.channel().queue_delete(q)
    while not cancelled:
        connection.drain_events(timeout=5)
    assert cancelled[0]
