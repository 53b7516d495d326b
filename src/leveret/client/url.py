"""AMQP URI parsing (the RabbitMQ URI spec subset every client understands).

    amqp://user:pass@host:port/vhost?heartbeat=60&frame_max=131072&channel_max=2047
    amqps://...   (TLS, default port 5671)

The vhost is the percent-decoded path without its leading slash; an empty path means "/",
and "/%2f" spells "/" explicitly, as in RabbitMQ's URI spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit


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
    ssl: bool = False
    connect_timeout: float = 10.0


def parse_url(url: str) -> ConnectionParams:
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"not an AMQP URL (scheme {parts.scheme!r}): {url}")
    tls = parts.scheme == "amqps"
    path = parts.path
    vhost = "/" if path in ("", "/") else unquote(path[1:])
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    defaults = ConnectionParams()
    return ConnectionParams(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (5671 if tls else 5672),
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=vhost,
        heartbeat=int(query.get("heartbeat", defaults.heartbeat)),
        frame_max=int(query.get("frame_max", defaults.frame_max)),
        channel_max=int(query.get("channel_max", defaults.channel_max)),
        ssl=tls,
        # RabbitMQ's URI spec gives connection_timeout in milliseconds
        connect_timeout=(
            float(query["connection_timeout"]) / 1000
            if "connection_timeout" in query
            else defaults.connect_timeout
        ),
    )
