"""Where a replay reader remembers how far it got.

After each handled event the reader saves that event's offset under its name, and on
start it resumes at the saved offset + 1. A store is anything with ``load`` and ``save``;
write one on Redis (``GET``/``SET``) or a SQL table (``UPSERT``) the same way. Saving the
offset in the same transaction as the projection it describes makes a replay
exactly-once. Over AMQP 0-9-1 the broker does not track a stream reader's position; over
its native stream protocol it does: stream_offsets.py's ``BrokerOffsetStore`` keeps the
offsets there (a ``StreamAwareOffsetStore``: one store for the readers of every stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class OffsetStore(Protocol):
    async def load(self, name: str) -> int | None:
        """The last offset reader ``name`` processed, or None if it never did."""
        ...

    async def save(self, name: str, offset: int) -> None:
        """Record that reader ``name`` processed every event up to ``offset``."""
        ...


@runtime_checkable
class StreamAwareOffsetStore(Protocol):
    """A store that keeps offsets per stream: a reader of ``stream`` uses
    ``for_stream(stream)``."""

    def for_stream(self, stream: str) -> OffsetStore: ...


def store_for(store: OffsetStore | StreamAwareOffsetStore, stream: str) -> OffsetStore:
    """What a reader of ``stream`` loads from and saves to."""
    if isinstance(store, StreamAwareOffsetStore):
        return store.for_stream(stream)
    return store


class MemoryOffsetStore:
    """Offsets in a dict: resumes across reconnections and bus restarts in one process."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}

    async def load(self, name: str) -> int | None:
        return self.offsets.get(name)

    async def save(self, name: str, offset: int) -> None:
        self.offsets[name] = offset


class FileOffsetStore:
    """Offsets in a JSON file (``{"reader": offset, ...}``), shared by the readers of one
    process. Each save rewrites the file atomically (temp file + rename), so a crash leaves
    the old or the new content, never a torn one; ``fsync=True`` also survives power loss,
    at the cost of a disk flush per event."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._offsets: dict[str, int] | None = None
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, int]:
        if self._offsets is None:
            try:
                data = json.loads(self.path.read_text())
            except FileNotFoundError:
                data = {}
            if not isinstance(data, dict):
                raise ValueError(f"{self.path} does not hold a JSON object of offsets")
            self._offsets = {str(k): int(v) for k, v in data.items()}
        return self._offsets

    async def load(self, name: str) -> int | None:
        async with self._lock:
            return self._read().get(name)

    async def save(self, name: str, offset: int) -> None:
        async with self._lock:
            offsets = self._read()
            offsets[name] = offset
            self._write(offsets)

    def _write(self, offsets: dict[str, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(offsets, f, sort_keys=True)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
