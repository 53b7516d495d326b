"""``MemoryStore``: the in-memory twin of ``DiskStore``, same contract, nothing on disk.

For tests and for a broker run without a data directory. ``reopen()`` returns the store a
restart would find (persistent messages of durable queues with their marks, the
definitions), so restart scenarios run in memory too.
"""

from __future__ import annotations

import copy
import json
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from leveret.store.base import (
    Definitions,
    FsyncPolicy,
    Live,
    LiveBatch,
    Payload,
    QueueLog,
    Store,
    StoreClosed,
    Sync,
)

BATCH = 65536  # live_batches: messages per batch


class _Msg:
    __slots__ = ("count", "data", "delivered", "persistent")

    def __init__(self, data: bytes, persistent: bool) -> None:
        self.data = data
        self.persistent = persistent
        self.delivered = False
        self.count = 0


class MemoryQueueLog:
    def __init__(self, store: MemoryStore, vhost: str, name: str, transient: bool,
                 msgs: dict[int, _Msg] | None = None, next_offset: int = 0) -> None:
        self.store = store
        self.vhost = vhost
        self.name = name
        self.transient = transient
        self.closed = False
        self._msgs: dict[int, _Msg] = msgs or {}  # by offset, in offset order
        self._next = next_offset
        self._bytes = sum(len(m.data) for m in self._msgs.values())

    def _check(self) -> None:
        if self.closed:
            raise StoreClosed(f"the log of queue '{self.name}' is closed")

    def append(self, payload: Payload, persistent: bool = True) -> int:
        self._check()
        data = bytes(payload) if isinstance(payload, bytes | bytearray | memoryview) \
            else b"".join(payload)
        offset = self._next
        self._next += 1
        self._msgs[offset] = _Msg(data, persistent and not self.transient)
        self._bytes += len(data)
        self.store.changed(persistent and not self.transient)
        return offset

    def append_many(self, payloads: Sequence[bytes]) -> int:
        first = self._next
        for payload in payloads:
            self.append(payload)
        return first

    def new_segment(self) -> None:
        return None  # no files to cut

    def read(self, offset: int) -> bytes:
        self._check()
        return self._msgs[offset].data

    def ack(self, offset: int) -> None:
        if not self.closed:
            m = self._msgs.pop(offset)
            self._bytes -= len(m.data)
            self.store.changed(m.persistent)

    def mark_delivered(self, offset: int) -> None:
        if not self.closed:
            m = self._msgs[offset]
            if not m.delivered:
                m.delivered = True
                self.store.changed(m.persistent)

    def set_delivery_count(self, offset: int, count: int) -> None:
        if not self.closed:
            m = self._msgs[offset]
            m.count = count
            self.store.changed(m.persistent)

    def live(self, start: int = 0, limit: int | None = None) -> list[Live]:
        out: list[Live] = []
        for offset, m in self._msgs.items():
            if offset < start:
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(Live(offset, len(m.data), m.count, m.delivered or m.count > 0))
        return out

    def live_batches(self, start: int = 0) -> Iterator[LiveBatch]:
        live = self.live(start)
        for i in range(0, len(live), BATCH):
            part = live[i:i + BATCH]
            yield LiveBatch(array("q", [x.offset for x in part]),
                            array("I", [x.size for x in part]),
                            bytes(x.redelivered for x in part),
                            {x.offset: x.delivery_count for x in part if x.delivery_count})

    def read_many(self, offsets: Sequence[int]) -> list[bytes]:
        return [self.read(o) for o in offsets]

    def ack_runs(self, runs: Iterable[tuple[int, int]]) -> int:
        if self.closed:
            return 0
        acked = 0
        for first, count in runs:
            for offset in range(first, first + count):
                if offset in self._msgs:
                    self.ack(offset)
                    acked += 1
        return acked

    def __len__(self) -> int:
        return len(self._msgs)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def next_offset(self) -> int:
        return self._next

    def purge(self, keep: Iterable[int] = ()) -> int:
        if self.closed:
            return 0
        kept = {o: self._msgs[o] for o in keep if o in self._msgs}
        purged = len(self._msgs) - len(kept)
        self._msgs = dict(sorted(kept.items()))
        self._bytes = sum(len(m.data) for m in kept.values())
        self.store.changed(not self.transient)
        return purged

    def delete(self) -> None:
        self.store.delete_queue(self.vhost, self.name)

    def close(self) -> None:
        self.store.close_log(self)

    def survivors(self) -> tuple[dict[int, _Msg], int]:
        """What a restart finds: persistent messages with their marks."""
        return ({o: copy.copy(m) for o, m in self._msgs.items() if m.persistent}, self._next)


