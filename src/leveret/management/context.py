"""What every handler reaches through ``request.app[CONTEXT]``: the node, the runtime
around it, the rate sampler, and the node's name.

``Runtime`` says what the API reads of the broker that runs it (listeners, data directory,
resource readings, where connections were accepted): ``leveret.runtime``'s ``Broker``
provides it, and management imports nothing from the runtime or the server to get it.

Its own module rather than part of ``app.py``: app.py imports every resource module to
register its routes, and every resource module needs the context, so keeping them apart
keeps the import graph free of circles.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from leveret.broker.node import Node
from leveret.broker.shovels import ShovelReading
from leveret.broker.stream_connection import StreamConnection
from leveret.broker.stream_stats import StreamTotals
from leveret.management.rates import RateSampler


class Certificate(Protocol):
    @property
    def certfile(self) -> str | Path: ...


class ResourceReadings(Protocol):
    """The resource alarms' thresholds and last readings (bytes)."""

    @property
    def memory_used(self) -> int: ...
    @property
    def memory_limit(self) -> int: ...
    @property
    def disk_free(self) -> int | None: ...  # None: not read (no data directory)
    @property
    def disk_free_limit(self) -> int: ...


class Runtime(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int | None: ...  # None: no plain AMQP listener
    @property
    def tls(self) -> Certificate | None: ...
    @property
    def tls_port(self) -> int: ...
    @property
    def ssl_context(self) -> ssl.SSLContext | None: ...  # None: no AMQPS listener
    @property
    def management_host(self) -> str: ...
    @property
    def management_port(self) -> int | None: ...
    @property
    def management_tls(self) -> bool: ...
    @property
    def data_dir(self) -> Path | None: ...
    @property
    def resources(self) -> ResourceReadings: ...
    def local_addresses(self) -> dict[object, tuple[str, int]]: ...
    def shovel_status(self, node_name: str) -> list[dict[str, Any]]: ...
    def restart_shovel(self, vhost: str, name: str) -> bool: ...
    def shovel_readings(self) -> list[ShovelReading]: ...

    def federation_status(self, node_name: str) -> list[dict[str, Any]]: ...

    # the stream protocol's listeners (None: off), connections and counters
    @property
    def stream_port(self) -> int | None: ...
    @property
    def stream_tls_port(self) -> int | None: ...
    def stream_connections(self) -> list[StreamConnection]: ...
    @property
    def stream_totals(self) -> StreamTotals: ...


def node_name() -> str:
    """The node's name as RabbitMQ would print it: ``name@host``."""
    return f"leveret@{socket.gethostname().split('.')[0]}"


class Context:
    """The application's shared state."""

    def __init__(self, node: Node, broker: Runtime | None, sampler: RateSampler) -> None:
        self.node = node
        self.broker = broker  # None: an app without a running broker around it (tests)
        self.sampler = sampler
        self.node_name = node_name()

    def local_addresses(self) -> dict[object, tuple[str, int]]:
        """Where each connection was accepted (empty without a runtime: names then show
        ``?:0`` as the broker's side)."""
        return self.broker.local_addresses() if self.broker is not None else {}


CONTEXT: web.AppKey[Context] = web.AppKey("leveret.management", Context)


def context(request: web.Request) -> Context:
    return request.app[CONTEXT]
