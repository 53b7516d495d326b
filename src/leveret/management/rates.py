"""Rates: the management server samples the broker's cumulative counters every few seconds
(5 s, as RabbitMQ's ``collect_statistics_interval``) and reports the change per second
between the last two samples. Nothing is computed on the message path.

Each queue, channel, connection and vhost, and the node, gets a dict of rates by name: the
message events of ``leveret.broker.stats`` plus the queue depths (messages, messages_ready,
messages_unacknowledged) and a connection's recv_oct / send_oct.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from leveret.broker.node import Node
from leveret.broker.snapshot import (
    QueueSnapshot,
    snapshot_channels,
    snapshot_connections,
    snapshot_queue,
    snapshot_vhost,
)
from leveret.broker.stats import EVENTS, node_counters
from leveret.broker.stream_connection import StreamConnection
from leveret.broker.stream_snapshot import snapshot_stream_connections
from leveret.management.history import MAX_SAMPLES, Range, Series

SAMPLE_INTERVAL = 5.0
DEPTHS = ("messages", "messages_ready", "messages_unacknowledged")
# What a queue's history keeps: ``messages`` and ``deliver_get`` are sums of these, and the
# publishing-side events other than publish are never counted on a queue.
QUEUE_FIELDS = ("messages_ready", "messages_unacknowledged", "publish", "deliver",
                "deliver_no_ack", "get", "get_no_ack", "get_empty", "redeliver", "ack")
DERIVED = {"messages": ("messages_ready", "messages_unacknowledged"),
           "deliver_get": ("deliver", "deliver_no_ack", "get", "get_no_ack")}
FAMILIES = ("lengths", "msg_rates", "data_rates")
DATA = ("recv_oct", "send_oct")
# the retention policy of each kind of object, as RabbitMQ's
POLICY = {"node": "global", "vhost": "global", "queue": "basic", "exchange": "basic",
          "connection": "basic", "channel": "basic"}


def family(name: str) -> str:
    """Which ``<family>_age`` / ``_incr`` pair a value's samples answer to."""
    if name in DEPTHS:
        return "lengths"
    return "data_rates" if name in DATA else "msg_rates"


Ranges = dict[str, Range]
# The ranges the request being answered asked for (set by the API middleware).
REQUEST_RANGES: ContextVar[Ranges | None] = ContextVar("leveret_request_ranges",
                                                       default=None)


class RangeError(ValueError):
    pass


def parse_ranges(query: Mapping[str, str]) -> Ranges:
    """``lengths_age``/``lengths_incr`` and the others, as RabbitMQ reads them: a pair
    with a value that is not an integer is ignored; age or incr not above 0, or more than
    500 increments, is ``RangeError`` (400 ``Invalid range parameters: age A, incr I``)."""
    found: Ranges = {}
    for fam in FAMILIES:
        try:
            age, incr = int(query[f"{fam}_age"]), int(query[f"{fam}_incr"])
        except (KeyError, ValueError):
            continue
        if age <= 0 or incr <= 0 or age / incr > MAX_SAMPLES:
            raise RangeError(f"Invalid range parameters: age {age}, incr {incr}")
        found[fam] = Range(age, incr)
    return found


def queue_depths(q: QueueSnapshot) -> dict[str, int]:
    return {"messages": q.messages, "messages_ready": q.messages_ready,
            "messages_unacknowledged": q.messages_unacknowledged}


def _counter_values(counters: Mapping[str, int]) -> dict[str, float]:
    return {name: counters[name] for name in (*EVENTS, "deliver_get")}


class Rates(dict[str, float]):
    """An object's rates by name, and the history behind them (``series``)."""

    series: Series | None = None


