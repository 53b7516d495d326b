"""basic.*: publish (mandatory/returns), consume (tags, exclusive, no-ack), cancel (by the client
and by the server), get/get-empty."""

from __future__ import annotations

import re
import time

import pika
import pytest
from pamqp import commands as C

from ._util import declare_temp_queue, drain


def _pump(conn, until, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        conn.process_data_events(time_limit=0.05)


# -- publish ---------------------------------------------------------------------------------------


def test_publish_and_get(channel):
    q = declare_temp_queue(channel)
    channel.basic_publish("", q, b"hello", pika.BasicProperties(content_type="text/plain"))
    method, props, body = channel.basic_get(q, auto_ack=True)
    assert body == b"hello"
    assert props.content_type == "text/plain"
    assert (method.exchange, method.routing_key, method.redelivered) == ("", q, False)
    assert method.message_count == 0


def test_mandatory_unroutable_is_returned(conn, names):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(
        lambda _ch, method, props, body: returned.append((method, props, body))
    )
    x = names.exchange()
    ch.exchange_declare(x, "direct")
    ch.basic_publish(
        x, "nowhere", b"back to me", pika.BasicProperties(message_id="m1"), mandatory=True
    )
    _pump(conn, lambda: returned)
    method, props, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == (x, "nowhere")
    assert body == b"back to me"
    assert props.message_id == "m1"


def test_mandatory_to_default_exchange_missing_queue(conn, names):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append(method))
    q = names.queue()
    ch.basic_publish("", q, b"m", mandatory=True)
    _pump(conn, lambda: returned)
    assert (returned[0].reply_code, returned[0].reply_text) == (312, "NO_ROUTE")
    assert (returned[0].exchange, returned[0].routing_key) == ("", q)


def test_mandatory_routable_is_not_returned(conn):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    q = declare_temp_queue(ch)
    ch.basic_publish("", q, b"m", mandatory=True)
    assert drain(ch, q) == [b"m"]
    conn.process_data_events(time_limit=0.1)
    assert returned == []


def test_unroutable_without_mandatory_is_dropped(conn, names):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    x = names.exchange()
    ch.exchange_declare(x, "fanout")
    ch.basic_publish(x, "", b"dropped")
    ch.queue_declare("", exclusive=True)
    conn.process_data_events(time_limit=0.1)
    assert returned == []
    assert conn.is_open


def test_return_raw_frames(raw, names):
    r = raw()
    r.open_channel(1)
    x = names.exchange()
    r.rpc(C.Exchange.Declare(exchange=x, exchange_type="topic"), C.Exchange.DeclareOk, 1)
    r.publish(
        1,
        b"returned body",
        exchange=x,
        routing_key="a.b",
        mandatory=True,
        properties={"correlation_id": "c1"},
    )
    ret = r.expect(C.Basic.Return, 1)
    assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == (
        312,
        "NO_ROUTE",
        x,
        "a.b",
    )
    content_header, body = r.read_content(1)
    assert body == b"returned body"
    assert content_header.properties.correlation_id == "c1"


def test_publish_order_is_preserved(channel):
    q = declare_temp_queue(channel)
    for i in range(200):
        channel.basic_publish("", q, str(i).encode())
    assert drain(channel, q) == [str(i).encode() for i in range(200)]


# -- consume ---------------------------------------------------------------------------------------


