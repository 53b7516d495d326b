"""Backpressure: publishers are paused (and told, with connection.blocked) when queued
messages pass the memory watermark, and resumed (connection.unblocked) below it."""

from __future__ import annotations

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
