"""``leveret.Broker``: the whole broker in the current event loop.

    async with Broker(port=0) as broker:   # port 0: any free port
        connection = await aio_pika.connect(broker.url)

It builds and starts, in order: the node, the data directory's store (restoring what it
recorded), a definitions document to import, the AMQP listeners and the management API.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from leveret.broker.clock import Clock
from leveret.broker.node import Limits, Node
from leveret.broker.rabbit_definitions import InvalidDefinition
from leveret.broker.rabbit_import import import_definitions
from leveret.broker.restore import restore
from leveret.broker.shovels import ShovelReading
from leveret.broker.stream_connection import StreamConnection
from leveret.broker.stream_stats import StreamTotals
from leveret.errors import LeveretError, StoreError
from leveret.runtime.federation import FederationManager
from leveret.runtime.shovels import ShovelManager
from leveret.server.alarms import ResourceMonitor
from leveret.server.commit import Committer
from leveret.server.listener import Listener, bind_sockets, close_sockets
from leveret.server.stream_protocol import StreamListener
from leveret.server.tls import TLSConfig, server_context
from leveret.store.base import FsyncPolicy
from leveret.store.disk import DiskStore

log = logging.getLogger("leveret.server")


class Broker:
    """``port=None`` turns the plain AMQP listener off; ``tls`` adds an AMQPS listener on
    ``tls_port``. ``memory_used`` / ``disk_free`` replace the alarms' readings (bytes).
    ``management_port`` serves the management HTTP API (None: off; 0: any free port) on
    ``management_host`` (default: ``host``), over HTTPS with ``management_tls``.
    ``stream_port`` serves RabbitMQ's stream protocol (None: off, the default; 0: any free
    port; RabbitMQ's is 5552), advertised to clients as ``stream_advertised_host`` and
    ``stream_advertised_port`` (default: ``host`` and the port bound); ``stream_tls_port``
    serves it over TLS with the ``tls`` settings (RabbitMQ's is 5551), advertised to TLS
    clients with ``stream_advertised_tls_port``."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = 5672,
                 data_dir: str | Path | None = None, users: dict[str, str] | None = None,
                 limits: Limits | None = None, clock: Clock | None = None,
                 policies: list[dict[str, Any]] | None = None, fsync: str = "always",
                 tls: TLSConfig | None = None, tls_port: int = 5671,
                 memory_used: Callable[[], int] | None = None,
                 disk_free: Callable[[], int] | None = None,
                 management_port: int | None = None, management_host: str | None = None,
                 management_tls: bool = False,
                 definitions: dict[str, Any] | None = None,
                 stream_port: int | None = None, stream_advertised_host: str | None = None,
                 stream_advertised_port: int | None = None,
                 stream_tls_port: int | None = None,
                 stream_advertised_tls_port: int | None = None) -> None:
        if port is None and tls is None:
            raise ValueError("no listener: give an AMQP port, TLS settings, or both")
        if stream_tls_port is not None and tls is None:
            raise ValueError("stream_tls_port needs the tls settings (certificate and key)")
        self.host = host
        self.port = port
        self.tls = tls
        self.tls_port = tls_port
        self.ssl_context = server_context(tls) if tls is not None else None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.users = dict(users or {})  # explicit users win over recorded ones
        self.node = Node(users=dict(users or {"guest": "guest"}), limits=limits or Limits(),
                         clock=clock or Clock())
        self.policies = policies or []
        # A RabbitMQ definitions document imported at start, before clients connect.
        self.definitions = definitions
        self.fsync = FsyncPolicy.parse(fsync)
        self.store: DiskStore | None = None
        self.resources = ResourceMonitor(self.node, self.data_dir, memory_used, disk_free)
        self.listener = Listener(self.node, self.resources)
        self.stream_port = stream_port
        self.stream_tls_port = stream_tls_port
        self.stream_listener = StreamListener(self.listener, stream_advertised_host,
                                              stream_advertised_port,
                                              stream_advertised_tls_port)
        self.management_port = management_port
        self.management_host = management_host or host
        if management_tls and self.ssl_context is None:
            raise ValueError("management_tls needs the tls settings (certificate and key)")
        self.management_tls = management_tls
        self.management: Any = None  # the ManagementServer while it runs
        # Dynamic shovels (runtime/shovels.py): started once the listeners are up.
        self.shovels = ShovelManager(self.node, lambda: self.port)
        # Federated exchanges and queues (runtime/federation.py), likewise.
        self.federation = FederationManager(self.node, lambda: self.port)
        self.running = False

    @property
    def url(self) -> str:
        """The AMQP URL (AMQPS when the plain listener is off)."""
        if self.port is None:
            return self.tls_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://guest:guest@{host}:{self.port}/"

    @property
    def tls_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqps://guest:guest@{host}:{self.tls_port}/"

    @property
    def management_url(self) -> str | None:
        """The management API's base URL (``http://host:port/``), None when it is off."""
        if self.management_port is None:
            return None
        host = self.management_host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.management_tls else "http"
        return f"{scheme}://{host}:{self.management_port}/"

    @property
    def alarms(self) -> list[str]:
        """Active resource alarms: "memory", "disk"."""
        return list(self.node.alarms)

    def shovel_status(self, node_name: str) -> list[dict[str, Any]]:
        """RabbitMQ's /api/shovels rows."""
        return self.shovels.status(node_name)

    def shovel_readings(self) -> list[ShovelReading]:
        """Each shovel's state and message counters, for /metrics."""
        return self.shovels.readings()

    def restart_shovel(self, vhost: str, name: str) -> bool:
        """Stop and start a dynamic shovel again; False if there is none of that name."""
        return self.shovels.restart(vhost, name)

    def federation_status(self, node_name: str) -> list[dict[str, Any]]:
        """RabbitMQ's /api/federation-links rows."""
        return self.federation.status(node_name)

    def stream_connections(self) -> list[StreamConnection]:
        """The stream protocol's connections, plain and TLS."""
        return self.stream_listener.connections()

    @property
    def stream_totals(self) -> StreamTotals:
        """The stream protocol's node-wide counters, for /metrics."""
        return self.stream_listener.totals

    def local_addresses(self) -> dict[object, tuple[str, int]]:
        """Each open connection -> the address it was accepted on (host, port), which the
        management API names connections by: only the socket knows it."""
        found: dict[object, tuple[str, int]] = {}
        for protocol in list(self.listener.protocols):
            transport = protocol.transport
            if protocol.conn is not None and transport is not None:
                sockname = transport.get_extra_info("sockname") or ("?", 0)
                found[protocol.conn] = (str(sockname[0]), int(sockname[1]))
        return found

    async def start(self) -> None:
        # The ports first: a port in use (another broker) must not find this broker's
        # data directory created, locked or written to.
        bound = self._bind()
        try:
            if self.data_dir is not None:
                self._open_store(self.data_dir)
        except BaseException:
            for sockets in bound.values():
                close_sockets(sockets)
            raise
        if self.policies:
            self.node.load_policies(self.policies)
        try:
            if self.definitions is not None:
                self._import_definitions(self.definitions)
            await self._listen(bound)
            if self.management_port is not None:
                await self._start_management(bound["management"])
        except BaseException:
            for sockets in bound.values():
                close_sockets(sockets)
            await self.stream_listener.close(0)
            await self.listener.close(0)
            self._close_store()
            raise
        self.running = True
        self.shovels.start()
        self.federation.start()
        for url, port, what in (("amqp", self.port, "AMQP 0-9-1"),
                                ("amqps", self.tls_port if self.ssl_context else None,
                                 "AMQP 0-9-1 over TLS"),
                                ("rabbitmq-stream", self.stream_port, "stream protocol"),
                                ("rabbitmq-stream+tls", self.stream_tls_port,
                                 "stream protocol over TLS")):
            if port is not None:
                log.info("leveret listening on %s://%s:%d (%s)", url, self.host, port, what)

    async def _listen(self, bound: dict[str, list[socket.socket]]) -> None:
        """Serve on the sockets ``_bind`` bound; ports given as 0 become the ones bound."""
        if self.port is not None:
            self.port = await self.listener.listen(self.host, self.port,
                                                   sockets=bound["amqp"])
        if self.ssl_context is not None:
            self.tls_port = await self.listener.listen(self.host, self.tls_port,
                                                       self.ssl_context,
                                                       sockets=bound["amqps"])
        if self.stream_port is not None:
            self.stream_port = await self.stream_listener.listen(
                self.host, self.stream_port, sockets=bound["stream"])
        if self.stream_tls_port is not None:
            self.stream_tls_port = await self.stream_listener.listen(
                self.host, self.stream_tls_port, self.ssl_context,
                sockets=bound["stream_tls"])

    async def stop(self, timeout: float = 5.0) -> None:
        if not self.running:
            return
        self.running = False
        await self.shovels.stop()
        await self.federation.stop()
        if self.management is not None:
            await self.management.stop()
            self.management = None
        await self.stream_listener.close(timeout)
        await self.listener.close(timeout)
        committer = self.listener.committer
        if committer is not None:
            await committer.drain()
            committer.close()
            self.listener.committer = None
            self.node.store_changed = lambda: None
        self._close_store()
        log.info("leveret stopped")

    def _bind(self) -> dict[str, list[socket.socket]]:
        """Bind every listener's sockets (raises ListenError, naming the listener)."""
        wanted = []
        if self.port is not None:
            wanted.append(("amqp", "AMQP", self.host, self.port))
        if self.ssl_context is not None:
            wanted.append(("amqps", "AMQPS", self.host, self.tls_port))
        if self.stream_port is not None:
            wanted.append(("stream", "the stream protocol", self.host, self.stream_port))
        if self.stream_tls_port is not None:
            wanted.append(("stream_tls", "the stream protocol over TLS", self.host,
                           self.stream_tls_port))
        if self.management_port is not None:
            wanted.append(("management", "the management API", self.management_host,
                           self.management_port))
        bound: dict[str, list[socket.socket]] = {}
        try:
            for key, what, host, port in wanted:
                bound[key] = bind_sockets(host, port, what)
        except BaseException:
            for sockets in bound.values():
                close_sockets(sockets)
            raise
        return bound

    async def _start_management(self, sockets: list[socket.socket] | None = None) -> None:
        from leveret.management.app import ManagementServer  # aiohttp only when on

        assert self.management_port is not None
        server = ManagementServer(self.node, self.management_host, self.management_port,
                                  self.ssl_context if self.management_tls else None,
                                  broker=self)
        await server.start(sockets)
        self.management = server
        self.management_port = server.port

    def _import_definitions(self, definitions: dict[str, Any]) -> None:
        try:
            import_definitions(self.node, definitions)
        except InvalidDefinition as exc:
            raise ValueError(f"cannot import definitions: {exc.reason}") from None
        except KeyError as exc:
            raise ValueError(f"cannot import definitions: an item lacks the key "
                             f"{exc.args[0]!r}") from None
        except StoreError:
            raise  # not the document's fault
        except (LeveretError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot import definitions: {exc}") from None
        log.info("imported definitions: %s", ", ".join(
            f"{len(definitions.get(kind) or [])} {kind}" for kind in (
                "users", "vhosts", "permissions", "policies", "exchanges", "queues",
                "bindings")))

    def _open_store(self, path: Path) -> None:
        """Lock the data directory and re-create the durable definitions recorded there."""
        store = DiskStore(path, self.fsync)
        try:
            self.node.attach_store(store)
            recorded = self.node.restore_access(store.definitions)
            counts = restore(self.node, store.definitions)
            self.node.attach_definitions(store.definitions, store.commit)
            if not recorded:
                self.node.record_access()  # a new data directory: keep the defaults
            for name, password in self.users.items():
                self.node.add_user(name, password, tags=["administrator"])
                if "/" in self.node.vhosts and ("/", name) not in self.node.permissions:
                    self.node.set_permissions("/", name)
            self.store = store
            log.info("data directory %s: restored %d exchanges, %d queues, %d bindings, "
                     "%d policies", path, counts["exchange"], counts["queue"],
                     counts["binding"], counts["policy"])
            started = time.monotonic()
            messages = self.node.recover_messages()
            store.commit()  # the logs of queues without a definition are gone for good
        except BaseException:
            self.node.attach_store(None)
            self.store = None
            store.close()
            raise
        log.info("recovered %d persistent messages in %.2f s", messages,
                 time.monotonic() - started)
        committer = Committer(store, lambda: [
            p.conn for p in self.listener.protocols if p.conn is not None
        ] + self.stream_listener.connections(), synced=self.node.store_synced)
        self.listener.committer = committer
        # What changes the store outside the AMQP input path (the management API's publish
        # and get) asks for the same group commit.
        self.node.store_changed = committer.poke

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
