"""leveret's build backend: setuptools', plus mypy (for mypyc) in the build environment when
the build will compile the hot path: a C compiler is installed and ``LEVERET_COMPILE`` is not
0 (setup.py, src/leveret/build.py). Where there is no compiler nothing more is fetched."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import build_meta as _orig
from setuptools.build_meta import *  # noqa: F403  (the PEP 517/660 hooks, unchanged)

_MYPYC = ["mypy>=1.15"]


def _compile_requires() -> list[str]:
    # src/leveret/build.py, read without importing the package (the build runs from the
    # project's root, the directory above this one)
    path = Path(__file__).resolve().parents[1] / "src" / "leveret" / "build.py"
    spec = importlib.util.spec_from_file_location("_leveret_build", path)
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    if build.compile_mode() == "off" or build.c_compiler() is None:
        return []
    return _MYPYC


def get_requires_for_build_wheel(config_settings=None):  # type: ignore[no-untyped-def]
    return [*_orig.get_requires_for_build_wheel(config_settings), *_compile_requires()]


def get_requires_for_build_editable(config_settings=None):  # type: ignore[no-untyped-def]
    return [*_orig.get_requires_for_build_editable(config_settings), *_compile_requires()]
