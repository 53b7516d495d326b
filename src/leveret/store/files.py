"""Small file-system helpers of the disk store: the data directory's lock and format
file, queue directory names, and writes that never stop short."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from leveret.store.base import StoreError, StoreLocked

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

FORMAT = "leveret-store 1\n"

Buffer = bytes | bytearray | memoryview  # what os.writev takes


def queue_dirname(vhost: str, name: str) -> str:
    """A new directory name for a queue: a hash of its name (names may hold any
    character; the QUEUE file inside has the real ones) and a random part, so a queue
    deleted and declared again never shares a path with files of its former self."""
    digest = hashlib.sha256(f"{vhost}\x00{name}".encode()).hexdigest()[:24]
    return f"{digest}-{os.urandom(4).hex()}"


def check_format(path: Path) -> bool:
    """Refuse a data directory of another format; True if the FORMAT file was created."""
    fmt = path / "FORMAT"
    if fmt.exists():
        if fmt.read_text() != FORMAT:
            raise StoreError(f"{path} holds data in format {fmt.read_text()!r}; this leveret "
                             f"reads {FORMAT.strip()!r}")
        return False
    fmt.write_text(FORMAT)
    return True


def writev_all(fd: int, parts: list[Buffer]) -> None:
    total = sum(len(p) for p in parts)
    written = os.writev(fd, parts)
    if written < total:  # a short write (signal, huge buffer): write the rest
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest):]


def lock_dir(path: Path) -> int:
    fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreLocked(f"data directory {path} is in use by another leveret process "
                          f"(pid {holder}); stop it or choose another --data-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
