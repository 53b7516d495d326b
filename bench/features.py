"""Throughput of the priority queue and the delayed-message exchange with a million pending
messages, measured in the broker core (bytes in, bytes out, no sockets), with the
injectable clock so delays of up to a minute are released without waiting.

    python bench/features.py [--messages 1000000]
"""

from __future__ import annotations

import argparse
import random
import resource
import time

from leveret.amqp import frames, spec
from leveret.broker.clock import ManualClock
from leveret.broker.connection import ServerConnection
from leveret.broker.node import Node

FRAME_MAX = 131072


def connect(node: Node) -> ServerConnection:
    conn = ServerConnection(node, peer=("127.0.0.1", 0))
    conn.receive_data(frames.PROTOCOL_HEADER + b"".join(frames.encode_method(0, m) for m in (
        spec.ConnectionStartOk(client_properties={}, mechanism="PLAIN",
                               response=b"\x00guest\x00guest"),
        spec.ConnectionTuneOk(channel_max=2047, frame_max=FRAME_MAX, heartbeat=0),
        spec.ConnectionOpen(virtual_host="/"))) + frames.encode_method(1, spec.ChannelOpen()))
    conn.take_output()
    return conn


def publish_all(conn: ServerConnection, frames_list: list[bytes], batch: int = 200) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(frames_list), batch):
        conn.receive_data(b"".join(frames_list[i:i + batch]))
        conn.take_output()
        conn.output_flushed()
    return time.perf_counter() - t0


def drain(node: Node, queue: str, expected: int) -> float:
    sub = connect(node)
    sub.receive_data(frames.encode_method(1, spec.BasicConsume(queue=queue, no_ack=True)))
    t0 = time.perf_counter()
    got = 0
    q = node.vhosts["/"].queues[queue]
    while q.ready:
        data = sub.take_output()
        got += data.count(b"\x00\x3c\x00\x3c")
        sub.output_flushed()
    got += sub.take_output().count(b"\x00\x3c\x00\x3c")
    dt = time.perf_counter() - t0
    assert got >= expected, (got, expected)
    return dt


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_priority(n: int) -> None:
    node = Node()
    pub = connect(node)
    pub.receive_data(frames.encode_method(1, spec.QueueDeclare(
        queue="prio", arguments={"x-max-priority": 10})))
    rnd = random.Random(1)
    msgs = [frames.encode_method(1, spec.BasicPublish(routing_key="prio")) +
            frames.encode_content(1, 60, spec.Properties(priority=rnd.randrange(11)).encode(),
                                  b"x" * 16, FRAME_MAX) for _ in range(n)]
    dt = publish_all(pub, msgs)
    print(f"priority queue: published {n:,} with random priorities 0-10 in {dt:.2f}s "
          f"({n / dt:,.0f} msg/s); peak RSS {rss_mb():,.0f} MB")
    dt = drain(node, "prio", n)
    print(f"priority queue: drained {n:,} highest-first in {dt:.2f}s ({n / dt:,.0f} msg/s)")


def bench_delayed(n: int) -> None:
    clock = ManualClock()
    node = Node(clock=clock)
    pub = connect(node)
    pub.receive_data(
        frames.encode_method(1, spec.ExchangeDeclare(
            exchange="delayed", type="x-delayed-message",
            arguments={"x-delayed-type": "direct"})) +
        frames.encode_method(1, spec.QueueDeclare(queue="due")) +
        frames.encode_method(1, spec.QueueBind(queue="due", exchange="delayed", routing_key="k")))
    rnd = random.Random(2)
    msgs = [frames.encode_method(1, spec.BasicPublish(exchange="delayed", routing_key="k")) +
            frames.encode_content(1, 60, spec.Properties(
                headers={"x-delay": rnd.randrange(1, 60_000)}).encode(), b"x" * 16, FRAME_MAX)
            for _ in range(n)]
    dt = publish_all(pub, msgs)
    pending = len(node.timers)
    print(f"delayed exchange: published {n:,} with x-delay 1 ms-60 s in {dt:.2f}s "
          f"({n / dt:,.0f} msg/s), {pending:,} pending; peak RSS {rss_mb():,.0f} MB")
    t0 = time.perf_counter()
    clock.advance(61)
    dt = time.perf_counter() - t0
    print(f"delayed exchange: released and routed {n:,} due messages in {dt:.2f}s "
          f"({n / dt:,.0f} msg/s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1_000_000)
    args = ap.parse_args()
    bench_priority(args.messages)
    bench_delayed(args.messages)


if __name__ == "__main__":
    main()
