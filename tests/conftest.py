"""Test-wide setup: import leveret from the source tree when it is not installed, and a
hypothesis profile without per-example deadlines (timing on a loaded 2-core box is noise)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from hypothesis import settings

if importlib.util.find_spec("leveret") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

# `leveret serve` subprocesses serve the management API on a free port, not 15672, so that
# several of them (and other people's test runs) never collide; a test's flag still wins.
os.environ.setdefault("LEVERET_MANAGEMENT_PORT", "0")

settings.register_profile("leveret", deadline=None)
settings.register_profile("leveret-thorough", deadline=None, max_examples=2000)
settings.load_profile("leveret")
