"""Listening sockets, publisher flow control, and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging

from leveret.broker.clock import ManualClock
from leveret.broker.node import Node
from leveret.server.commit import Committer
from leveret.server.protocol import AMQPProtocol

log = logging.getLogger("leveret.server")

FLOW_CHECK_INTERVAL = 0.05
PER_MESSAGE_OVERHEAD = 200  # rough bytes of Python objects around each queued body


class Listener:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.protocols: set[AMQPProtocol] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self._flow_task: asyncio.Task[None] | None = None
        self.memory_blocked = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self.committer: Committer | None = None  # set when the broker has a store

    async def listen(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: AMQPProtocol(self), host, port,
                                          reuse_address=True)
        self.servers.append(server)
        if self._flow_task is None:
            self._flow_task = asyncio.create_task(self._flow_control())
            self.node.timers.on_schedule = self._arm_timers
            self._arm_timers(self.node.timers.next_deadline())
        return int(server.sockets[0].getsockname()[1])

    def _arm_timers(self, when: float | None) -> None:
        """Wake up at the broker's next deadline (TTL, expiry, delay): one asyncio timer
        for all of them, moved earlier when an earlier deadline appears."""
        if when is None or (self._timer_when is not None and self._timer_when <= when):
            return
        if isinstance(self.node.clock, ManualClock):
            return  # a manual clock's timers run when the test advances it
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, when - self.node.clock.now())
        self._timer_when = when
        self._timer = loop.call_later(delay, self._run_timers)

    def _run_timers(self) -> None:
        self._timer = self._timer_when = None
        timers = self.node.timers
        timers.run_due()
        if self.committer is not None:
            self.committer.poke()
        self._arm_timers(timers.next_deadline())

    def memory_used(self) -> int:
        total = 0
        for vh in self.node.vhosts.values():
            for q in vh.queues.values():
                total += q.ready_bytes + PER_MESSAGE_OVERHEAD * len(q.ready)
        return total

    async def _flow_control(self) -> None:
        """Pause reading from publishers while queued messages exceed the watermark.

        Consumers keep draining (their connections are not paused unless they publish),
        and publishers resume below 80% of the watermark.
        """
        published: dict[AMQPProtocol, int] = {}
        high = self.node.limits.memory_high_watermark
        while True:
            await asyncio.sleep(FLOW_CHECK_INTERVAL)
            used = self.memory_used()
            if not self.memory_blocked and used > high:
                self.memory_blocked = True
                log.warning("memory watermark reached (%d bytes queued): pausing publishers",
                            used)
            elif self.memory_blocked and used < high * 0.8:
                self.memory_blocked = False
                log.info("memory below watermark: resuming publishers")
            for p in list(self.protocols):
                conn = p.conn
                if conn is None:
                    continue
                is_publisher = conn.published != published.get(p, 0)
                published[p] = conn.published
                if self.memory_blocked and is_publisher and not p.paused_by_broker:
                    p.set_paused_by_broker(True)
                elif not self.memory_blocked and p.paused_by_broker:
                    p.set_paused_by_broker(False)
            for p in [p for p in published if p not in self.protocols]:
                del published[p]

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection with 320 CONNECTION_FORCED, wait."""
        for server in self.servers:
            server.close()
        if self._flow_task is not None:
            self._flow_task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        for p in list(self.protocols):
            if p.conn is not None:
                p.conn.close(320, "CONNECTION_FORCED - broker forced connection closure "
                             "with reason 'shutdown'")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.protocols and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for p in list(self.protocols):
            if p.transport is not None:
                p.transport.abort()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()
