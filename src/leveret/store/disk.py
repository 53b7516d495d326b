"""``DiskStore``: the data directory, its lock, the queue logs in it, and group commit.

    store = DiskStore("/var/lib/leveret", FsyncPolicy("always"))
    log = store.open_queue("/", "tasks")          # recovers what is on disk
    offset = log.append(payload)
    seq = store.seq                               # confirm once durable_seq >= seq
    store.commit()                                # or: sync = store.flush(); sync.run()

See docs/storage.md for the layout and the calls the broker makes.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from leveret.store.base import FsyncPolicy, Store, StoreClosed, StoreError
from leveret.store.definitions import DefinitionsLog
from leveret.store.files import (
    Buffer,
    check_format,
    lock_dir,
    make_data_dir,
    queue_dirname,
    writev_all,
)
from leveret.store.index import Segment
from leveret.store.recovery import recover
from leveret.store.segments import SegmentLog
from leveret.store.sync import DiskSync, Pending, fsync_dir, fsync_file

log = logging.getLogger("leveret.store")

DEFAULT_SEGMENT_BYTES = 8 << 20


class DiskStore:
    def __init__(self, path: str | Path, policy: FsyncPolicy | None = None,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES, max_open_files: int = 256,
                 fsync_threads: int = 8) -> None:
        self.path = Path(path)
        self.policy = policy or FsyncPolicy()
        if not 4096 <= segment_bytes <= 1 << 30:
            raise ValueError("segment_bytes must be between 4 KiB and 1 GiB")
        self.segment_bytes = segment_bytes
        self.max_open_files = max_open_files
        self.fsync_threads = fsync_threads  # files of one commit fsynced in parallel
        make_data_dir(self.path)
        self._lock_fd = lock_dir(self.path)
        self.failed: BaseException | None = None
        self.pending = Pending()
        self._seq = self._durable = self._synced = 0
        self._dirty: set[SegmentLog] = set()
        self._logs: dict[tuple[str, str], SegmentLog] = {}
        self._fds: OrderedDict[Segment, int] = OrderedDict()  # sealed segments open to read
        self._unlink: list[Path] = []
        self._trash = itertools.count()
        self._last_fsync = time.monotonic()
        # Threads start on first use; a commit with one file to sync never uses them.
        self._pool = ThreadPoolExecutor(fsync_threads, thread_name_prefix="leveret-fsync")
        self._closed = False
        try:
            if check_format(self.path):
                self.fsync_dir_now(self.path)
            for sub in ("trash", "transient"):
                shutil.rmtree(self.path / sub, ignore_errors=True)
            for sub in ("queues", "transient", "trash"):
                (self.path / sub).mkdir(exist_ok=True)
            self._found = self._scan_queues()
            self.definitions = DefinitionsLog(self, self.path / "definitions.log")
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _scan_queues(self) -> dict[tuple[str, str], Path]:
        found: dict[tuple[str, str], Path] = {}
        for d in sorted((self.path / "queues").iterdir(), key=lambda p: p.stat().st_mtime):
            try:
                meta = json.loads((d / "QUEUE").read_text())
                key = (meta["vhost"], meta["name"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("%s has no readable QUEUE file (a crash as it was created?): "
                            "moved to trash", d)
                d.rename(self.path / "trash" / f"{d.name}-{next(self._trash)}")
                continue
            if key in found:  # never written so; keep the newer, set the other aside
                old = found[key]
                log.warning("%s and %s both hold queue '%s' in vhost '%s': the older moved "
                            "to trash", old, d, key[1], key[0])
                old.rename(self.path / "trash" / f"{old.name}-{next(self._trash)}")
            found[key] = d
        return found

    # -- queues -------------------------------------------------------------------------

    def open_queue(self, vhost: str, name: str, transient: bool = False) -> SegmentLog:
        """The log of a queue: recovered from disk if it is there, else created."""
        self._check_open()
        key = (vhost, name)
        existing = self._logs.get(key)
        if existing is not None:
            if existing.transient != transient:
                raise StoreError(f"queue '{name}' in vhost '{vhost}' is open with "
                                 f"transient={existing.transient}")
            return existing
        what = f"queue '{name}' in vhost '{vhost}'"
        if not transient and key in self._found:
            directory = self._found[key]
            got = recover(directory, what)
            segs, next_offset, counts = got.segments, got.next_offset, got.counts
        else:
            directory = self.path / ("transient" if transient else "queues") / queue_dirname(
                vhost, name)
            directory.mkdir()
            fd = os.open(directory / "QUEUE", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                writev_all(fd, [json.dumps({"vhost": vhost, "name": name}).encode()])
                if not transient:
                    self.fsync_now(fd)
            finally:
                os.close(fd)
            if not transient:
                self.fsync_dir_now(directory)
                self.fsync_dir_now(directory.parent)
                self._found[key] = directory
            segs, next_offset, counts = [], 0, {}
        qlog = SegmentLog(self, vhost, name, directory, transient, segs, next_offset, counts)
        self._logs[key] = qlog
        return qlog

    def queues(self) -> list[tuple[str, str]]:
        return list(self._found)

    def delete_queue(self, vhost: str, name: str) -> None:
        """Delete a queue's log, open or not: O(1) now (a rename), files removed by the
        next sync."""
        key = (vhost, name)
        qlog = self._logs.pop(key, None)
        directory = self._found.pop(key, None)
        if qlog is not None:
            self._dirty.discard(qlog)
            qlog.release()
            directory = qlog.dir
        if directory is not None and directory.exists():
            trash = self.path / "trash" / f"{directory.name}-{next(self._trash)}"
            directory.rename(trash)
            self._unlink.append(trash)

    def close_log(self, qlog: SegmentLog) -> None:
        """Close one log (its data stays; a transient log is deleted)."""
        if self._logs.get((qlog.vhost, qlog.name)) is qlog:
            if qlog.transient:
                self.delete_queue(qlog.vhost, qlog.name)
                return
            self.commit()
            del self._logs[(qlog.vhost, qlog.name)]
            qlog.release()

    # -- called by the logs -------------------------------------------------------------

    def changed(self, qlog: SegmentLog, durable: bool) -> None:
        self._dirty.add(qlog)
        if durable:
            self._seq += 1

    def write_all(self, qlog: SegmentLog, parts: list[Buffer]) -> None:
        if self.failed is not None:
            raise StoreError(f"the store failed earlier: {self.failed}")
        try:
            writev_all(qlog.fd, parts)
        except OSError as exc:
            self.failed = exc
            raise StoreError(f"cannot write to {qlog.tail.path}: {exc}") from exc
        if not qlog.transient and self.policy.mode != "off":
            self.pending.wrote(qlog.tail, qlog.fd)

    def write_definitions(self, defs: DefinitionsLog, data: bytes) -> None:
        try:
            writev_all(defs.fd, [data])
        except OSError as exc:
            self.failed = exc
            raise StoreError(f"cannot write to {defs.path}: {exc}") from exc
        self._seq += 1
        if self.policy.mode != "off":
            self.pending.wrote(defs, defs.fd)

    def created(self, qlog: SegmentLog) -> None:
        self._dirty.add(qlog)  # its header goes out with the next flush
        if not qlog.transient and self.policy.mode != "off":
            self.pending.created(qlog.dir)

    def sealed(self, seg: Segment, fd: int) -> None:
        if fd >= 0:
            self._fds[seg] = fd
            self._evict()

    def retired(self, key: Segment | DefinitionsLog, fd: int = -1) -> None:
        """A segment (or file) is gone or closing: forget it and close its descriptors."""
        self.pending.forget(key)
        own = self._fds.pop(key, -1) if isinstance(key, Segment) else -1  # reading fds
        for f in {own, fd}:
            if f >= 0:
                os.close(f)

    def fd_for(self, seg: Segment) -> int:
        fd = self._fds.get(seg)
        if fd is not None:
            self._fds.move_to_end(seg)
            self._evict()  # the cap may have been exceeded by unsynced segments
            return fd
        fd = self._fds[seg] = os.open(seg.path, os.O_RDONLY)
        self._evict()
        return fd

    def _evict(self) -> None:
        if len(self._fds) <= self.max_open_files:
            return
        for seg in list(self._fds):
            if len(self._fds) <= self.max_open_files:
                break
            if not self.pending.holds(seg):
                os.close(self._fds.pop(seg))

    def fsync_now(self, fd: int) -> None:
        if self.policy.mode != "off":
            fsync_file(fd)

    def fsync_dir_now(self, path: Path) -> None:
        if self.policy.mode != "off":
            fsync_dir(path)

    def pool(self) -> ThreadPoolExecutor:
        return self._pool

    # -- group commit ---------------------------------------------------------------------

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def durable_seq(self) -> int:
        return self._durable

    @property
    def synced_seq(self) -> int:
        """Newest seq known fsynced (equal to durable_seq under ``always``)."""
        return self._synced

    def flush(self) -> DiskSync:
        """Write every buffered record to the OS and reclaim fully acked segments (loop
        thread, no fsync); the returned sync does the blocking part and must be run."""
        self._check_open()
        if self.failed is not None:
            raise StoreError(f"the store failed earlier: {self.failed}")
        for qlog in self._dirty:
            self._unlink += qlog.flush()
        self._dirty.clear()
        mode = self.policy.mode
        now = time.monotonic()
        fsync = mode == "always" or (
            mode == "interval" and now - self._last_fsync >= self.policy.interval_ms / 1000)
        files, dirs = self.pending.capture() if fsync else ([], [])
        if fsync:
            self._last_fsync = now
        sync = DiskSync(self, self._seq, fsync, files, dirs, self._unlink)
        self._unlink = []
        return sync

    @property
    def unwritten(self) -> bool:
        """Some log has changes not yet written to the OS (or reclaim to do)."""
        return bool(self._dirty)

    def write_buffered(self) -> None:
        """Write every log's buffered records to the OS now (loop thread; no fsync, no
        reclaim, no roll: the next ``flush`` still does those, and the fsync). Safe while a
        sync runs: it covers what it captured, the next one covers this."""
        self._check_open()
        if self.failed is not None:
            raise StoreError(f"the store failed earlier: {self.failed}")
        for qlog in self._dirty:
            qlog.write_buffered()

    def synced(self, seq: int, fsynced: bool) -> int:
        with self.pending.lock:
            if fsynced:
                self._synced = max(self._synced, seq)
            self._durable = max(self._durable, seq)
            return self._durable

    def commit(self) -> int:
        return self.flush().run()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"the store at {self.path} is closed")

    def close(self) -> None:
        """Commit, then release every file and the lock."""
        if self._closed:
            return
        try:
            if self.failed is None:
                self.commit()
        finally:
            self._closed = True
            for qlog in self._logs.values():
                qlog.release()
            self._logs.clear()
            self.definitions.close()
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            self._pool.shutdown()
            os.close(self._lock_fd)

    def __enter__(self) -> DiskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if TYPE_CHECKING:  # mypy holds the class to its interface in base.py
    _STORE: type[Store] = DiskStore
