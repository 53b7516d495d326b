"""``leveret.Broker``: the whole broker in the current event loop.

    async with Broker(port=0) as broker:   # port 0: any free port
        connection = await aio_pika.connect(broker.url)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from leveret.broker.clock import Clock
from leveret.broker.definitions import restore
from leveret.broker.node import Limits, Node
from leveret.server.commit import Committer
from leveret.server.listener import Listener
from leveret.store.base import FsyncPolicy
from leveret.store.disk import DiskStore

log = logging.getLogger("leveret.server")


class Broker:
    def __init__(self, host: str = "127.0.0.1", port: int = 5672,
                 data_dir: str | Path | None = None, users: dict[str, str] | None = None,
                 limits: Limits | None = None, clock: Clock | None = None,
                 policies: list[dict[str, Any]] | None = None, fsync: str = "always") -> None:
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.node = Node(users=dict(users or {"guest": "guest"}), limits=limits or Limits(),
                         clock=clock or Clock())
        self.policies = policies or []
        self.fsync = FsyncPolicy.parse(fsync)
        self.store: DiskStore | None = None
        self.listener = Listener(self.node)
        self.running = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://guest:guest@{host}:{self.port}/"

    async def start(self) -> None:
        if self.data_dir is not None:
            self._open_store(self.data_dir)
        if self.policies:
            self.node.load_policies(self.policies)
        try:
            self.port = await self.listener.listen(self.host, self.port)
        except BaseException:
            self._close_store()
            raise
        self.running = True
        log.info("leveret listening on amqp://%s:%d (AMQP 0-9-1)", self.host, self.port)

    async def stop(self, timeout: float = 5.0) -> None:
        if not self.running:
            return
        self.running = False
        await self.listener.close(timeout)
        committer = self.listener.committer
        if committer is not None:
            await committer.drain()
            committer.close()
            self.listener.committer = None
        self._close_store()
        log.info("leveret stopped")

    def _open_store(self, path: Path) -> None:
        """Lock the data directory and re-create the durable definitions recorded there."""
        store = DiskStore(path, self.fsync)
        try:
            self.node.attach_store(store)
            counts = restore(self.node, store.definitions)
            self.node.attach_definitions(store.definitions, store.commit)
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
        self.listener.committer = Committer(store, lambda: [
            p.conn for p in self.listener.protocols if p.conn is not None])

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
