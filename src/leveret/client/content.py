"""Assembling message content (method, header, body frames) when it arrives in pieces.

The protocol's fast path hands a complete basic.deliver straight to ``_dispatch``; when a
message straddles two socket reads, its frames come here one by one instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from leveret.amqp import spec
from leveret.client.errors import ProtocolViolation

if TYPE_CHECKING:
    from leveret.client.connection import Connection

# (delivery_tag, redelivered, exchange, routing_key, properties_raw, body)
DeliverCallback = Callable[[int, bool, str, str, bytes, bytes], None]
# (reply_code, reply_text, exchange, routing_key, properties_raw, body)
ReturnCallback = Callable[[int, str, str, str, bytes, bytes], None]


class ContentAssembler:
    """Mixin of :class:`Channel`: content state and consumer dispatch."""

    _conn: Connection
    _consumers: dict[bytes, DeliverCallback]
    on_return: ReturnCallback | None

    def _init_content(self) -> None:
        # (consumer tag or None for a return, then the method's fields)
        self._content: tuple[Any, ...] | None = None
        self._body_size = 0
        self._props = b""
        self._parts: list[bytes] = []
        self._got = 0  # body bytes so far; -1 while waiting for the content header

    def _begin_return(self, method: spec.BasicReturn) -> None:
        self._content = (None, method.reply_code, method.reply_text,
                         method.exchange, method.routing_key)  # fmt: skip
        self._got = -1

    def _begin_deliver(self, ctag: bytes, tag: int, redelivered: bool,
                       exchange: str, routing_key: str) -> None:  # fmt: skip
        self._content = (ctag, tag, redelivered, exchange, routing_key)
        self._got = -1  # -1: waiting for the content header

    def _on_header(self, body_size: int, props: bytes) -> None:
        if self._content is None or self._got != -1:
            raise ProtocolViolation("content header without a preceding method")
        self._body_size = body_size
        self._props = props
        self._parts = []
        self._got = 0
        if body_size == 0:
            self._finish(b"")

    def _on_body(self, payload: bytes) -> None:
        if self._content is None or self._got < 0:
            raise ProtocolViolation("content body without a content header")
        self._parts.append(payload)
        self._got += len(payload)
        if self._got >= self._body_size:
            if self._got > self._body_size:
                raise ProtocolViolation("content body longer than announced")
            parts = self._parts
            self._finish(parts[0] if len(parts) == 1 else b"".join(parts))

    def _finish(self, body: bytes) -> None:
        info = self._content
        assert info is not None
        self._content = None
        self._parts = []
        if info[0] is None:
            if self.on_return is not None:
                try:
                    self.on_return(info[1], info[2], info[3], info[4], self._props, body)
                except Exception as exc:
                    self._conn._callback_failed(exc, "on_return")
        else:
            self._dispatch(info[0], info[1], info[2], info[3], info[4], self._props, body)

    def _dispatch(self, ctag: bytes, tag: int, redelivered: bool, exchange: str,
                  routing_key: str, props: bytes, body: bytes) -> None:  # fmt: skip
        callback = self._consumers.get(ctag)
        if callback is None:
            return  # in flight when its consumer was cancelled: dropped
        try:
            callback(tag, redelivered, exchange, routing_key, props, body)
        except Exception as exc:
            self._conn._callback_failed(exc, "consumer callback")
