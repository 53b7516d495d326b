"""No import circles inside a package, and no imports from leveret.broker up the stack.

A circle (a.py imports b.py, which imports a.py, perhaps only under ``if TYPE_CHECKING``)
means neither module can be read, tested or replaced alone: the calls follow the imports.
For each package below, the modules' imports are read with the ast scanner of
test_layering.py (imports inside functions, under ``if TYPE_CHECKING`` and through
``import_module`` count), the import graph within the package is built, and its strongly
connected components are found (Tarjan): every component of more than one module is a
circle. Importing a package means importing its ``__init__``; ``from pkg import mod``
imports the module ``pkg.mod`` only.

``leveret.broker`` is the core: it may use ``amqp``, ``store`` and ``errors``, never the
layers built on it (server and runtime, management, cli, client, events, the pytest plugin,
the CLI's configuration, the root package, whose ``Broker`` is the runtime's).

A package marked xfail(strict=True) has known circles: the mark must go when they are
removed (the test then fails as XPASS until it does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from test_layering import SRC, imported_names

Graph = Mapping[str, Mapping[str, int]]  # module -> {imported module: line}


def package_modules(package: str, src: Path = SRC) -> dict[str, Path]:
    """Module name -> file, for every module of ``leveret.<package>`` (a package's module
    is its ``__init__.py``)."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _owner(name: str, modules: Iterable[str]) -> str | None:
    """The module an imported name lives in: the longest module name it starts with."""
    best = None
    for m in modules:
        if (name == m or name.startswith(m + ".")) and (best is None or len(m) > len(best)):
            best = m
    return best


def import_graph(package: str, src: Path = SRC) -> dict[str, dict[str, int]]:
    """The imports between the modules of ``leveret.<package>``, with the line of each."""
    modules = package_modules(package, src)
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for module, path in modules.items():
        by_line: defaultdict[int, list[str]] = defaultdict(list)
        for line, name in imported_names(path, src):
            by_line[line].append(name)
        for line, names in by_line.items():
            for name in names:
                # The scanner names ``pkg`` and ``pkg.mod`` for ``from pkg import mod``: that
                # statement imports the module, not the package's other names.
                if any(other.startswith(name + ".") and other in modules for other in names):
                    continue
                target = _owner(name, modules)
                if target is not None and target != module:
                    graph[module].setdefault(target, line)
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit); each
    component sorted, components in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, {}))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def cycles(graph: Graph) -> list[list[str]]:
    return [c for c in strongly_connected(graph) if len(c) > 1]


def describe(package: str, graph: Graph, found: list[list[str]], src: Path = SRC) -> str:
    """Each circle's files, then the imports that close it (file:line -> module)."""
    files = package_modules(package, src)
    out = []
    for component in found:
        members = set(component)
        out.append(f"circle of {len(component)} modules: " + ", ".join(
            str(files[m].relative_to(src.parent)) for m in component))
        out += [f"    {files[m].relative_to(src.parent)}:{line} imports {target}"
                for m in component for target, line in sorted(graph[m].items())
                if target in members]
    return "\n".join(out)


KNOWN_CIRCLES: dict[str, str] = {}


def packages() -> list[object]:
    return [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=KNOWN_CIRCLES[p]))
            if p in KNOWN_CIRCLES else p
            for p in ("broker", "amqp", "store", "client", "server")]


