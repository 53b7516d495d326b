"""Federated exchanges and queues at run time: one asyncio task per link (a federated
exchange or queue and one of its upstreams), with leveret's own AMQP client on both sides.

The links follow the policies: every ``SYNC_INTERVAL`` seconds the manager lists the
exchanges and queues whose policy names a ``federation-upstream`` or a
``federation-upstream-set``, starts the links that are missing, stops those that are no
longer wanted, and hands each exchange link its downstream binding keys (the link binds
and unbinds its upstream queue to match).

An exchange link, as RabbitMQ's: declares the upstream exchange (same name unless the
upstream's ``exchange``) and the durable queue ``federation: {exchange} -> {cluster
name}[:{downstream exchange}]``, binds it with the downstream keys, consumes it and
republishes each message to the downstream exchange with its ``x-received-from`` entry
prepended; a message that already passed ``max-hops`` federation links, or came from this
cluster, is dropped (acked) so loops end. A queue link consumes the upstream queue (same
name unless ``queue``) only while the downstream queue has consumers and no messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from leveret.amqp import spec
from leveret.amqp.uri import remove_credentials
from leveret.broker import federation
from leveret.broker.federation import HEADER, Upstream
from leveret.broker.node import INTERNAL_USER, Node
from leveret.broker.shovels import local_vhost
from leveret.client import Channel, Connection, connect

log = logging.getLogger("leveret.federation")
SYNC_INTERVAL = 0.25


def _timestamp() -> str:
    t = time.localtime()
    return (f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}")


def _vhost_of(uri: str) -> str:
    path = urlsplit(uri).path
    return "/" if path in ("", "/") else unquote(path[1:])


Key = tuple[str, str, str, str]  # vhost, "exchange"|"queue", name, upstream


class Link:
    """One federation link: its task, status and (for an exchange) the bindings wanted."""

    def __init__(self, manager: FederationManager, key: Key, upstream: Upstream,
                 exchange_type: str = "direct") -> None:
        self.manager = manager
        self.vhost, self.kind, self.name, _ = key
        self.upstream = upstream
        self.exchange_type = exchange_type
        self.status = "starting"
        self.error: str | None = None
        self.timestamp = _timestamp()
        self.uri = upstream.uris[0]
        self.id = f"{zlib.crc32(repr(key).encode()):08x}"
        self.wanted: set[str] = set()
        self.bound: set[str] = set()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._conns: list[Connection] = []

    @property
    def upstream_name(self) -> str:
        if self.kind == "exchange":
            return self.upstream.exchange or self.name
        return self.upstream.queue or self.name

    def _set(self, status: str, error: str | None = None) -> None:
        self.status, self.error, self.timestamp = status, error, _timestamp()

    def want(self, keys: set[str]) -> None:
        if keys != self.wanted:
            self.wanted = keys
            self.changed.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"federation {self.vhost}/{self.name}/{self.upstream.name}")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self._close()

    def row(self, node_name: str) -> dict[str, Any]:
        row: dict[str, Any] = {"node": node_name, self.kind: self.name,
                               f"upstream_{self.kind}": self.upstream_name,
                               "type": self.kind, "vhost": self.vhost,
                               "upstream": self.upstream.name, "id": self.id,
                               "status": self.status, "uri": remove_credentials(self.uri),
                               "timestamp": self.timestamp}
        if self.status == "error":
            row["error"] = self.error
        return row

    async def _run(self) -> None:
        while True:
            self._set("starting")
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) or type(exc).__name__
                log.warning("federation link %s/%s from %s: %s", self.vhost, self.name,
                            self.upstream.name, reason)
                self._set("error", reason)
            finally:
                await self._close()
            if self.upstream.reconnect_delay <= 0:
                return
            await asyncio.sleep(self.upstream.reconnect_delay)

    async def _close(self) -> None:
        conns, self._conns = self._conns, []
        for conn in conns:
            if not conn.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def _session(self) -> None:
        self.uri = random.choice(self.upstream.uris)
        up = await connect(self.manager.resolve(self.uri))
        self._conns.append(up)
        down = await connect(self.manager.resolve(f"amqp:///{quote(self.vhost, safe='')}"))
        self._conns.append(down)
        cluster = str(up.server_properties.get("cluster_name", ""))
        uch = await up.channel()
        dch = await down.channel()
        if self.upstream.ack_mode == "on-confirm":
            await dch.confirm_select()
        self.bound = set()
        if self.kind == "exchange":
            queue = await self._declare_exchange_side(uch)
        else:
            queue = self.upstream_name
        move = _Transfer(self, uch, dch, cluster)
        await uch.basic_qos(self.upstream.prefetch)
        consuming: str | None = None
        if self.kind == "exchange":
            consuming = await uch.basic_consume(queue, move.deliver,
                                                no_ack=self.upstream.ack_mode == "no-ack")
        self._set("running")
        closers = [asyncio.ensure_future(c.wait_closed()) for c in (up, down)]
        try:
            while not any(f.done() for f in closers):
                waiter: asyncio.Future[Any]
                if self.kind == "exchange":
                    await self._sync_bindings(uch, queue)
                    self.changed.clear()
                    waiter = asyncio.ensure_future(self.changed.wait())
                else:
                    consuming = await self._toggle_queue(uch, queue, move, consuming)
                    waiter = asyncio.ensure_future(asyncio.sleep(SYNC_INTERVAL))
                await asyncio.wait([waiter, *closers], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            for f in closers:
                f.cancel()
        raise RuntimeError("connection closed")

    async def _declare_exchange_side(self, uch: Channel) -> str:
        u = self.upstream
        await uch.exchange_declare(self.upstream_name, self.exchange_type, durable=True)
        upstream_vhost = _vhost_of(self.manager.resolve(self.uri))
        queue = federation.queue_name(self.upstream_name, self.manager.node.cluster_name,
                                      upstream_vhost, self.vhost, self.name)
        args: dict[str, Any] = {"x-internal-purpose": "federation"}
        if u.expires is not None:
            args["x-expires"] = u.expires
        if u.message_ttl is not None:
            args["x-message-ttl"] = u.message_ttl
        await uch.queue_declare(queue, durable=True, arguments=args)
        return queue

    async def _sync_bindings(self, uch: Channel, queue: str) -> None:
        for key in sorted(self.wanted - self.bound):
            await uch.queue_bind(queue, self.upstream_name, key)
            self.bound.add(key)
        for key in sorted(self.bound - self.wanted):
            await uch.queue_unbind(queue, self.upstream_name, key)
            self.bound.discard(key)

    async def _toggle_queue(self, uch: Channel, queue: str, move: _Transfer,
                            consuming: str | None) -> str | None:
        """Consume upstream only while the downstream queue has consumers and is empty."""
        vh = self.manager.node.vhosts.get(self.vhost)
        q = vh.queues.get(self.name) if vh is not None else None
        hungry = q is not None and q.consumer_count > 0 and q.message_count == 0
        if hungry and consuming is None:
            return await uch.basic_consume(queue, move.deliver,
                                           no_ack=self.upstream.ack_mode == "no-ack")
        if not hungry and consuming is not None:
            await uch.basic_cancel(consuming)
            return None
        return consuming


class _Transfer:
    """Each upstream delivery republished downstream (or dropped at max-hops), acked
    upstream as the ack mode says."""

    def __init__(self, link: Link, uch: Channel, dch: Channel, cluster: str) -> None:
        self.link = link
        self.uch, self.dch = uch, dch
        self.cluster = cluster
        self.confirm = link.upstream.ack_mode == "on-confirm"
        self.no_ack = link.upstream.ack_mode == "no-ack"
        self.pending: dict[int, int] = {}
        if self.confirm:
            dch.on_confirm = self.on_confirm

    def on_confirm(self, tag: int, multiple: bool, acked: bool) -> None:
        seqs = [q for q in self.pending if q <= tag] if multiple else [tag]
        for seq in seqs:
            source_tag = self.pending.pop(seq, None)
            if source_tag is None:
                continue
            if acked:
                self.uch.ack(source_tag)
            else:
                self.uch.nack(source_tag, requeue=True)

    def forward(self, hops: list[Any]) -> bool:
        """RabbitMQ's should_forward: fewer than max-hops links passed, and not already
        been through this (downstream) cluster."""
        me = self.link.manager.node.cluster_name
        seen = any(isinstance(h, dict) and h.get("cluster-name") == me for h in hops)
        return len(hops) < self.link.upstream.max_hops and not seen

    def deliver(self, tag: int, redelivered: bool, exchange: str, key: str, props: bytes,
                body: bytes) -> None:
        p = spec.Properties.decode(props) if props else spec.Properties()
        headers = dict(p.headers or {})
        hops = headers.get(HEADER)
        hops = list(hops) if isinstance(hops, list) else []
        if self.link.kind == "exchange" and not self.forward(hops):
            if not self.no_ack:
                self.uch.ack(tag)
            return
        entry: dict[str, Any] = {"uri": remove_credentials(self.link.uri),
                                 self.link.kind: self.link.name if self.link.kind ==
                                 "exchange" else self.link.upstream_name,
                                 "redelivered": redelivered, "cluster-name": self.cluster,
                                 "vhost": _vhost_of(self.link.manager.resolve(
                                     self.link.uri))}
        headers[HEADER] = [entry, *hops]
        p.headers = headers
        if self.link.kind == "exchange":
            seq = self.dch.publish(body, self.link.name, key, p)
        else:
            seq = self.dch.publish(body, "", self.link.name, p)
        if self.confirm:
            self.pending[seq] = tag
        elif not self.no_ack:
            self.uch.ack(tag)


class FederationManager:
    """The broker's federation links, kept in line with policies, upstreams and
    bindings."""

    def __init__(self, node: Node, local_port: Callable[[], int | None]) -> None:
        self.node = node
        self.local_port = local_port
        self.links: dict[Key, Link] = {}
        self.running = False
        self._task: asyncio.Task[None] | None = None

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
        self.running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        links, self.links = list(self.links.values()), {}
        await asyncio.gather(*(link.stop() for link in links), return_exceptions=True)

    async def _loop(self) -> None:
        while self.running:
            try:
                self.sync()
            except Exception:  # never let one bad entity stop federation
                log.exception("federation sync")
            await asyncio.sleep(SYNC_INTERVAL)

    def wanted(self) -> dict[Key, tuple[Upstream, str, set[str]]]:
        """The links the policies ask for: upstream, exchange type, binding keys."""
        found: dict[Key, tuple[Upstream, str, set[str]]] = {}
        for vh in self.node.vhosts.values():
            for ex in vh.exchanges.values():
                policy = vh.policies.get(ex.policy) if ex.policy else None
                if policy is None:
                    continue
                keys = {b.routing_key for b in ex.bindings.values()}
                for u in federation.upstreams_for(policy.definition, vh.name,
                                                  self.node.parameters):
                    found[(vh.name, "exchange", ex.name, u.name)] = (u, ex.type, keys)
            for q in vh.queues.values():
                policy = vh.policies.get(q.policy) if q.policy else None
                if policy is None:
                    continue
                for u in federation.upstreams_for(policy.definition, vh.name,
                                                  self.node.parameters):
                    found[(vh.name, "queue", q.name, u.name)] = (u, "", set())
        return found

    def sync(self) -> None:
        wanted = self.wanted()
        for key in [k for k, link in self.links.items()
                    if k not in wanted or wanted[k][0] != link.upstream
                    or wanted[k][1] != link.exchange_type]:
            asyncio.get_running_loop().create_task(self.links.pop(key).stop())
        for key, (upstream, type_, keys) in wanted.items():
            link = self.links.get(key)
            if link is None:
                link = self.links[key] = Link(self, key, upstream, type_)
                link.want(keys)
                link.start()
            else:
                link.want(keys)

    def status(self, node_name: str) -> list[dict[str, Any]]:
        """RabbitMQ's /api/federation-links rows."""
        return [link.row(node_name) for link in self.links.values()]
