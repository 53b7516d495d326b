"""Dead-lettering: the message a queue republishes to its x-dead-letter-exchange.

The ``x-death`` header follows RabbitMQ 3.10 exactly: an array of tables, newest first,
one per (queue, reason); a repeat death increments ``count`` of the existing entry and moves
it to the front; each table's keys are sorted; ``x-first-death-*`` are set once. The
``expiration`` property is removed (and kept as ``original-expiration``) so the message does
not expire again where it lands.
"""

from __future__ import annotations

import datetime
from typing import Any

from leveret.amqp.fields import Long
from leveret.broker.message import Message

REJECTED = "rejected"
EXPIRED = "expired"
MAXLEN = "maxlen"
DELIVERY_LIMIT = "delivery_limit"


def dead_letter_message(message: Message, reason: str, queue: str, dlx: str,
                        dlrk: str | None, now: float) -> tuple[Message, list[str]]:
    """The message to publish to ``dlx``, and the routing keys to publish it with."""
    props = message.fresh_properties()
    headers: dict[str, Any] = dict(props.headers or {})
    routing_keys = [message.routing_key, *_header_routes(headers)]
    info: dict[str, Any] = {
        "count": Long(1),
        "reason": reason,
        "queue": queue,
        "time": datetime.datetime.fromtimestamp(int(now), datetime.UTC),
        "exchange": message.exchange,
        "routing-keys": routing_keys,
    }
    if props.expiration is not None:
        info["original-expiration"] = props.expiration
    existing = headers.get("x-death")
    if not isinstance(existing, list):
        # A first death keeps RabbitMQ's construction order of the keys.
        deaths = [info]
    else:
        # Written into an existing array, the entry's keys are sorted (as RabbitMQ does).
        deaths = list(existing)
        match = next((d for d in deaths if isinstance(d, dict) and d.get("queue") == queue
                      and d.get("reason") == reason), None)
        if match is None:
            entry = info
        else:
            deaths.remove(match)
            entry = dict(match)
            entry["count"] = Long(int(match.get("count", 0)) + 1)
        deaths.insert(0, dict(sorted(entry.items())))
    headers["x-death"] = deaths
    for key, value in (("x-first-death-reason", reason), ("x-first-death-queue", queue),
                       ("x-first-death-exchange", message.exchange)):
        headers.setdefault(key, value)
    if dlrk is not None:
        headers.pop("CC", None)
    # RabbitMQ rewrites the table sorted by key.
    props.headers = dict(sorted(headers.items()))
    props.expiration = None
    out = Message(dlx, dlrk if dlrk is not None else message.routing_key, props.encode(),
                  message.body)
    return out, [dlrk] if dlrk is not None else routing_keys


def _header_routes(headers: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    for name in ("CC", "BCC"):
        value = headers.get(name)
        if isinstance(value, list):
            keys.extend(v for v in value if isinstance(v, str))
    return keys


def is_cycle(message: Message, queue_name: str) -> bool:
    """Whether dead-lettering into ``queue_name`` closes a loop with no rejection in it
    (RabbitMQ then drops the message rather than circulate it forever)."""
    deaths = message.headers.get("x-death")
    if not isinstance(deaths, list):
        return False
    for death in deaths:
        if not isinstance(death, dict) or death.get("reason") == REJECTED:
            return False
        if death.get("queue") == queue_name:
            return True
    return False
