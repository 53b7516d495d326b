"""Dynamic shovels at run time: one asyncio task per ``shovel`` runtime parameter, moving
messages from a source to a destination with leveret's own AMQP client on both sides.

A URI without a host (``amqp://``, ``amqp:///vhost``) is this broker: the shovel connects to
its own AMQP listener over loopback as ``node.INTERNAL_USER`` with the process's internal
password (RabbitMQ uses a direct, in-VM connection with full rights there).

Acknowledgement modes, as RabbitMQ's: ``on-confirm`` publishes with confirms and acks at
the source only when the destination confirmed (nothing is lost; what was in flight when a
side went away is redelivered, so duplicates are possible); ``on-publish`` acks once
published; ``no-ack`` consumes without acks. A side that goes away terminates the shovel
with the reason; it starts again after ``reconnect-delay`` seconds (0: it stays down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from leveret.amqp import spec
from leveret.amqp import uri as amqp_uri
from leveret.amqp.fields import Long
from leveret.broker import shovels
from leveret.broker.node import INTERNAL_USER, Node
from leveret.broker.shovels import ShovelReading, ShovelSpec
from leveret.client.errors import AMQPClosed

if TYPE_CHECKING:
    from leveret.client import Channel, Connection

log = logging.getLogger("leveret.shovel")

# RabbitMQ's status reason (an Erlang string, as ~p prints it) of a shovel that stopped
# because the broker closed a connection or channel while the shovel was setting up
NEEDED_A_RESTART = '"needed a restart"'


class SetupRefused(Exception):
    """The broker closed a channel or connection while the shovel declared its source or
    destination (a missing exchange, a refused queue): RabbitMQ's "needed a restart"."""


def _timestamp() -> str:
    t = time.localtime()
    return (f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour}:{t.tm_min:02d}:"
            f"{t.tm_sec:02d}")


