"""pika SelectConnection (callback style, its own ioloop): declare, publish with confirms,
consume, ack, close."""

from __future__ import annotations

import pika


def test_select_connection_round_trip(amqp_url, names):
    exchange, queue = names.exchange(), names.queue()
    n = 10
    state = {"acked": 0, "received": [], "error": None, "closed": False}
    params = pika.URLParameters(amqp_url)

    def on_open(conn):
        conn.channel(on_open_callback=on_channel)

    def on_open_error(conn, err):
        state["error"] = err
        conn.ioloop.stop()

    def on_closed(conn, reason):
        state["closed"] = True
        conn.ioloop.stop()

    def on_channel(ch):
        ch.add_on_close_callback(
            lambda _ch, reason: (
                state.__setitem__("error", reason)
                if not state["closed"] and len(state["received"]) < n
                else None
            )
        )
        ch.exchange_declare(exchange, "direct", callback=lambda _f: on_exchange(ch))

    def on_exchange(ch):
        ch.queue_declare(
            queue,
            callback=lambda _f: ch.queue_bind(
                queue, exchange, "key", callback=lambda _f: on_bound(ch)
            ),
        )

    def on_bound(ch):
        ch.confirm_delivery(
            ack_nack_callback=lambda frame: on_confirm(ch, frame), callback=lambda _f: publish(ch)
        )

    def publish(ch):
        for i in range(n):
            ch.basic_publish(
                exchange, "key", f"msg-{i}".encode(), pika.BasicProperties(correlation_id=str(i))
            )

    def on_confirm(ch, frame):
        assert isinstance(frame.method, pika.spec.Basic.Ack)
        state["acked"] = max(state["acked"], frame.method.delivery_tag)
        if state["acked"] == n:
            ch.basic_qos(prefetch_count=3, callback=lambda _f: ch.basic_consume(queue, on_message))

    def on_message(ch, method, props, body):
        state["received"].append((props.correlation_id, body))
        ch.basic_ack(method.delivery_tag)
        if len(state["received"]) == n:
            ch.queue_delete(queue, callback=lambda _f: ch.connection.close())

    conn = pika.SelectConnection(
        params,
        on_open_callback=on_open,
        on_open_error_callback=on_open_error,
        on_close_callback=on_closed,
    )
    timer = conn.ioloop.call_later(15, conn.ioloop.stop)
    conn.ioloop.start()
    conn.ioloop.remove_timeout(timer)
    if not conn.is_closed:
        conn.close()
        conn.ioloop.start()
    conn.ioloop.close()  # releases the ioloop's wake-up socket pair
    assert state["error"] is None, state["error"]
    assert state["acked"] == n
    assert state["received"] == [(str(i), f"msg-{i}".encode()) for i in range(n)]
    assert state["closed"]
