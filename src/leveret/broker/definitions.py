"""Durable definitions: exchanges, queues, bindings and policies that outlive a restart.

The vhost records each durable entity in the store's definitions log (``store/base.py``
``Definitions``: put/delete of small JSON records) as it changes, and ``restore`` replays
them at start-up. Argument tables are kept in their AMQP encoding (base64) so every value
comes back with its exact wire type.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

from leveret.amqp.fields import FieldTable, decode_table, encode_table
from leveret.errors import LeveretError

if TYPE_CHECKING:
    from leveret.broker.exchanges.base import Binding, Exchange
    from leveret.broker.node import Node
    from leveret.broker.queue import Queue
    from leveret.broker.vhost import VirtualHost

EXCHANGE, QUEUE, BINDING, POLICY = "exchange", "queue", "binding", "policy"
log = logging.getLogger("leveret.definitions")


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


def restore(node: Node, definitions: Any) -> dict[str, int]:
    """Re-create every recorded entity; returns counts by kind for the start-up log."""
    counts: dict[str, int] = {}
    for kind, apply in ((EXCHANGE, _restore_exchange), (QUEUE, _restore_queue),
                        (BINDING, _restore_binding), (POLICY, _restore_policy)):
        records = definitions.get(kind)
        restored = 0
        for value in records.values():
            vhost = node.vhosts.get(value["vhost"]) or node.add_vhost(value["vhost"])
            vhost.restoring = True
            try:
                apply(vhost, value)
                restored += 1
            except (LeveretError, KeyError, ValueError, TypeError) as exc:
                # One bad or dangling record (a binding whose queue's record was damaged)
                # must not keep the broker from starting with everything else.
                log.warning("durable %s %s could not be restored and is skipped: %s", kind,
                            json.dumps(value, sort_keys=True)[:200], exc)
                node.restore_incomplete = True
            finally:
                vhost.restoring = False
        counts[kind] = restored
    return counts


def _restore_exchange(vhost: VirtualHost, v: dict[str, Any]) -> None:
    vhost.declare_exchange(v["name"], v["type"], False, True, v["auto_delete"], v["internal"],
                           unpack_table(v["arguments"]))


def _restore_queue(vhost: VirtualHost, v: dict[str, Any]) -> None:
    vhost.declare_queue(v["name"], False, True, False, v["auto_delete"],
                        unpack_table(v["arguments"]), None)


def _restore_binding(vhost: VirtualHost, v: dict[str, Any]) -> None:
    args = unpack_table(v["arguments"])
    if v["destination_type"] == "queue":
        vhost.bind_queue(v["destination"], v["source"], v["routing_key"], args, None)
    else:
        vhost.bind_exchange(v["destination"], v["source"], v["routing_key"], args)


def _restore_policy(vhost: VirtualHost, v: dict[str, Any]) -> None:
    vhost.set_policy(v["name"], v["pattern"], v["definition"], v.get("priority", 0),
                     v.get("apply-to", "all"))
