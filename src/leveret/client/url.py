"""AMQP URIs for the client: RabbitMQ's URI spec and its query parameters
(``leveret.amqp.uri``), with the client's defaults filled in.

    amqp://user:pass@host:port/vhost?heartbeat=60&frame_max=131072&channel_max=2047
    amqps://host/vhost?cacertfile=/ca.pem&certfile=/me.pem&keyfile=/me.key&verify=verify_peer

The vhost is the percent-decoded path without its leading slash; no path means "/", and
"/%2f" spells "/" explicitly. The path "/" alone (``amqp://host/``) is the vhost "" to
RabbitMQ's Erlang client (``parse`` says so, and shovel validation goes by it), but "/" to
this client, as to pika and most clients: URIs ending in "/" are everywhere, and mean
the default vhost. A URI without a host is 127.0.0.1. The TLS options, the SSLContext they
make and RabbitMQ's defaults are in ``leveret.client.tls``.
"""

from __future__ import annotations

from dataclasses import dataclass

from leveret.amqp.uri import DEFAULT_MECHANISMS, DEFAULT_PORTS, TLSOptions, parse


@dataclass(frozen=True, slots=True)
class ConnectionParams:
    host: str = "127.0.0.1"
    port: int = 5672
    username: str = "guest"
    password: str = "guest"
    vhost: str = "/"
    heartbeat: int = 60
    frame_max: int = 131072
    channel_max: int = 2047
    tls: TLSOptions | None = None  # amqps://: TLS with these options
    connect_timeout: float = 10.0
    # the mechanisms to log in with, in order of preference: the first the server offers
    auth_mechanisms: tuple[str, ...] = DEFAULT_MECHANISMS

    @property
    def ssl(self) -> bool:
        return self.tls is not None


def parse_url(url: str) -> ConnectionParams:
    """The parameters ``url`` gives; raises ``leveret.amqp.uri.UriError`` (a ValueError)
    naming what is wrong."""
    uri = parse(url)
    d = ConnectionParams()
    return ConnectionParams(
        host=uri.host or d.host,
        port=uri.port or DEFAULT_PORTS[uri.scheme],
        username=uri.username if uri.username is not None else d.username,
        password=uri.password if uri.password is not None else d.password,
        vhost=uri.vhost or "/",  # amqp://host/: "/" (the module's docstring says why)
        heartbeat=d.heartbeat if uri.heartbeat is None else uri.heartbeat,
        frame_max=d.frame_max if uri.frame_max is None else uri.frame_max,
        channel_max=d.channel_max if uri.channel_max is None else uri.channel_max,
        tls=uri.tls,
        # RabbitMQ's URI spec gives connection_timeout in milliseconds
        connect_timeout=(d.connect_timeout if uri.connection_timeout is None
                         else uri.connection_timeout / 1000),
        auth_mechanisms=uri.auth_mechanisms,
    )
