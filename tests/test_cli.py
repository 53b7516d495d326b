"""`leveret serve`: one log line when listening; SIGTERM/SIGINT close clients with 320."""

from __future__ import annotations

import signal
import subprocess
import sys

import pika
import pika.exceptions
import pytest
from served import serve, stop


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_shuts_down_gracefully(tmp_path, sig: signal.Signals) -> None:
    proc, port = serve(tmp_path / "data")
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.queue_declare("cli-test")
        proc.send_signal(sig)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            conn.process_data_events(time_limit=10)
            conn.process_data_events(time_limit=10)
        assert info.value.reply_code == 320
        assert info.value.reply_text.startswith("CONNECTION_FORCED")
        assert proc.wait(timeout=15) == 0
        assert (tmp_path / "data").is_dir()
    finally:
        stop(proc)


def test_port_in_use_is_a_clear_error(tmp_path) -> None:
    proc, port = serve(tmp_path / "data")
    try:
        second = subprocess.run(
            [sys.executable, "-m", "leveret", "serve", "--port", str(port), "--data-dir",
             str(tmp_path / "data2")], capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "cannot listen" in second.stderr and "--port" in second.stderr
    finally:
        stop(proc)


def leveret(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leveret", *args], capture_output=True,
                          text=True, timeout=30)


def test_help_lists_commands() -> None:
    out = leveret("--help").stdout
    assert "serve" in out and "perf" in out
    for verb in ("list queues", "show queue", "declare", "delete", "purge", "add user",
                 "set", "clear", "export", "import", "publish", "get", "status"):
        assert verb in out, verb
    for events_command in ("events run", "events dlq", "replay", "tail", "events docs"):
        assert events_command in out, events_command
    assert "``" not in out  # no reStructuredText markup from a docstring
    assert "--version" in out


@pytest.mark.parametrize("args", [["--version"], ["-V"], ["version"]])
def test_version(args: list[str]) -> None:
    """The version and the build: pure Python, or the hot path compiled (leveret/build.py)."""
    from leveret.build import describe
    from leveret.version import __version__

    result = leveret(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"leveret {__version__} ({describe()})"


def test_a_bare_leveret_prints_the_help() -> None:
    result = leveret()
    assert result.returncode == 0
    assert result.stdout.startswith("usage: leveret")
    assert "serve" in result.stdout and "list queues" in result.stdout
    assert "required" not in result.stderr
