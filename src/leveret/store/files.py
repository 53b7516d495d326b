"""Small file-system helpers of the disk store: the data directory's lock and format
file, queue directory names, and writes that never stop short."""

from __future__ import annotations

import errno
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


def make_data_dir(path: Path) -> None:
    """Create the data directory (and its parents) if it is missing and check that this
    process may create files in it; a StoreError says which directory is at fault, why,
    and what to do instead."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(_unusable(path, exc, "cannot create it")) from None
    if not os.access(path, os.W_OK | os.X_OK):
        read_only = hasattr(os, "statvfs") and os.statvfs(path).f_flag & os.ST_RDONLY
        code = errno.EROFS if read_only else errno.EACCES
        raise StoreError(_unusable(path, OSError(code, os.strerror(code)),
                                   "cannot create files in it"))


def _unusable(path: Path, exc: OSError, doing: str) -> str:
    reason = exc.strerror or str(exc)
    culprit = path
    while not culprit.exists() and culprit.parent != culprit:
        culprit = culprit.parent  # the nearest part of the path that is there
    advice = "choose another --data-dir (or LEVERET_STORAGE_DATA_DIR)"
    if culprit.exists() and not culprit.is_dir():
        why = f"{culprit} is a file, not a directory"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = f"{culprit} is not writable by {_user()}"
        advice += f", or give {_user()} write access to {culprit}"
    elif exc.errno == errno.EROFS:
        why = f"{culprit} is on a read-only file system"
    else:
        why = ""
    return f"{doing}: {reason}" + (f" ({why})" if why else "") + f"; {advice}"


def _user() -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except (ImportError, KeyError):  # pragma: no cover - Windows, or a uid without a name
        return "this user"


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
    try:
        fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(_unusable(path / "LOCK", exc, "cannot open its LOCK file")
                         ) from None
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