class MemoryDefinitions:
    def __init__(self, store: MemoryStore, data: dict[str, dict[str, Any]] | None = None) -> None:
        self.store = store
        self._data: dict[str, dict[str, Any]] = data or {}

    def put(self, kind: str, key: str, value: Any) -> None:
        blob = json.dumps([kind, key, value])  # the same refusal of non-JSON values
        self._data.setdefault(kind, {})[key] = json.loads(blob)[2]
        self.store.changed(True)

    def delete(self, kind: str, key: str) -> None:
        items = self._data.get(kind, {})
        if key in items:
            del items[key]
            self.store.changed(True)

    def get(self, kind: str) -> dict[str, Any]:
        return copy.deepcopy(self._data.get(kind, {}))

    def kinds(self) -> list[str]:
        return [k for k, v in self._data.items() if v]


class MemorySync:
    def __init__(self, store: MemoryStore, seq: int) -> None:
        self.store = store
        self.seq = seq

    def run(self) -> int:
        self.store._durable = max(self.store._durable, self.seq)
        return self.store._durable


class MemoryStore:
    def __init__(self, policy: FsyncPolicy | None = None) -> None:
        self.policy = policy or FsyncPolicy()
        self.definitions = MemoryDefinitions(self)
        self._logs: dict[tuple[str, str], MemoryQueueLog] = {}
        self._closed_logs: dict[tuple[str, str], tuple[dict[int, _Msg], int]] = {}
        self._seq = self._durable = 0
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def open_queue(self, vhost: str, name: str, transient: bool = False) -> MemoryQueueLog:
        self._check()
        key = (vhost, name)
        if key in self._logs:
            return self._logs[key]
        msgs, next_offset = self._closed_logs.pop(key, ({}, 0))
        qlog = self._logs[key] = MemoryQueueLog(self, vhost, name, transient, msgs, next_offset)
        return qlog

    def queues(self) -> list[tuple[str, str]]:
        return [k for k, q in self._logs.items() if not q.transient] + list(self._closed_logs)

    def delete_queue(self, vhost: str, name: str) -> None:
        qlog = self._logs.pop((vhost, name), None)
        self._closed_logs.pop((vhost, name), None)
        if qlog is not None:
            qlog.closed = True

    def close_log(self, qlog: MemoryQueueLog) -> None:
        if self._logs.get((qlog.vhost, qlog.name)) is qlog:
            del self._logs[(qlog.vhost, qlog.name)]
            qlog.closed = True
            if not qlog.transient:
                self._closed_logs[(qlog.vhost, qlog.name)] = qlog.survivors()

    def changed(self, durable: bool) -> None:
        if durable:
            self._seq += 1

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def durable_seq(self) -> int:
        return self._durable

    def flush(self) -> MemorySync:
        self._check()
        return MemorySync(self, self._seq)

    def commit(self) -> int:
        return self.flush().run()

    def close(self) -> None:
        self._closed = True
        for qlog in self._logs.values():
            qlog.closed = True

    def reopen(self) -> MemoryStore:
        """Close this store and return what a restart would find."""
        fresh = MemoryStore(self.policy)
        for key, qlog in self._logs.items():
            if not qlog.transient:
                fresh._closed_logs[key] = qlog.survivors()
        for key, saved in self._closed_logs.items():
            fresh._closed_logs[key] = saved
        fresh.definitions = MemoryDefinitions(fresh, copy.deepcopy(self.definitions._data))
        self.close()
        return fresh


if TYPE_CHECKING:  # mypy holds the classes to their interfaces in base.py
    _STORE: type[Store] = MemoryStore
    _LOG: type[QueueLog] = MemoryQueueLog
    _DEFINITIONS: type[Definitions] = MemoryDefinitions
    _SYNC: type[Sync] = MemorySync
