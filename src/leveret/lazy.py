"""Names of a package imported on first use (a module ``__getattr__``, PEP 562), so that
importing the package does not import every module behind it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, homes: dict[str, str], namespace: dict[str, Any]
                 ) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``homes`` maps a name to the module that defines
    it (relative to ``package``, or absolute if it starts with ``leveret.``); the value
    read is kept in ``namespace`` (the package's globals), so the next read does not come
    here."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = home if home.startswith("leveret.") else f"{package}.{home}"
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
