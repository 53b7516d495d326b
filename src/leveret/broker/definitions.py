"""Durable definitions: exchanges, queues, bindings and policies that outlive a restart.

The vhost records each durable entity in the store's definitions log (``store/base.py``
``Definitions``: put/delete of small JSON records) as it changes, with the records built
here; ``restore.py`` replays them at start-up. Argument tables are kept in their AMQP
encoding (base64) so every value comes back with its exact wire type.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from leveret.amqp.fields import FieldTable, decode_table, encode_table

if TYPE_CHECKING:
    from leveret.broker.exchanges.base import Binding, Exchange
    from leveret.broker.queues import Queue

EXCHANGE, QUEUE, BINDING, POLICY = "exchange", "queue", "binding", "policy"


def pack_table(table: FieldTable) -> str:
    return base64.b64encode(encode_table(table)).decode()


def unpack_table(text: str) -> FieldTable:
    return decode_table(base64.b64decode(text), 0)[0]


def _key(*parts: str) -> str:
    return json.dumps(parts)


def exchange_record(vhost: str, ex: Exchange) -> tuple[str, dict[str, Any]]:
    return _key(vhost, ex.name), {
        "vhost": vhost, "name": ex.name, "type": ex.type, "auto_delete": ex.auto_delete,
        "internal": ex.internal, "arguments": pack_table(ex.arguments)}


def queue_record(vhost: str, q: Queue) -> tuple[str, dict[str, Any]]:
    return _key(vhost, q.name), {
        "vhost": vhost, "name": q.name, "auto_delete": q.auto_delete,
        "arguments": pack_table(q.arguments)}


def binding_record(vhost: str, b: Binding) -> tuple[str, dict[str, Any]]:
    args = pack_table(b.arguments)
    dest = b.destination
    return _key(vhost, b.source, dest.kind, dest.name, b.routing_key, args), {
        "vhost": vhost, "source": b.source, "destination_type": dest.kind,
        "destination": dest.name, "routing_key": b.routing_key, "arguments": args}
