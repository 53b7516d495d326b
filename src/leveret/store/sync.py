"""Group commit: what has been written but not fsynced, and the blocking half of a commit.

``Pending`` counts writes per file (and per new directory entry); a ``DiskSync`` captures,
on the loop thread, a duplicate descriptor of every file with unsynced writes, then
``run`` (any thread) fsyncs them all, in parallel when there are several (the kernel joins
concurrent fsyncs into one journal commit), and only then unlinks reclaimed segments.
Each sync covers everything unsynced when it was captured, including files an earlier,
still running sync holds, so syncs may overlap and finish in any order. A ``DiskSync``
sees its store through ``SyncOwner``, so this module does not import disk.py back.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from leveret.store.base import StoreError, Sync

if sys.platform == "darwin":  # pragma: no cover - fsync there does not reach the disk
    import fcntl

    def fsync_file(fd: int) -> None:
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
else:
    fsync_file: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # deleted meanwhile: nothing left to make durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A file with writes to sync: a segment (index.Segment) or the definitions log.
FileKey = Hashable
Captured = list[tuple[FileKey, int, int]]  # (key, duplicate fd, write generation)


class Pending:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: dict[FileKey, list[int]] = {}  # key -> [fd, written, synced]
        self.dirs: dict[Path, list[int]] = {}  # directory -> [0, written, synced]

    def wrote(self, key: FileKey, fd: int) -> None:
        with self.lock:
            entry = self.files.get(key)
            if entry is None:
                self.files[key] = [fd, 1, 0]
            else:
                entry[0] = fd
                entry[1] += 1

    def created(self, directory: Path) -> None:
        with self.lock:
            entry = self.dirs.setdefault(directory, [0, 0, 0])
            entry[1] += 1

    def forget(self, key: FileKey) -> None:
        with self.lock:
            self.files.pop(key, None)

    def holds(self, key: FileKey) -> bool:
        return key in self.files

    def capture(self) -> tuple[Captured, list[tuple[Path, int]]]:
        """Duplicates of the unsynced files' descriptors (the loop may close the originals
        while the sync runs), with the write generation each sync will cover."""
        with self.lock:
            files = [(key, os.dup(e[0]), e[1]) for key, e in self.files.items()]
            dirs = [(d, e[1]) for d, e in self.dirs.items()]
        return files, dirs

    def done(self, files: Captured, dirs: list[tuple[Path, int]]) -> None:
        with self.lock:
            for key, _fd, gen in files:
                entry = self.files.get(key)
                if entry is not None:
                    entry[2] = max(entry[2], gen)
                    if entry[2] >= entry[1]:
                        del self.files[key]
            for d, gen in dirs:
                entry = self.dirs.get(d)
                if entry is not None:
                    entry[2] = max(entry[2], gen)
                    if entry[2] >= entry[1]:
                        del self.dirs[d]


class SyncOwner(Protocol):
    """What a sync needs from its store (``DiskStore`` in disk.py)."""

    fsync_threads: int
    failed: BaseException | None  # set by a failed fsync: the store refuses writes after
    pending: Pending

    @property
    def durable_seq(self) -> int: ...
    def pool(self) -> ThreadPoolExecutor: ...
    def synced(self, seq: int, fsynced: bool) -> int: ...  # returns the new durable_seq


class DiskSync:
    """The blocking half of a commit. ``run`` returns the store sequence number up to
    which confirms may be sent (fsynced under ``always``, written to the OS otherwise)."""

    def __init__(self, store: SyncOwner, seq: int, fsync: bool,
                 files: Captured, dirs: list[tuple[Path, int]],
                 unlink: list[Path]) -> None:
        self.store = store
        self.seq = seq
        self.fsync = fsync
        self.files = files
        self.dirs = dirs
        self.unlink = unlink
        self.done = False

    def run(self) -> int:
        store = self.store
        if self.done:
            return store.durable_seq
        self.done = True
        try:
            if self.files or self.dirs:
                jobs: list[Callable[[], None]] = [partial(fsync_file, fd)
                                                  for _k, fd, _g in self.files]
                jobs += [partial(fsync_dir, d) for d, _gen in self.dirs]
                if len(jobs) == 1 or store.fsync_threads <= 1:
                    for job in jobs:
                        job()
                else:
                    list(store.pool().map(lambda job: job(), jobs))
        except OSError as exc:
            store.failed = exc
            raise StoreError(f"fsync failed: {exc}; the broker must stop (written data may "
                             "not be on disk)") from exc
        finally:
            for _key, fd, _gen in self.files:
                os.close(fd)
        store.pending.done(self.files, self.dirs)
        for path in self.unlink:
            try:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink()
            except FileNotFoundError:
                pass
        return store.synced(self.seq, self.fsync)


if TYPE_CHECKING:  # mypy holds the class to its interface in base.py
    _SYNC: type[Sync] = DiskSync
