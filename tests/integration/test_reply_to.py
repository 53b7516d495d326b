"""Direct reply-to: amq.rabbitmq.reply-to pseudo-queue RPC, and the errors for misuse."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pika
import pytest

from ._util import declare_temp_queue

REPLY_TO = "amq.rabbitmq.reply-to"


def _pump(conn, until, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        conn.process_data_events(time_limit=0.05)


def test_rpc_pika(connect, names):
    server_conn = connect()
    server = server_conn.channel()
    service = names.queue()
    server.queue_declare(service)

    client_conn = connect()
    client = client_conn.channel()
    replies = []
    client.basic_consume(REPLY_TO, lambda _c, m, p, b: replies.append((m, p, b)), auto_ack=True)
    client.basic_publish(
        "", service, b"2+2", pika.BasicProperties(reply_to=REPLY_TO, correlation_id="req-1")
    )

    method, props, body = None, None, None
    deadline = time.monotonic() + 5
    while method is None:
        assert time.monotonic() < deadline
        method, props, body = server.basic_get(service, auto_ack=True)
    assert body == b"2+2"
    # the server sees a per-channel reply address, not the pseudo-queue name
    assert props.reply_to.startswith(REPLY_TO + ".")
    assert props.reply_to != REPLY_TO
    assert props.correlation_id == "req-1"
    server.basic_publish(
        "", props.reply_to, b"4", pika.BasicProperties(correlation_id=props.correlation_id)
    )

    _pump(client_conn, lambda: replies)
    m, p, b = replies[0]
    assert b == b"4"
    assert p.correlation_id == "req-1"
    assert (m.exchange, m.routing_key, m.redelivered) == ("", props.reply_to, False)


def test_rpc_several_requests_same_channel(connect, names):
    conn = connect()
    ch = conn.channel()
    service = declare_temp_queue(ch)
    replies = []
    ch.basic_consume(
        REPLY_TO, lambda _c, m, p, b: replies.append((p.correlation_id, b)), auto_ack=True
    )
    for i in range(5):
        ch.basic_publish(
            "",
            service,
            str(i).encode(),
            pika.BasicProperties(reply_to=REPLY_TO, correlation_id=str(i)),
        )
    responder = conn.channel()
    addresses = set()
    for _ in range(5):
        _method, props, body = responder.basic_get(service, auto_ack=True)
        addresses.add(props.reply_to)
        responder.basic_publish(
            "", props.reply_to, body * 2, pika.BasicProperties(correlation_id=props.correlation_id)
        )
    assert len(addresses) == 1  # one address per channel
    _pump(conn, lambda: len(replies) == 5)
    assert replies == [(str(i), str(i).encode() * 2) for i in range(5)]


async def test_rpc_aio_pika(amqp_url, names):
    conn = await aio_pika.connect(amqp_url)
    try:
        server_ch = await conn.channel()
        service = await server_ch.declare_queue(names.queue())

        async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                assert message.reply_to.startswith(REPLY_TO + ".")
                await server_ch.default_exchange.publish(
                    aio_pika.Message(
                        body=message.body.upper(), correlation_id=message.correlation_id
                    ),
                    routing_key=message.reply_to,
                )

        await service.consume(serve)

        client_ch = await conn.channel()
        reply_queue = await client_ch.get_queue(REPLY_TO, ensure=False)
        future = asyncio.get_running_loop().create_future()

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if not future.done():
                future.set_result(message)

        await reply_queue.consume(on_reply, no_ack=True)
        await client_ch.default_exchange.publish(
            aio_pika.Message(body=b"ping", reply_to=REPLY_TO, correlation_id="c-7"),
            routing_key=service.name,
        )
        reply = await asyncio.wait_for(future, 5)
        assert reply.body == b"PING"
        assert reply.correlation_id == "c-7"
    finally:
        await conn.close()


def test_reply_after_requester_channel_closed_is_dropped(connect, names):
    conn = connect()
    client = conn.channel()
    service = declare_temp_queue(client)
    client.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    client.basic_publish("", service, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    responder = conn.channel()
    responder.confirm_delivery()
    props = responder.basic_get(service, auto_ack=True)[1]
    client.close()
    with pytest.raises(pika.exceptions.UnroutableError):
        responder.basic_publish("", props.reply_to, b"too late", mandatory=True)
    assert responder.is_open


def test_reply_to_bogus_address(channel):
    channel.confirm_delivery()
    channel.basic_publish("", REPLY_TO + ".bogus", b"dropped")  # no error
    with pytest.raises(pika.exceptions.UnroutableError) as ei:
        channel.basic_publish("", REPLY_TO + ".bogus", b"returned", mandatory=True)
    assert ei.value.messages[0].method.reply_code == 312


def test_declare_reply_to_pseudo_queue(channel):
    ok = channel.queue_declare(REPLY_TO, passive=True).method
    assert ok.queue == REPLY_TO
    assert ok.message_count == 0
    ok = channel.queue_declare(REPLY_TO).method
    assert ok.queue == REPLY_TO


# -- misuse ----------------------------------------------------------------------------------------


def test_consume_with_acks_refused(channel):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_publish_with_reply_to_but_no_consumer(channel):
    q = declare_temp_queue(channel)
    channel.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


def test_publish_with_reply_to_after_cancel(channel):
    q = declare_temp_queue(channel)
    tag = channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    channel.basic_cancel(tag)
    channel.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


def test_consume_twice_refused(channel):
    channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        channel.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - reply consumer already set"


def test_consumer_on_other_channel_does_not_count(conn):
    ch1 = conn.channel()
    ch1.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    ch2 = conn.channel()
    q = declare_temp_queue(ch2)
    ch2.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


@pytest.mark.parametrize("op", ["get", "bind"])
def test_reply_to_is_not_a_real_queue(channel, op):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        if op == "get":
            channel.basic_get(REPLY_TO)
        else:
            channel.queue_bind(REPLY_TO, "amq.fanout")
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == f"NOT_FOUND - no queue '{REPLY_TO}' in vhost '/'"
