"""Node-wide counters of the stream protocol, for /metrics: what RabbitMQ's
``rabbit_global_counters`` keep with ``protocol="stream"`` (messages received, confirmed
and delivered; a count per error code answered). Every connection of one listener adds
to the same ``StreamTotals``, so the counts outlive the connections that made them.

The error names are RabbitMQ's (``rabbitmq_global_stream_error_<name>_total``); the
codes are the protocol's response codes (streamproto/frames.py).
"""

from __future__ import annotations

from leveret.streamproto import frames as f

ERROR_NAMES = {
    f.STREAM_DOES_NOT_EXIST: "stream_does_not_exist",
    f.SUBSCRIPTION_ID_ALREADY_EXISTS: "subscription_id_already_exists",
    f.SUBSCRIPTION_ID_DOES_NOT_EXIST: "subscription_id_does_not_exist",
    f.STREAM_ALREADY_EXISTS: "stream_already_exists",
    f.STREAM_NOT_AVAILABLE: "stream_not_available",
    f.SASL_MECHANISM_NOT_SUPPORTED: "sasl_mechanism_not_supported",
    f.AUTHENTICATION_FAILURE: "authentication_failure",
    f.SASL_ERROR: "sasl_error",
    f.SASL_CHALLENGE: "sasl_challenge",
    f.SASL_AUTHENTICATION_FAILURE_LOOPBACK: "sasl_authentication_failure_loopback",
    f.VIRTUAL_HOST_ACCESS_FAILURE: "vhost_access_failure",
    f.UNKNOWN_FRAME: "unknown_frame",
    f.FRAME_TOO_LARGE: "frame_too_large",
    f.INTERNAL_ERROR: "internal_error",
    f.ACCESS_REFUSED: "access_refused",
    f.PRECONDITION_FAILED: "precondition_failed",
    f.PUBLISHER_DOES_NOT_EXIST: "publisher_does_not_exist",
}


class StreamTotals:
    """Counted per batch (a Publish frame, a confirm, a Deliver), not per message."""

    __slots__ = ("confirmed", "delivered", "errors", "publish_errors", "published")

    def __init__(self) -> None:
        self.published = 0  # messages in Publish frames of declared publishers
        self.confirmed = 0  # publishing ids confirmed
        self.publish_errors = 0  # publishing ids answered with PublishError
        self.delivered = 0  # entries sent in Deliver frames
        self.errors = dict.fromkeys(ERROR_NAMES, 0)  # response code -> answers

    def answered(self, code: int) -> None:
        """A response, Close or PublishError carried ``code`` (OK and "no offset" are not
        errors)."""
        if code in self.errors:
            self.errors[code] += 1