class RateSampler:
    def __init__(self, node: Node, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.clock = clock
        self.wall_clock = wall_clock
        # id(object) -> (the object, so the id is not reused while kept; time; values)
        self._last: dict[int, tuple[object, float, dict[str, float]]] = {}
        self._rates: dict[int, dict[str, float]] = {}
        self._series: dict[int, Series] = {}
        self._fields: dict[tuple[str, frozenset[str]], tuple[str, ...]] = {}
        # The runtime's stream-protocol connections (the node does not know them).
        self.stream_connections: Callable[[], list[StreamConnection]] = list

    def _observed(self) -> Iterator[tuple[object, str, dict[str, float]]]:
        node = self.node
        totals: dict[str, float] = dict.fromkeys(DEPTHS, 0)
        for vhost in node.vhosts.values():
            depths: dict[str, float] = dict.fromkeys(DEPTHS, 0)
            for q in vhost.queues.values():
                snapshot = snapshot_queue(q)
                qd = queue_depths(snapshot)
                yield snapshot.handle, "queue", {**_counter_values(snapshot.counters), **qd}
                for k in DEPTHS:
                    depths[k] += qd[k]
            for ex in vhost.exchanges.values():
                yield ex, "exchange", {"publish_in": ex.publish_in,
                                       "publish_out": ex.publish_out}
            for k in DEPTHS:
                totals[k] += depths[k]
            yield vhost, "vhost", {**_counter_values(snapshot_vhost(vhost).counters),
                                   **depths}
        for conn, connection in snapshot_connections(node):
            yield conn, "connection", {"recv_oct": connection.recv_oct,
                                       "send_oct": connection.send_oct}
            for channel in snapshot_channels(conn, connection):
                yield channel.handle, "channel", _counter_values(channel.counters)
        for stream_connection in snapshot_stream_connections(self.stream_connections()):
            yield stream_connection.handle, "connection", {
                "recv_oct": stream_connection.recv_oct, "send_oct": stream_connection.send_oct}
        yield node, "node", {**_counter_values(node_counters(node).as_dict()), **totals}

    def _fields_of(self, kind: str, values: dict[str, float]) -> tuple[str, ...]:
        key = (kind, frozenset(values))
        fields = self._fields.get(key)
        if fields is None:
            fields = QUEUE_FIELDS if kind == "queue" else tuple(
                sorted(k for k in values if k not in DERIVED or
                       not set(DERIVED[k]) <= values.keys()))
            self._fields[key] = fields
        return fields

    def sample(self) -> None:
        now = self.clock()
        wall = self.wall_clock()
        last, rates, series = {}, {}, {}
        for obj, kind, values in self._observed():
            key = id(obj)
            previous = self._last.get(key)
            if previous is not None and previous[0] is obj and now > previous[1]:
                elapsed = now - previous[1]
                rates[key] = {k: (v - previous[2].get(k, 0)) / elapsed
                              for k, v in values.items()}
            last[key] = (obj, now, values)
            fields = self._fields_of(kind, values)
            row = tuple(int(values[f]) for f in fields)
            kept = self._series.get(key) if previous is not None and previous[0] is obj \
                else None
            if kept is None:
                kept = Series(fields, POLICY[kind], wall, row)
            else:
                kept.record(wall, row)
            series[key] = kept
        self._last, self._rates, self._series = last, rates, series

    def rates(self, obj: object) -> Rates:
        """The per-second rates of ``obj`` (a live object, or a snapshot's ``handle``)
        over the last sampling interval ({} before two samples were taken), with its
        history."""
        found = Rates()
        kept = self._last.get(id(obj))
        if kept is not None and kept[0] is obj:
            found.update(self._rates.get(id(obj), {}))
            found.series = self._series.get(id(obj))
        return found

    def history_bytes(self) -> int:
        """What the ring buffers of every object take, in bytes."""
        return sum(s.nbytes() for s in self._series.values())

    def samples(self, series: Series, name: str, rng: Range) -> list[dict[str, int]]:
        times = rng.timestamps(self.wall_clock())
        rows = series.at(times)
        parts = DERIVED.get(name, (name,)) if name not in series.fields else (name,)
        index = [series.fields.index(p) for p in parts if p in series.fields]
        return [{"sample": sum(row[i] for i in index), "timestamp": t * 1000}
                for t, row in zip(times, rows, strict=True)]


def details(rates: dict[str, float], name: str) -> dict[str, Any]:
    """RabbitMQ's ``<name>_details`` object: ``rate``, and when the request asked for the
    value's range (``msg_rates_age``/``_incr``...), ``samples`` (newest first), ``avg_rate``
    (the change per second over the range) and ``avg`` (the samples' mean)."""
    found: dict[str, Any] = {"rate": round(rates.get(name, 0.0), 1)}
    rng = (REQUEST_RANGES.get() or {}).get(family(name))
    sampler = _SAMPLER.get()
    if rng is None or sampler is None or not isinstance(rates, Rates):
        return found  # (a plain dict: rates summed over objects, with no history)
    series = rates.series
    if series is not None:
        samples = sampler.samples(series, name, rng)
    else:  # not sampled yet: zeros, as RabbitMQ pads the time before an object existed
        samples = [{"sample": 0, "timestamp": t * 1000}
                   for t in rng.timestamps(sampler.wall_clock())]
    found["samples"] = samples
    if len(samples) > 1:
        span = (samples[0]["timestamp"] - samples[-1]["timestamp"]) / 1000
        found["avg_rate"] = (samples[0]["sample"] - samples[-1]["sample"]) / span
        found["avg"] = sum(s["sample"] for s in samples) / len(samples)
    return found


# The sampler of the application answering the request (set by the API middleware).
_SAMPLER: ContextVar[RateSampler | None] = ContextVar("leveret_sampler", default=None)


def use_ranges(sampler: RateSampler, ranges: Ranges) -> None:
    """For the request being answered: its ranges, and the sampler whose history answers."""
    REQUEST_RANGES.set(ranges)
    _SAMPLER.set(sampler)


def message_stats(values: Mapping[str, int], names: tuple[str, ...],
                  rates: dict[str, float]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for name in names:
        stats[name] = values.get(name, 0)
        stats[f"{name}_details"] = details(rates, name)
    return stats
