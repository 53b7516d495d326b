"""Build hook. By default leveret installs as pure Python (no compiler needed).

``LEVERET_COMPILE=1 pip install .`` (or ``make compile`` in a checkout) also compiles the hot
path, the modules listed in ``leveret.build.COMPILED_MODULES``, with mypyc into C extensions
beside the same sources. If mypyc or a C compiler is missing the build says so and installs
pure Python, unless ``LEVERET_COMPILE=require``, which fails instead (CI's compiled pass).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
MODE = os.environ.get("LEVERET_COMPILE", "").strip().lower()
WANTED = MODE in ("1", "yes", "true", "require")
REQUIRED = MODE == "require"


def _compiled_modules() -> tuple[str, ...]:
    # read from src/leveret/build.py without importing the package (nothing is installed yet)
    spec = importlib.util.spec_from_file_location("_leveret_build", HERE / "src/leveret/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.COMPILED_MODULES)


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
    if not WANTED or (commands and set(commands) <= _NO_BUILD):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return _fallback("mypyc is not installed")
    os.chdir(HERE)  # mypyc reads [tool.mypy] from pyproject.toml here
    paths = ["src/" + name.replace(".", "/") + ".py" for name in _compiled_modules()]
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
