"""Backpressure: publishers are paused (and told, with connection.blocked) when queued
messages pass the memory watermark, and resumed (connection.unblocked) below it."""

from __future__ import annotations

import socket
import time

import pika

from leveret.broker.node import Limits
from leveret.runtime.threaded import BrokerThread
from leveret.server.alarms import queued_message_bytes


def test_memory_watermark_blocks_and_unblocks_publishers() -> None:
    broker = BrokerThread(limits=Limits(memory_high_watermark=1 << 20))
    # The alarm measures the process RSS; here the queued bytes alone, to be exact.
    broker.broker.resources.memory_reading = lambda: queued_message_bytes(broker.node)
    with broker:
        events: list[str] = []
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        conn.add_on_connection_blocked_callback(lambda *_: events.append("blocked"))
        conn.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
        ch = conn.channel()
        ch.queue_declare("flood")
        body = b"x" * 65536
        for _ in range(40):  # 2.5 MiB: over the 1 MiB watermark
            ch.basic_publish("", "flood", body)
        deadline = time.monotonic() + 5
        while "blocked" not in events and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert events == ["blocked"]

        other = pika.BlockingConnection(pika.URLParameters(broker.url))
        assert other.channel().queue_purge("flood").method.message_count > 0
        other.close()
        deadline = time.monotonic() + 5
        while "unblocked" not in events and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert events == ["blocked", "unblocked"]
        ch.basic_publish("", "flood", b"after")  # reading resumed
        assert ch.queue_declare("flood", passive=True).method.message_count >= 1
        conn.close()


def _publishers(broker: BrokerThread) -> list:
    return [p.conn for p in broker.broker.listener.protocols
            if p.conn is not None and p.conn.published]


def test_a_publisher_into_a_queue_its_consumers_lag_gets_a_smaller_share_not_a_stop() -> None:
    """Queue.behind: a backlog with consumers attached shrinks the publisher's input share
    per turn (protocol.INPUT_FRAMES_BEHIND); it is never paused for it, however slow the
    consumer, and gets its full share back once nobody lags."""
    with BrokerThread() as broker:
        consumer = pika.BlockingConnection(pika.URLParameters(broker.url))
        cch = consumer.channel()
        cch.queue_declare("lagging")
        cch.basic_qos(prefetch_count=1)
        cch.basic_consume("lagging", lambda *_: None)  # takes one and never acks
        consumer.process_data_events(time_limit=0.2)
        publisher = pika.BlockingConnection(pika.URLParameters(broker.url))
        pch = publisher.channel()
        pch.confirm_delivery()
        for _ in range(5000):  # past BACKLOG_HIGH; confirms: every publish was read
            pch.basic_publish("", "lagging", b"m")
        [conn] = _publishers(broker)
        assert conn.publishing_behind and not conn.flow_paused
        assert pch.queue_declare("lagging", passive=True).method.message_count >= 4999
        consumer.close()  # no consumer: nobody is behind
        pch.basic_publish("", "lagging", b"m")
        assert not conn.publishing_behind
        publisher.close()


def test_a_client_that_stops_midway_through_a_large_frame_gives_its_ring_back() -> None:
    """Clients that send the first 20 KiB of a 100 KiB body frame and stop: each was read
    into a 256 KiB receive ring; once it has sent nothing for RING_IDLE the broker keeps
    only the bytes it sent (server/protocol.py), so such clients cost what they sent. The
    frame, completed later, is handled as any other."""
    from leveret.amqp import frames, spec
    from leveret.server.protocol import RING_IDLE

    handshake = frames.PROTOCOL_HEADER + b"".join(frames.encode_method(0, m) for m in (
        spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                               response=b"\x00guest\x00guest"),
        spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=0),
        spec.ConnectionOpen(virtual_host="/"),
    ))
    with BrokerThread() as broker:
        declare = pika.BlockingConnection(pika.URLParameters(broker.url))
        declare.channel().queue_declare("completed")
        body = b"b" * (100 << 10)
        data = (handshake + frames.encode_method(1, spec.ChannelOpen())
                + frames.encode_method(1, spec.BasicPublish(exchange="",
                                                            routing_key="completed"))
                + frames.encode_content(1, 60, b"\x00\x00", body, 131072))
        cut = len(data) - len(body) + (20 << 10)
        socks = [socket.create_connection(("127.0.0.1", broker.port)) for _ in range(5)]
        try:
            for s in socks:
                s.sendall(data[:cut])
            deadline = time.monotonic() + 5
            held: list[bool] = []
            while time.monotonic() < deadline:
                held = [p.conn.holds_input_ring for p in list(broker.broker.listener.protocols)
                        if p.conn is not None and p.conn.recv_oct >= cut]
                if len(held) == len(socks) and any(held):
                    break
                time.sleep(0.01)
            assert len(held) == len(socks) and any(held)  # read into rings first
            time.sleep(RING_IDLE * 2 + 0.5)
            assert not any(p.conn.holds_input_ring for p in broker.broker.listener.protocols
                           if p.conn is not None)
            for s in socks:
                s.sendall(data[cut:])
            deadline = time.monotonic() + 5
            count = 0
            while count < len(socks) and time.monotonic() < deadline:
                count = declare.channel().queue_declare("completed", passive=True
                                                        ).method.message_count
                time.sleep(0.05)
            assert count == len(socks)
        finally:
            for s in socks:
                s.close()
            declare.close()
