"""How the client's pieces see each other: the connection as its channels and publishers
need it, a channel as the frame reader and a publisher need it. Typed here, apart from the
classes, so that ``channel``, ``connection``, ``protocol`` and ``publisher`` import one way
only (tests/test_import_cycles.py). The members are the package's private ones: these are
seams inside ``leveret.client``, not API.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from leveret.amqp import spec
from leveret.amqp.content import ContentHead
from leveret.client.errors import AMQPClosed


class ConnectionLink(Protocol):
    """The connection under a channel: writes, the loop, and error reporting."""

    frame_max: int
    _loop: asyncio.AbstractEventLoop
    _wbuf: bytearray  # frames queued for the next write
    _flush_pending: bool

    def _schedule_flush(self) -> None: ...
    def _send(self, data: bytes) -> None: ...
    def _send_large(self, body: bytes) -> None: ...
    def _send_method(self, channel: int, method: spec.Method) -> None: ...
    def _forget_channel(self, number: int) -> None: ...
    def _callback_failed(self, exc: BaseException, what: str) -> None: ...
    async def drain(self) -> None: ...


class ChannelLink(Protocol):
    """A channel as its connection and its publishers see it."""

    number: int
    _conn: ConnectionLink
    _closed: AMQPClosed | None
    _confirm: bool
    _seq: int  # the last publish sequence number (confirm mode)
    _unconfirmed: set[int]

    def _dispatch(self, ctag: bytes, tag: int, redelivered: bool, exchange: str,
                  routing_key: str, props: bytes, body: bytes) -> None: ...
    def _on_confirm(self, tag: int, multiple: bool, acked: bool) -> None: ...
    def _on_method(self, method: spec.Method) -> None: ...
    def _on_content(self, head: ContentHead, properties: bytes, body: bytes) -> None: ...
    def _set_closed(self, exc: AMQPClosed) -> None: ...
