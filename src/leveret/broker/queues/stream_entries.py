"""A stream's entries in their two forms: AMQP 0-9-1 (published over 0-9-1, kept as the
consumer receives it) and AMQP 1.0 (published over the stream protocol, kept as the client
encoded it), and the conversion each kind of reader needs (streamproto/messages.py has
RabbitMQ's mapping)."""

from __future__ import annotations

from leveret.amqp.fields import Long
from leveret.amqp.spec import Properties
from leveret.broker.message import Message
from leveret.store.codec import unpack_amqp10
from leveret.streamproto import messages


class Amqp10Entry:
    """An entry published over the stream protocol. ``body`` is the AMQP 1.0 message (the
    name lets the stream's tail count its bytes like a Message's); ``message`` is its
    AMQP 0-9-1 face, made once for the first 0-9-1 reader."""

    __slots__ = ("_message", "body", "producer", "publishing_id")

    def __init__(self, data: bytes, producer: str = "", publishing_id: int = 0) -> None:
        self.body = data
        self.producer = producer
        self.publishing_id = publishing_id
        self._message: Message | None = None

    @classmethod
    def from_record(cls, record: bytes | memoryview) -> Amqp10Entry:
        _stamp, producer, publishing_id, data = unpack_amqp10(record)
        return cls(data, producer, publishing_id)

    def message(self, stream: str, offset: int) -> Message:
        """What an AMQP 0-9-1 consumer of ``stream`` gets: RabbitMQ's conversion, plus the
        ``x-stream-offset`` header (appended, as RabbitMQ adds it)."""
        if self._message is None:
            try:
                m = messages.to_amqp091(self.body, stream)
                props, exchange, routing_key, body = m.properties, m.exchange, \
                    m.routing_key, m.body
            except Exception:  # a message no 0-9-1 reader can parse: its bytes as the body
                props, exchange, routing_key = Properties(), "", stream
                body = self.body
            headers = dict(props.headers or {})
            headers.pop("x-stream-offset", None)
            headers["x-stream-offset"] = Long(offset)
            props.headers = headers
            self._message = Message(exchange, routing_key, props.encode(), body)
        return self._message


StreamItem = Message | Amqp10Entry


def amqp10_bytes(item: StreamItem) -> bytes:
    """The AMQP 1.0 message a stream protocol consumer gets for an entry."""
    if isinstance(item, Amqp10Entry):
        return item.body
    return messages.from_amqp091(item.exchange, item.routing_key, item.properties, item.body)
