"""leveret's build backend: setuptools', plus mypyc at build time when LEVERET_COMPILE asks
for the compiled hot path (setup.py). A default build needs nothing but setuptools."""

from __future__ import annotations

import os

from setuptools import build_meta as _orig
from setuptools.build_meta import *  # noqa: F403  (the PEP 517/660 hooks, unchanged)

_MYPYC = ["mypy>=1.15"]


def _compile_requires() -> list[str]:
    wanted = os.environ.get("LEVERET_COMPILE", "").strip().lower()
    return _MYPYC if wanted in ("1", "yes", "true", "require") else []


def get_requires_for_build_wheel(config_settings=None):  # type: ignore[no-untyped-def]
    return [*_orig.get_requires_for_build_wheel(config_settings), *_compile_requires()]


def get_requires_for_build_editable(config_settings=None):  # type: ignore[no-untyped-def]
    return [*_orig.get_requires_for_build_editable(config_settings), *_compile_requires()]
