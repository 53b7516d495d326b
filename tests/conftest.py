"""Test-wide setup: import leveret from the source tree when it is not installed, and a
hypothesis profile without per-example deadlines (timing on a loaded 2-core box is noise)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

if importlib.util.find_spec("leveret") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

# `leveret serve` subprocesses serve the management API on a free port, not 15672, so that
# several of them (and other people's test runs) never collide; a test's flag still wins.
os.environ.setdefault("LEVERET_MANAGEMENT_PORT", "0")

# An in-place compiled build (make compile) whose sources were edited since would test the old
# code: refuse to start rather than pass on it.
from leveret.build import stale_extensions

if stale_extensions():
    pytest.exit(f"compiled modules older than their sources: {', '.join(stale_extensions())}; "
                "`make test` compiles them again (or run `make compile`; `make clean-compiled` for "
                "pure Python)", 4)

settings.register_profile("leveret", deadline=None)
settings.register_profile("leveret-thorough", deadline=None, max_examples=2000)
settings.load_profile("leveret")

from rabbit_node import PluginRabbit, free_node_ports  # noqa: E402  (tests/ is on sys.path: rootdir conftest)


@pytest.fixture(scope="session")
def plugin_rabbit() -> Iterator[PluginRabbit]:
    """A private RabbitMQ node with the shovel and federation plugins (tests/rabbit_node.py),
    started once per session by the first test that asks for it, stopped at the end. Its
    name and ports are the session's own, so sessions running side by side do not share it."""
    port, http_port = free_node_ports()
    node = PluginRabbit(name=f"leveret-test-{os.getpid()}", port=port, http_port=http_port)
    if not node.installed():
        pytest.skip("rabbitmq-server is not installed (../shared/tools/reference-rabbitmq "
                    "installs it)")
    try:
        node.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        node.stop()
        pytest.skip(f"the private RabbitMQ node with plugins did not start: {exc}")
    yield node
    node.stop()
