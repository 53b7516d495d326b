"""`leveret serve` failing to start: one line that says what is at fault (the data
directory, or which listener's port) and what to do, exit status 2, and a data directory
left as it was (a port in use must not find it created, locked or written to)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from leveret import Broker
from leveret.server.listener import ListenError
from leveret.store.base import StoreError
from leveret.store.files import make_data_dir


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leveret", "serve", *args],
                          capture_output=True, text=True, timeout=60)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(lines) == 1, result.stderr
    return lines[0].split(" ERROR leveret: ", 1)[1]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process (here: this one) listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_data_dir_through_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory\n")
    data = tmp_path / "file" / "data"
    result = serve("--port", "0", "--management-port", "0", "--data-dir", str(data))
    assert result.returncode == 2
    line = error_line(result)
    assert line == (f"cannot use data directory {data}: cannot create it: Not a directory "
                    f"({tmp_path / 'file'} is a file, not a directory); choose another "
                    f"--data-dir (or LEVERET_STORAGE_DATA_DIR)")
    assert "cannot listen" not in result.stderr and "another broker" not in result.stderr
    assert (tmp_path / "file").read_text() == "not a directory\n"


def test_data_dir_that_is_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    result = serve("--port", "0", "--no-management", "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    line = error_line(result)
    assert line.startswith(f"cannot use data directory {tmp_path / 'data'}: cannot create "
                           f"it: File exists ({tmp_path / 'data'} is a file, not a "
                           f"directory); choose another --data-dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a mode of 555")
def test_unwritable_data_dir(tmp_path: Path) -> None:
    parent = tmp_path / "locked-up"
    parent.mkdir(mode=0o555)
    result = serve("--port", "0", "--no-management", "--data-dir", str(parent / "data"))
    assert result.returncode == 2
    line = error_line(result)
    assert line.startswith(f"cannot use data directory {parent / 'data'}: cannot create "
                           f"it: Permission denied ({parent} is not writable by user ")
    assert "choose another --data-dir" in line and f"write access to {parent}" in line
    result = serve("--port", "0", "--no-management", "--data-dir", str(parent))
    assert result.returncode == 2
    assert error_line(result).startswith(f"cannot use data directory {parent}: cannot "
                                         f"create files in it: Permission denied")


def test_unwritable_data_dir_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the test above checks, for root too: os.access answers as for another user."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)
    with pytest.raises(StoreError) as info:
        make_data_dir(tmp_path)
    assert str(info.value).startswith("cannot create files in it: Permission denied "
                                      f"({tmp_path} is not writable by ")
    assert f"give {str(info.value).split('not writable by ')[1].split(')')[0]} write " \
           f"access to {tmp_path}" in str(info.value)
    assert tree(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_amqp_port_taken(tmp_path: Path, taken_port: int, existing: bool) -> None:
    data = tmp_path / "data"
    if existing:
        data.mkdir()
    result = serve("--port", str(taken_port), "--management-port", "0", "--data-dir",
                   str(data))
    assert result.returncode == 2
    assert error_line(result) == (
        f"cannot listen on 127.0.0.1:{taken_port} for AMQP: Address already in use (is "
        f"another broker running? port {taken_port} is taken; try another --port, or "
        f"--no-plain to serve AMQPS only)")
    assert data.is_dir() == existing
    if existing:
        assert tree(data) == []  # no FORMAT, LOCK, definitions.log or queues/


def test_management_port_taken(tmp_path: Path, taken_port: int) -> None:
    data = tmp_path / "data"
    result = serve("--port", "0", "--management-port", str(taken_port), "--data-dir",
                   str(data))
    assert result.returncode == 2
    assert error_line(result) == (
        f"cannot listen on 127.0.0.1:{taken_port} for the management API: Address already "
        f"in use (is another broker running? port {taken_port} is taken; change "
        f"--management-port, or turn the API off with --no-management)")
    assert not data.exists()


def test_port_taken_leaves_a_used_data_dir_alone(tmp_path: Path, taken_port: int) -> None:
    """A data directory with a broker's files in it: not locked, not written to."""
    data = tmp_path / "data"

    async def first_start() -> None:
        async with Broker(port=0, data_dir=data) as broker:
            broker.node.vhosts["/"].declare_queue("kept", False, True, False, False, {},
                                                  None)

    asyncio.run(first_start())
    before = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in data.rglob("*")}
    result = serve("--port", str(taken_port), "--no-management", "--data-dir", str(data))
    assert result.returncode == 2 and "for AMQP" in error_line(result)
    assert {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in data.rglob("*")} == before


def test_embedded_broker_names_the_listener(tmp_path: Path, taken_port: int) -> None:
    async def start() -> None:
        await Broker(port=0, management_port=taken_port, data_dir=tmp_path / "data").start()

    with pytest.raises(ListenError) as info:
        asyncio.run(start())
    assert info.value.what == "the management API" and info.value.port == taken_port
    assert str(info.value).startswith(f"cannot listen on 127.0.0.1:{taken_port} for the "
                                      f"management API: ")
    assert not (tmp_path / "data").exists()
