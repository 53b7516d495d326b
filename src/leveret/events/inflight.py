"""Deliveries being handled by one consumer: the concurrency limit and graceful stop.

Stopping is: refuse new work (requeue it untouched), let running handlers finish within
the timeout, then cancel the rest; the broker requeues whatever is left unacknowledged
when the channel closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

from leveret.events.publisher import SETTLE_ERRORS


async def requeue(message: AbstractIncomingMessage) -> None:
    # if the channel is gone, so is the delivery: the broker requeued it already
    with contextlib.suppress(*SETTLE_ERRORS):
        await message.nack(requeue=True)


class Inflight:
    def __init__(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._slots = asyncio.Semaphore(concurrency)
        self._busy: set[asyncio.Task[None]] = set()
        self.stopping = False

    async def run(self, message: AbstractIncomingMessage,
                  process: Callable[[AbstractIncomingMessage], Awaitable[None]]) -> None:
        if self.stopping:
            await requeue(message)
            return
        async with self._slots:
            if self.stopping:  # stopped while waiting for a slot: never started
                await requeue(message)
                return
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)  # type: ignore[arg-type]
            try:
                await process(message)
            finally:
                self._busy.discard(task)  # type: ignore[arg-type]

    @property
    def busy(self) -> int:
        return len(self._busy)

    async def drain(self, timeout: float) -> int:
        """Stop taking work; wait up to ``timeout`` s; cancel what is still running.
        Returns how many handlers were cancelled."""
        self.stopping = True
        if not self._busy:
            return 0
        _, pending = await asyncio.wait(set(self._busy), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        return len(pending)
