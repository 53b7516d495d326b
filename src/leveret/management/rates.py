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

SAMPLE_INTERVAL = 5.0
DEPTHS = ("messages", "messages_ready", "messages_unacknowledged")


def queue_depths(q: QueueSnapshot) -> dict[str, int]:
    return {"messages": q.messages, "messages_ready": q.messages_ready,
            "messages_unacknowledged": q.messages_unacknowledged}


def _counter_values(counters: Mapping[str, int]) -> dict[str, float]:
    return {name: counters[name] for name in (*EVENTS, "deliver_get")}


class RateSampler:
    def __init__(self, node: Node, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.clock = clock
        # id(object) -> (the object, so the id is not reused while kept; time; values)
        self._last: dict[int, tuple[object, float, dict[str, float]]] = {}
        self._rates: dict[int, dict[str, float]] = {}

    def _observed(self) -> Iterator[tuple[object, dict[str, float]]]:
        node = self.node
        totals: dict[str, float] = dict.fromkeys(DEPTHS, 0)
        for vhost in node.vhosts.values():
            depths: dict[str, float] = dict.fromkeys(DEPTHS, 0)
            for q in vhost.queues.values():
                snapshot = snapshot_queue(q)
                qd = queue_depths(snapshot)
                yield snapshot.handle, {**_counter_values(snapshot.counters), **qd}
                for k in DEPTHS:
                    depths[k] += qd[k]
            for k in DEPTHS:
                totals[k] += depths[k]
            yield vhost, {**_counter_values(snapshot_vhost(vhost).counters), **depths}
        for conn, connection in snapshot_connections(node):
            yield conn, {"recv_oct": connection.recv_oct, "send_oct": connection.send_oct}
            for channel in snapshot_channels(conn, connection):
                yield channel.handle, _counter_values(channel.counters)
        yield node, {**_counter_values(node_counters(node).as_dict()), **totals}

    def sample(self) -> None:
        now = self.clock()
        last, rates = {}, {}
        for obj, values in self._observed():
            key = id(obj)
            previous = self._last.get(key)
            if previous is not None and previous[0] is obj and now > previous[1]:
                elapsed = now - previous[1]
                rates[key] = {k: (v - previous[2].get(k, 0)) / elapsed
                              for k, v in values.items()}
            last[key] = (obj, now, values)
        self._last, self._rates = last, rates

    def rates(self, obj: object) -> dict[str, float]:
        """The per-second rates of ``obj`` (a live object, or a snapshot's ``handle``)
        over the last sampling interval ({} before two samples were taken)."""
        return self._rates.get(id(obj), {}) if id(obj) in self._last and \
            self._last[id(obj)][0] is obj else {}


def details(rates: dict[str, float], name: str) -> dict[str, float]:
    """RabbitMQ's ``<name>_details`` object."""
    return {"rate": round(rates.get(name, 0.0), 1)}


def message_stats(values: Mapping[str, int], names: tuple[str, ...],
                  rates: dict[str, float]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for name in names:
        stats[name] = values.get(name, 0)
        stats[f"{name}_details"] = details(rates, name)
    return stats