def test_consume_server_generated_tag(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    got = []
    tag = ch.basic_consume(q, lambda _ch, m, p, b: got.append((m, b)), auto_ack=True)
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    _pump(conn, lambda: len(got) == 2)
    assert [b for _m, b in got] == [b"1", b"2"]
    # pika makes its own tags; check the server's with a raw consume below
    assert all(m.consumer_tag == tag for m, _b in got)
    assert [m.delivery_tag for m, _b in got] == [1, 2]
    assert all(m.redelivered is False and m.exchange == "" and m.routing_key == q for m, _b in got)


def test_server_generated_consumer_tag_raw(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    ok1 = r.rpc(C.Basic.Consume(queue=q, consumer_tag=""), C.Basic.ConsumeOk, 1)
    ok2 = r.rpc(C.Basic.Consume(queue=q, consumer_tag=""), C.Basic.ConsumeOk, 1)
    for ok in (ok1, ok2):
        assert re.fullmatch(r"amq\.ctag-[A-Za-z0-9_-]{22}", ok.consumer_tag), ok.consumer_tag
    assert ok1.consumer_tag != ok2.consumer_tag
    r.publish(1, b"m", routing_key=q)
    deliver = r.expect(C.Basic.Deliver, 1)
    assert deliver.consumer_tag in (ok1.consumer_tag, ok2.consumer_tag)
    assert deliver.delivery_tag == 1


def test_consumers_share_messages_round_robin(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    ch.basic_consume(q, lambda _c, m, p, b: got["a"].append(b), auto_ack=True, consumer_tag="a")
    ch.basic_consume(q, lambda _c, m, p, b: got["b"].append(b), auto_ack=True, consumer_tag="b")
    for i in range(10):
        ch.basic_publish("", q, str(i).encode())
    _pump(conn, lambda: len(got["a"]) + len(got["b"]) == 10)
    assert got["a"] == [str(i).encode() for i in range(0, 10, 2)]
    assert got["b"] == [str(i).encode() for i in range(1, 10, 2)]


def test_consume_delivers_messages_already_queued(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    got = []
    ch.basic_consume(q, lambda _c, m, p, b: got.append(b), auto_ack=True)
    _pump(conn, lambda: len(got) == 5)
    assert got == [str(i).encode() for i in range(5)]


def test_no_ack_consumer_removes_messages(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    got = []
    tag = ch.basic_consume(q, lambda _c, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", q, b"m")
    _pump(conn, lambda: got)
    ch.basic_cancel(tag)
    ch.close()
    ch = conn.channel()
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_exclusive_consumer(connect):
    conn = connect()
    ch = conn.channel()
    q = declare_temp_queue(ch)
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    ch2 = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.basic_consume(q, lambda *a: None)
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"
    assert conn.is_open
    # basic.get is still allowed next to an exclusive consumer
    ch3 = conn.channel()
    assert ch3.basic_get(q)[0] is None


def test_exclusive_consumer_slot_freed_by_cancel(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    tag = ch.basic_consume(q, lambda *a: None, exclusive=True)
    ch.basic_cancel(tag)
    ch.basic_consume(q, lambda *a: None, exclusive=True)


def test_cancel(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    got = []
    tag = ch.basic_consume(q, lambda _c, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", q, b"before")
    _pump(conn, lambda: got)
    ch.basic_cancel(tag)
    ch.basic_publish("", q, b"after")
    conn.process_data_events(time_limit=0.1)
    assert got == [b"before"]
    assert drain(ch, q) == [b"after"]


def test_cancel_raw(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="my-tag"), C.Basic.ConsumeOk, 1)
    ok = r.rpc(C.Basic.Cancel(consumer_tag="my-tag"), C.Basic.CancelOk, 1)
    assert ok.consumer_tag == "my-tag"
    # cancelling an unknown tag is not an error
    ok = r.rpc(C.Basic.Cancel(consumer_tag="no-such-tag"), C.Basic.CancelOk, 1)
    assert ok.consumer_tag == "no-such-tag"
    # the tag can be reused after cancel
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="my-tag"), C.Basic.ConsumeOk, 1)


def test_consumer_tag_may_repeat_on_other_channels(raw):
    r = raw()
    r.open_channel(1)
    r.open_channel(2)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="same"), C.Basic.ConsumeOk, 1)
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="same"), C.Basic.ConsumeOk, 2)


def test_consume_nowait(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.send(C.Basic.Consume(queue=q, consumer_tag="nw", nowait=True), 1)
    r.publish(1, b"m", routing_key=q)
    deliver = r.expect(C.Basic.Deliver, 1)  # no consume-ok before it
    assert deliver.consumer_tag == "nw"


def test_server_cancels_consumer_when_queue_deleted_pika(conn, names):
    ch = conn.channel()
    q = names.queue()
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    conn.channel().queue_delete(q)
    _pump(conn, lambda: cancelled)
    assert cancelled == [tag]
    assert ch.is_open


def test_server_cancel_raw(raw, connect, names):
    """basic.cancel from the server carries the consumer tag and nowait=true; the channel
    stays open."""
    q = names.queue()
    r = raw()
    r.open_channel(1)
    r.rpc(C.Queue.Declare(queue=q), C.Queue.DeclareOk, 1)
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="doomed"), C.Basic.ConsumeOk, 1)
    connect().channel().queue_delete(q)
    cancel = r.expect(C.Basic.Cancel, 1)
    assert cancel.consumer_tag == "doomed"
    assert cancel.nowait is True
    r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1)


