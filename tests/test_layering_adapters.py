"""The adapters stay side by side, with the composition root above them.

``leveret.server`` (the asyncio adapter) and ``leveret.management`` (the HTTP API) never
import each other, nor ``leveret.runtime``, which builds a running broker from both:
management gets what it shows of the runtime through the ``Runtime`` handed to it. The
same ast scan as test_layering.py, so imports inside functions and under
``if TYPE_CHECKING`` count too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_layering import SRC, imported_names

RULES = {
    "server": ("leveret.management", "leveret.runtime"),
    "management": ("leveret.server", "leveret.runtime"),
}


def refused(name: str, forbidden: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def files_to_check() -> list:
    return [pytest.param(path, RULES[package], id=str(path.relative_to(SRC)))
            for package in RULES for path in sorted((SRC / package).rglob("*.py"))]


@pytest.mark.parametrize(("path", "forbidden"), files_to_check())
def test_adapters_do_not_import_each_other_or_the_runtime(path: Path,
                                                         forbidden: tuple[str, ...]) -> None:
    bad = [(line, name) for line, name in imported_names(path) if refused(name, forbidden)]
    assert not bad, f"{path.relative_to(SRC.parent)} imports " + ", ".join(
        f"{name} (line {line})" for line, name in bad)


def test_the_runtime_exists_and_is_checked() -> None:
    """Guard against the rule passing vacuously after a rename."""
    assert (SRC / "runtime" / "embedded.py").is_file()
    assert len(files_to_check()) > 20
