"""Test-wide setup: import leveret from the source tree when it is not installed, and a
hypothesis profile without per-example deadlines (timing on a loaded 2-core box is noise)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from hypothesis import settings

if importlib.util.find_spec("leveret") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

settings.register_profile("leveret", deadline=None)
settings.register_profile("leveret-thorough", deadline=None, max_examples=2000)
settings.load_profile("leveret")
