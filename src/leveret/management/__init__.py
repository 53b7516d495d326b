"""The management HTTP API, RabbitMQ-compatible (docs/management.md)."""

from __future__ import annotations

__all__ = ["ManagementServer", "create_app"]


def __getattr__(name: str) -> object:
    # Imported lazily: leveret.management.<resource> modules import this package first.
    if name in __all__:
        from leveret.management import app

        return getattr(app, name)
    raise AttributeError(name)
