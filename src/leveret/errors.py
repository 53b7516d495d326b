"""The exception tree of leveret.

    LeveretError
     +-- AMQPError                  an AMQP 0-9-1 error the peer must be told about
          +-- ChannelError          "soft": closes one channel (channel.close)
          |    +-- AccessRefused        403
          |    +-- NotFound             404
          |    +-- ResourceLocked       405
          |    +-- PreconditionFailed   406
          +-- ConnectionError_      "hard": closes the whole connection (connection.close)
               +-- ConnectionForced     320
               +-- InvalidPath          402
               +-- FrameError           501
               |    +-- UnknownFieldType     (socket closed without connection.close)
               |    +-- NotUTF8              (a method's short string)
               +-- SyntaxError_         502
               +-- CommandInvalid       503
               +-- ChannelErrorHard     504  (CHANNEL_ERROR: bad channel number or state)
               +-- UnexpectedFrame      505
               +-- ResourceError        506
               +-- NotAllowed           530
               +-- NotImplemented_      540
               +-- InternalError        541
               +-- AccessRefusedHard    403  (login refused: a connection-level 403)
     +-- StoreError                 the store cannot do what was asked (leveret.store)
          +-- StoreLocked           another process holds the data directory
          +-- StoreClosed           the log or store was closed or deleted
          +-- CorruptRecord         a record failed its checksum when read back

Each AMQP error knows its reply code; the class and method ids of the offending method are
filled in by the layer that knows which method was being handled. Errors are raised in
``amqp`` and ``broker`` and translated into close methods only by the connection state
machine: one place decides what goes on the wire.

A ``StoreError`` is not an AMQP error: the peer did nothing wrong. One that reaches a
connection closes it with 541 INTERNAL_ERROR, like any unexpected failure; the broker
catches the ones it can handle (a corrupt message is dropped, a failed commit stops it).
``leveret.store`` re-exports the store errors, so ``leveret.store.StoreError`` still works.
"""

from __future__ import annotations


class LeveretError(Exception):
    """Base of every error leveret raises on purpose."""


class AMQPError(LeveretError):
    reply_code: int = 541
    soft: bool = False

    def __init__(self, text: str = "", class_id: int | None = None,
                 method_id: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        # None: "the method being handled", filled in by the connection; 0: no method
        # (frame-level errors), as RabbitMQ reports them.
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_name(self) -> str:
        return REPLY_NAMES.get(self.reply_code, "INTERNAL_ERROR")

    @property
    def reply_text(self) -> str:
        """The reply-text RabbitMQ sends: the constant's name, a dash, the explanation."""
        text = f"{self.reply_name} - {self.text}" if self.text else self.reply_name
        # A short string holds 255 bytes; RabbitMQ cuts longer texts and marks the cut.
        raw = text.encode("utf-8", "surrogateescape")
        if len(raw) > 255:
            text = raw[:252].decode("utf-8", "ignore") + "..."
        return text


class ChannelError(AMQPError):
    soft = True


class AccessRefused(ChannelError):
    reply_code = 403


class NotFound(ChannelError):
    reply_code = 404


class ResourceLocked(ChannelError):
    reply_code = 405


class PreconditionFailed(ChannelError):
    reply_code = 406


class ConnectionError_(AMQPError):
    soft = False


class ConnectionForced(ConnectionError_):
    reply_code = 320


class InvalidPath(ConnectionError_):
    reply_code = 402


class AccessRefusedHard(ConnectionError_):
    reply_code = 403


class FrameError(ConnectionError_):
    reply_code = 501


class UnknownFieldType(FrameError):
    """A field table with a type tag nobody knows. RabbitMQ's reader dies on it without a
    close method; leveret closes the socket the same way."""


class NotUTF8(FrameError):
    """A short string among a method's arguments that is not UTF-8. RabbitMQ names the
    method only when it arrived on channel 0; the connection fills in the ids."""


class SyntaxError_(ConnectionError_):
    reply_code = 502


class CommandInvalid(ConnectionError_):
    reply_code = 503


class ChannelErrorHard(ConnectionError_):
    reply_code = 504


class UnexpectedFrame(ConnectionError_):
    reply_code = 505


class ResourceError(ConnectionError_):
    reply_code = 506


class NotAllowed(ConnectionError_):
    reply_code = 530


class NotImplemented_(ConnectionError_):
    reply_code = 540


class InternalError(ConnectionError_):
    reply_code = 541


class StoreError(LeveretError):
    """The store cannot do what was asked (I/O error, bad format, failed earlier write)."""


class StoreLocked(StoreError):
    """Another process holds the data directory."""


class StoreClosed(StoreError):
    """The log or store was closed or deleted."""


class CorruptRecord(StoreError):
    """A record failed its checksum when read back (bit rot while running)."""


REPLY_NAMES = {
    200: "OK",
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}
