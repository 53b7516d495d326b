"""The stream-protocol reader's chunks (StreamQueue.read_chunk, chunks.deliver): the same
whether the entries come from the stream's in-memory tail or from its log (a reader behind
the newest entries, or after a restart), for every kind of entry: AMQP 0-9-1 messages,
stream-protocol messages and sub-entry batches, and starts inside a batch."""

from __future__ import annotations

import struct
from pathlib import Path

from rstream.encoding import decode_frame

from leveret.amqp.spec import Properties
from leveret.broker.message import Message
from leveret.broker.queues.stream import StreamQueue
from leveret.runtime.embedded import Broker
from leveret.streamproto import chunks


def sub_batch(records: list[bytes]) -> bytes:
    plain = b"".join(len(r).to_bytes(4, "big") + r for r in records)
    return struct.pack(">BHII", 0x80, len(records), len(plain), len(plain)) + plain


Read = list[tuple[int, int, int, bytes]]


def read_all(q: StreamQueue, start: int, max_entries: int, max_bytes: int) -> Read:
    """Every chunk from ``start`` to the end: (first offset, entries, records, frame)."""
    out = []
    while True:
        chunk = q.read_chunk(start, max_entries, max_bytes)
        if chunk is None:
            return out
        frame = b"".join(chunks.deliver(1, chunk.first, int(chunk.timestamp * 1000),
                                        chunk.parts, chunk.entries, chunk.records))
        out.append((chunk.first, chunk.entries, chunk.records, frame))
        start = chunk.first + chunk.records


async def test_chunks_from_the_log_are_those_from_memory(tmp_path: Path) -> None:
    broker = Broker(port=0, data_dir=tmp_path / "data")
    await broker.start()
    try:
        vhost = broker.node.vhosts["/"]
        q = vhost.declare_queue("s", False, True, False, False, {"x-queue-type": "stream"},
                                None)
        assert isinstance(q, StreamQueue)
        props = Properties(content_type="text/plain").encode()
        q.push(Message("", "s", props, b"amqp 0-9-1"))  # offset 0
        q.push_amqp10(b"one", "producer", 1)  # 1
        q.push_amqp10_batch(sub_batch([b"a", b"bb", b"ccc"]), "producer", 2)  # 2, 3, 4
        q.push_amqp10(b"two")  # 5
        q.push_amqp10_batch(sub_batch([b"d", b"e"]))  # 6, 7
        q.push(Message("", "s", props, b"last"))  # 8
        store = broker.node.store
        assert store is not None
        store.commit()
        q.synced()
        assert q.committed == q.next_offset == 9
        shapes = [(512, 1 << 20), (2, 1 << 20), (512, 12), (1, 1)]
        in_memory = {(start, shape): read_all(q, start, *shape)
                     for start in range(10) for shape in shapes}
        q.tail.clear()  # as for a reader behind the stream's newest entries
        q.tail_stamps.clear()
        q.tail_first = q.next_offset
        q.tail_bytes = 0
        from_log = {(start, shape): read_all(q, start, *shape)
                    for start in range(10) for shape in shapes}
        assert from_log == in_memory

        [(first, entries, records, frame)] = from_log[(3, (512, 1 << 20))]
        assert (first, entries, records) == (2, 4, 7)  # from the batch's first offset
        d = decode_frame(frame[4:])
        assert (d.chunk_first_offset, d.num_entries, d.num_records) == (2, 4, 7)
        messages = d.get_messages()
        assert messages[:4] == [b"a", b"bb", b"ccc", b"two"]
        assert messages[4:6] == [b"d", b"e"]
        assert b"last" in messages[6]  # (converted to AMQP 1.0)
        assert [c[:3] for c in from_log[(0, (512, 12))]] == [
            (0, 1, 1), (1, 1, 1), (2, 1, 3), (5, 1, 1), (6, 1, 2), (8, 1, 1)]
        assert [c[:3] for c in from_log[(0, (2, 1 << 20))]] == [
            (0, 2, 2), (2, 1, 3), (5, 2, 3), (8, 1, 1)]
        assert from_log[(9, (1, 1))] == []
    finally:
        await broker.stop()
