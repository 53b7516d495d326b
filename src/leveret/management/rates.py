"""Rates: the management server samples the broker's cumulative counters every few seconds
(5 s, as RabbitMQ's ``collect_statistics_interval``) and reports the change per second
between the last two samples. Nothing is computed on the message path.

Each queue, channel, connection and vhost, and the node, gets a dict of rates by name: the
message events of ``leveret.broker.stats`` plus the queue depths (messages, messages_ready,
messages_unacknowledged) and a connection's recv_oct / send_oct.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from leveret.broker.stats import EVENTS, Counters, node_counters

SAMPLE_INTERVAL = 5.0
DEPTHS = ("messages", "messages_ready", "messages_unacknowledged")


def queue_depths(q: Any) -> dict[str, int]:
    ready = len(q.ready)
    return {"messages": ready + q.unacked, "messages_ready": ready,
            "messages_unacknowledged": q.unacked}


def _counter_values(counters: Counters) -> dict[str, float]:
    values: dict[str, float] = {name: getattr(counters, name) for name in EVENTS}
    values["deliver_get"] = counters.deliver_get
    return values


class RateSampler:
    def __init__(self, node: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.clock = clock
        # id(object) -> (the object, so the id is not reused while kept; time; values)
        self._last: dict[int, tuple[Any, float, dict[str, float]]] = {}
        self._rates: dict[int, dict[str, float]] = {}

    def _observed(self) -> Iterator[tuple[Any, dict[str, float]]]:
        node = self.node
        totals: dict[str, float] = dict.fromkeys(DEPTHS, 0)
        for vhost in node.vhosts.values():
            values = _counter_values(vhost.counters)
            depths: dict[str, float] = dict.fromkeys(DEPTHS, 0)
            for q in vhost.queues.values():
                qd = queue_depths(q)
                yield q, {**_counter_values(q.counters), **qd}
                for k in DEPTHS:
                    depths[k] += qd[k]
            for k in DEPTHS:
                totals[k] += depths[k]
            yield vhost, {**values, **depths}
        for conn in list(node.connections):
            yield conn, {"recv_oct": getattr(conn, "recv_oct", 0),
                         "send_oct": getattr(conn, "send_oct", 0)}
            for ch in list(conn.channels.values()):
                yield ch, _counter_values(ch.counters)
        yield node, {**_counter_values(node_counters(node)), **totals}

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

    def rates(self, obj: Any) -> dict[str, float]:
        """The per-second rates of ``obj`` over the last sampling interval ({} before
        two samples were taken)."""
        return self._rates.get(id(obj), {}) if id(obj) in self._last and \
            self._last[id(obj)][0] is obj else {}


def details(rates: dict[str, float], name: str) -> dict[str, float]:
    """RabbitMQ's ``<name>_details`` object."""
    return {"rate": round(rates.get(name, 0.0), 1)}


def message_stats(values: dict[str, int], names: tuple[str, ...],
                  rates: dict[str, float]) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for name in names:
        stats[name] = values.get(name, 0)
        stats[f"{name}_details"] = details(rates, name)
    return stats
