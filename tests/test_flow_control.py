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
