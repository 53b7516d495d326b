"""Large bodies delivered to consumers (basic.deliver, not basic.get): the broker writes a
body of a frame of its own as it was received, beside the frames around it; the same body
object goes to every queue it was routed to. Real clients over TCP."""

from __future__ import annotations

import asyncio
import os

import aio_pika
import pika
import pytest

FRAME_MAX = 131072


def _body(size: int, seed: int) -> bytes:
    # distinct heads and tails so that a body swapped with another, or cut, shows
    return seed.to_bytes(4, "big") + os.urandom(28) + bytes(max(0, size - 64)) + os.urandom(32)


async def test_large_bodies_to_several_queues_aio_pika(amqp_url, names):
    """A fanout to three queues, each with its own consumer: every queue gets every body
    whole and in order, small and large interleaved."""
    sizes = [65536, 100, 16 << 10, 70000, FRAME_MAX - 8, FRAME_MAX + 500, 1000] * 6
    bodies = [_body(n, i) if n >= 64 else os.urandom(n) for i, n in enumerate(sizes)]
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        x = await ch.declare_exchange(names.exchange(), aio_pika.ExchangeType.FANOUT,
                                      auto_delete=True)
        inboxes: list[list[bytes]] = []
        done = [asyncio.Event() for _ in range(3)]
        for i in range(3):
            q = await ch.declare_queue(names.queue(), exclusive=True)
            await q.bind(x)
            got: list[bytes] = []
            inboxes.append(got)

            async def on_message(m: aio_pika.abc.AbstractIncomingMessage, got=got,
                                 ev=done[i]) -> None:
                got.append(m.body)
                if len(got) == len(bodies):
                    ev.set()

            await q.consume(on_message, no_ack=True)
        for body in bodies:
            await x.publish(aio_pika.Message(body), routing_key="")
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done)), 30)
        for got in inboxes:
            assert len(got) == len(bodies)
            assert got == bodies
    finally:
        await conn.close()


@pytest.mark.parametrize("frame_max", [4096, FRAME_MAX])
def test_large_bodies_split_by_a_consumers_frame_max_pika(connect, names, frame_max):
    """The publisher's frame_max is 128 KiB (one body frame per 64 KiB body); a consumer
    that tuned 4096 gets the same bodies split into its frames, one of 128 KiB gets them
    in one frame each."""
    publisher = connect().channel()
    q = names.queue()
    publisher.queue_declare(q, auto_delete=False)
    bodies = [_body(n, i) for i, n in enumerate([65536, 20000, 131064, 300000] * 3)]
    for body in bodies:
        publisher.basic_publish("", q, body)
    consumer_conn = connect(frame_max=frame_max)
    consumer = consumer_conn.channel()
    got: list[bytes] = []
    consumer.basic_consume(q, lambda _c, _m, _p, b: got.append(b), auto_ack=True)
    for _ in range(300):
        if len(got) == len(bodies):
            break
        consumer_conn.process_data_events(time_limit=0.1)
    assert got == bodies


def test_large_bodies_redelivered_after_a_requeue_pika(connect, names):
    """Unacknowledged large bodies, requeued when their channel closes, come back whole to
    another consumer (the body object kept by the queue is delivered again)."""
    conn = connect()
    q = names.queue()
    ch = conn.channel()
    ch.queue_declare(q)
    bodies = [_body(65536, i) for i in range(5)]
    for body in bodies:
        ch.basic_publish("", q, body, pika.BasicProperties(delivery_mode=1))
    first = conn.channel()
    seen: list[bytes] = []
    first.basic_consume(q, lambda _c, _m, _p, b: seen.append(b))
    for _ in range(100):
        if len(seen) == len(bodies):
            break
        conn.process_data_events(time_limit=0.1)
    assert seen == bodies
    first.close()  # unacked: requeued
    again: list[tuple[bool, bytes]] = []
    ch.basic_consume(q, lambda _c, m, _p, b: again.append((m.redelivered, b)), auto_ack=True)
    for _ in range(100):
        if len(again) == len(bodies):
            break
        conn.process_data_events(time_limit=0.1)
    assert again == [(True, b) for b in bodies]
