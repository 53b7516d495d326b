"""Federation links: one asyncio task each (a federated exchange or queue and one of its
upstreams), with leveret's own AMQP client on both sides, building on the upstream what
RabbitMQ 3.10's links build there, so that either broker can be either end.

An exchange link (rabbit_federation_exchange_link) declares on the upstream:

* the upstream exchange, if missing, like the downstream one (same name unless the
  upstream's ``exchange``);
* the durable queue ``federation: {exchange} -> {cluster name}[:{vhost}][:{exchange}]``
  (``x-expires`` / ``x-message-ttl`` from ``expires`` / ``message-ttl``,
  ``x-internal-purpose``), which it consumes;
* the internal exchange ``{queue} A`` or ``{queue} B`` (the other one than at the last
  start, deleted once the new one is bound), of type ``x-federation-upstream`` with
  ``x-max-hops``, ``x-downstream-name`` and ``x-downstream-vhost`` so that the upstream
  drops what should not travel; ``fanout`` where the upstream refuses that type (a
  RabbitMQ without the federation plugin), the link then checking hops itself. It is
  bound to the queue, and the upstream exchange to it with each downstream binding's key
  and arguments plus an ``x-bound-from`` entry.

Each message is republished to the downstream exchange with its ``x-received-from``
entry prepended, and acknowledged upstream as ``ack-mode`` says. A queue link
(rabbit_federation_queue_link) declares the upstream queue, if missing, like the
downstream one, and consumes it (``x-priority`` -1, so upstream consumers come first)
only while the downstream queue is empty and has a consumer with room for more.

A link that is no longer wanted (its policy, upstream or exchange changed or went)
deletes its upstream queue and internal exchange unless ``resource-cleanup-mode`` is
``never``; a broker that stops leaves them, so messages wait there for its return.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from leveret.amqp import spec
from leveret.amqp.fields import Long
from leveret.amqp.uri import remove_credentials as strip_credentials
from leveret.broker import federation
from leveret.broker.exchanges.federation_upstream import TYPE_NAME, should_forward
from leveret.broker.federation import Upstream
from leveret.client.errors import AMQPClosed, ChannelClosed, ConnectionClosed

if TYPE_CHECKING:
    from leveret.client import Channel, Connection
    from leveret.runtime.federation import FederationManager

log = logging.getLogger("leveret.federation")
POLL_INTERVAL = 0.25  # how often a queue link looks at its downstream queue
Key = tuple[str, str, str, str]  # vhost, "exchange"|"queue", name, upstream
Wanted = dict[str, tuple[str, dict[str, Any]]]  # binding identity -> (key, arguments)


def _timestamp() -> str:
    t = time.localtime()
    return (f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def with_vhost(uri: str, vhost: str) -> str:
    """An upstream URI without a path names the downstream's vhost (RabbitMQ's amqp_uri
    default); one with a path keeps it."""
    parts = urlsplit(uri)
    if parts.path:
        return uri
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""),
                       parts.query, parts.fragment))


def vhost_of(uri: str) -> str:
    path = urlsplit(uri).path
    return "/" if path in ("", "/") else unquote(path[1:])


def describe(exc: BaseException, connecting: bool) -> str:
    """A link's error as RabbitMQ's status shows the common ones."""
    if isinstance(exc, ConnectionRefusedError):
        return "econnrefused"
    if isinstance(exc, socket.gaierror):
        return "nxdomain"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, AMQPClosed):
        if connecting and exc.reply_code == 403:
            return f'{{auth_failure,"{exc.reply_text}"}}'
        if connecting and exc.reply_code == 530:
            return "not_allowed"
        if exc.reply_code:
            return f'{{server_initiated_close,{exc.reply_code},<<"{exc.reply_text}">>}}'
    return str(exc) or type(exc).__name__


def _identity(key: str, arguments: dict[str, Any]) -> str:
    return repr((key, sorted(arguments.items())))


class Link:
    """What exchange and queue links share: the task that connects and reconnects,
    status, the row of /api/federation-links."""

    kind = ""

    def __init__(self, manager: FederationManager, key: Key, upstream: Upstream) -> None:
        self.manager = manager
        self.vhost, _, self.name, _ = key
        self.upstream = upstream
        self.status = "starting"
        self.error: str | None = None
        self.timestamp = _timestamp()
        self.uri = upstream.uris[0]  # as given: shown, and written in headers
        self.id = f"{zlib.crc32(repr(key).encode()):08x}"
        self.local_connection: str | None = None
        self.local_channel: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.up: Connection | None = None
        self._conns: list[Connection] = []
        self._connected = False  # both ends connected: errors are no longer login ones
        self._cleanup = False

    @property
    def upstream_name(self) -> str:
        raise NotImplementedError

    @property
    def upstream_uri(self) -> str:
        """The URI connected to: the vhost filled in."""
        return with_vhost(self.uri, self.vhost)

    def _set(self, status: str, error: str | None = None) -> None:
        self.status, self.error, self.timestamp = status, error, _timestamp()

    def start(self, after: asyncio.Future[Any] | None = None) -> None:
        """Run; ``after``: the stop of the link this one replaces (its clean-up first)."""
        self.task = asyncio.get_running_loop().create_task(
            self._run(after), name=f"federation {self.vhost}/{self.name}/{self.upstream.name}")

    async def stop(self, cleanup: bool = False) -> None:
        """Stop; ``cleanup``: delete what the link made upstream (it is no longer wanted)."""
        self._cleanup = cleanup and self.upstream.resource_cleanup_mode != "never"
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self._close()

    def row(self, node_name: str) -> dict[str, Any]:
        """RabbitMQ's /api/federation-links row, in its order; ``local_channel`` holds the
        channel number here (the management API shows the channel)."""
        row: dict[str, Any] = {"node": node_name, self.kind: self.name,
                               f"upstream_{self.kind}": self.upstream_name}
        if self.kind == "queue":
            row["consumer_tag"] = self.upstream.consumer_tag
        row.update({"type": self.kind, "vhost": self.vhost, "upstream": self.upstream.name,
                    "id": self.id, "status": self.status})
        if self.status == "error":
            row["error"] = self.error
        running = self.status == "running" and self.local_connection is not None
        if running:
            row["local_connection"] = self.local_connection
        row.update({"uri": strip_credentials(self.uri), "timestamp": self.timestamp})
        if running:
            row["local_channel"] = self.local_channel
        return row

    async def _run(self, after: asyncio.Future[Any] | None) -> None:
        if after is not None:  # however it ended
            await asyncio.wait([after])
        while True:
            self._set("starting")
            try:
                await self._session()
            except asyncio.CancelledError:
                if self._cleanup:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._clean_up(), 5)
                raise
            except Exception as exc:
                reason = describe(exc, not self._connected)
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
        self.up, self.local_connection, self.local_channel = None, None, None
        self._connected = False
        for conn in conns:
            if not conn.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def _connect(self, uri: str) -> Connection:
        from leveret.client import connect  # (loaded once a link starts: idle memory)

        conn = await connect(self.manager.resolve(uri))
        self._conns.append(conn)
        return conn

    async def _session(self) -> None:
        self.uri = random.choice(self.upstream.uris)
        up = await self._connect(self.upstream_uri)
        self.up = up
        down = await self._connect(f"amqp:///{quote(self.vhost, safe='')}")
        self._connected = True
        uch, dch = await up.channel(), await down.channel()
        if self.upstream.ack_mode == "on-confirm":
            await dch.confirm_select()
        name = up.server_properties.get("cluster_name")
        move = _Transfer(self, uch, dch, name if isinstance(name, str) else None)
        await self._build(up, uch, move)
        addresses = down.addresses
        if addresses is not None:  # as the management API names the connection
            self.local_connection = f"{_address(*addresses[0])} -> {_address(*addresses[1])}"
            self.local_channel = dch.number
        self._set("running")
        closers = [asyncio.ensure_future(c.wait_closed()) for c in (up, down)]
        try:
            while not any(f.done() for f in closers):
                waiter = asyncio.ensure_future(self._step(uch, move))
                await asyncio.wait([waiter, *closers], return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    waiter.result()  # a failed step ends the session with its error
                else:  # a connection closed: the step is moot
                    waiter.cancel()
                    # (asyncio.wait: a cancellation of this task itself still comes
                    # through, where awaiting the waiter would swallow it)
                    await asyncio.wait([waiter])
        finally:
            for f in closers:
                f.cancel()
        why = next(f.result() for f in closers if f.done())
        raise why

    async def _build(self, up: Connection, uch: Channel, move: _Transfer) -> None:
        """Declare what the link needs upstream and start consuming."""
        raise NotImplementedError

    async def _step(self, uch: Channel, move: _Transfer) -> None:
        """Wait for (and apply) the next change downstream."""
        raise NotImplementedError

    async def _clean_up(self) -> None:
        """Delete what the link declared upstream (a link no longer wanted)."""

    async def _disposable(self, up: Connection, what: str, name: str,
                          **declare: Any) -> bool:
        """On a channel of its own (an error closes it): passive-declare (False when
        missing) or delete an exchange or queue."""
        ch = await up.channel()
        try:
            if what == "exchange":
                await ch.exchange_declare(name, passive=True)
            elif what == "queue":
                await ch.queue_declare(name, passive=True)
            elif what == "delete exchange":
                await ch.exchange_delete(name)
            elif what == "delete queue":
                await ch.queue_delete(name)
            return True
        except ChannelClosed as exc:
            if exc.reply_code == 404:
                return False
            raise
        finally:
            with contextlib.suppress(Exception):
                await ch.close()


class ExchangeLink(Link):
    kind = "exchange"

    def __init__(self, manager: FederationManager, key: Key, upstream: Upstream,
                 exchange_type: str) -> None:
        super().__init__(manager, key, upstream)
        self.exchange_type = exchange_type
        self.downstream: list[tuple[str, dict[str, Any]]] = []  # bindings (key, args)
        self.changed = asyncio.Event()
        self.queue = ""
        self.internal = ""
        self.bound: Wanted = {}
        self._cmd: Channel | None = None
        self._upstream_cluster: str | None = None
        self._suffix = "B"

    @property
    def upstream_name(self) -> str:
        return self.upstream.exchange or self.name

    def want(self, bindings: list[tuple[str, dict[str, Any]]]) -> None:
        if bindings != self.downstream:
            self.downstream = bindings
            self.changed.set()

    async def _build(self, up: Connection, uch: Channel, move: _Transfer) -> None:
        u = self.upstream
        vhost = self.manager.node.vhosts.get(self.vhost)
        ex = vhost.exchanges.get(self.name) if vhost is not None else None
        if ex is None:
            raise RuntimeError(f"exchange '{self.name}' is gone")
        self._upstream_cluster = move.upstream_cluster
        self._cmd = await up.channel()
        if not await self._disposable(up, "exchange", self.upstream_name):
            await uch.exchange_declare(self.upstream_name, ex.type, durable=ex.durable,
                                       auto_delete=ex.auto_delete, internal=ex.internal,
                                       arguments=ex.arguments)
        me = self.manager.node.cluster_name
        self.queue = federation.queue_name(self.upstream_name, me, vhost_of(self.upstream_uri),
                                           self.vhost, self.name)
        await uch.queue_declare(self.queue, durable=True,
                                arguments=federation.queue_arguments(u))
        if u.ack_mode != "no-ack":
            await uch.basic_qos(u.prefetch)
        await uch.basic_consume(self.queue, move.deliver, no_ack=u.ack_mode == "no-ack")
        # the other of A and B than the one there now (B at first, as RabbitMQ)
        names = {s: federation.internal_exchange_name(self.queue, s) for s in "AB"}
        has = {s: await self._disposable(up, "exchange", n) for s, n in names.items()}
        self._suffix = "A" if has["B"] and not has["A"] else "B"
        old = "B" if self._suffix == "A" else "A"
        self.internal = names[self._suffix]
        await self._disposable(up, "delete exchange", self.internal)
        await self._declare_internal(uch)
        await uch.queue_bind(self.queue, self.internal, "")
        self.bound = {}
        await self._sync_bindings()
        if has[old]:
            await self._disposable(up, "delete exchange", names[old])

    async def _declare_internal(self, uch: Channel) -> None:
        """The x-federation-upstream exchange, over a connection of its own (a broker
        without the type closes the connection, 503); then a fanout one on ``uch``."""
        args = federation.internal_exchange_arguments(
            self.upstream, self.manager.node.cluster_name, self.vhost)
        flags = {"durable": True, "auto_delete": True, "internal": True}
        try:
            from leveret.client import connect

            conn = await connect(self.manager.resolve(self.upstream_uri))
            try:
                ch = await conn.channel()
                await ch.exchange_declare(self.internal, TYPE_NAME, arguments=args, **flags)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
        except ConnectionClosed as exc:
            if exc.reply_code != 503:
                raise
            await uch.exchange_declare(self.internal, "fanout",
                                       arguments=dict(federation.PURPOSE), **flags)

    def _wanted(self) -> Wanted:
        found: Wanted = {}
        for key, args in self.downstream:
            upstream_args = federation.upstream_binding(
                args, self.upstream.max_hops, self._upstream_cluster,
                vhost_of(self.upstream_uri),
                self.manager.node.cluster_name, self.vhost, self.name, self._suffix)
            if upstream_args is not None:
                found.setdefault(_identity(key, upstream_args), (key, upstream_args))
        return found

    async def _sync_bindings(self) -> None:
        cmd = self._cmd
        assert cmd is not None
        wanted = self._wanted()
        for ident, (key, args) in wanted.items():
            if ident not in self.bound:
                await cmd.exchange_bind(self.internal, self.upstream_name, key, args)
                self.bound[ident] = (key, args)
        for ident in [i for i in self.bound if i not in wanted]:
            key, args = self.bound.pop(ident)
            await cmd.exchange_unbind(self.internal, self.upstream_name, key, args)

    async def _step(self, uch: Channel, move: _Transfer) -> None:
        self.changed.clear()
        await self._sync_bindings()
        await self.changed.wait()

    async def _clean_up(self) -> None:
        if self.up is not None and not self.up.is_closed and self.queue:
            await self._disposable(self.up, "delete queue", self.queue)
            await self._disposable(self.up, "delete exchange", self.internal)


class QueueLink(Link):
    kind = "queue"

    def __init__(self, manager: FederationManager, key: Key, upstream: Upstream) -> None:
        super().__init__(manager, key, upstream)
        self.consuming = False

    @property
    def upstream_name(self) -> str:
        return self.upstream.queue or self.name

    def _queue(self) -> Any:
        vhost = self.manager.node.vhosts.get(self.vhost)
        return vhost.queues.get(self.name) if vhost is not None else None

    async def _build(self, up: Connection, uch: Channel, move: _Transfer) -> None:
        u = self.upstream
        q = self._queue()
        if q is None:
            raise RuntimeError(f"queue '{self.name}' is gone")
        caps = up.server_properties.get("capabilities")
        if not (isinstance(caps, dict) and caps.get("consumer_priorities") is True):
            raise RuntimeError("{error,upstream_lacks_consumer_priorities}")
        # only if missing (RabbitMQ 3.10.8 checks with a passive declare first), so an
        # existing upstream queue's arguments need not match
        if not await self._disposable(up, "queue", self.upstream_name):
            await uch.queue_declare(self.upstream_name, durable=q.durable,
                                    auto_delete=q.auto_delete, arguments=q.arguments)
        if u.ack_mode != "no-ack":
            await uch.basic_qos(u.prefetch)
        self.consuming = False

    def _hungry(self) -> bool:
        """RabbitMQ's run condition: the downstream queue is empty and has a consumer
        of priority 0 or more with room for another message."""
        q = self._queue()
        return q is not None and q.message_count == 0 and any(
            c.priority >= 0 and c.can_take() for c in q.consumers)

    async def _step(self, uch: Channel, move: _Transfer) -> None:
        hungry = self._hungry()
        if hungry and not self.consuming:
            await uch.basic_consume(self.upstream_name, move.deliver,
                                    no_ack=self.upstream.ack_mode == "no-ack",
                                    consumer_tag=self.upstream.consumer_tag,
                                    arguments={"x-priority": Long(-1)})
            self.consuming = True
        elif not hungry and self.consuming:
            await uch.basic_cancel(self.upstream.consumer_tag)
            self.consuming = False
        await asyncio.sleep(POLL_INTERVAL)


class _Transfer:
    """Each upstream delivery republished downstream (or, past max-hops, dropped),
    acknowledged upstream as the ack mode says (rabbit_federation_link_util:forward)."""

    def __init__(self, link: Link, uch: Channel, dch: Channel,
                 upstream_cluster: str | None) -> None:
        self.link = link
        self.uch, self.dch = uch, dch
        self.upstream_cluster = upstream_cluster
        self.safe_uri = strip_credentials(link.uri)
        self.upstream_vhost = vhost_of(link.upstream_uri)
        self.confirm = link.upstream.ack_mode == "on-confirm"
        self.no_ack = link.upstream.ack_mode == "no-ack"
        self.pending: dict[int, int] = {}
        if self.confirm:
            dch.on_confirm = self.on_confirm

    def on_confirm(self, tag: int, multiple: bool, acked: bool) -> None:
        seqs = [q for q in self.pending if q <= tag] if multiple else [tag]
        for seq in seqs:
            source_tag = self.pending.pop(seq, None)
            if source_tag is None or self.uch.is_closed:
                continue
            if acked:
                self.uch.ack(source_tag)
            else:
                self.uch.nack(source_tag, requeue=True)

    def deliver(self, tag: int, redelivered: bool, exchange: str, key: str, props: bytes,
                body: bytes) -> None:
        link = self.link
        p = spec.Properties.decode(props) if props else spec.Properties()
        headers = dict(p.headers or {})
        if link.kind == "exchange":
            # the upstream may not filter (a fanout internal exchange): check here too
            if not should_forward(headers, link.upstream.max_hops,
                                  link.manager.node.cluster_name, link.vhost):
                if not self.no_ack:
                    self.uch.ack(tag)
                return
            p.headers = federation.exchange_headers(
                headers, self.safe_uri, link.name, redelivered, self.upstream_cluster,
                self.upstream_vhost)
            destination, routing_key = link.name, key
        else:
            p.headers = federation.queue_headers(headers, self.safe_uri, link.name,
                                                 redelivered, exchange, key)
            destination, routing_key = "", link.name
        if not link.upstream.trust_user_id:
            p.user_id = None
        seq = self.dch.publish(body, destination, routing_key, p)
        if self.confirm:
            self.pending[seq] = tag
        elif not self.no_ack:
            self.uch.ack(tag)
