"""``leveret.Broker``: the whole broker in the current event loop.

    async with Broker(port=0) as broker:   # port 0: any free port
        connection = await aio_pika.connect(broker.url)
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any

from leveret.broker.clock import Clock
from leveret.broker.node import Limits, Node
from leveret.server.listener import Listener

log = logging.getLogger("leveret.server")


class Broker:
    def __init__(self, host: str = "127.0.0.1", port: int = 5672,
                 data_dir: str | Path | None = None, users: dict[str, str] | None = None,
                 limits: Limits | None = None, clock: Clock | None = None,
                 policies: list[dict[str, Any]] | None = None) -> None:
        self.host = host
        self.port = port
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.node = Node(users=dict(users or {"guest": "guest"}), limits=limits or Limits(),
                         clock=clock or Clock())
        if policies:
            self.node.load_policies(policies)
        self.listener = Listener(self.node)
        self.running = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"amqp://guest:guest@{host}:{self.port}/"

    async def start(self) -> None:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = await self.listener.listen(self.host, self.port)
        self.running = True
        log.info("leveret listening on amqp://%s:%d (AMQP 0-9-1)", self.host, self.port)

    async def stop(self, timeout: float = 5.0) -> None:
        if not self.running:
            return
        self.running = False
        await self.listener.close(timeout)
        log.info("leveret stopped")

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