class Shovel:
    """One dynamic shovel: its task, state and reason."""

    def __init__(self, manager: ShovelManager, spec_: ShovelSpec) -> None:
        self.manager = manager
        self.spec = spec_
        self.state = "starting"
        self.reason: str | None = None
        self.timestamp = _timestamp()
        self.transferred = 0  # settled: acked at the source as the ack mode says
        self.published = 0    # published at the destination (a redelivery counts again)
        self.task: asyncio.Task[None] | None = None
        self._conns: list[Connection] = []
        self._uris = ("", "")  # the URIs of the running session's two ends

    def _set(self, state: str, reason: str | None = None) -> None:
        self.state, self.reason, self.timestamp = state, reason, _timestamp()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"shovel {self.spec.vhost}/{self.spec.name}")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self._close()

    def row(self, node_name: str) -> dict[str, Any]:
        row: dict[str, Any] = {"node": node_name, "timestamp": self.timestamp,
                               "name": self.spec.name, "vhost": self.spec.vhost,
                               "type": "dynamic", "state": self.state}
        if self.state == "terminated":
            row["reason"] = self.reason or "shutdown"
        elif self.state == "running":
            row.update(self.spec.status_fields(*self._uris))
        return row

    # -- the task ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._set("starting")
            try:
                finished = await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a side went away or refused: try again later
                reason = _reason(exc)
                log.warning("shovel %s in vhost %s: %s", self.spec.name, self.spec.vhost,
                            reason)
                self._set("terminated", reason)
            else:
                if finished:
                    self._set("terminated", "finished")
                    await self._close()
                    self.manager.finished(self)
                    return
            finally:
                await self._close()
            if self.spec.reconnect_delay <= 0:
                return
            await asyncio.sleep(self.spec.reconnect_delay)

    async def _close(self) -> None:
        conns, self._conns = self._conns, []
        for conn in conns:
            if not conn.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def _connect(self, uris: list[str]) -> tuple[Connection, str]:
        """A connection to one of ``uris``: as RabbitMQ's shovel, one picked at random,
        then another of those left while they fail; the last failure is raised."""
        left = list(dict.fromkeys(uris))
        while True:
            uri = random.choice(left)
            try:
                from leveret.client import connect  # (loaded once a shovel starts)

                conn = await connect(self.manager.resolve(uri, self.spec.vhost))
            except Exception:
                left.remove(uri)
                if not left:
                    raise
                continue
            self._conns.append(conn)
            return conn, uri

    async def _ensure_queue(self, conn: Connection, queue: str,
                            args: dict[str, Any]) -> int:
        """RabbitMQ's ensure_queue: a passive declare, and a durable declare when the queue
        does not exist. Returns its message count."""
        ch = await conn.channel()
        try:
            ok = await ch.queue_declare(queue, passive=True)
            return int(ok.message_count)
        except Exception:
            if conn.is_closed:
                raise
        ch = await conn.channel()
        ok = await ch.queue_declare(queue, durable=True, arguments=args or None)
        with contextlib.suppress(Exception):
            await ch.close()
        return int(ok.message_count)

    async def _source(self, src: Connection, sch: Channel) -> tuple[str, int | None]:
        """Declare the source (RabbitMQ's: the queue if missing, or an exclusive queue bound
        to the exchange); the queue's name and how many messages to move (None: all)."""
        s = self.spec
        if s.src_queue is not None:
            count = await self._ensure_queue(src, s.src_queue, s.src_queue_args)
            queue = s.src_queue
        else:
            count = 0
            queue = (await sch.queue_declare("", exclusive=True)).queue
            await sch.queue_bind(queue, s.src_exchange or "", s.src_exchange_key)
        if s.delete_after == "queue-length":
            return queue, count
        if isinstance(s.delete_after, int):
            return queue, s.delete_after
        return queue, None

    def _route(self, exchange: str, key: str) -> tuple[str, str]:
        """Where a message goes at the destination: RabbitMQ's publish fields."""
        s = self.spec
        if s.dest_queue is not None:
            return "", s.dest_queue
        return (s.dest_exchange if s.dest_exchange is not None else exchange,
                s.dest_exchange_key if s.dest_exchange_key is not None else key)

    async def _session(self) -> bool:
        """Connect both sides and move messages until one goes away (raises) or a
        ``src-delete-after`` count is reached (returns True)."""
        s = self.spec
        src, src_uri = await self._connect(s.src_uris)
        dest, dest_uri = await self._connect(s.dest_uris)
        try:
            if s.dest_queue is not None:
                await self._ensure_queue(dest, s.dest_queue, s.dest_queue_args)
            dch = await dest.channel()
            if s.ack_mode == "on-confirm":
                await dch.confirm_select()
            sch = await src.channel()
            queue, limit = await self._source(src, sch)
            if limit is not None and limit - self.transferred <= 0:
                return True
            remaining = None if limit is None else limit - self.transferred
            move = _Transfer(self, sch, dch, remaining, self._headers(src_uri, dest_uri))
            done = move.done
            await sch.basic_qos(s.prefetch)
            await sch.basic_consume(queue, move.deliver, no_ack=s.ack_mode == "no-ack",
                                    arguments=s.consumer_args or None)
        except AMQPClosed as exc:
            if exc.reply_code:
                raise SetupRefused(str(exc)) from exc
            raise
        self._uris = (src_uri, dest_uri)
        self._set("running")
        closers = [asyncio.ensure_future(c.wait_closed()) for c in (src, dest)]
        waited: list[asyncio.Future[Any]] = [done, *closers]
        try:
            await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in closers:
                f.cancel()
        if done.done():
            await dest.drain()
            return True
        for f in closers:
            if f.done() and not f.cancelled():
                raise f.result()
        raise RuntimeError("connection closed")

    def _headers(self, src_uri: str, dest_uri: str) -> dict[str, Any] | None:
        s = self.spec
        if not s.forward_headers:
            return None
        table: dict[str, Any] = {
            "shovelled-by": self.manager.node.cluster_name, "shovel-type": "dynamic",
            "shovel-name": s.name, "shovel-vhost": s.vhost,
            "src-uri": amqp_uri.remove_credentials(src_uri),
            "dest-uri": amqp_uri.remove_credentials(dest_uri)}
        if s.src_queue is not None:
            table["src-queue"] = s.src_queue
        else:
            table["src-exchange"] = s.src_exchange
            table["src-exchange-key"] = s.src_exchange_key
        for key, value in (("dest-exchange", s.dest_exchange),
                           ("dest-exchange-key", s.dest_exchange_key),
                           ("dest-queue", s.dest_queue)):
            if value is not None:
                table[key] = value
        return table

    def _properties(self, raw: bytes, table: dict[str, Any] | None) -> spec.Properties:
        props = spec.Properties.decode(raw) if raw else spec.Properties()
        for key, value in self.spec.publish_properties.items():
            setattr(props, key, value)
        if table is not None or self.spec.timestamp_header:
            headers = dict(props.headers or {})
            if table is not None:
                before = headers.get("x-shovelled")
                headers["x-shovelled"] = [table, *(before if isinstance(before, list)
                                                   else [])]
            if self.spec.timestamp_header:
                headers["x-shovelled-timestamp"] = Long(int(time.time()))  # as RabbitMQ
            props.headers = headers
        return props


def _reason(exc: Exception) -> str:
    """A terminated shovel's reason: RabbitMQ's where it reports one (a setup the broker
    refused), else what failed (RabbitMQ only logs a failed or lost connection)."""
    if isinstance(exc, SetupRefused):
        return NEEDED_A_RESTART
    return str(exc) or type(exc).__name__


