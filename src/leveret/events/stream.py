"""Keeping events in streams: retention, where a reader starts, topic matching.

A stream queue (``x-queue-type: stream``) is an append-only log: consuming does not remove
anything, every reader keeps its own position (an offset), and a reader can start from the
first event still kept, from an offset, or from a point in time. Publishing to the bus's
topic exchange lands in any stream bound to it, exactly like in a group's queue.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

STREAM_OFFSET = "x-stream-offset"  # consumer argument, and the header on every delivery
_INTERVAL = re.compile(r"^\s*(\d+)\s*([YMDhms])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "D": 86400, "M": 30 * 86400, "Y": 365 * 86400}
_AGE = re.compile(r"^\d+[YMDhms]$")

Start = str | int | datetime.datetime | datetime.timedelta
"""Where a replay starts: ``"first"``, ``"last"``, ``"next"``, an offset (int), a
``datetime`` (naive means UTC), a ``timedelta`` or an interval string (``"1h"``, ``"7D"``)
meaning that long ago."""


@dataclass(frozen=True)
class StreamRetention:
    """How long a stream keeps events: ``max_age`` like ``"7D"`` (units Y, M, D, h, m, s),
    ``max_length_bytes`` in total. Retention removes whole segment files, of
    ``max_segment_size_bytes`` each (the broker's default: 500 MB), once a segment is
    entirely past the limits, so a stream holds somewhat more than the limits say.
    ``StreamRetention()`` keeps everything forever."""

    max_age: str | None = None
    max_length_bytes: int | None = None
    max_segment_size_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_age is not None and not _AGE.match(self.max_age):
            raise ValueError(f"max_age must look like '7D', '12h' or '30m' (units Y, M, D, "
                             f"h, m, s), not {self.max_age!r}")
        for name in ("max_length_bytes", "max_segment_size_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive int, not {value!r}")

    def arguments(self) -> dict[str, Any]:
        """The queue.declare arguments of a stream with this retention."""
        args: dict[str, Any] = {"x-queue-type": "stream"}
        if self.max_age is not None:
            args["x-max-age"] = self.max_age
        if self.max_length_bytes is not None:
            args["x-max-length-bytes"] = self.max_length_bytes
        if self.max_segment_size_bytes is not None:
            args["x-stream-max-segment-size-bytes"] = self.max_segment_size_bytes
        return args


def parse_interval(text: str) -> datetime.timedelta | None:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7D"``, ``"1M"`` (30 days), ``"1Y"`` (365 days)."""
    match = _INTERVAL.match(text)
    if match is None:
        return None
    return datetime.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


@dataclass(frozen=True)
class StartPoint:
    """A ``Start`` made concrete: the ``x-stream-offset`` consumer argument, and for points
    in time the moment before which events are dropped by the reader (the broker starts at
    the storage chunk holding that moment, which may begin a little earlier)."""

    argument: str | int | datetime.datetime
    since: datetime.datetime | None = None

    @classmethod
    def of(cls, start: Start, now: datetime.datetime | None = None) -> StartPoint:
        now = now or datetime.datetime.now(datetime.UTC)
        if isinstance(start, bool):
            raise TypeError("a replay start cannot be a bool")
        if isinstance(start, int):
            if start < 0:
                raise ValueError(f"a stream offset cannot be negative: {start}")
            return cls(start)
        if isinstance(start, datetime.timedelta):
            return cls.at(now - start)
        if isinstance(start, datetime.datetime):
            return cls.at(start)
        if isinstance(start, str):
            text = start.strip()
            if text in ("first", "last", "next"):
                return cls(text)
            if text.isdigit():
                return cls(int(text))
            interval = parse_interval(text)
            if interval is not None:
                return cls.at(now - interval)
            try:
                return cls.at(datetime.datetime.fromisoformat(text))
            except ValueError:
                pass
        raise ValueError(f"cannot start a replay at {start!r}: use 'first', 'last', 'next', "
                         "an offset, a datetime or ISO timestamp, or an interval like '1h'")

    @classmethod
    def at(cls, moment: datetime.datetime) -> StartPoint:
        # AMQP timestamps are whole seconds: round down, so the start second is included
        moment = _utc(moment).replace(microsecond=0)
        return cls(moment, since=moment)

    def too_early(self, timestamp: datetime.datetime | None) -> bool:
        """Whether an event with this (publish) timestamp is before the start moment."""
        if self.since is None or timestamp is None:
            return False
        return _utc(timestamp) < self.since


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: words split on ``.``, ``*`` is one word, ``#`` zero or more."""
    return _match(pattern.split("."), key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])


def offset_of(headers: Any) -> int | None:
    """The stream offset a delivery carries in its ``x-stream-offset`` header."""
    value = (headers or {}).get(STREAM_OFFSET)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
