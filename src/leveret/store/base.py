"""The storage interface: per-queue message logs, a definitions log, group commit.

Two implementations keep the same contract (tests/store/test_contract.py runs against
both): ``DiskStore`` (segments.py, disk.py), append-only checksummed segment files, and
``MemoryStore`` (memory.py), its in-memory twin. docs/storage.md describes the layout and
how the broker calls it. No asyncio here: ``Sync.run`` blocks and may run in a thread.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

# The store's errors live in the one exception tree (leveret/errors.py), under LeveretError.
from leveret.errors import CorruptRecord as CorruptRecord
from leveret.errors import StoreClosed as StoreClosed
from leveret.errors import StoreError as StoreError
from leveret.errors import StoreLocked as StoreLocked

Payload = bytes | Sequence[bytes]  # one buffer, or parts written back to back (no copy)


@dataclass(frozen=True)
class FsyncPolicy:
    """When commit fsyncs. ``always`` (default): every commit, confirms mean "on disk".
    ``interval``: at most every ``interval_ms``; confirms mean "written to the OS" (survives
    kill -9, up to interval_ms lost on power failure). ``off``: never; the OS decides."""

    mode: str = "always"
    interval_ms: int = 200

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """``always``, ``off``, ``interval`` or ``interval:<ms>``."""
        mode, _, ms = text.partition(":")
        if mode not in ("always", "interval", "off") or (ms and mode != "interval") or (
                ms and not (ms.isdigit() and int(ms) > 0)):
            raise ValueError(f"fsync policy must be always, interval[:ms] or off, not {text!r}")
        return cls(mode, int(ms) if ms else 200)


class Live(NamedTuple):
    """A message still in a log (not acked), as recovery and paging see it."""

    offset: int
    size: int  # bytes of the payload
    delivery_count: int
    redelivered: bool  # marked delivered, or returned (count > 0), before now


class LiveBatch(NamedTuple):
    """Live messages in offset order as compact arrays, no object per message: how a
    queue rebuilds its index of a large backlog at start (docs/storage.md, Paging)."""

    offsets: array[int]  # array('q')
    sizes: array[int]  # array('I'): bytes of each payload
    redelivered: bytes  # one byte per message: 1 if marked delivered or counted
    counts: dict[int, int]  # offset -> delivery count, only the counted ones


class QueueLog(Protocol):
    """The messages of one queue. Offsets start at 0, grow by one per append and are never
    reused (purge and restarts included). Unknown or acked offsets raise KeyError;
    ``ack``/marks on a deleted log are ignored, ``append``/``read`` raise StoreClosed."""

    vhost: str
    name: str
    transient: bool  # a scratch log: never fsynced, gone at restart

    def append(self, payload: Payload, persistent: bool = True) -> int: ...
    # ``append`` of many small persistent payloads at once (a sub-entry batch's further
    # offsets): the same records, one call; returns the first one's offset.
    def append_many(self, payloads: Sequence[bytes]) -> int: ...
    def read(self, offset: int) -> bytes: ...
    def new_segment(self) -> None: ...  # the next append starts a new file (if any)
    def ack(self, offset: int) -> None: ...
    def mark_delivered(self, offset: int) -> None: ...
    def set_delivery_count(self, offset: int, count: int) -> None: ...
    def live(self, start: int = 0, limit: int | None = None) -> list[Live]: ...
    def live_batches(self, start: int = 0) -> Iterator[LiveBatch]: ...
    # Many reads at once (contiguous records share one pread); CorruptRecord on a bad one.
    def read_many(self, offsets: Sequence[int]) -> list[bytes]: ...
    def ack_runs(self, runs: Iterable[tuple[int, int]]) -> int: ...  # (first, count) runs
    def __len__(self) -> int: ...  # live messages
    @property
    def bytes(self) -> int: ...  # payload bytes of live messages
    @property
    def next_offset(self) -> int: ...
    def purge(self, keep: Iterable[int] = ()) -> int: ...  # ack all live but ``keep``
    def delete(self) -> None: ...
    def close(self) -> None: ...


class Definitions(Protocol):
    """Durable entities as small JSON-able records by (kind, key); replayed at start."""

    def put(self, kind: str, key: str, value: Any) -> None: ...
    def delete(self, kind: str, key: str) -> None: ...
    def get(self, kind: str) -> dict[str, Any]: ...  # key -> value, in first-put order
    def kinds(self) -> list[str]: ...


class Sync(Protocol):
    seq: int  # every change up to this store sequence number is covered

    def run(self) -> int: ...  # blocking, thread-safe: fsync per policy; confirmable seq


class Store(Protocol):
    policy: FsyncPolicy

    @property
    def definitions(self) -> Definitions: ...  # read-only, so each store may narrow it

    def open_queue(self, vhost: str, name: str, transient: bool = False) -> QueueLog: ...
    def queues(self) -> list[tuple[str, str]]: ...  # durable logs present (recovery)
    def delete_queue(self, vhost: str, name: str) -> None: ...
    @property
    def seq(self) -> int: ...  # store-wide number of the newest durable change
    @property
    def durable_seq(self) -> int: ...  # newest seq a confirm may be released for
    def flush(self) -> Sync: ...  # loop thread: write buffers to the OS, reclaim
    def commit(self) -> int: ...  # flush().run(): group commit, returns durable_seq
    def close(self) -> None: ...
