"""The definitions log: durable exchanges, queues, bindings, users, vhosts, permissions and
policies as put/delete records of small JSON values, replayed at start.

Records use the segment record format (records.py): DEF_PUT carries ``[kind, key, value]``,
DEF_DELETE ``[kind, key]``. Every change is written to the OS at once (it survives
kill -9) and fsynced by the next commit. When superseded records outnumber live ones the
file is rewritten (temporary file, fsync, rename). What the log needs from its store is
``DefinitionsOwner``, declared here so this module does not import disk.py back.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from leveret.store import records as rec
from leveret.store.base import Definitions, StoreClosed

log = logging.getLogger("leveret.store")

COMPACT_AT = 1000  # superseded records tolerated before a rewrite, beyond the live ones


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class DefinitionsOwner(Protocol):
    """The store's side of the definitions log (``DiskStore`` in disk.py)."""

    def write_definitions(self, defs: DefinitionsLog, data: bytes) -> None: ...
    def fsync_now(self, fd: int) -> None: ...  # per the fsync policy
    def fsync_dir_now(self, path: Path) -> None: ...
    def retired(self, key: DefinitionsLog, fd: int = -1) -> None: ...  # fd is closing


class DefinitionsLog:
    def __init__(self, store: DefinitionsOwner, path: Path) -> None:
        self.store = store
        self.path = path
        # Some record could not be read at start: entities may be missing, so the broker
        # keeps message logs it finds no definition for instead of deleting them.
        self.damaged = False
        self._data: dict[str, dict[str, Any]] = {}
        self._records = 0
        self.fd = -1
        if path.exists():
            self._load()
        if not path.exists() or self._records > 2 * self._live() + COMPACT_AT:
            self._rewrite()
        else:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def _live(self) -> int:
        return sum(len(v) for v in self._data.values())

    def _load(self) -> None:
        data = self.path.read_bytes()
        if data[:8] != rec.DEFINITIONS_MAGIC:
            log.warning("%s: bad file header, reading its records anyway", self.path)
        scanner = rec.Scanner(data, rec.FILE_HEADER.size, len(data))
        for pos, rtype, _flags, length in scanner:
            payload = data[pos + rec.HEADER_SIZE:pos + rec.HEADER_SIZE + length]
            try:
                item = json.loads(payload)
                kind, key = item[0], item[1]
                if rtype == rec.DEF_PUT:
                    self._data.setdefault(kind, {})[key] = item[2]
                elif rtype == rec.DEF_DELETE:
                    self._data.get(kind, {}).pop(key, None)
                self._records += 1
            except (ValueError, IndexError, TypeError):
                log.warning("%s: unreadable definition at position %d skipped", self.path, pos)
                self.damaged = True
        scanner.close()
        if scanner.problems:
            self.damaged = True
        for text in scanner.problems:
            log.warning("%s: %s", self.path, text)
        if scanner.torn:
            os.truncate(self.path, scanner.good_end)
        log.debug("definitions: %d records, %d live", self._records, self._live())

    def _rewrite(self) -> None:
        """Write the live records to a new file and put it in place atomically."""
        tmp = self.path.with_suffix(".tmp")
        parts = [rec.FILE_HEADER.pack(rec.DEFINITIONS_MAGIC, 0)]
        for kind, items in self._data.items():
            parts += [rec.record(rec.DEF_PUT, _dumps([kind, k, v])) for k, v in items.items()]
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"".join(parts))
            self.store.fsync_now(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.store.fsync_dir_now(self.path.parent)
        if self.fd >= 0:
            self.store.retired(self, self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._records = len(parts) - 1

    def _append(self, rtype: int, payload: bytes) -> None:
        if self.fd < 0:
            raise StoreClosed("the definitions log is closed")
        self.store.write_definitions(self, rec.record(rtype, payload))
        self._records += 1
        if self._records > 2 * self._live() + COMPACT_AT:
            self._rewrite()

    def put(self, kind: str, key: str, value: Any) -> None:
        blob = _dumps([kind, key, value])  # refuses what is not JSON before any change
        self._data.setdefault(kind, {})[key] = json.loads(blob)[2]
        self._append(rec.DEF_PUT, blob)

    def delete(self, kind: str, key: str) -> None:
        if key not in self._data.get(kind, {}):
            return
        del self._data[kind][key]
        self._append(rec.DEF_DELETE, _dumps([kind, key]))

    def get(self, kind: str) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(_dumps(self._data.get(kind, {})))  # callers may mutate
        return copy

    def kinds(self) -> list[str]:
        return [k for k, v in self._data.items() if v]

    def close(self) -> None:
        if self.fd >= 0:
            self.store.retired(self, self.fd)
            self.fd = -1


if TYPE_CHECKING:  # mypy holds the class to its interface in base.py
    _DEFINITIONS: type[Definitions] = DefinitionsLog
