"""Channels: synchronous methods, consumers, acks, publishing and publisher confirms."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from typing import Any

from leveret.amqp import spec
from leveret.amqp.content import ContentHead
from leveret.client.errors import AMQPClosed, ChannelClosed, ProtocolViolation
from leveret.client.links import ConnectionLink
from leveret.client.publisher import Publisher, encode_properties

__all__ = ["Channel", "ConfirmCallback", "DeliverCallback", "ReturnCallback"]

# (delivery_tag, redelivered, exchange, routing_key, properties_raw, body)
DeliverCallback = Callable[[int, bool, str, str, bytes, bytes], None]
# (reply_code, reply_text, exchange, routing_key, properties_raw, body)
ReturnCallback = Callable[[int, str, str, str, bytes, bytes], None]
# (delivery_tag, multiple, acked)
ConfirmCallback = Callable[[int, bool, bool], None]

# basic.ack / basic.nack frames are fixed-size: pack them whole, frame end included
_ACK = struct.Struct(">BHIHHQBB")


class Channel:
    """An open channel. Get one with ``await connection.channel()``."""

    def __init__(self, connection: ConnectionLink, number: int) -> None:
        self._conn = connection
        self.number = number
        self._lock = asyncio.Lock()  # one synchronous method in flight at a time
        self._waiter: asyncio.Future[spec.Method] | None = None
        self._closed: AMQPClosed | None = None
        self._closed_event = asyncio.Event()
        self._consumers: dict[bytes, DeliverCallback] = {}
        self._pending_consumer: DeliverCallback | None = None
        self._publishers: dict[tuple[str, str, bytes, bool], Publisher] = {}
        self.on_return: ReturnCallback | None = None
        self.on_cancel: Callable[[str], None] | None = None
        self.on_confirm: ConfirmCallback | None = None
        # publisher confirms: sequence numbers in flight, counts of settled ones
        self._confirm = False
        self._seq = 0
        self._unconfirmed: set[int] = set()
        self._confirm_low = 1  # every sequence number below this is settled
        self._confirm_waiter: asyncio.Future[None] | None = None
        self._confirm_target = 0
        self.acked = 0
        self.nacked = 0

    # -- state ---------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed is not None

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed)

    async def wait_closed(self) -> AMQPClosed:
        """Wait until the channel is closed; returns why (never raises it)."""
        await self._closed_event.wait()
        assert self._closed is not None
        return self._closed

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed.with_traceback(None)

    def _set_closed(self, exc: AMQPClosed) -> None:
        if self._closed is not None:
            return
        self._closed = exc
        self._closed_event.set()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        if self._confirm_waiter is not None and not self._confirm_waiter.done():
            self._confirm_waiter.set_exception(exc)

    # -- synchronous methods -------------------------------------------------------------
    async def _rpc(
        self, method: spec.Method, reply: type[spec.Method],
        consumer: DeliverCallback | None = None,
    ) -> Any:  # fmt: skip
        self._check_open()
        async with self._lock:
            self._check_open()
            fut: asyncio.Future[spec.Method] = self._conn._loop.create_future()
            self._waiter = fut
            # basic.consume: consume-ok registers this callback (see _on_method)
            self._pending_consumer = consumer
            self._conn._send_method(self.number, method)
            try:
                answer = await fut
            finally:
                self._waiter = None
                self._pending_consumer = None
        if not isinstance(answer, reply):
            raise ProtocolViolation(f"expected {reply.NAME}, got {answer.NAME}")
        return answer

    async def _open(self) -> None:
        await self._rpc(spec.ChannelOpen(), spec.ChannelOpenOk)

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        if self._closed is not None:
            return
        with contextlib.suppress(AMQPClosed):  # the server closed it first: fine too
            await self._rpc(spec.ChannelClose(reply_code, reply_text, 0, 0), spec.ChannelCloseOk)
        self._set_closed(ChannelClosed(reply_code, "closed by the client"))
        self._conn._forget_channel(self.number)

    async def exchange_declare(
        self, exchange: str, type: str = "direct", *, passive: bool = False,
        durable: bool = False, auto_delete: bool = False, internal: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        method = spec.ExchangeDeclare(
            0, exchange, type, passive, durable, auto_delete, internal, False, arguments
        )
        await self._rpc(method, spec.ExchangeDeclareOk)

    async def exchange_delete(self, exchange: str, *, if_unused: bool = False) -> None:
        await self._rpc(spec.ExchangeDelete(0, exchange, if_unused, False),
                        spec.ExchangeDeleteOk)

    async def exchange_bind(
        self, destination: str, source: str, routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        method = spec.ExchangeBind(0, destination, source, routing_key, False, arguments)
        await self._rpc(method, spec.ExchangeBindOk)

    async def exchange_unbind(
        self, destination: str, source: str, routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        method = spec.ExchangeUnbind(0, destination, source, routing_key, False, arguments)
        await self._rpc(method, spec.ExchangeUnbindOk)

    async def queue_declare(
        self, queue: str = "", *, passive: bool = False, durable: bool = False,
        exclusive: bool = False, auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> spec.QueueDeclareOk:  # fmt: skip
        """The declare-ok: ``.queue`` (the name), ``.message_count``, ``.consumer_count``."""
        method = spec.QueueDeclare(
            0, queue, passive, durable, exclusive, auto_delete, False, arguments
        )
        result: spec.QueueDeclareOk = await self._rpc(method, spec.QueueDeclareOk)
        return result

    async def queue_bind(
        self, queue: str, exchange: str, routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        method = spec.QueueBind(0, queue, exchange, routing_key, False, arguments)
        await self._rpc(method, spec.QueueBindOk)

    async def queue_unbind(
        self, queue: str, exchange: str, routing_key: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        method = spec.QueueUnbind(0, queue, exchange, routing_key, arguments)
        await self._rpc(method, spec.QueueUnbindOk)

    async def queue_purge(self, queue: str) -> int:
        ok = await self._rpc(spec.QueuePurge(0, queue, False), spec.QueuePurgeOk)
        return int(ok.message_count)

    async def queue_delete(
        self, queue: str, *, if_unused: bool = False, if_empty: bool = False
    ) -> int:
        method = spec.QueueDelete(0, queue, if_unused, if_empty, False)
        ok = await self._rpc(method, spec.QueueDeleteOk)
        return int(ok.message_count)

    async def basic_qos(self, prefetch_count: int, prefetch_size: int = 0,
                        global_: bool = False) -> None:  # fmt: skip
        await self._rpc(spec.BasicQos(prefetch_size, prefetch_count, global_), spec.BasicQosOk)

    async def confirm_select(self) -> None:
        await self._rpc(spec.ConfirmSelect(False), spec.ConfirmSelectOk)
        self._confirm = True

    async def basic_consume(
        self, queue: str, callback: DeliverCallback, *, no_ack: bool = False,
        exclusive: bool = False, consumer_tag: str = "",
        arguments: dict[str, Any] | None = None,
    ) -> str:  # fmt: skip
        """Start a consumer; returns its tag. ``callback`` runs inside the protocol's
        data_received, so it must not block; acks it sends are batched into the next write."""
        method = spec.BasicConsume(
            0, queue, consumer_tag, False, no_ack, exclusive, False, arguments
        )
        ok = await self._rpc(method, spec.BasicConsumeOk, consumer=callback)
        return str(ok.consumer_tag)

    async def basic_cancel(self, consumer_tag: str) -> None:
        await self._rpc(spec.BasicCancel(consumer_tag, False), spec.BasicCancelOk)
        self._consumers.pop(consumer_tag.encode(), None)

    # -- asynchronous methods ------------------------------------------------------------
    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self._check_open()
        self._conn._send(_ACK.pack(1, self.number, 13, 60, 80, delivery_tag, multiple, 0xCE))

    def nack(self, delivery_tag: int, multiple: bool = False, requeue: bool = True) -> None:
        self._check_open()
        bits = (1 if multiple else 0) | (2 if requeue else 0)
        self._conn._send(_ACK.pack(1, self.number, 13, 60, 120, delivery_tag, bits, 0xCE))

    def reject(self, delivery_tag: int, requeue: bool = True) -> None:
        self._check_open()
        self._conn._send(_ACK.pack(1, self.number, 13, 60, 90, delivery_tag, requeue, 0xCE))

    def publisher(
        self, exchange: str = "", routing_key: str = "",
        properties: spec.Properties | bytes | None = None, mandatory: bool = False,
    ) -> Publisher:  # fmt: skip
        """A callable ``publish(body) -> seq`` with the frames around the body pre-encoded:
        the fastest way to publish many messages to one destination."""
        return Publisher(self, exchange, routing_key, encode_properties(properties), mandatory)

    def publish(
        self, body: bytes, exchange: str = "", routing_key: str = "",
        properties: spec.Properties | bytes | None = None, mandatory: bool = False,
    ) -> int:  # fmt: skip
        """Queue one message for the next write; returns its confirm sequence number (or 0).

        Never blocks: call ``await connection.drain()`` between batches to honour flow
        control. Pass ``properties`` pre-encoded (bytes) to skip encoding them each time.
        """
        key = (exchange, routing_key, encode_properties(properties), mandatory)
        pub = self._publishers.get(key)
        if pub is None:
            if len(self._publishers) > 256:
                self._publishers.clear()
            pub = self._publishers[key] = Publisher(self, *key)
        return pub(body)

    async def wait_unconfirmed(self, at_most: int) -> None:
        """Wait until no more than ``at_most`` published messages await a confirm."""
        while len(self._unconfirmed) > at_most:
            self._check_open()
            self._confirm_target = at_most
            self._confirm_waiter = self._conn._loop.create_future()
            await self._confirm_waiter
        self._check_open()

    async def wait_for_confirms(self) -> None:
        await self._conn.drain()
        await self.wait_unconfirmed(0)

    # -- incoming ------------------------------------------------------------------------
    def _on_confirm(self, tag: int, multiple: bool, acked: bool) -> None:
        unconfirmed = self._unconfirmed
        count = 0
        if multiple:
            for seq in range(self._confirm_low, tag + 1):
                if seq in unconfirmed:
                    unconfirmed.remove(seq)
                    count += 1
            self._confirm_low = max(self._confirm_low, tag + 1)
        elif tag in unconfirmed:
            unconfirmed.remove(tag)
            count = 1
        if acked:
            self.acked += count
        else:
            self.nacked += count
        if self.on_confirm is not None:
            try:
                self.on_confirm(tag, multiple, acked)
            except Exception as exc:
                self._conn._callback_failed(exc, "on_confirm")
        w = self._confirm_waiter
        if w is not None and len(unconfirmed) <= self._confirm_target and not w.done():
            w.set_result(None)

    def _on_method(self, method: spec.Method) -> None:
        """A method the protocol machine accepted on this channel (channel.close is not one:
        the connection handles it)."""
        if isinstance(method, spec.BasicAck | spec.BasicNack):  # when not on the fast path
            self._on_confirm(method.delivery_tag, method.multiple,
                             isinstance(method, spec.BasicAck))
        elif isinstance(method, spec.BasicCancel):  # the server cancelled a consumer
            self._consumers.pop(method.consumer_tag.encode(), None)
            if self.on_cancel is not None:
                self.on_cancel(method.consumer_tag)
        elif isinstance(method, spec.ChannelFlow):
            self._conn._send_method(self.number, spec.ChannelFlowOk(method.active))
        elif method.CONTENT:
            pass  # deliver, return: the message comes to _on_content once whole
        else:
            if isinstance(method, spec.BasicConsumeOk) and self._pending_consumer is not None:
                # register now: deliveries may follow in the very same chunk
                self._consumers[method.consumer_tag.encode()] = self._pending_consumer
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(method)

    def _on_content(self, head: ContentHead, properties: bytes, body: bytes) -> None:
        if isinstance(head, tuple):  # basic.deliver from the fast path
            ctag, tag, redelivered, exchange, routing_key = head
            self._dispatch(ctag, tag, redelivered, exchange, routing_key, properties, body)
        elif isinstance(head, spec.BasicDeliver):
            self._dispatch(head.consumer_tag.encode(), head.delivery_tag, head.redelivered,
                           head.exchange, head.routing_key, properties, body)
        elif isinstance(head, spec.BasicReturn) and self.on_return is not None:
            try:
                self.on_return(head.reply_code, head.reply_text, head.exchange,
                               head.routing_key, properties, body)
            except Exception as exc:
                self._conn._callback_failed(exc, "on_return")

    def _dispatch(self, ctag: bytes, tag: int, redelivered: bool, exchange: str,
                  routing_key: str, props: bytes, body: bytes) -> None:  # fmt: skip
        callback = self._consumers.get(ctag)
        if callback is None:
            return  # in flight when its consumer was cancelled: dropped
        try:
            callback(tag, redelivered, exchange, routing_key, props, body)
        except Exception as exc:
            self._conn._callback_failed(exc, "consumer callback")
