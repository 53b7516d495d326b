#!/usr/bin/env python3
"""How long one sub-entry batch of 65,535 gzip records (299 bytes on the wire) holds the
broker's event loop when appended to a stream (``StreamQueue.push_amqp10_batch``), and
how long a Deliver of it takes to read (``read_chunk``), and an AMQP 0-9-1 reader's reads
of 100 of its records, in-process:

    python bench/stream_huge_batch.py
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
import time
import zlib
from pathlib import Path

from leveret.broker.queues.stream import StreamQueue
from leveret.runtime.embedded import Broker

RECORDS = 65_535


def gzip_batch(records: int) -> bytes:
    plain = b"\0\0\0\0" * records  # empty records
    c = zlib.compressobj(wbits=31)
    data = c.compress(plain) + c.flush()
    return struct.pack(">BHII", 0x90, records, len(plain), len(data)) + data


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(port=0, data_dir=Path(tmp) / "data", fsync="off")
        await broker.start()
        try:
            q = broker.node.vhosts["/"].declare_queue(
                "s", False, True, False, False, {"x-queue-type": "stream"}, None)
            assert isinstance(q, StreamQueue)
            batch = gzip_batch(RECORDS)
            print(f"one batch of {RECORDS} records, {len(batch)} bytes on the wire")
            for i in range(3):
                t0 = time.perf_counter()
                q.push_amqp10_batch(batch, "producer", i)
                print(f"append: {(time.perf_counter() - t0) * 1000:.0f} ms")
            store = broker.node.store
            assert store is not None
            store.commit()
            q.synced()
            t0 = time.perf_counter()
            chunk = q.read_chunk(RECORDS + 7, 512, 1 << 20)
            assert chunk is not None and chunk.records == RECORDS
            print(f"read_chunk from inside it: {(time.perf_counter() - t0) * 1000:.1f} ms")
            for start in (RECORDS + 7, RECORDS + 107):  # an AMQP 0-9-1 reader's reads
                t0 = time.perf_counter()
                got = q._read_messages(start, 100, q.committed)
                assert len(got) == 100
                print(f"AMQP 0-9-1 read of 100 records from {start}: "
                      f"{(time.perf_counter() - t0) * 1000:.1f} ms")
        finally:
            await broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
