"""Running a bus as a worker process until SIGTERM / SIGINT, then stopping gracefully."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import sys

from leveret.events.bus import EventBus

log = logging.getLogger("leveret.events")


def load(target: str) -> EventBus:
    """``package.module:attribute`` -> the EventBus it names (the current directory is
    importable, as with ``python -m``)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected module:attribute, got {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    bus = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(bus, EventBus):
        raise TypeError(f"{target} is a {type(bus).__name__}, not an EventBus")
    return bus


async def serve(bus: EventBus, url: str | None = None, shutdown_timeout: float = 30.0,
                stop: asyncio.Event | None = None) -> None:
    """Start ``bus`` and run until ``stop`` is set or a signal arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bus.start(url)
        groups = ", ".join(s.group for s in bus.subscriptions) or "none"
        responders = ", ".join(r.name for r in bus.responders) or "none"
        replays = ", ".join(f"{r.replay.name} <- {r.stream}" for r in bus.readers) or "none"
        log.info("worker %s started on %s (groups: %s; responders: %s; replays: %s; "
                 "retry: %s)", bus.name, bus.url, groups, responders, replays,
                 getattr(bus.retry_strategy, "name", "?"))
        await stop.wait()
        log.info("stopping: finishing in-flight events (up to %.0f s)", shutdown_timeout)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await bus.close(shutdown_timeout)
    log.info("worker stopped")
