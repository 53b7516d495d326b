"""Prometheus metrics per handler, when ``prometheus_client`` is installed (else no-ops).

One ``Metrics`` per registry: prometheus_client refuses to register a metric name twice,
and an application may run several buses in one process.
"""

from __future__ import annotations

import threading
from typing import Any

try:
    import prometheus_client
except ImportError:  # pragma: no cover - exercised only without the extra
    prometheus_client = None  # type: ignore[assignment]

LABELS = ("group", "handler")
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _Nothing:
    def labels(self, *args: Any, **kwargs: Any) -> _Nothing:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


class Metrics:
    """``handled``, ``failed`` (each failed attempt), ``retried``, ``dead_lettered``,
    ``duplicates`` counters and a ``latency`` histogram, labelled by group and handler."""

    _by_registry: dict[int, Metrics] = {}
    _lock = threading.Lock()
    handled: Any
    failed: Any
    retried: Any
    dead_lettered: Any
    duplicates: Any
    latency: Any

    def __init__(self, registry: Any = None) -> None:
        self.registry = registry  # kept alive: ``for_registry`` caches by its id
        if prometheus_client is None:
            nothing = _Nothing()
            self.handled = self.failed = self.retried = nothing
            self.dead_lettered = self.duplicates = self.latency = nothing
            return
        registry = registry if registry is not None else prometheus_client.REGISTRY

        def counter(name: str, doc: str) -> Any:
            return prometheus_client.Counter(f"leveret_events_{name}", doc, LABELS,
                                             registry=registry)

        self.handled = counter("handled", "Events handled successfully")
        self.failed = counter("failed", "Handler attempts that raised")
        self.retried = counter("retried", "Events scheduled for a delayed retry")
        self.dead_lettered = counter("dead_lettered", "Events moved to the dead-letter queue")
        self.duplicates = counter("duplicates", "Duplicate events skipped")
        self.latency = prometheus_client.Histogram(
            "leveret_events_handler_seconds", "Handler latency", LABELS, buckets=BUCKETS,
            registry=registry)

    @classmethod
    def for_registry(cls, registry: Any = None) -> Metrics:
        """The one ``Metrics`` of ``registry`` (default: prometheus_client's global one)."""
        with cls._lock:
            key = id(registry)
            if key not in cls._by_registry:
                cls._by_registry[key] = cls(registry)
            return cls._by_registry[key]


def serve(port: int, host: str = "127.0.0.1") -> bool:
    """Expose the global registry over HTTP; False when prometheus_client is missing."""
    if prometheus_client is None:  # pragma: no cover
        return False
    prometheus_client.start_http_server(port, addr=host)
    return True