class _Transfer:
    """One session's bookkeeping: each delivery published at the destination, acked at the
    source as the ack mode says, counted towards ``src-delete-after``."""

    def __init__(self, shovel: Shovel, sch: Channel, dch: Channel, remaining: int | None,
                 headers: dict[str, Any] | None) -> None:
        self.shovel = shovel
        self.sch, self.dch = sch, dch
        self.remaining = remaining
        self.headers = headers
        s = shovel.spec
        self.props_needed = bool(headers or s.timestamp_header or s.publish_properties)
        self.confirm = s.ack_mode == "on-confirm"
        self.no_ack = s.ack_mode == "no-ack"
        self.pending: dict[int, int] = {}  # destination sequence -> source delivery tag
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.confirm:
            dch.on_confirm = self.on_confirm

    def settled(self, n: int) -> None:
        self.shovel.transferred += n
        if self.remaining is not None:
            self.remaining -= n
            if self.remaining <= 0 and not self.done.done():
                self.done.set_result(None)

    def on_confirm(self, tag: int, multiple: bool, acked: bool) -> None:
        seqs = [q for q in self.pending if q <= tag] if multiple else [tag]
        n = 0
        for seq in seqs:
            source_tag = self.pending.pop(seq, None)
            if source_tag is None:
                continue
            n += 1
            if acked:
                self.sch.ack(source_tag)
            else:
                self.sch.nack(source_tag, requeue=False)  # as RabbitMQ's shovel does
        self.settled(n)

    def deliver(self, tag: int, redelivered: bool, exchange: str, key: str, props: bytes,
                body: bytes) -> None:
        if self.done.done():
            return  # past the delete-after count: left at the source (requeued)
        out: bytes | spec.Properties = props
        if self.props_needed:
            out = self.shovel._properties(props, self.headers)
        x, k = self.shovel._route(exchange, key)
        seq = self.dch.publish(body, x, k, out)
        self.shovel.published += 1
        if self.confirm:
            self.pending[seq] = tag
            return
        if not self.no_ack:
            self.sch.ack(tag)
        self.settled(1)


class ShovelManager:
    """The broker's dynamic shovels: started, replaced and stopped as their parameters
    change (``Node.parameter_listeners``)."""

    def __init__(self, node: Node, local_port: Callable[[], int | None]) -> None:
        self.node = node
        self.local_port = local_port
        self.shovels: dict[tuple[str, str], Shovel] = {}
        self.running = False
        node.parameter_listeners.append(self._changed)

    def resolve(self, uri: str, vhost: str) -> str:
        """The URI to connect to: one without a host means this broker, reached over
        loopback without the URI's query (RabbitMQ's direct connection takes none of the
        network parameters)."""
        parsed = amqp_uri.parse(uri)
        if parsed.host is not None:
            return uri
        port = self.local_port()
        if port is None:
            raise RuntimeError("this broker has no AMQP listener for a local shovel end")
        # RabbitMQ's amqp_uri: no path is the vhost "/" (not the shovel's own vhost)
        path = "/" + quote(parsed.vhost or "/", safe="")
        credentials = f"{INTERNAL_USER}:{quote(self.node.internal_password)}"
        return f"amqp://{credentials}@127.0.0.1:{port}{path}"

    def start(self) -> None:
        self.running = True
        for (component, vhost, name), value in list(self.node.parameters.items()):
            if component == shovels.COMPONENT:
                self._start(vhost, name, value)

    async def stop(self) -> None:
        self.running = False
        running, self.shovels = list(self.shovels.values()), {}
        await asyncio.gather(*(s.stop() for s in running), return_exceptions=True)

    def _start(self, vhost: str, name: str, value: dict[str, Any]) -> None:
        shovel = Shovel(self, shovels.parse(vhost, name, value))
        self.shovels[(vhost, name)] = shovel
        shovel.start()

    def _changed(self, component: str, vhost: str, name: str, value: Any) -> None:
        if component != shovels.COMPONENT or not self.running:
            return
        old = self.shovels.pop((vhost, name), None)
        if old is not None:
            asyncio.get_running_loop().create_task(old.stop())
        if value is not None:
            self._start(vhost, name, value)

    def finished(self, shovel: Shovel) -> None:
        """``src-delete-after`` reached: the shovel and its parameter go, as in RabbitMQ."""
        key = (shovel.spec.vhost, shovel.spec.name)
        if self.shovels.get(key) is shovel:
            del self.shovels[key]
            self.node.clear_parameter(shovels.COMPONENT, *key)
            self.node.store_changed()

    def status(self, node_name: str) -> list[dict[str, Any]]:
        """RabbitMQ's /api/shovels rows."""
        return [s.row(node_name) for s in self.shovels.values()]

    def readings(self) -> list[ShovelReading]:
        """Each shovel's state and counters, for /metrics."""
        return [ShovelReading(s.spec.vhost, s.spec.name, s.state, s.published, s.transferred)
                for s in self.shovels.values()]

    def restart(self, vhost: str, name: str) -> bool:
        value = self.node.parameters.get((shovels.COMPONENT, vhost, name))
        if value is None or not self.running:
            return False
        self._changed(shovels.COMPONENT, vhost, name, value)
        return True
