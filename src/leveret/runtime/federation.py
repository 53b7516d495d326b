"""Federated exchanges and queues at run time: the links (runtime/federation_links.py)
kept in line with policies, upstreams and bindings.

Every ``SYNC_INTERVAL`` seconds the manager lists the exchanges and queues whose policy
names a ``federation-upstream`` or a ``federation-upstream-set``, starts the links that
are missing, stops those no longer wanted (which then clean up upstream, as RabbitMQ's
do), and hands each exchange link the downstream exchange's bindings. Parameters and
policies are durable, so the links come back with the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from leveret.broker import federation
from leveret.broker.federation import Upstream
from leveret.broker.node import INTERNAL_USER, Node
from leveret.broker.shovels import local_vhost
from leveret.runtime.federation_links import ExchangeLink, Key, Link, QueueLink

log = logging.getLogger("leveret.federation")
SYNC_INTERVAL = 0.25

# what a link is made of: upstream, exchange type ("" for a queue), downstream bindings
Wanted = tuple[Upstream, str, list[tuple[str, dict[str, Any]]]]


class FederationManager:
    """The broker's federation links."""

    def __init__(self, node: Node, local_port: Callable[[], int | None]) -> None:
        self.node = node
        self.local_port = local_port
        self.links: dict[Key, Link] = {}
        self.running = False
        self._task: asyncio.Task[None] | None = None
        self._stopping: dict[Key, asyncio.Future[None]] = {}

    def resolve(self, uri: str) -> str:
        """The URI to connect to: one without a host means this broker (the internal
        user)."""
        parts = urlsplit(uri)
        if parts.hostname:
            return uri
        port = self.local_port()
        if port is None:
            raise RuntimeError("this broker has no AMQP listener for a local federation end")
        path = "/" + quote(local_vhost(uri) or "/", safe="")
        return urlunsplit(("amqp", f"{INTERNAL_USER}:{quote(self.node.internal_password)}"
                                   f"@127.0.0.1:{port}", path, parts.query, ""))

    def start(self) -> None:
        self.running = True
        self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                            name="federation sync")

    async def stop(self) -> None:
        """The broker stops: links end, and what they made upstream stays there."""
        self.running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        links, self.links = list(self.links.values()), {}
        await asyncio.gather(*(link.stop() for link in links), *self._stopping.values(),
                             return_exceptions=True)
        self._stopping.clear()

    async def _loop(self) -> None:
        while self.running:
            try:
                self.sync()
            except Exception:  # never let one bad entity stop federation
                log.exception("federation sync")
            await asyncio.sleep(SYNC_INTERVAL)

    def wanted(self) -> dict[Key, Wanted]:
        """The links the policies ask for."""
        found: dict[Key, Wanted] = {}
        for vh in self.node.vhosts.values():
            for ex in vh.exchanges.values():
                policy = vh.policies.get(ex.policy) if ex.policy else None
                if policy is None:
                    continue
                bindings = [(b.routing_key, dict(b.arguments)) for b in ex.bindings.values()]
                for u in federation.upstreams_for(policy.definition, vh.name,
                                                  self.node.parameters):
                    found[(vh.name, "exchange", ex.name, u.name)] = (u, ex.type, bindings)
            for q in vh.queues.values():
                policy = vh.policies.get(q.policy) if q.policy else None
                if policy is None:
                    continue
                for u in federation.upstreams_for(policy.definition, vh.name,
                                                  self.node.parameters):
                    found[(vh.name, "queue", q.name, u.name)] = (u, "", [])
        return found

    def sync(self) -> None:
        wanted = self.wanted()
        loop = asyncio.get_running_loop()
        for key in [k for k, link in self.links.items() if k not in wanted
                    or wanted[k][0] != link.upstream
                    or wanted[k][1] != getattr(link, "exchange_type", "")]:
            stopping = loop.create_task(self.links.pop(key).stop(cleanup=True))
            self._stopping[key] = stopping
            stopping.add_done_callback(functools.partial(self._stopped, key))
        for key, (upstream, type_, bindings) in wanted.items():
            link = self.links.get(key)
            if link is None:
                link = self.links[key] = (ExchangeLink(self, key, upstream, type_)
                                          if type_ else QueueLink(self, key, upstream))
                link.start(after=self._stopping.get(key))
            if isinstance(link, ExchangeLink):
                link.want(bindings)

    def _stopped(self, key: Key, done: asyncio.Future[None]) -> None:
        if self._stopping.get(key) is done:
            del self._stopping[key]

    def status(self, node_name: str) -> list[dict[str, Any]]:
        """RabbitMQ's /api/federation-links rows (``local_channel``: the number)."""
        return [link.row(node_name) for link in self.links.values()]
