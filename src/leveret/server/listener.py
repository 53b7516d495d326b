"""Listening sockets (AMQP and AMQPS), resource alarms, and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Collection
from typing import Protocol, TypeVar

from leveret.broker.clock import ManualClock
from leveret.broker.node import Node
from leveret.server.alarms import ResourceMonitor
from leveret.server.commit import Committer
from leveret.server.protocol import HANDSHAKE_TIMEOUT, AMQPProtocol

log = logging.getLogger("leveret.server")

FLOW_CHECK_INTERVAL = 0.05


class ListenError(OSError):
    """A listener could not bind its address: ``what`` names it ("AMQP", "AMQPS",
    "management API") so that the message can say which flag to change."""

    def __init__(self, what: str, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.what, self.host, self.port, self.cause = what, host, port, cause

    def __str__(self) -> str:
        return (f"cannot listen on {self.host}:{self.port} for {self.what}: "
                f"{self.strerror}")


def bind_sockets(host: str, port: int, what: str) -> list[socket.socket]:
    """Bound (not yet listening) sockets for ``host:port``, one per address the host
    names, as ``loop.create_server(host, port)`` would bind them; the broker binds its
    ports before it touches the data directory, so a port in use leaves that alone.
    Port 0 picks a free port for the first address and uses it for the others."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        seen = set()
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.setblocking(False)
    except OSError as exc:
        close_sockets(sockets)
        raise ListenError(what, host, port, exc) from None
    return sockets


def close_sockets(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
    sockets.clear()


class _Served(Protocol):
    @property
    def transport(self) -> asyncio.Transport | None: ...


_P = TypeVar("_P", bound=_Served)


async def close_served(servers: list[asyncio.AbstractServer], protocols: Collection[_P],
                       close: Callable[[_P], None], timeout: float) -> None:
    """Stop accepting, ``close`` every connection, give them ``timeout`` seconds to go
    (each leaves ``protocols`` when its transport is lost), abort the rest, and wait until
    the servers are closed."""
    for server in servers:
        server.close()
    for p in list(protocols):
        close(p)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while protocols and loop.time() < deadline:
        await asyncio.sleep(0.02)
    for p in list(protocols):
        if p.transport is not None:
            p.transport.abort()
    for server in servers:
        await server.wait_closed()
    servers.clear()


class Listener:
    def __init__(self, node: Node, resources: ResourceMonitor | None = None) -> None:
        self.node = node
        self.resources = resources or ResourceMonitor(node)
        # connection.blocked's reason while an alarm is set, else None
        self.blocked_reason: str | None = None
        self.protocols: set[AMQPProtocol] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self._flow_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self.committer: Committer | None = None  # set when the broker has a store
        # Called when the alarms change, after the AMQP connections heard of it (the
        # stream listener: its publishers are blocked too).
        self.alarm_listeners: list[Callable[[], None]] = []

    async def listen(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                     sockets: list[socket.socket] | None = None) -> int:
        """Accept AMQP connections on ``host:port`` (AMQPS with ``ssl_context``), or on
        the bound ``sockets`` (from ``bind_sockets``; taken from the list as the servers
        own them); returns the port, which the system chose if ``port`` was 0."""
        if sockets is None:
            sockets = bind_sockets(host, port, "AMQPS" if ssl_context else "AMQP")
        bound = int(sockets[0].getsockname()[1])
        try:
            while sockets:
                await self._serve(sockets[0], ssl_context)
                sockets.pop(0)  # the server owns it now
        finally:
            close_sockets(sockets)
        return bound

    async def _serve(self, sock: socket.socket, ssl_context: ssl.SSLContext | None
                     ) -> None:
        loop = asyncio.get_running_loop()
        if ssl_context is None:
            server = await loop.create_server(lambda: AMQPProtocol(self), sock=sock)
        else:
            server = await loop.create_server(lambda: AMQPProtocol(self), sock=sock,
                                              ssl=ssl_context,
                                              ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        self.servers.append(server)
        if self._flow_task is None:
            self._flow_task = asyncio.create_task(self._watch_resources())
            self.node.timers.on_schedule = self._arm_timers
            self._arm_timers(self.node.timers.next_deadline())

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

    async def _watch_resources(self) -> None:
        """Check memory and free disk; while an alarm is set, block every connection that
        has published (the others are blocked by their first publish, in the protocol).
        Consumers keep draining: a connection that never published is not paused."""
        while True:
            try:
                changed = self.resources.check()
            except Exception:  # a failed reading must not stop the watch for good
                log.exception("resource check failed")
                changed = False
            if changed:
                self.blocked_reason = self.resources.blocked_reason()
                for p in list(self.protocols):
                    p.alarms_changed(self.blocked_reason)
                for listener in list(self.alarm_listeners):
                    listener()
            await asyncio.sleep(FLOW_CHECK_INTERVAL)

    async def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection with 320 CONNECTION_FORCED, wait."""
        if self._flow_task is not None:
            self._flow_task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        await close_served(self.servers, self.protocols, _force_close, timeout)


def _force_close(p: AMQPProtocol) -> None:
    if p.conn is not None:
        p.conn.close(320, "CONNECTION_FORCED - broker forced connection closure "
                     "with reason 'shutdown'")
