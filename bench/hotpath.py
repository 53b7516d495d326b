"""Micro-benchmark of the broker's hot path without sockets.

Feeds pre-encoded basic.publish frames into one ServerConnection while a no-ack consumer
on a second connection receives them; prints microseconds per message.

With ``--durable`` the path of a persistent message instead: a data directory (fsync off,
so the CPU is measured, not the disk), a durable queue, persistent messages published with
confirms, a consumer with manual acks (one multiple ack per batch), and the group commit
run after every batch, releasing the confirms.

With ``--backlog`` the consumer's output is taken only every 120 batches, so its
connection stops being writable, messages wait in the ready list and are drained from it
(the dispatch loop) as in an end-to-end run whose consumer's socket is the limit.

    python bench/hotpath.py [--messages N] [--size BYTES] [--durable] [--backlog] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from leveret.amqp import frames, spec
from leveret.broker.connection import ServerConnection
from leveret.broker.node import Node
from leveret.store.base import FsyncPolicy
from leveret.store.disk import DiskStore


def handshake(node: Node) -> ServerConnection:
    conn = ServerConnection(node, peer=("127.0.0.1", 0))
    caps = {"capabilities": {"consumer_cancel_notify": True}}
    data = frames.PROTOCOL_HEADER + b"".join(frames.encode_method(0, m) for m in (
        spec.ConnectionStartOk(client_properties=caps, mechanism="PLAIN",
                               response=b"\x00guest\x00guest"),
        spec.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=0),
        spec.ConnectionOpen(virtual_host="/"),
    )) + frames.encode_method(1, spec.ChannelOpen())
    conn.receive_data(data)
    conn.take_output()
    if 1 not in conn.channels:
        raise SystemExit("handshake failed: the benchmark would measure nothing")
    return conn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--durable", action="store_true")
    ap.add_argument("--backlog", action="store_true")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    node = Node()
    store = None
    if args.durable:
        store = DiskStore(Path(tempfile.mkdtemp(prefix="hotpath-")), FsyncPolicy.parse("off"))
        node.attach_store(store)
    pub = handshake(node)
    sub = handshake(node)
    durable = args.durable
    sub.receive_data(
        frames.encode_method(1, spec.QueueDeclare(queue="bench", durable=durable)) +
        frames.encode_method(1, spec.BasicQos(prefetch_count=2 * args.batch)) +
        frames.encode_method(1, spec.BasicConsume(queue="bench", no_ack=not durable)))
    if durable:
        pub.receive_data(frames.encode_method(1, spec.ConfirmSelect()))
        pub.take_output()
    sub.take_output()
    props = b"\x10\x00\x02" if durable else b"\x00\x00"  # delivery_mode 2: persistent
    one = frames.encode_method(1, spec.BasicPublish(routing_key="bench")) + \
        frames.encode_content(1, 60, props, b"x" * args.size, 131072)
    chunk = one * args.batch
    rounds = args.messages // args.batch

    delivered = 0

    def run() -> None:
        nonlocal delivered
        for r in range(1, rounds + 1):
            pub.receive_data(chunk)
            if args.backlog and r % 120 and r != rounds:
                continue
            delivered += len(sub.take_output())
            sub.output_flushed()
            if store is not None:
                sub.receive_data(frames.encode_method(
                    1, spec.BasicAck(delivery_tag=r * args.batch, multiple=True)))
                store.flush().run()
                store.commit()
                pub.store_synced()
                pub.take_output()

    t0 = time.perf_counter()
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(run)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    else:
        run()
    dt = time.perf_counter() - t0
    n = rounds * args.batch
    if delivered < n * args.size:
        raise SystemExit(f"only {delivered} bytes delivered for {n} messages")
    if store is not None:
        store.close()
    print(f"{n} messages in {dt:.2f}s: {dt / n * 1e6:.2f} us/message, {n / dt:,.0f} msg/s")


if __name__ == "__main__":
    main()
