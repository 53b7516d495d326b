"""What every handler reaches through ``request.app[CONTEXT]``: the node, the broker around
it, the rate sampler, and the node's name.

Its own module rather than part of ``app.py``: app.py imports every resource module to
register its routes, and every resource module needs the context, so keeping them apart
keeps the import graph free of circles.
"""

from __future__ import annotations

import socket
from typing import Any

from aiohttp import web

from leveret.broker.node import Node
from leveret.management.rates import RateSampler


def node_name() -> str:
    """The node's name as RabbitMQ would print it: ``name@host``."""
    return f"leveret@{socket.gethostname().split('.')[0]}"


class Context:
    """The application's shared state."""

    def __init__(self, node: Node, broker: Any, sampler: RateSampler) -> None:
        self.node = node
        self.broker = broker  # the embedded Broker, for listeners and connection details
        self.sampler = sampler
        self.node_name = node_name()


CONTEXT: web.AppKey[Context] = web.AppKey("leveret.management", Context)


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]