@pytest.mark.parametrize("package", packages())
def test_no_import_circles(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 1, f"leveret.{package} has no modules to check"
    found = cycles(graph)
    assert not found, f"import circles in leveret.{package}:\n" + describe(package, graph, found)


# -- nothing in leveret.broker imports the layers above it -------------------------------------

# leveret.server and leveret.runtime are the asyncio runtime (the latter being split out).
ABOVE_BROKER = ("leveret.server", "leveret.runtime", "leveret.management", "leveret.cli",
                "leveret.client", "leveret.events", "leveret.testing", "leveret.config",
                "leveret.__main__")
# The root package: its __init__ imports leveret.runtime.embedded (the Broker facade) when
# leveret.Broker is first read.
ROOT = "leveret"
KNOWN_UPWARD: dict[str, str] = {}


def upward_imports(above: str, package: str = "broker",
                   src: Path = SRC) -> list[tuple[Path, int, str]]:
    bad = []
    for path in package_modules(package, src).values():
        for line, name in imported_names(path, src):
            # The root itself: "leveret" or a name in its __init__ ("leveret.__version__"),
            # not its subpackages, which have their own entries.
            hit = (name == ROOT or (name.count(".") == 1 and name.startswith(ROOT + ".")
                                    and not (src / name.split(".")[1]).exists()
                                    and not (src / f"{name.split('.')[1]}.py").exists())
                   ) if above == ROOT else (name == above or name.startswith(above + "."))
            if hit:
                bad.append((path, line, name))
    return bad


@pytest.mark.parametrize("above", [
    pytest.param(a, marks=pytest.mark.xfail(strict=True, reason=KNOWN_UPWARD[a]))
    if a in KNOWN_UPWARD else a for a in (*ABOVE_BROKER, ROOT)])
def test_broker_never_imports_upwards(above: str) -> None:
    bad = upward_imports(above)
    assert not bad, f"leveret.broker imports {above}: " + ", ".join(
        f"{path.relative_to(SRC.parent)}:{line} ({name})" for path, line, name in bad)


# -- the cycle finder on a tree made up for it --------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Path:
    src = root / "leveret"
    for rel, text in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return src


def test_the_cycle_finder_on_a_made_up_package(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "pkg/__init__.py": "from leveret.pkg.a import A\n",
        # a -> b -> c -> a, the last edge only for type checking: still a circle
        "pkg/a.py": "from leveret.pkg import b\n",
        "pkg/b.py": "def f():\n    from . import c\n",
        "pkg/c.py": ("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from leveret.pkg.a import A\n"),
        # d <-> e through import_module and a package-relative import
        "pkg/d.py": "import importlib\nimportlib.import_module('leveret.pkg.e')\n",
        "pkg/e.py": "from .d import thing\n",
        # f imports the package (its __init__), which imports a: no circle through f
        "pkg/f.py": "from leveret.pkg import A\nimport leveret.errors\n",
        # sub/__init__ <-> sub/g
        "pkg/sub/__init__.py": "from leveret.pkg.sub.g import G\n",
        "pkg/sub/g.py": "from leveret.pkg.sub import helper\n",
        "pkg/h.py": "import os\nfrom leveret.pkg.sub import g\n",  # the module, not sub
    })
    graph = import_graph("pkg", src)
    assert graph["leveret.pkg.a"] == {"leveret.pkg.b": 1}
    assert graph["leveret.pkg.b"] == {"leveret.pkg.c": 2}
    assert graph["leveret.pkg.f"] == {"leveret.pkg": 1}
    assert graph["leveret.pkg.h"] == {"leveret.pkg.sub.g": 2}
    assert sorted(cycles(graph)) == [
        ["leveret.pkg.a", "leveret.pkg.b", "leveret.pkg.c"],
        ["leveret.pkg.d", "leveret.pkg.e"],
        ["leveret.pkg.sub", "leveret.pkg.sub.g"],
    ]
    text = describe("pkg", graph, cycles(graph), src)
    assert "circle of 3 modules: leveret/pkg/a.py, leveret/pkg/b.py, leveret/pkg/c.py" in text
    assert "leveret/pkg/c.py:3 imports leveret.pkg.a" in text


def test_tarjan_on_long_chains_and_self_contained_graphs() -> None:
    n = 5000  # deeper than the recursion limit: the search must be iterative
    chain = {f"m{i}": {f"m{i + 1}": 1} for i in range(n)}
    chain[f"m{n}"] = {}
    assert cycles(chain) == []
    chain[f"m{n}"] = {"m0": 1}
    assert [len(c) for c in cycles(chain)] == [n + 1]
    two = {"a": {"b": 1}, "b": {"a": 1, "c": 1}, "c": {"d": 1}, "d": {"c": 1}, "e": {}}
    assert sorted(cycles(two)) == [["a", "b"], ["c", "d"]]


def test_upward_imports_are_found(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "__init__.py": "__version__ = '0'\n",
        "server/__init__.py": "",
        "broker/__init__.py": "",
        "broker/x.py": ("from leveret.errors import E\nfrom ..server import protocol\n"
                        "def v():\n    from leveret import __version__\n"),
        "errors.py": "",
    })
    assert [(line, name) for _, line, name in upward_imports("leveret.server", src=src)] == [
        (2, "leveret.server"), (2, "leveret.server.protocol")]
    assert [(line, name) for _, line, name in upward_imports(ROOT, src=src)] == [
        (4, "leveret"), (4, "leveret.__version__")]
