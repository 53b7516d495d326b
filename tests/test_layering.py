"""The rule of docs/ARCHITECTURE: I/O only at the edges.

``leveret.amqp`` (the protocol) and ``leveret.broker`` (what exchanges and queues mean)
never import asyncio, socket or ssl, directly or by importing the packages that do I/O
(leveret.server, leveret.client, leveret.testing). The source files are scanned with ast,
so an import inside a function or under ``if TYPE_CHECKING`` counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "leveret"
SANS_IO_PACKAGES = ("amqp", "broker", "streamproto")
FORBIDDEN = ("asyncio", "socket", "ssl", "selectors", "leveret.server", "leveret.client",
             "leveret.testing")


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def imported_names(path: Path, src: Path = SRC) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names, with its line number
    (relative imports resolved against ``path``'s package under ``src``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package_parts = path.relative_to(src.parent).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = ".".join(package_parts[: len(package_parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def files_to_check() -> list:
    params = []
    for package in SANS_IO_PACKAGES:
        files = modules(package)
        if not files:
            params.append(pytest.param(None, id=f"{package} (no modules yet)",
                                       marks=pytest.mark.skip(
                                           reason=f"src/leveret/{package} has no modules yet")))
        params += [pytest.param(f, id=str(f.relative_to(SRC))) for f in files]
    return params


@pytest.mark.parametrize("path", files_to_check())
def test_no_io_imports(path):
    bad = [(line, name) for line, name in imported_names(path) if forbidden(name)]
    assert not bad, f"{path.relative_to(SRC.parent)} imports I/O modules: " + ", ".join(
        f"{name} (line {line})" for line, name in bad)


def test_the_scanner_sees_every_import_form(tmp_path):
    pkg = tmp_path / "leveret" / "broker"
    pkg.mkdir(parents=True)
    f = pkg / "x.py"
    f.write_text(
        "import asyncio\n"
        "import os, socket as s\n"
        "from ssl import SSLContext\n"
        "from ..server import protocol\n"
        "from . import queue\n"
        "def later():\n"
        "    import selectors\n"
        "    importlib.import_module('leveret.client')\n"
    )
    names = [n for _, n in imported_names(f, src=tmp_path / "leveret")]
    assert [n for n in names if forbidden(n)] == [
        "asyncio", "socket", "ssl", "ssl.SSLContext", "leveret.server",
        "leveret.server.protocol", "selectors", "leveret.client"]
    assert "leveret.broker.queue" in names
