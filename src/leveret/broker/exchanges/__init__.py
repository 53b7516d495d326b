"""Exchange types by name."""

from leveret.broker.exchanges.base import Binding, Exchange
from leveret.broker.exchanges.delayed import ROUTING_TYPES, DelayedExchange
from leveret.broker.exchanges.direct import DirectExchange
from leveret.broker.exchanges.fanout import FanoutExchange
from leveret.broker.exchanges.federation_upstream import FederationUpstreamExchange
from leveret.broker.exchanges.headers import HeadersExchange
from leveret.broker.exchanges.topic import TopicExchange

TYPES: dict[str, type[Exchange]] = {**ROUTING_TYPES, DelayedExchange.TYPE: DelayedExchange,
                                    FederationUpstreamExchange.TYPE: FederationUpstreamExchange}

__all__ = ["TYPES", "Binding", "DelayedExchange", "DirectExchange", "Exchange", "FanoutExchange",
           "FederationUpstreamExchange", "HeadersExchange", "TopicExchange"]
