"""Which build of leveret is running: pure Python, or its hot path compiled by mypyc.

Where a C compiler is at hand, ``pip install`` (and so ``make run`` / ``make test``) compiles
the modules listed in ``COMPILED_MODULES`` with mypyc into C extensions that sit next to the
same ``.py`` files; the import system prefers an extension module to a source file, so the
compiled build runs the very same code. Where no compiler is found, or the build fails, or
``LEVERET_COMPILE=0`` says so, the sources run as they are (msgpack's and aiohttp's
wheel-or-fallback); ``LEVERET_COMPILE=require`` fails instead of falling back.
docs/benchmarks.md ("Issue 14") has the figures and why these modules.

This module imports nothing of leveret at import time (setup.py reads ``COMPILED_MODULES``
from it without importing the package); ``compiled_modules()`` imports the hot modules.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os

# The modules a message passes through (frames, content, the protocol machine, the server
# connection and its channels, the vhost's publish and routing, the queue types and where
# their messages are kept, the store's message logs and their records), compiled as one
# group so that calls between them are native calls. Subclasses of a compiled class must be
# compiled too (a native class cannot be subclassed by an interpreted one), hence every
# exchange and queue type.
COMPILED_MODULES: tuple[str, ...] = (
    "leveret.amqp.frames",
    "leveret.amqp.content",
    "leveret.amqp.connection",
    "leveret.broker.connection",
    "leveret.broker.channel",
    "leveret.broker.dispatch",
    "leveret.broker.message",
    "leveret.broker.entry",
    "leveret.broker.stats",
    "leveret.broker.vhost",
    "leveret.broker.exchanges.base",
    "leveret.broker.exchanges.direct",
    "leveret.broker.exchanges.fanout",
    "leveret.broker.exchanges.topic",
    "leveret.broker.exchanges.headers",
    "leveret.broker.exchanges.delayed",
    "leveret.broker.exchanges.federation_upstream",
    "leveret.broker.queues.base",
    "leveret.broker.queues.classic",
    "leveret.broker.queues.quorum",
    "leveret.broker.queues.stream",
    "leveret.broker.queues.ready",
    "leveret.broker.queues.backing",
    "leveret.broker.queues.paging",
    "leveret.store.codec",
    "leveret.store.records",
    "leveret.store.index",
    "leveret.store.segments",
    "leveret.store.disk",
)

_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)

_OFF = ("0", "no", "false", "off", "pure")


def compile_mode(value: str | None = None) -> str:
    """``LEVERET_COMPILE`` as a build reads it: "auto" (the default: compile where mypyc and a
    C compiler are at hand, else pure Python), "off" (0, no, false, off, pure) or "require"
    (fail rather than fall back: CI's compiled pass)."""
    if value is None:
        value = os.environ.get("LEVERET_COMPILE", "")
    value = value.strip().lower()
    if value in _OFF:
        return "off"
    return "require" if value == "require" else "auto"


def c_compiler() -> str | None:
    """The C compiler a build would call (``$CC``, else the one Python was built with), if it
    is installed; None where there is none, so the build can go pure without trying."""
    import shlex
    import shutil
    import sysconfig

    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    return shutil.which(command[0]) if command else None


def compiled_modules() -> list[str]:
    """The modules of ``COMPILED_MODULES`` running compiled (importing them)."""
    found = []
    for name in COMPILED_MODULES:
        path = getattr(importlib.import_module(name), "__file__", None) or ""
        if path.endswith(_EXTENSIONS):
            found.append(name)
    return found


def describe() -> str:
    """One line for ``leveret --version``: which build this is."""
    found = compiled_modules()
    if not found:
        return "pure Python"
    stale = stale_extensions()
    warning = f"; {len(stale)} OLDER than their sources" if stale else ""
    if len(found) == len(COMPILED_MODULES):
        return f"hot path compiled by mypyc: {len(found)} modules{warning}"
    return (f"PARTLY compiled by mypyc: {len(found)} of {len(COMPILED_MODULES)} "
            f"modules{warning}")


def stale_extensions() -> list[str]:
    """Compiled modules whose source was edited after they were built (an in-place build,
    ``make compile``): they would run the old code, so the test suite refuses to start."""
    stale = []
    for name in COMPILED_MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(_EXTENSIONS):
            continue
        source = origin[: origin.rindex(os.sep) + 1] + name.rsplit(".", 1)[1] + ".py"
        if os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(origin):
            stale.append(name)
    return stale


COMPILE_TOOLS = ("setuptools>=77", "wheel", "mypy>=1.15")


def refresh() -> int:
    """Compile stale in-place modules again (``make run`` / ``make test`` call this): the
    build tools into this environment, then setup.py's in-place build, which falls back to
    pure Python if it fails. Returns 0 when nothing is stale afterwards."""
    import subprocess
    import sys
    from pathlib import Path

    names = stale_extensions()
    if not names:
        return 0
    root = Path(__file__).resolve().parents[2]
    print(f"compiling the hot path again: {', '.join(names)} edited since it was compiled "
          "(a minute or two)...", file=sys.stderr, flush=True)
    if not (root / "setup.py").exists():
        print(f"no setup.py in {root}: reinstall leveret", file=sys.stderr)
        return 1
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *COMPILE_TOOLS],
                   check=True)
    env = {**os.environ, "LEVERET_COMPILE": "auto"}
    subprocess.run([sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
                   cwd=root, env=env, check=True)
    # a new process: this one has the old extensions loaded
    return subprocess.run([sys.executable, "-m", "leveret", "version"]).returncode


if __name__ == "__main__":  # `python -m leveret.build [--refresh]`: exit 1 while stale
    import sys

    if sys.argv[1:] == ["--refresh"]:
        sys.exit(refresh())
    names = stale_extensions()
    if names:
        print(f"compiled modules older than their sources: {', '.join(names)}", file=sys.stderr)
    sys.exit(1 if names else 0)