def test_server_cancel_comes_after_the_delete_ok(raw, names):
    """queue.delete on the channel that consumes from the queue: RabbitMQ answers delete-ok
    first and cancels the consumer after it (a consumer on another channel may hear its
    cancel before or after: a race in RabbitMQ). py-amqp, waiting for the delete-ok, raises
    ConsumerCancelled on a cancel that comes first for a consumer without an on_cancel
    callback (kombu's test_ack_from_another_thread)."""
    q = names.queue()
    r = raw()
    r.open_channel(1)
    r.open_channel(2)
    r.rpc(C.Queue.Declare(queue=q), C.Queue.DeclareOk, 1)
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="here"), C.Basic.ConsumeOk, 1)
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="there"), C.Basic.ConsumeOk, 2)
    r.send(C.Queue.Delete(queue=q), 1)
    frames = [r.recv_frame() for _ in range(3)]
    assert [type(f) for ch, f in frames if ch == 1] == [C.Queue.DeleteOk, C.Basic.Cancel]
    assert sorted((ch, f.consumer_tag) for ch, f in frames if isinstance(f, C.Basic.Cancel)) \
        == [(1, "here"), (2, "there")]


def test_server_cancel_when_exclusive_queue_owner_deletes(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    conn.channel().queue_delete(q)
    _pump(conn, lambda: cancelled)
    assert cancelled == [tag]


def test_no_server_cancel_without_consumer_cancel_notify(raw, connect, names):
    """A client that does not announce consumer_cancel_notify is not sent basic.cancel."""
    q = names.queue()
    r = raw(capabilities={})
    r.open_channel(1)
    r.rpc(C.Queue.Declare(queue=q), C.Queue.DeclareOk, 1)
    r.rpc(C.Basic.Consume(queue=q, consumer_tag="doomed"), C.Basic.ConsumeOk, 1)
    connect().channel().queue_delete(q)
    ok = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1)
    assert ok.queue.startswith("amq.gen-")
    with pytest.raises(TimeoutError):
        r.recv_frame(timeout=0.3)


async def test_server_cancel_aio_pika(amqp_url, names):
    import asyncio

    import aio_pika

    q_name = names.queue()
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        queue = await ch.declare_queue(q_name)
        cancelled = asyncio.get_running_loop().create_future()
        underlay = await ch.get_underlay_channel()

        async def on_cancel(frame):
            if not cancelled.done():
                cancelled.set_result(frame.consumer_tag)

        underlay.on_consumer_cancel_callbacks.add(on_cancel)

        async def on_message(message):
            pass

        tag = await queue.consume(on_message)
        other = await conn.channel()
        await other.queue_delete(q_name)
        assert await asyncio.wait_for(cancelled, 5) == tag
    finally:
        await conn.close()


# -- get -------------------------------------------------------------------------------------------


def test_get_empty(channel):
    q = declare_temp_queue(channel)
    assert channel.basic_get(q) == (None, None, None)


def test_get_empty_raw(raw):
    r = raw()
    r.open_channel(1)
    q = r.rpc(C.Queue.Declare(queue="", exclusive=True), C.Queue.DeclareOk, 1).queue
    r.send(C.Basic.Get(queue=q), 1)
    empty = r.expect(C.Basic.GetEmpty, 1)
    assert empty.cluster_id == ""


def test_get_message_count(channel):
    q = declare_temp_queue(channel)
    for i in range(3):
        channel.basic_publish("", q, str(i).encode())
    counts = []
    for _ in range(3):
        method, _p, _b = channel.basic_get(q, auto_ack=True)
        counts.append(method.message_count)
    assert counts == [2, 1, 0]


def test_get_delivery_tags_and_ack(channel):
    q = declare_temp_queue(channel)
    for i in range(3):
        channel.basic_publish("", q, str(i).encode())
    tags = [channel.basic_get(q)[0].delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]
    channel.basic_ack(3, multiple=True)
    assert channel.queue_declare(q, passive=True).method.message_count == 0


def test_get_and_consume_share_delivery_tags(conn):
    ch = conn.channel()
    q = declare_temp_queue(ch)
    ch.basic_publish("", q, b"got")
    assert ch.basic_get(q)[0].delivery_tag == 1
    got = []
    ch.basic_consume(q, lambda _c, m, p, b: got.append(m.delivery_tag))
    ch.basic_publish("", q, b"consumed")
    _pump(conn, lambda: got)
    assert got == [2]
