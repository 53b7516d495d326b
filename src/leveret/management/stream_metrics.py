"""The stream protocol's part of /metrics (metrics.py renders the rest), under the names
RabbitMQ 3.10's rabbitmq_prometheus gives them:

- ``rabbitmq_global_messages_{received,confirmed,delivered}_total{protocol="stream"}``
  beside the ``amqp091`` series (metrics.py asks ``global_count`` for them);
- ``rabbitmq_global_publishers`` / ``rabbitmq_global_consumers{protocol="stream"}``;
- ``rabbitmq_global_stream_error_<code>_total{protocol="stream"}``: responses, Close
  frames and PublishErrors that carried each error code;
- the connections and subscriptions count in ``rabbitmq_connections`` and
  ``rabbitmq_consumers``, and each subscription's place in its stream joins the AMQP
  stream consumers' (``stream_readers``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from leveret.broker.stream_snapshot import (
    StreamConnectionSnapshot,
    snapshot_stream_connections,
    stream_consumers,
    stream_publishers,
)
from leveret.broker.stream_stats import ERROR_NAMES, StreamTotals
from leveret.management.context import Runtime
from leveret.management.stream_connections import stream_connection_name

PROTOCOL = "stream"


@dataclass(frozen=True)
class StreamReading:
    """One scrape's view of the stream protocol (empty without a runtime)."""

    connections: list[StreamConnectionSnapshot]
    totals: StreamTotals

    @classmethod
    def of(cls, broker: Runtime | None) -> StreamReading:
        if broker is None:
            return cls([], StreamTotals())
        return cls(snapshot_stream_connections(broker.stream_connections()),
                   broker.stream_totals)

    @property
    def subscriptions(self) -> int:
        return sum(len(stream_consumers(c)) for c in self.connections)

    def global_count(self, name: str) -> int:
        """The stream series of rabbitmq_global_messages_<name>_total."""
        totals = self.totals
        return {"received": totals.published, "confirmed": totals.confirmed,
                "delivered": totals.delivered}.get(name, 0)

    def stream_readers(self) -> Iterator[tuple[str, str, str, str, int, int]]:
        """(vhost, stream, connection, tag, next offset, lag) of each subscription."""
        for conn in self.connections:
            name = stream_connection_name(conn)
            for sub in stream_consumers(conn):
                yield (sub.vhost, sub.stream, name, f"stream.subid-{sub.subscription_id}",
                       sub.next_offset, sub.offset_lag)

    def metrics(self) -> Iterator[Metric]:
        publishers = GaugeMetricFamily("rabbitmq_global_publishers",
                                       "Current number of publishers", labels=["protocol"])
        publishers.add_metric([PROTOCOL], sum(len(stream_publishers(c))
                                              for c in self.connections))
        consumers = GaugeMetricFamily("rabbitmq_global_consumers",
                                      "Current number of consumers", labels=["protocol"])
        consumers.add_metric([PROTOCOL], self.subscriptions)
        yield from (publishers, consumers)
        for code, name in ERROR_NAMES.items():
            family = CounterMetricFamily(
                f"rabbitmq_global_stream_error_{name}", f"Total number of stream protocol "
                f"answers with the error code {name}", labels=["protocol"])
            family.add_metric([PROTOCOL], self.totals.errors[code])
            yield family
