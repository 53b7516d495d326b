"""A broker in a background thread with its own event loop.

For tests and scripts that use blocking clients (pika's BlockingConnection) as well as
asyncio ones: the broker keeps running while the calling thread blocks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from leveret.broker.node import Node
from leveret.runtime.embedded import Broker

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop()


async def _advance(clock: Any, seconds: float) -> None:
    clock.advance(seconds)
    await asyncio.sleep(0)  # let the flushes the timers scheduled run


class BrokerThread:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        self.broker = Broker(host=host, port=port, **kwargs)
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._run, name="leveret-broker", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int | None:
        return self.broker.port

    @property
    def tls_port(self) -> int:
        return self.broker.tls_port

    @property
    def alarms(self) -> list[str]:
        return self.broker.alarms

    @property
    def node(self) -> Node:
        return self.broker.node

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.broker.start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.broker.stop())
        self.loop.run_until_complete(_cancel_leftovers())
        self.loop.close()

    def start(self) -> BrokerThread:
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in the broker's thread (the broker is not thread-safe) and return
        its result, e.g. ``broker.call(broker.node.vhosts["/"].set_policy, ...)``."""
        async def run() -> T:
            return fn(*args, **kwargs)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def advance(self, seconds: float) -> None:
        """Move a ManualClock forward in the broker's thread and run what fell due."""
        clock = self.broker.node.clock
        if not hasattr(clock, "advance"):
            raise TypeError("advance() needs a broker started with clock=ManualClock()")
        future = asyncio.run_coroutine_threadsafe(_advance(clock, seconds), self.loop)
        future.result(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)

    def __enter__(self) -> BrokerThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


async def _cancel_leftovers() -> None:
    """Cancel and await what is still running once the broker stopped (as asyncio.run does):
    e.g. an HTTP connection aiohttp keeps reading to drain a refused body. Closing the loop
    under them would destroy them pending, and that is logged at ERROR later, wherever the
    garbage collector happens to run."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
