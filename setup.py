"""Build hook: the hot path compiled where it can be, pure Python where it cannot.

``pip install .`` (and ``pip install -e .``, ``make run``, ``make test``) compiles the modules
listed in ``leveret.build.COMPILED_MODULES`` with mypyc into C extensions beside the same
sources when a C compiler is installed (tools/build_backend.py then fetches mypy into the build
environment). Without a compiler, or if the build fails, it says so and installs pure Python.
``LEVERET_COMPILE=0`` installs pure Python without trying; ``LEVERET_COMPILE=require`` fails
instead of falling back (CI's compiled pass). leveret/build.py reads the setting.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def _load_build_settings():  # type: ignore[no-untyped-def]
    # src/leveret/build.py, read without importing the package (nothing is installed yet)
    spec = importlib.util.spec_from_file_location("_leveret_build", HERE / "src/leveret/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _load_build_settings()
MODE = BUILD.compile_mode()
REQUIRED = MODE == "require"


def _fallback(reason: str) -> list:
    if REQUIRED:
        sys.exit(f"LEVERET_COMPILE=require: cannot compile leveret's hot path: {reason}")
    print(f"*** leveret: not compiling the hot path ({reason}): installing pure Python",
          file=sys.stderr)
    return []


# Commands that describe or package the sources and compile nothing (pip asks for the build
# requirements and the metadata through them, before mypy is installed).
_NO_BUILD = {"egg_info", "dist_info", "sdist", "--version", "--name"}


def ext_modules() -> list:
    commands = [arg for arg in sys.argv[1:] if not arg.startswith("-") or arg in _NO_BUILD]
    if MODE == "off" or (commands and set(commands) <= _NO_BUILD):
        return []
    if BUILD.c_compiler() is None:
        return _fallback("no C compiler found: install gcc, or set CC")
    try:
        from mypyc.build import mypycify
    except ImportError:
        return _fallback("mypyc is not installed")
    os.chdir(HERE)  # mypyc reads [tool.mypy] from pyproject.toml here
    print("leveret: compiling the hot path with mypyc (a minute or two; LEVERET_COMPILE=0 "
          "skips it)", file=sys.stderr)
    paths = ["src/" + name.replace(".", "/") + ".py" for name in BUILD.COMPILED_MODULES]
    return mypycify(paths, opt_level="3", debug_level="1")


class OptionalBuildExt(build_ext):
    """A missing or failing C compiler leaves the pure-Python install intact: the modules are
    compiled as one group (a shared library and a stub per module), so on any failure every
    extension already built is removed again, never leaving a stub without its library."""

    def run(self) -> None:
        # Rebuild every stub with the library: their dates tell leveret.build whether the
        # sources were edited since (stale_extensions).
        self.force = True
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, PlatformError, ...
            if REQUIRED:
                raise
            for path in self.get_outputs():
                Path(path).unlink(missing_ok=True)
            self.extensions = []
            print(f"*** leveret: compiling the hot path failed ({exc}): installing the "
                  "pure-Python modules", file=sys.stderr)


setup(ext_modules=ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
