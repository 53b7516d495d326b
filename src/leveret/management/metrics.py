"""Prometheus metrics at ``GET /metrics``: the broker's live state, read when scraped.

Nothing is counted for Prometheus on the message path: a scrape walks the queues, channels
and counters the broker keeps anyway (``leveret.broker.stats``) and renders them in the text
exposition format. Names and labels follow RabbitMQ's ``rabbitmq_prometheus`` plugin, so its
Grafana dashboards and alerting rules work unchanged; what RabbitMQ has no metric for is
prefixed ``leveret_``. docs/metrics.md lists every metric.

The management server mounts it with ``add_routes(app, node, broker)`` (or takes the aiohttp
handler from ``metrics_handler(node, broker)``). Like RabbitMQ's port 15692 endpoint it asks
for no credentials: it tells queue names and counts, nothing of message contents.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator

import prometheus_client
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from leveret.broker.node import Node
from leveret.broker.shovels import STATES as SHOVEL_STATES
from leveret.broker.snapshot import (
    QueueSnapshot,
    snapshot_connections,
    snapshot_queues,
    snapshot_vhost,
    unacked_bytes,
)
from leveret.broker.stats import node_counters
from leveret.management.connections import channel_name, connection_name
from leveret.management.context import ResourceReadings, Runtime, node_name
from leveret.management.process import open_fds, process_rss
from leveret.management.stream_metrics import StreamReading
from leveret.version import __version__

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no file descriptor limit to report
    resource = None  # type: ignore[assignment]

QUEUE_LABELS = ("vhost", "queue")
SHOVEL_LABELS = ("vhost", "shovel")
STREAM_CONSUMER_LABELS = ("vhost", "queue", "channel", "consumer_tag")

# Per-queue delivery counters, under the names RabbitMQ gives them per (channel, queue):
# leveret keeps them per queue, so the series have no channel label, and
# sum by (vhost, queue) (...) reads the same on both brokers.
QUEUE_COUNTERS = (
    ("rabbitmq_queue_messages_published", "publish",
     "Total number of messages published to queues"),
    ("rabbitmq_channel_messages_delivered_ack", "deliver",
     "Total number of messages delivered to consumers in manual acknowledgement mode"),
    ("rabbitmq_channel_messages_delivered", "deliver_no_ack",
     "Total number of messages delivered to consumers in automatic acknowledgement mode"),
    ("rabbitmq_channel_get_ack", "get",
     "Total number of messages fetched with basic.get in manual acknowledgement mode"),
    ("rabbitmq_channel_get", "get_no_ack",
     "Total number of messages fetched with basic.get in automatic acknowledgement mode"),
    ("rabbitmq_channel_get_empty", "get_empty",
     "Total number of times basic.get operations fetched no message"),
    ("rabbitmq_channel_messages_redelivered", "redeliver",
     "Total number of messages redelivered to consumers"),
    ("rabbitmq_channel_messages_acked", "ack",
     "Total number of messages acknowledged by consumers"),
)

# Publishing-side counters RabbitMQ keeps per (channel, exchange); leveret per vhost.
VHOST_COUNTERS = (
    ("rabbitmq_channel_messages_published", "publish",
     "Total number of messages published into an exchange on a channel"),
    ("rabbitmq_channel_messages_confirmed", "confirm",
     "Total number of messages published into an exchange and confirmed on the channel"),
    ("rabbitmq_channel_messages_unroutable_returned", "return_unroutable",
     "Total number of messages published as mandatory into an exchange and returned to the "
     "publisher as unroutable"),
    ("rabbitmq_channel_messages_unroutable_dropped", "drop_unroutable",
     "Total number of messages published as non-mandatory into an exchange and dropped as "
     "unroutable"),
)

# RabbitMQ 3.9+'s node-wide counters (rabbit_global_counters), labelled by protocol.
GLOBAL_COUNTERS = (
    ("received", lambda c: c.publish, "Total number of messages received from publishers"),
    ("confirmed", lambda c: c.confirm, "Total number of messages confirmed to publishers"),
    ("unroutable_dropped", lambda c: c.drop_unroutable,
     "Total number of messages published as non-mandatory into an exchange and dropped as "
     "unroutable"),
    ("unroutable_returned", lambda c: c.return_unroutable,
     "Total number of messages published as mandatory into an exchange and returned to the "
     "publisher as unroutable"),
    ("delivered", lambda c: c.deliver_get, "Total number of messages delivered to consumers"),
    ("delivered_consume_manual_ack", lambda c: c.deliver,
     "Total number of messages delivered to consumers using basic.consume with manual "
     "acknowledgment"),
    ("delivered_consume_auto_ack", lambda c: c.deliver_no_ack,
     "Total number of messages delivered to consumers using basic.consume with automatic "
     "acknowledgment"),
    ("delivered_get_manual_ack", lambda c: c.get,
     "Total number of messages delivered to consumers using basic.get with manual "
     "acknowledgment"),
    ("delivered_get_auto_ack", lambda c: c.get_no_ack,
     "Total number of messages delivered to consumers using basic.get with automatic "
     "acknowledgment"),
    ("get_empty", lambda c: c.get_empty,
     "Total number of times basic.get operations fetched no message"),
    ("redelivered", lambda c: c.redeliver,
     "Total number of messages redelivered to consumers"),
    ("acknowledged", lambda c: c.ack,
     "Total number of message acknowledgements received from consumers"),
)

# node.alarms names -> RabbitMQ's alarm gauges (always present, 0 or 1)
ALARMS = (("memory", "rabbitmq_alarms_memory_limit", "is 1 if memory alarm is in effect"),
          ("disk", "rabbitmq_alarms_disk_limit", "is 1 if disk alarm is in effect"))


class BrokerCollector(Collector):
    """Reads one broker's state on each scrape (in the broker's event loop: the broker is
    not thread-safe, and the aiohttp handler runs there)."""

    def __init__(self, node: Node, broker: Runtime | None = None) -> None:
        self.node = node
        self.broker = broker
        self.started = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        stream = StreamReading.of(self.broker)  # the stream protocol's connections
        yield from self._queues(stream)
        yield from self._totals(stream)
        yield from self._counters(stream)
        yield from stream.metrics()
        yield from self._resources()
        yield from self._shovels()
        yield from self._identity()

    # -- queues ----------------------------------------------------------------------------

    def _queue_snapshots(self) -> list[QueueSnapshot]:
        local = self.broker.local_addresses() if self.broker is not None else {}
        return snapshot_queues(self.node, list(self.node.vhosts), local)

    def _queues(self, stream_protocol: StreamReading) -> Iterator[Metric]:
        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=QUEUE_LABELS)

        ready = gauge("rabbitmq_queue_messages_ready",
                      "Messages ready to be delivered to consumers")
        unacked = gauge("rabbitmq_queue_messages_unacked",
                        "Messages delivered to consumers but not yet acknowledged")
        depth = gauge("rabbitmq_queue_messages",
                      "Sum of ready and unacknowledged messages - total queue depth")
        consumers = gauge("rabbitmq_queue_consumers", "Consumers on a queue")
        ready_bytes = gauge("rabbitmq_queue_messages_ready_bytes",
                            "Size in bytes of ready messages")
        unacked_bytes = gauge("rabbitmq_queue_messages_unacked_bytes",
                              "Size in bytes of all unacknowledged messages")
        total_bytes = gauge("rabbitmq_queue_messages_bytes",
                            "Size in bytes of ready and unacknowledged messages")
        counters = [(CounterMetricFamily(name, doc, labels=QUEUE_LABELS), event)
                    for name, event, doc in QUEUE_COUNTERS]
        queues = self._queue_snapshots()
        for queue in queues:
            labels = [queue.vhost, queue.name]
            ready.add_metric(labels, queue.messages_ready)
            unacked.add_metric(labels, queue.messages_unacknowledged)
            depth.add_metric(labels, queue.messages)
            consumers.add_metric(labels, queue.consumers)
            ready_bytes.add_metric(labels, queue.message_bytes_ready)
            unacked_bytes.add_metric(labels, queue.message_bytes_unacknowledged)
            total_bytes.add_metric(labels, queue.message_bytes_ready
                                   + queue.message_bytes_unacknowledged)
            for family, event in counters:
                family.add_metric(labels, queue.counters[event])
        yield from (ready, unacked, depth, consumers, ready_bytes, unacked_bytes, total_bytes)
        yield from (family for family, _ in counters)
        yield from self._streams(queues, stream_protocol)

    def _streams(self, queues: list[QueueSnapshot], stream_protocol: StreamReading
                 ) -> Iterator[Metric]:
        """Per stream queue: its log's offsets and segments, and where its consumers are,
        AMQP's and the stream protocol's subscriptions (channel: the connection's name,
        tag: ``stream.subid-<id>``, as /api/consumers shows them). (Its retained entries
        and bytes are rabbitmq_queue_messages and rabbitmq_queue_messages_bytes above.)"""
        def gauge(name: str, doc: str, labels: tuple[str, ...] = QUEUE_LABELS
                  ) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        segments = gauge("leveret_stream_segments",
                         "Segments a stream retains (retention removes whole segments)")
        first = gauge("leveret_stream_first_offset", "Offset of a stream's oldest retained "
                      "message (equal to the next offset when it retains none)")
        nxt = gauge("leveret_stream_next_offset", "Offset the next message appended to a "
                    "stream gets: every offset below it is committed")
        max_lag = gauge("rabbitmq_stream_consumer_max_offset_lag",
                        "Largest offset lag of a stream's consumers")
        offset = gauge("leveret_stream_consumer_offset", "Next offset a stream consumer "
                       "will be sent", STREAM_CONSUMER_LABELS)
        lag = gauge("leveret_stream_consumer_offset_lag", "Retained messages a stream "
                    "consumer has still to read", STREAM_CONSUMER_LABELS)
        subscriptions: dict[tuple[str, str], list[tuple[str, str, int, int]]] = {}
        for vhost, name, channel, tag, at, behind in stream_protocol.stream_readers():
            subscriptions.setdefault((vhost, name), []).append((channel, tag, at, behind))
        for queue in queues:
            stream = queue.stream
            if stream is None:
                continue
            labels = [queue.vhost, queue.name]
            segments.add_metric(labels, stream.segments)
            first.add_metric(labels, stream.first_offset)
            nxt.add_metric(labels, stream.next_offset)
            lags = []
            for channel, tag, at, behind in subscriptions.get((queue.vhost, queue.name), []):
                offset.add_metric([*labels, channel, tag], at)
                lag.add_metric([*labels, channel, tag], behind)
                lags.append(behind)
            for reader in stream.readers:
                if reader.stream is None:
                    continue
                channel = channel_name(connection_name(reader.connection),
                                       reader.channel_number)
                consumer = [*labels, channel, reader.tag]
                offset.add_metric(consumer, reader.stream.next_offset)
                lag.add_metric(consumer, reader.stream.lag)
                lags.append(reader.stream.lag)
            max_lag.add_metric(labels, max(lags, default=0))
        yield from (segments, first, nxt, max_lag, offset, lag)

    # -- node-wide -------------------------------------------------------------------------

    def _totals(self, stream_protocol: StreamReading) -> Iterator[Metric]:
        connections = [c for _, c in snapshot_connections(self.node)]
        queues = self._queue_snapshots()
        consumers = sum(q.consumers for q in queues)  # (a stream's subscriptions included)
        yield GaugeMetricFamily("rabbitmq_connections", "Connections currently open",
                                value=len(connections) + len(stream_protocol.connections))
        yield GaugeMetricFamily("rabbitmq_channels", "Channels currently open",
                                value=sum(c.channels for c in connections))
        yield GaugeMetricFamily("rabbitmq_consumers", "Consumers currently connected",
                                value=consumers)
        yield GaugeMetricFamily("rabbitmq_queues", "Queues available", value=len(queues))
        yield GaugeMetricFamily("leveret_vhosts", "Virtual hosts", value=len(self.node.vhosts))
        # (a stream's bytes are in its log: only its newest entries are also in memory)
        resident = sum(q.message_bytes_ready for q in queues if q.stream is None)
        # every unacked body, a deleted queue's too: the channel still holds it
        resident += sum(unacked_bytes(self.node).values())
        yield GaugeMetricFamily("leveret_messages_resident_bytes",
                                "Bytes of message bodies held in memory, ready or unacked",
                                value=resident)

    def _counters(self, stream_protocol: StreamReading) -> Iterator[Metric]:
        families = [(CounterMetricFamily(name, doc, labels=["vhost"]), event)
                    for name, event, doc in VHOST_COUNTERS]
        for vhost in list(self.node.vhosts.values()):
            snapshot = snapshot_vhost(vhost)
            for family, event in families:
                family.add_metric([snapshot.name], snapshot.counters[event])
        yield from (family for family, _ in families)
        everything = node_counters(self.node)
        for name, read, doc in GLOBAL_COUNTERS:
            family = CounterMetricFamily(f"rabbitmq_global_messages_{name}", doc,
                                         labels=["protocol"])
            family.add_metric(["amqp091"], read(everything))
            family.add_metric(["stream"], stream_protocol.global_count(name))
            yield family

    def _resources(self) -> Iterator[Metric]:
        monitor = self.broker.resources if self.broker is not None else None
        rss = process_rss()
        if rss is None and monitor is not None:
            rss = monitor.memory_used
        if rss is not None:
            yield GaugeMetricFamily("rabbitmq_process_resident_memory_bytes",
                                    "Memory used in bytes", value=rss)
        if monitor is not None:
            yield GaugeMetricFamily("rabbitmq_resident_memory_limit_bytes",
                                    "Memory high watermark in bytes",
                                    value=monitor.memory_limit)
            yield GaugeMetricFamily("rabbitmq_disk_space_available_limit_bytes",
                                    "Free disk space low watermark in bytes",
                                    value=monitor.disk_free_limit)
        disk_free = self._disk_free(monitor)
        if disk_free is not None:
            yield GaugeMetricFamily("rabbitmq_disk_space_available_bytes",
                                    "Disk space available in bytes", value=disk_free)
        alarms = set(self.node.alarms)
        for alarm, name, doc in ALARMS:
            yield GaugeMetricFamily(name, doc, value=1 if alarm in alarms else 0)
        fds = open_fds()
        if fds is not None:
            yield GaugeMetricFamily("rabbitmq_process_open_fds", "Open file descriptors",
                                    value=fds)
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if resource else -1
        if soft_limit >= 0 and (resource is None or soft_limit != resource.RLIM_INFINITY):
            yield GaugeMetricFamily("rabbitmq_process_max_fds", "Open file descriptors limit",
                                    value=soft_limit)
        yield GaugeMetricFamily("leveret_uptime_seconds", "Seconds since the broker started",
                                value=time.monotonic() - self.started)

    def _shovels(self) -> Iterator[Metric]:
        """Dynamic shovels: RabbitMQ's count by status (rabbitmq_shovel_prometheus, 3.13+),
        and per shovel its state (each state's series, 1 for the current one) and how many
        messages it moved."""
        readings = self.broker.shovel_readings() if self.broker is not None else []
        by_status = GaugeMetricFamily("rabbitmq_shovel_dynamic", "Number of dynamic shovels",
                                      labels=["status"])
        counts: dict[str, int] = {}
        for reading in readings:
            counts[reading.state] = counts.get(reading.state, 0) + 1
        for status, count in sorted(counts.items()):
            by_status.add_metric([status], count)
        yield by_status
        state = GaugeMetricFamily("leveret_shovel_state",
                                  "Is 1 for the state a dynamic shovel is in, 0 for the others",
                                  labels=(*SHOVEL_LABELS, "state"))
        published = CounterMetricFamily(
            "leveret_shovel_messages_published",
            "Messages a shovel published at its destination (a redelivery counts again)",
            labels=SHOVEL_LABELS)
        transferred = CounterMetricFamily(
            "leveret_shovel_messages_transferred",
            "Messages a shovel moved: published and settled at its source (acked once "
            "confirmed under on-confirm)", labels=SHOVEL_LABELS)
        for reading in readings:
            labels = [reading.vhost, reading.name]
            for name in SHOVEL_STATES:
                state.add_metric([*labels, name], 1 if reading.state == name else 0)
            published.add_metric(labels, reading.published)
            transferred.add_metric(labels, reading.transferred)
        yield from (state, published, transferred)

    def _disk_free(self, monitor: ResourceReadings | None) -> int | None:
        """Free bytes where the data directory is: the monitor's last reading (taken every
        second), else a fresh one; None for a broker that keeps nothing on disk."""
        reading = monitor.disk_free if monitor is not None else None
        if reading is not None:
            return int(reading)
        data_dir = self.broker.data_dir if self.broker is not None else None
        if data_dir is None:
            return None
        try:
            return shutil.disk_usage(data_dir).free
        except OSError:
            return None

    def _identity(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "rabbitmq_build_info", "leveret & Python version info",
            labels=["product_name", "product_version", "rabbitmq_version", "python_version",
                    "prometheus_client_version"])
        build.add_metric(["leveret", __version__, __version__, platform.python_version(),
                          _prometheus_client_version()], 1)
        yield build
        identity = GaugeMetricFamily("rabbitmq_identity_info",
                                     "RabbitMQ node & cluster identity info",
                                     labels=["rabbitmq_node", "rabbitmq_cluster"])
        identity.add_metric([node_name(), self.node.cluster_name],
                            1)
        yield identity


def _prometheus_client_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prometheus-client")
    except PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "unknown"


def registry_for(node: Node, broker: Runtime | None = None) -> CollectorRegistry:
    """A registry of the broker's metrics plus the usual process_* / python_* ones of a
    Python exporter (CPU seconds, start time, GC), all read on scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BrokerCollector(node, broker))
    prometheus_client.ProcessCollector(registry=registry)
    prometheus_client.PlatformCollector(registry=registry)
    prometheus_client.GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None = None) -> tuple[bytes, str]:
    """The exposition (Prometheus text, or OpenMetrics when the scraper asks for it) and
    its content type."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def metrics_handler(node: Node, broker: Runtime | None = None
                    ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler answering GET /metrics for this broker."""
    registry = registry_for(node, broker)

    async def handle(request: web.Request) -> web.Response:
        body, content_type = render(registry, request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handle


def add_routes(app: web.Application, node: Node, broker: Runtime | None = None) -> None:
    """Mount GET /metrics on the management application."""
    app.router.add_get("/metrics", metrics_handler(node, broker))
