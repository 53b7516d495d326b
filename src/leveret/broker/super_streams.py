"""Super streams: a partitioned stream, as RabbitMQ's stream plugin has it (3.10+).

A super stream is nothing of its own: a direct exchange (declared with the argument
``x-super-stream: true``) whose bindings lead to the partition streams, each binding with
``x-stream-partition-order`` (0, 1, ...). It is made with CreateSuperStream (the stream
protocol, RabbitMQ 3.13+), ``rabbitmq-streams add_super_stream``, or by declaring the exchange,
the streams and the bindings over AMQP 0-9-1; either way the commands below see the same thing.

- Route (a routing key -> streams): the exchange's routing of a message with that key, the
  streams among the queues it reaches (names sorted, as RabbitMQ's route returns them).
- Partitions: the streams bound to the exchange, ordered by their binding's
  ``x-stream-partition-order`` (a string of digits counts as its number; bindings without
  one go last, in the order RabbitMQ lists bindings: routing key, then destination name).
- The partition index of a stream (single active consumer spreads a super stream's
  groups by it): its binding's order, else the number after the last "-" of its name,
  else -1.

Both work on any exchange (RabbitMQ does not look at ``x-super-stream``); the default exchange
routes to the stream named by the key and lists every stream of the vhost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from leveret.amqp.fields import FieldTable, Long
from leveret.broker.access import CONFIGURE, READ, WRITE, Grants
from leveret.broker.message import Message
from leveret.broker.queues.stream import StreamQueue
from leveret.errors import AMQPError
from leveret.streamproto import frames as f

if TYPE_CHECKING:
    from leveret.broker.exchanges.base import Binding
    from leveret.broker.vhost import VirtualHost

PARTITION_ORDER = "x-stream-partition-order"
SUPER_STREAM = "x-super-stream"
_NO_PROPERTIES = b"\x00\x00"


def _streams(vhost: VirtualHost) -> list[StreamQueue]:
    return [q for q in vhost.queues.values() if isinstance(q, StreamQueue) and not q.deleted]


def _order(binding: Binding) -> int | None:
    value = binding.arguments.get(PARTITION_ORDER)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str | bytes):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _sorted_bindings(vhost: VirtualHost, name: str, stream: str | None = None
                     ) -> list[Binding] | None:
    """The bindings of exchange ``name`` to streams (to ``stream`` only, if given), in
    partition order; None when there is no such exchange."""
    ex = vhost.exchanges.get(name)
    if ex is None:
        return None
    found = [b for b in ex.bindings.values()
             if isinstance(b.destination, StreamQueue) and not b.destination.deleted
             and (stream is None or b.destination.name == stream)]
    found.sort(key=lambda b: (b.routing_key, b.destination.name))
    found.sort(key=lambda b: (0, o) if (o := _order(b)) is not None else (1, 0))
    return found


def partitions(vhost: VirtualHost, name: str) -> list[str] | None:
    """The partition streams of super stream ``name`` in order (None: no such exchange)."""
    if name == "":
        return sorted(q.name for q in _streams(vhost))
    bindings = _sorted_bindings(vhost, name)
    return None if bindings is None else [b.destination.name for b in bindings]


def route(vhost: VirtualHost, name: str, routing_key: str) -> list[str] | None:
    """The streams a message with ``routing_key`` reaches from exchange ``name`` (None: no
    such exchange)."""
    if name == "":
        q = vhost.queues.get(routing_key)
        return [q.name] if isinstance(q, StreamQueue) and not q.deleted else []
    ex = vhost.exchanges.get(name)
    if ex is None:
        return None
    reached = vhost.route(ex, Message(name, routing_key, _NO_PROPERTIES, b""), routing_key)
    return sorted({q.name for q in reached if isinstance(q, StreamQueue) and not q.deleted})


def partition_index(vhost: VirtualHost, super_stream: str, stream: str) -> int:
    bindings = _sorted_bindings(vhost, super_stream, stream)
    if not bindings:
        return -1
    order = _order(bindings[0])
    if order is not None:
        return order
    _, dash, tail = stream.rpartition("-")
    return int(tail) if dash and tail.isdigit() else -1


def _permitted(grants: Grants, name: str, streams: list[str]) -> bool:
    """RabbitMQ's checks for managing a super stream: configure on the exchange and the
    streams, read on the exchange and write on the streams (to bind them)."""
    return (grants.allowed(CONFIGURE, "exchange", name)
            and all(grants.allowed(CONFIGURE, "queue", s) for s in streams)
            and grants.allowed(READ, "exchange", name)
            and all(grants.allowed(WRITE, "queue", s) for s in streams))


def _valid_name(name: str) -> bool:
    return bool(name) and not name.startswith("amq.")


def create(vhost: VirtualHost, grants: Grants, name: str, streams: list[str],
           binding_keys: list[str], arguments: FieldTable | None) -> int:
    """CreateSuperStream: the exchange, the streams (``arguments``: their x-arguments, None
    if Create's arguments were not valid) and the bindings, or nothing; a response code."""
    if not _valid_name(name):
        return f.PRECONDITION_FAILED
    if not _permitted(grants, name, streams):
        return f.ACCESS_REFUSED
    if (len(streams) != len(binding_keys) or not streams or arguments is None
            or len(set(streams)) != len(streams) or not all(map(_valid_name, streams))):
        return f.PRECONDITION_FAILED
    if name in vhost.exchanges or any(s in vhost.queues for s in streams):
        return f.STREAM_ALREADY_EXISTS
    table = dict(arguments)
    table.setdefault("x-queue-leader-locator", "balanced")  # RabbitMQ's default here
    created: list[str] = []
    try:
        vhost.declare_exchange(name, "direct", False, True, False, False,
                               {SUPER_STREAM: True}, grants)
        for stream in streams:
            vhost.declare_queue(stream, False, True, False, False, dict(table), None, grants)
            created.append(stream)
        for order, (stream, key) in enumerate(zip(streams, binding_keys, strict=True)):
            vhost.bind_queue(stream, name, key, {PARTITION_ORDER: Long(order)}, None, grants)
    except AMQPError:
        for stream in created:  # (RabbitMQ rolls back too)
            vhost.delete_queue(stream, False, False, None)
        vhost.delete_exchange(name, False)
        return f.PRECONDITION_FAILED
    return f.OK


def delete(vhost: VirtualHost, grants: Grants, name: str) -> int:
    """DeleteSuperStream: the exchange and its partition streams; a response code."""
    streams = partitions(vhost, name) if name else None
    if streams is None:
        return f.STREAM_DOES_NOT_EXIST
    if not _permitted(grants, name, streams):
        return f.ACCESS_REFUSED
    try:
        vhost.delete_exchange(name, False)
    except AMQPError:  # a system exchange (amq.*) stays, and so do its streams
        return f.PRECONDITION_FAILED
    for stream in dict.fromkeys(streams):
        if isinstance(vhost.queues.get(stream), StreamQueue):
            vhost.delete_queue(stream, False, False, None)
    return f.OK
