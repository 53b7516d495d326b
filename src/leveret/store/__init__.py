"""Durable storage for leveret: per-queue message logs, a definitions log, group commit.

``base`` is the interface, ``DiskStore`` the append-only segment-file implementation,
``MemoryStore`` its in-memory twin; docs/storage.md explains the format and how the broker
calls it. This package does file I/O (and may fsync from a thread) but never asyncio.
"""

from leveret.store.base import (
    CorruptRecord,
    Definitions,
    FsyncPolicy,
    Live,
    LiveBatch,
    QueueLog,
    Store,
    StoreClosed,
    StoreError,
    StoreLocked,
    Sync,
)
from leveret.store.codec import pack_message, unpack_message
from leveret.store.disk import DiskStore
from leveret.store.memory import MemoryStore

__all__ = [
    "CorruptRecord",
    "Definitions",
    "DiskStore",
    "FsyncPolicy",
    "Live",
    "LiveBatch",
    "MemoryStore",
    "QueueLog",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "Sync",
    "pack_message",
    "unpack_message",
]
