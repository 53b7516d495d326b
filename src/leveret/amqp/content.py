"""Content assembly: a content-carrying method, its content header and its body frames ->
one message, for either role (basic.publish on a server; deliver, return, get-ok on a client).

A channel owns one ``ContentAssembler``. The protocol machine hands it the method, then the
header and body frames that follow on that channel; it says when the message is complete and
raises ``UnexpectedFrame`` with RabbitMQ's texts when the frames come in the wrong order or
the bodies overrun the size the header announced. It keeps body frames as a list and joins
them once, so a message split over many frames costs one copy.
"""

from __future__ import annotations

import struct
from typing import Final

from leveret.amqp import spec
from leveret.amqp.frames import erlang_binary
from leveret.errors import FrameError, InternalError, PreconditionFailed, UnexpectedFrame

# basic.deliver as the client's hand-written fast path parses it, without building a method
# object: (consumer_tag, delivery_tag, redelivered, exchange, routing_key).
FastDeliver = tuple[bytes, int, bool, str, str]
# What a message's content belongs to: the decoded method, or a fast-path basic.deliver.
ContentHead = spec.Method | FastDeliver
# A complete message: (head, raw properties, body).
Message = tuple[ContentHead, bytes, bytes]

_DELIVER_IDS: Final = (spec.BasicDeliver.CLASS_ID, spec.BasicDeliver.METHOD_ID)
# Only the basic class carries content in 0-9-1, whichever method of it came first.
_BASIC_CLASS: Final = spec.BasicPublish.CLASS_ID
_CLASS_WEIGHT_SIZE: Final = struct.Struct(">HHQ")


def head_ids(head: ContentHead) -> tuple[int, int]:
    """Class and method id of the method a content belongs to, for error replies."""
    if isinstance(head, spec.Method):
        return head.CLASS_ID, head.METHOD_ID
    return _DELIVER_IDS


class ContentAssembler:
    """The message being received on one channel.

    ``head`` is None between messages. After the method, ``properties`` stays empty until the
    content header arrives (a received property list is never empty: it holds at least the
    two flag bytes), so the two fields together say which frame is due next.
    """

    __slots__ = ("body_size", "head", "max_body_size", "parts", "properties", "received")

    def __init__(self, max_body_size: int | None = None) -> None:
        self.head: ContentHead | None = None
        self.properties = b""
        self.body_size = 0
        self.received = 0
        self.parts: list[bytes] = []
        # The largest body this side accepts (a server's max_message_size); None: any.
        self.max_body_size = max_body_size

    def expect(self, head: ContentHead) -> None:
        """A content-carrying method arrived: its header and bodies come next."""
        self.head = head

    def reset(self) -> None:
        self.head = None
        self.properties = b""
        self.received = 0
        if self.parts:
            self.parts = []

    def method_frame_error(self) -> UnexpectedFrame:
        """The error for a method frame that arrives where content was due."""
        assert self.head is not None
        class_id, method_id = head_ids(self.head)
        if self.properties:
            return UnexpectedFrame("expected content body, got non content body frame instead",
                                   class_id, method_id)
        return UnexpectedFrame(f"expected content header for class {class_id}, got non "
                               "content header frame instead", class_id, method_id)

    def header(self, payload: bytes) -> Message | None:
        """A content header frame. Returns the message if the header announces no body."""
        head = self.head
        if head is None:
            raise UnexpectedFrame("expected method frame, got non method frame instead")
        if self.properties:
            raise UnexpectedFrame("expected content body, got non content body frame instead",
                                  *head_ids(head))
        if len(payload) < 12:
            raise FrameError(f"type 2, all octets = {erlang_binary(payload)}: unknown_frame")
        header_class, weight, size = _CLASS_WEIGHT_SIZE.unpack_from(payload, 0)
        if len(payload) < 14:  # no property flags: RabbitMQ's channel crashes on it
            raise InternalError("", 0, 0)
        if header_class != _BASIC_CLASS or weight:
            class_id, method_id = head_ids(head)
            if weight:  # 0-9-1 says it must be 0; RabbitMQ takes it for another frame
                raise UnexpectedFrame(f"expected content header for class {class_id}, got "
                                      "non content header frame instead", class_id, method_id)
            raise UnexpectedFrame(f"expected content header for class {class_id}, got one "
                                  f"for class {header_class} instead", class_id, method_id)
        self.properties = payload[12:]  # never empty: at least the two flag bytes
        self.body_size = size
        limit = self.max_body_size
        if limit is not None and size > limit:
            raise PreconditionFailed(f"message size {size} is larger than configured max "
                                     f"size {limit}", *head_ids(head))
        if size:
            return None
        properties = self.properties
        self.reset()
        return head, properties, b""

    def body(self, payload: bytes) -> Message | None:
        """A content body frame. Returns the message once its last body frame arrived."""
        head = self.head
        if head is None:
            raise UnexpectedFrame("expected method frame, got non method frame instead")
        if not self.properties:
            class_id, method_id = head_ids(head)
            raise UnexpectedFrame(f"expected content header for class {class_id}, got non "
                                  "content header frame instead", class_id, method_id)
        received = self.received + len(payload)
        size = self.body_size
        if received < size:
            self.received = received
            self.parts.append(payload)
            return None
        if received > size:
            raise UnexpectedFrame("expected content body, got non content body frame instead",
                                  *head_ids(head))
        properties = self.properties
        self.head = None
        self.properties = b""
        parts = self.parts
        if parts:  # the common case, one body frame, joins nothing
            parts.append(payload)
            self.received = 0
            self.parts = []
            return head, properties, b"".join(parts)
        return head, properties, payload
