"""A stream's entries in their forms: AMQP 0-9-1 (published over 0-9-1, kept as the
consumer receives it), AMQP 1.0 (published over the stream protocol, kept as the client
encoded it), and sub-entry batches of AMQP 1.0 records (kept as the client sent them, one
offset per record: the batch at the first, a ``BatchPart`` at each further one); and the
conversion each kind of reader needs (streamproto/messages.py has RabbitMQ's mapping)."""

from __future__ import annotations

from leveret.amqp.fields import Long
from leveret.amqp.spec import Properties
from leveret.broker.message import Message
from leveret.store.codec import AMQP10_BATCH, BATCH_PART, batch_part_distance, unpack_amqp10
from leveret.streamproto import chunks, messages


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

    def message(self, stream: str, offset: int) -> Message:
        """What an AMQP 0-9-1 consumer of ``stream`` gets: RabbitMQ's conversion, plus the
        ``x-stream-offset`` header (appended, as RabbitMQ adds it)."""
        if self._message is None:
            self._message = _as_amqp091(self.body, stream, offset)
        return self._message


def _as_amqp091(data: bytes, stream: str, offset: int) -> Message:
    try:
        m = messages.to_amqp091(data, stream)
        props, exchange, routing_key, body = m.properties, m.exchange, m.routing_key, m.body
    except Exception:  # a message no 0-9-1 reader can parse: its bytes as the body
        props, exchange, routing_key = Properties(), "", stream
        body = data
    headers = dict(props.headers or {})
    headers.pop("x-stream-offset", None)
    headers["x-stream-offset"] = Long(offset)
    props.headers = headers
    return Message(exchange, routing_key, props.encode(), body)


class Amqp10Batch:
    """A sub-entry batch at its first offset: ``body`` is the sub-entry as the client sent
    it (header and records, compressed or not), which stream-protocol readers get as is."""

    __slots__ = ("_records", "body", "producer", "publishing_id", "records")

    def __init__(self, entry: bytes, producer: str = "", publishing_id: int = 0) -> None:
        self.body = entry
        self.records = chunks.sub_batch_records(entry)
        self.producer = producer
        self.publishing_id = publishing_id
        self._records: list[bytes] | None = None

    def message(self, stream: str, offset: int, index: int) -> Message | None:
        """Record ``index`` (at ``offset``) for an AMQP 0-9-1 reader; None when it cannot be
        read here: compressed with snappy, lz4 or zstd, or malformed. (RabbitMQ 3.10 closes
        the 0-9-1 reader's connection on every compressed batch.)"""
        if self._records is None:
            try:
                self._records = chunks.sub_batch_messages(self.body)
            except chunks.UnreadableBatch:
                return None
        if index >= len(self._records):
            return None
        return _as_amqp091(self._records[index], stream, offset)


class BatchPart:
    """A further offset of a sub-entry batch, ``index`` records after its first."""

    __slots__ = ("index",)
    body = b""  # (its bytes are counted once, with the batch)

    def __init__(self, index: int) -> None:
        self.index = index


StreamItem = Message | Amqp10Entry | Amqp10Batch | BatchPart


def stream_item(record: bytes | memoryview) -> StreamItem:
    """The entry a stream-protocol record (store/codec.py: kinds 2, 3, 4) holds."""
    kind = record[0]
    if kind == BATCH_PART:
        return BatchPart(batch_part_distance(record))
    _stamp, producer, publishing_id, data = unpack_amqp10(record)
    if kind == AMQP10_BATCH:
        return Amqp10Batch(data, producer, publishing_id)
    return Amqp10Entry(data, producer, publishing_id)


def amqp10_bytes(item: Message | Amqp10Entry) -> bytes:
    """The AMQP 1.0 message a stream protocol consumer gets for an entry."""
    if isinstance(item, Amqp10Entry):
        return item.body
    return messages.from_amqp091(item.exchange, item.routing_key, item.properties, item.body)
