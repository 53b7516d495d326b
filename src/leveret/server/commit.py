"""Group commit: make the store's changes durable off the event loop, then release the
publisher confirms that waited for them (docs/storage.md, "How the broker calls the store").

After every input batch (and timer run) that changed the store, ``poke`` writes the
buffers to the OS (``store.flush()``, on the loop) and runs the blocking half
(``Sync.run()``: the fsyncs) in a thread. At most one runs at a time; what is appended
meanwhile goes into the next one, so many messages share one fsync.

What is appended meanwhile still reaches the OS at once (``write_ahead``, also called
before any output is written to a socket): a delivery's delivered mark must be in the
OS's hands before the delivery leaves, or a ``kill -9`` during a long fsync brings back
messages the consumer already had without ``redelivered`` (thousands of them when the
disk is busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("leveret.server")


class Committer:
    def __init__(self, store: Any, connections: Callable[[], Iterable[Any]],
                 synced: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.connections = connections
        self.synced = synced  # the broker's own wait for durability (streams' readers)
        self.flushed = store.seq
        self.running: asyncio.Future[int] | None = None
        self.failed = False
        self._timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leveret-sync")

    def poke(self, force: bool = False) -> None:
        """Something may have changed the store: commit it, unless a commit is running
        (then the next one, started when it ends, takes it)."""
        if self.running is not None:
            self.write_ahead()  # the next commit fsyncs it; the OS has it meanwhile
            return
        if self.failed or (self.store.seq == self.flushed and not force):
            return
        store = self.store
        try:
            self.flushed = store.seq
            sync = store.flush()
        except Exception:
            self._fail()
            return
        loop = asyncio.get_running_loop()
        self.running = fut = loop.run_in_executor(self._executor, sync.run)
        fut.add_done_callback(self._done)

    def write_ahead(self) -> None:
        """Write the store's buffered records to the OS now, without a commit (no fsync,
        no reclaim): called before output leaves for a socket, so what a delivery depends
        on (its delivered mark) survives the broker process."""
        if self.failed or not self.store.unwritten:
            return
        try:
            self.store.write_buffered()
        except Exception:
            self._fail()

    def _done(self, fut: asyncio.Future[int]) -> None:
        self.running = None
        if fut.cancelled():
            return
        if fut.exception() is not None:
            self._fail(fut.exception())
            return
        for conn in list(self.connections()):
            conn.store_synced()
        self.synced()
        self.poke()
        policy = self.store.policy
        if (policy.mode == "interval" and self._timer is None and self.running is None
                and self.store.synced_seq < self.store.seq):
            # written to the OS but not fsynced: fsync once the interval has passed
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(policy.interval_ms / 1000 + 0.001, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.store.synced_seq < self.store.seq:
            self.poke(force=True)

    def _fail(self, exc: BaseException | None = None) -> None:
        # After a failed fsync the kernel may have dropped the dirty pages: confirming
        # anything more would lie, so nothing more is confirmed.
        self.failed = True
        log.critical("message store failed, no more publishes will be confirmed: %s",
                     exc, exc_info=exc is None)

    async def drain(self) -> None:
        """Wait for the commit in flight (before the store is closed)."""
        while self.running is not None:
            with contextlib.suppress(Exception):  # already reported by _done
                await asyncio.shield(self.running)
            await asyncio.sleep(0)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._executor.shutdown(wait=True)
