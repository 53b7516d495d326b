"""Both store backends behind one fixture, so the contract suite runs against each."""

from __future__ import annotations

from pathlib import Path

import pytest

from leveret.store import DiskStore, FsyncPolicy, MemoryStore


class Backend:
    """Opens a store and simulates a restart (close, open again on the same data)."""

    def __init__(self, kind: str, path: Path, **options) -> None:
        self.kind = kind
        self.path = path
        self.options = options
        self.store = self._open()

    def _open(self):
        if self.kind == "memory":
            return MemoryStore(self.options.get("policy"))
        return DiskStore(self.path, **self.options)

    def reopen(self):
        if self.kind == "memory":
            self.store = self.store.reopen()
        else:
            self.store.close()
            self.store = self._open()
        return self.store

    def close(self) -> None:
        self.store.close()


@pytest.fixture(params=["memory", "disk"])
def backend(request, tmp_path):
    b = Backend(request.param, tmp_path / "data", policy=FsyncPolicy("always"))
    yield b
    b.close()


@pytest.fixture
def disk(tmp_path):
    """A disk store with small segments, so rolling and reclaim happen in small tests."""
    b = Backend("disk", tmp_path / "data", segment_bytes=4096)
    yield b
    b.close()
