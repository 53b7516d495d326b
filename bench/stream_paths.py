#!/usr/bin/env python3
"""The stream protocol's two hot paths inside the broker, without sockets or a client:

  publish  Publish v1 frames of ``--batch`` entries of ``--size`` bytes parsed
           (``chunks.parse_publish``) and appended (``StreamQueue.push_amqp10``), as a
           stream-protocol session does, with a group commit per frame;
  read     the stream read from its first offset in Deliver frames
           (``StreamQueue.read_chunk`` + ``chunks.deliver``), as a subscription does
           (from the log but for the newest entries, which the stream keeps in memory).

    python bench/stream_paths.py --count 200000

µs per message, best of ``--repeat``. The numbers are the broker's own work per message
on the paths bench/stream_protocol.py measures end to end (with a client and sockets).
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import tempfile
import time
from pathlib import Path

from leveret.broker.queues.stream import StreamQueue
from leveret.runtime.embedded import Broker
from leveret.streamproto import chunks
from leveret.streamproto import frames as f

FRAME_MAX = 1 << 20


def publish_frame(first_id: int, count: int, body: bytes) -> bytes:
    """A Publish v1 body after key and version: publisher id, entries."""
    head = struct.pack(">BI", 1, count)
    entries = b"".join(struct.pack(">QI", first_id + i, len(body)) + body
                       for i in range(count))
    return head + entries


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="stream-paths-") as tmp:
        broker = Broker(port=0, data_dir=Path(tmp) / "data", fsync="off")
        await broker.start()
        try:
            vhost = broker.node.vhosts["/"]
            body = b"x" * args.size
            frames = [publish_frame(i, args.batch, body)
                      for i in range(0, args.count, args.batch)]
            best_pub = best_read = float("inf")
            for r in range(args.repeat):
                q = vhost.declare_queue(f"bench-{r}", False, True, False, False,
                                        {"x-queue-type": "stream"}, None)
                assert isinstance(q, StreamQueue)
                store = broker.node.store
                t0 = time.perf_counter()
                for frame in frames:
                    _pid, items = chunks.parse_publish(f.Fields(frame), 1)
                    for item in items:
                        q.push_amqp10(item.data, "", item.publishing_id)
                    if store is not None:
                        store.commit()
                        q.synced()
                best_pub = min(best_pub, time.perf_counter() - t0)
                while q.committed < q.next_offset:
                    await asyncio.sleep(0.01)
                    q.synced()
                t0 = time.perf_counter()
                nxt = 0
                sent = 0
                while nxt < q.next_offset:
                    chunk = q.read_chunk(nxt, 512, FRAME_MAX - 64)
                    assert chunk is not None
                    parts = chunks.deliver(1, chunk.first, int(chunk.timestamp * 1000),
                                           chunk.parts, chunk.entries, chunk.records)
                    sent += sum(map(len, parts))
                    nxt = chunk.first + chunk.records
                best_read = min(best_read, time.perf_counter() - t0)
                vhost.delete_queue(q.name, False, False, None)
            print(f"publish {best_pub / args.count * 1e6:.2f} us/msg   "
                  f"read {best_read / args.count * 1e6:.2f} us/msg   "
                  f"{len(frames)} frames of {args.batch}, {args.size} B")
        finally:
            await broker.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=200_000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--batch", type=int, default=500, help="entries per Publish frame")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
