"""What a connection that came over TLS tells about its session, for the management API
(``ssl_protocol``, ``ssl_cipher``, ``peer_cert_subject``, ...). The server's TLS module
(server/tls.py) reads it from the socket; the broker keeps it with the connection without
touching ssl itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TLSSession:
    """In RabbitMQ's terms: the protocol as ``tlsv1.3``, the cipher suite split as Erlang's
    ssl names it (key exchange, cipher, hash), and the verified client certificate's
    subject, issuer and validity (None without one)."""

    protocol: str
    key_exchange: str
    cipher: str
    hash: str
    peer_cert_subject: str | None = None
    peer_cert_issuer: str | None = None
    peer_cert_validity: str | None = None
