"""x-federation-upstream: the exchange a federation link declares on its upstream broker
(RabbitMQ's rabbit_federation_upstream_exchange, which leveret offers so that a RabbitMQ
downstream federating from leveret builds what it builds on a RabbitMQ upstream).

It routes like fanout, but only messages that should travel on to the downstream it
serves: fewer ``x-received-from`` entries than its ``x-max-hops``, and none written by the
downstream itself (``x-downstream-name`` and ``x-downstream-vhost``, the downstream's
cluster name and vhost). So a loop of federated exchanges ends before the messages come
back, without being carried across the network first.
"""

from __future__ import annotations

from typing import Any

from leveret.amqp.fields import TypedInt
from leveret.broker.arguments import wire_type
from leveret.broker.exchanges.base import Destination
from leveret.broker.exchanges.fanout import FanoutExchange
from leveret.broker.message import Message
from leveret.errors import PreconditionFailed

TYPE_NAME = "x-federation-upstream"
MAX_HOPS = "x-max-hops"
DOWNSTREAM_NAME = "x-downstream-name"
DOWNSTREAM_VHOST = "x-downstream-vhost"
ROUTING_HEADER = "x-received-from"


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def already_seen(name: str | None, vhost: str | None, hops: list[Any]) -> bool:
    """An entry of ``x-received-from`` (or ``x-bound-from``) names this cluster and vhost
    (rabbit_federation_util:already_seen)."""
    return any(isinstance(h, dict) and _text(h.get("cluster-name")) == name
               and _text(h.get("vhost")) == vhost for h in hops)


def should_forward(headers: dict[str, Any], max_hops: int, name: str | None,
                   vhost: str | None) -> bool:
    """rabbit_federation_util:should_forward: a message without the routing header goes
    on; one with it only if it passed fewer than ``max_hops`` links and never this
    downstream."""
    hops = headers.get(ROUTING_HEADER)
    if not isinstance(hops, list):
        return True
    return len(hops) < max_hops and not already_seen(name, vhost, hops)


class FederationUpstreamExchange(FanoutExchange):
    TYPE = TYPE_NAME
    EQUIVALENT_ARGUMENTS = (MAX_HOPS,)

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict[str, Any] | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        hops = self.arguments.get(MAX_HOPS)
        # RabbitMQ's validate_arg: the exact field type, a 64-bit 'l' (what its own links
        # send; pika's 'I' is refused), texts as RabbitMQ 3.10.8 answers. An int without
        # a wire type comes from JSON (management API, definitions), which RabbitMQ
        # reads as long.
        if hops is None:
            raise PreconditionFailed(f"Argument {MAX_HOPS} missing")
        if isinstance(hops, bool) or not isinstance(hops, int) or (
                isinstance(hops, TypedInt) and wire_type(hops) != "long"):
            raise PreconditionFailed(f"Argument {MAX_HOPS} must be of type long")
        self.max_hops = int(hops)
        # absent when declared by RabbitMQ before 3.3.0 / 3.8.9: then nothing matches them
        self.downstream_name = _text(self.arguments.get(DOWNSTREAM_NAME))
        self.downstream_vhost = _text(self.arguments.get(DOWNSTREAM_VHOST))

    def route(self, message: Message, routing_key: str) -> list[Destination]:
        if not should_forward(message.headers, self.max_hops, self.downstream_name,
                              self.downstream_vhost):
            return []
        return super().route(message, routing_key)
