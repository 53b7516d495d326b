"""broker/snapshot.py: what the management API renders, read from live objects.

The queue's own unacked count (``Queue.unacked``) and the bytes found by walking the
channels' unacked deliveries must describe the same deliveries; snapshots are frozen.
"""

from __future__ import annotations

import dataclasses

import pika
import pytest

from leveret.broker.node import Node
from leveret.broker.snapshot import (
    queue_consumers,
    snapshot_connections,
    snapshot_queue,
    snapshot_queues,
    unacked_bytes,
)
from leveret.runtime.threaded import BrokerThread


def test_snapshots_are_frozen_and_slotted() -> None:
    node = Node()
    q = node.vhosts["/"].declare_queue("frozen", False, False, False, False, {}, None)
    snapshot = snapshot_queue(q)
    assert not hasattr(snapshot, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.messages_ready = 1  # type: ignore[misc]
    assert (snapshot.name, snapshot.vhost, snapshot.type, snapshot.owner) == (
        "frozen", "/", "classic", None)


def test_unacked_counts_and_bytes_describe_the_same_deliveries() -> None:
    with BrokerThread() as broker:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
        try:
            ch = conn.channel()
            ch.queue_declare("snap", exclusive=True)
            for body in (b"a", b"bb", b"ccc", b"dddd"):
                ch.basic_publish("", "snap", body)
            ch.basic_qos(prefetch_count=3)
            ch.basic_consume("snap", lambda *args: None, consumer_tag="c1")
            conn.process_data_events(0.3)
            got = ch.basic_get("snap")  # the consumer holds 3 (prefetch), this the fourth
            assert got[0] is not None
            conn.process_data_events(0.1)

            def look() -> tuple:
                node = broker.node
                q = node.vhosts["/"].queues["snap"]
                walked = unacked_bytes(node)
                return (snapshot_queues(node, ["/"])[0], q.unacked, walked.get(q, 0),
                        queue_consumers(q), [s for _, s in snapshot_connections(node)])

            snapshot, counted, walked_bytes, consumers, connections = broker.call(look)
            assert counted == 4 and snapshot.messages_unacknowledged == 4
            assert snapshot.messages_ready == 0 and snapshot.messages == 4
            assert walked_bytes == 1 + 2 + 3 + 4 == snapshot.message_bytes_unacknowledged
            assert snapshot.exclusive and snapshot.owner is not None
            assert snapshot.owner.user == "guest" and snapshot.owner.channels == 1
            assert [c.tag for c in consumers] == ["c1"]
            assert consumers[0].active and consumers[0].activity_status == "up"
            assert consumers[0].connection.peer_port == snapshot.owner.peer_port
            assert [c.state for c in connections] == ["running"]
        finally:
            conn.close()
