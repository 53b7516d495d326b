"""The exceptions of ``leveret.events``, in one tree.

    EventsError
    +-- EventValidationError   a payload does not match its event type (goes to the DLQ)
    +-- DeadLetter             raised by a handler: skip the remaining retries, dead-letter now
    +-- PublishError           the broker did not take a message
    |   +-- Unroutable         a mandatory message matched no queue
    +-- RequestError
        +-- RequestTimeout     no reply within the timeout
        +-- NoResponder        nothing consumes the request's queue
        +-- RemoteError        the responder raised; carries its error text
"""

from __future__ import annotations


class EventsError(Exception):
    """Base of every error this package raises."""


class EventValidationError(EventsError):
    def __init__(self, event_type: str, detail: str) -> None:
        super().__init__(f"invalid {event_type!r} payload: {detail}")
        self.event_type = event_type
        self.detail = detail


class DeadLetter(EventsError):
    """Raise from a handler to send the event straight to the dead-letter queue."""


class PublishError(EventsError):
    pass


class Unroutable(PublishError):
    def __init__(self, exchange: str, routing_key: str) -> None:
        super().__init__(f"no queue is bound to {exchange or '(default)'!r} "
                         f"for routing key {routing_key!r}")
        self.exchange = exchange
        self.routing_key = routing_key


class RequestError(EventsError):
    pass


class RequestTimeout(RequestError, TimeoutError):
    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"no reply to request {name!r} within {timeout:g} s")
        self.name = name
        self.timeout = timeout


class NoResponder(RequestError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no responder is listening for {name!r}")
        self.name = name


class RemoteError(RequestError):
    def __init__(self, name: str, error: str) -> None:
        super().__init__(f"responder for {name!r} failed: {error}")
        self.name = name
        self.error = error
