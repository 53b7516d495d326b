"""What a stream remembers for its stream-protocol clients: the newest publishing id of
each named producer (de-duplication, QueryPublisherSequence) and each named consumer's
stored offset (StoreOffset / QueryOffset).

RabbitMQ writes both into the stream itself (osiris tracking chunks and chunk trailers,
which take offsets). leveret keeps its offsets dense, so it keeps them beside the stream:

- every entry published by a named producer carries that producer's name and publishing
  id in its record (store/codec.py ``pack_amqp10``), written with the entry, so the newest
  id of every producer is in the log whatever happens;
- a snapshot ``{"covered": next offset, "producers": ..., "offsets": ...}`` goes to the
  definitions log (kind ``stream_tracking``) at each StoreOffset, when retention deletes
  entries, and every ``SNAPSHOT_EVERY`` named publishes; it reaches the disk with the next
  group commit, like the entries;
- at start the stream reads its snapshot, then the records after ``covered`` (osiris does
  the same with the snapshot at each segment's start).

Deleting the stream forgets its tracking.
"""

from __future__ import annotations

import json
from typing import Any

from leveret.store.base import Definitions

KIND = "stream_tracking"
SNAPSHOT_EVERY = 8192  # named publishes between snapshots: bounds the scan at start
MAX_REFERENCE = 256  # RabbitMQ's limit on producer and consumer names


class StreamTracking:
    __slots__ = ("_since_snapshot", "covered", "key", "offsets", "producers")

    def __init__(self, vhost: str, stream: str) -> None:
        self.key = json.dumps([vhost, stream])
        self.producers: dict[str, int] = {}
        self.offsets: dict[str, int] = {}
        self.covered = 0  # records before this offset are reflected in the snapshot
        self._since_snapshot = 0

    def load(self, definitions: Definitions | None) -> None:
        if definitions is None:
            return
        value: Any = definitions.get(KIND).get(self.key)
        if not isinstance(value, dict):
            return
        self.covered = int(value.get("covered", 0))
        self.producers = {str(k): int(v) for k, v in value.get("producers", {}).items()}
        self.offsets = {str(k): int(v) for k, v in value.get("offsets", {}).items()}

    def published(self, producer: str, publishing_id: int) -> bool:
        """Record a named producer's publish; True when a snapshot is due."""
        self.producers[producer] = publishing_id
        self._since_snapshot += 1
        return self._since_snapshot >= SNAPSHOT_EVERY

    def is_duplicate(self, producer: str, publishing_id: int) -> bool:
        last = self.producers.get(producer)
        return last is not None and publishing_id <= last

    def save(self, definitions: Definitions | None, next_offset: int) -> None:
        self._since_snapshot = 0
        self.covered = next_offset
        if definitions is not None:
            definitions.put(KIND, self.key, {"covered": next_offset,
                                             "producers": self.producers,
                                             "offsets": self.offsets})

    def forget(self, definitions: Definitions | None) -> None:
        self.producers.clear()
        self.offsets.clear()
        if definitions is not None:
            definitions.delete(KIND, self.key)
