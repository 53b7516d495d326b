"""A TCP proxy on loopback that can cut every connection through it, to simulate a broker
restart (or a network blip) on any broker, RabbitMQ included, without restarting it."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlparse, urlunparse


class Proxy:
    def __init__(self, target_url: str) -> None:
        self.target = urlparse(target_url)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.accepting = True

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        netloc = f"{self.target.username}:{self.target.password}@127.0.0.1:{port}"
        return urlunparse(self.target._replace(netloc=netloc))

    async def start(self) -> Proxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(self.target.hostname,
                                                             self.target.port)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def cut(self) -> None:
        """Drop every open connection (new ones are accepted)."""
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
