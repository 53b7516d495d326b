"""Exceptions raised by the leveret client.

A close sent by the server (connection.close or channel.close) surfaces as
``ConnectionClosed`` / ``ChannelClosed`` carrying the reply code and text, so callers can
tell a 404 NOT_FOUND from a 406 PRECONDITION_FAILED without parsing messages.
"""

from __future__ import annotations

from leveret.errors import REPLY_NAMES, LeveretError


class ClientError(LeveretError):
    """Base of every error the client raises."""


class AMQPClosed(ClientError):
    """The server (or the network) closed a connection or a channel."""

    scope = "connection"

    def __init__(
        self, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0
    ) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id
        where = f" (in method {class_id}.{method_id})" if class_id else ""
        super().__init__(f"{self.scope} closed: {reply_code} {reply_text}{where}")

    @property
    def reply_name(self) -> str:
        return REPLY_NAMES.get(self.reply_code, str(self.reply_code))


class ConnectionClosed(AMQPClosed):
    """connection.close from the server, a lost socket (code 0), or use after close."""

    scope = "connection"


class ChannelClosed(AMQPClosed):
    """channel.close from the server, or use of a channel after it was closed."""

    scope = "channel"


class ProtocolViolation(ClientError):
    """The server sent something this client cannot make sense of."""


class TLSError(ClientError):
    """An amqps:// connection's TLS failed: the server's certificate did not pass the
    URI's checks. The message says which check and what to do; ``__cause__`` is the
    ``ssl`` module's error when there is one."""


class TLSSetupError(TLSError, ValueError):
    """The TLS options of an amqps:// URI cannot be used: a file that cannot be read or
    used. The message names the option and the file, and says what to do."""


class NoSuitableMechanism(ClientError):
    """The server offers none of the login mechanisms the URI asks for."""
