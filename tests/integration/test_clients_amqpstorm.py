"""AMQPStorm: UriConnection, channel API, Message objects, consuming, RPC-ish replies."""

from __future__ import annotations

import amqpstorm
import pytest
from amqpstorm import Message, UriConnection


@pytest.fixture
def storm(amqp_url):
    conn = UriConnection(amqp_url + ("&" if "?" in amqp_url else "?") + "heartbeat=60", lazy=True)
    conn.open()
    yield conn
    conn.close()


def test_round_trip(storm, names):
    exchange, queue = names.exchange(), names.queue()
    with storm.channel() as ch:
        ch.exchange.declare(exchange, exchange_type="direct")
        result = ch.queue.declare(queue)
        assert result["queue"] == queue
        ch.queue.bind(queue, exchange, routing_key="k")
        ch.confirm_deliveries()
        for i in range(5):
            msg = Message.create(
                ch,
                f"body-{i}",
                properties={
                    "content_type": "text/plain",
                    "correlation_id": str(i),
                    "headers": {"i": i},
                },
            )
            assert msg.publish("k", exchange=exchange, mandatory=True) is True
        ch.basic.qos(prefetch_count=2)
        received = []

        def on_message(message):
            received.append((message.correlation_id, message.body, message.properties["headers"]))
            message.ack()
            if len(received) == 5:
                message.channel.stop_consuming()

        ch.basic.consume(on_message, queue, no_ack=False)
        ch.start_consuming(to_tuple=False)
        assert [r[0] for r in received] == [str(i) for i in range(5)]
        assert received[3][1] == "body-3"
        assert received[3][2] in ({"i": 3}, {b"i": 3})
        ch.queue.delete(queue)
        ch.exchange.delete(exchange)


def test_get_nack_and_purge(storm):
    with storm.channel() as ch:
        q = ch.queue.declare("", exclusive=True)["queue"]
        for i in range(3):
            Message.create(ch, str(i)).publish(q)
        m = ch.basic.get(q, no_ack=False)
        assert m.body == "0"
        m.nack(requeue=True)
        m = ch.basic.get(q, no_ack=True)
        assert (m.body, m.redelivered) == ("0", True)
        assert ch.queue.purge(q)["message_count"] == 2
        assert ch.basic.get(q) is None


def test_channel_error(storm, names):
    ch = storm.channel()
    with pytest.raises(amqpstorm.AMQPChannelError) as ei:
        ch.queue.declare(names.queue(), passive=True)
    assert ei.value.error_code == 404
    assert storm.is_open
    with storm.channel() as ch2:
        assert ch2.queue.declare("", exclusive=True)["queue"].startswith("amq.gen-")
