"""Start-up: re-create the durable exchanges, queues, bindings and policies recorded in the
store's definitions log (records built by definitions.py), through the vhost's own
operations so every rule applies as when they were first declared.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from leveret.broker.definitions import BINDING, EXCHANGE, POLICY, QUEUE, unpack_table
from leveret.broker.node import Node
from leveret.broker.vhost import VirtualHost
from leveret.errors import LeveretError, StoreError
from leveret.store.base import Definitions

log = logging.getLogger("leveret.definitions")


def restore(node: Node, definitions: Definitions) -> dict[str, int]:
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
            except StoreError:
                raise  # the disk failed: no use starting without it
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
