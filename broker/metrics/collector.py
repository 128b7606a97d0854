"""The Prometheus collector: RabbitMQ's metric names and labels
(rabbitmq.com/prometheus.html; deps/rabbitmq_prometheus, the families its
Grafana "RabbitMQ-Overview" dashboard queries) plus Leveret's own
``leveret_*`` families, computed from the counters when scraped.

``/metrics`` aggregates (queue and channel families are sums without
labels, as RabbitMQ's default); ``/metrics/per-object`` labels them
``vhost``/``queue`` and ``channel``.
"""

from __future__ import annotations

import platform

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from broker import __version__
from broker.metrics import process
from broker.metrics.totals import churn_totals, unacked_by_queue

PROTOCOL = {"protocol": "amqp091"}
CLASSIC = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}
DEAD_LETTER_REASONS = ("expired", "rejected", "maxlen", "delivery_limit")

#: channel families: (metric name, MessageStats field, help)
CHANNEL_COUNTERS = (
    ("rabbitmq_channel_messages_published_total", "publish",
     "Total number of messages published into an exchange on a channel"),
    ("rabbitmq_channel_messages_confirmed_total", "confirm",
     "Total number of messages published into an exchange and confirmed on the channel"),
    ("rabbitmq_channel_messages_unroutable_returned_total", "return_unroutable",
     "Total number of messages published as mandatory into an exchange and returned to the publisher "
     "as unroutable"),
    ("rabbitmq_channel_messages_unroutable_dropped_total", "drop_unroutable",
     "Total number of messages published as non-mandatory into an exchange and dropped as unroutable"),
    ("rabbitmq_channel_messages_delivered_total", "deliver_no_ack",
     "Total number of messages delivered to consumers in automatic acknowledgement mode"),
    ("rabbitmq_channel_messages_delivered_ack_total", "deliver",
     "Total number of messages delivered to consumers in manual acknowledgement mode"),
    ("rabbitmq_channel_messages_redelivered_total", "redeliver",
     "Total number of messages redelivered to consumers"),
    ("rabbitmq_channel_messages_acked_total", "ack", "Total number of messages acknowledged by consumers"),
    ("rabbitmq_channel_get_total", "get_no_ack",
     "Total number of messages fetched with basic.get in automatic acknowledgement mode"),
    ("rabbitmq_channel_get_ack_total", "get",
     "Total number of messages fetched with basic.get in manual acknowledgement mode"),
    ("rabbitmq_channel_get_empty_total", "get_empty",
     "Total number of times basic.get operations fetched no message"),
)

#: churn families: (metric name, ChurnStats field, help)
CHURN_COUNTERS = (
    ("rabbitmq_connections_opened_total", "connection_created", "Total number of connections opened"),
    ("rabbitmq_connections_closed_total", "connection_closed",
     "Total number of connections closed or terminated"),
    ("rabbitmq_channels_opened_total", "channel_created", "Total number of channels opened"),
    ("rabbitmq_channels_closed_total", "channel_closed", "Total number of channels closed"),
    ("rabbitmq_queues_declared_total", "queue_declared", "Total number of queues declared"),
    ("rabbitmq_queues_created_total", "queue_created", "Total number of queues created"),
    ("rabbitmq_queues_deleted_total", "queue_deleted", "Total number of queues deleted"),
)


def _gauge(name: str, documentation: str, value) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value, labels: dict | None = None) -> CounterMetricFamily:
    if labels is None:
        return CounterMetricFamily(name, documentation, value=value)
    family = CounterMetricFamily(name, documentation, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


class LeveretCollector:
    """A prometheus_client collector over ``server`` (broker.app.server.Server)
    and its ``sampler`` (broker.metrics.totals.StatsSampler); ``per_object``:
    queue and channel families labelled per object instead of summed."""

    def __init__(self, server, sampler, per_object: bool = False):
        self.server = server
        self.sampler = sampler
        self.per_object = per_object

    def collect(self):
        """Every family, read now (the sampler's totals are refreshed first)."""
        server = self.server
        channels = self.sampler.refresh()
        yield from self._identity()
        yield from self._node()
        yield from self._global(self.sampler.overall)
        churn = churn_totals(server)
        for name, field, documentation in CHURN_COUNTERS:
            yield _counter(name, documentation, getattr(churn, field))
        yield _gauge("rabbitmq_connections", "Connections currently open", len(server.connections))
        yield _gauge("rabbitmq_channels", "Channels currently open", len(channels))
        yield _gauge("rabbitmq_queues", "Queues available",
                     sum(len(vhost.queues) for vhost in server.vhosts.values()))
        yield from self._queues(channels)
        yield from self._channels(channels)
        yield from self._wal()

    def _identity(self):
        node = f"leveret@{platform.node()}"
        identity = GaugeMetricFamily("rabbitmq_identity_info", "RabbitMQ node & cluster identity info",
                                     labels=["rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"])
        identity.add_metric([node, node, f"leveret-cluster-{platform.node()}"], 1)
        yield identity
        build = GaugeMetricFamily("rabbitmq_build_info", "RabbitMQ & Erlang/OTP version info",
                                  labels=["rabbitmq_version", "prometheus_plugin_version",
                                          "prometheus_client_version", "erlang_version"])
        build.add_metric([__version__, __version__, _client_version(), f"Python {platform.python_version()}"], 1)
        yield build

    def _node(self):
        figures = process.resources(self.server)
        yield _gauge("rabbitmq_process_resident_memory_bytes", "Memory used in bytes", figures["rss"])
        yield _gauge("rabbitmq_resident_memory_limit_bytes",
                     "Memory high watermark in bytes", figures["memory_limit"])
        yield _gauge("rabbitmq_disk_space_available_bytes", "Disk space available in bytes",
                     figures["disk_free"])
        yield _gauge("rabbitmq_disk_space_available_limit_bytes", "Free disk space low watermark in bytes",
                     figures["disk_free_limit"])
        yield _gauge("rabbitmq_alarms_memory_used_watermark",
                     "is 1 if VM memory watermark alarm is in effect", figures["memory_alarm"])
        yield _gauge("rabbitmq_alarms_free_disk_space_watermark",
                     "is 1 if free disk space watermark alarm is in effect", figures["disk_alarm"])
        yield _gauge("rabbitmq_process_open_fds", "Open file descriptors", figures["open_fds"])
        yield _gauge("rabbitmq_process_max_fds", "Open file descriptors limit", figures["max_fds"])
        yield _gauge("rabbitmq_process_open_tcp_sockets", "Open TCP sockets", len(self.server.connections))
        yield _gauge("rabbitmq_process_max_tcp_sockets", "Open TCP sockets limit", figures["max_fds"])

    def _global(self, total):
        yield _counter("rabbitmq_global_messages_received_total", "Total number of messages received from publishers",
                       total.publish, PROTOCOL)
        yield _counter("rabbitmq_global_messages_routed_total",
                       "Total number of messages routed to queues or streams", total.routed, PROTOCOL)
        yield _counter("rabbitmq_global_messages_unroutable_returned_total",
                       "Total number of messages published as mandatory into an exchange and returned to the "
                       "publisher as unroutable", total.return_unroutable, PROTOCOL)
        yield _counter("rabbitmq_global_messages_unroutable_dropped_total",
                       "Total number of messages published as non-mandatory into an exchange and dropped as "
                       "unroutable", total.drop_unroutable, PROTOCOL)
        yield _counter("rabbitmq_global_messages_confirmed_total",
                       "Total number of messages confirmed to publishers", total.confirm, PROTOCOL)
        yield _counter("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers",
                       total.delivered, CLASSIC)
        yield _counter("rabbitmq_global_messages_redelivered_total",
                       "Total number of messages redelivered to consumers", total.redeliver, CLASSIC)
        yield _counter("rabbitmq_global_messages_acknowledged_total",
                       "Total number of messages acknowledged by consumers", total.ack, CLASSIC)
        for reason in DEAD_LETTER_REASONS:
            yield _counter(f"rabbitmq_global_messages_dead_lettered_{reason}_total",
                           f"Total number of messages dead-lettered due to {reason.replace('_', ' ')}",
                           getattr(total, "dead_lettered_" + reason),
                           {"queue_type": "rabbit_classic_queue", "dead_letter_strategy": "at_most_once"})

    def _queues(self, channels):
        unacked = unacked_by_queue(channels)
        labels = ["vhost", "queue"] if self.per_object else []
        families = {name: GaugeMetricFamily(name, documentation, labels=labels) for name, documentation in (
            ("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers"),
            ("rabbitmq_queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged"),
            ("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages - total queue depth"),
            ("rabbitmq_queue_consumers", "Consumers on a queue"))}
        published = CounterMetricFamily("rabbitmq_queue_messages_published_total",
                                        "Total number of messages published to queues", labels=labels)
        sums = [0, 0, 0, 0, 0]
        for vhost in self.server.vhosts.values():
            for queue in vhost.queues.values():
                ready, waiting = queue.message_count, unacked.get(queue, 0)
                values = (ready, waiting, ready + waiting, queue.consumer_count, queue.stats.publish)
                if self.per_object:
                    for family, value in zip((*families.values(), published), values):
                        family.add_metric([vhost.name, queue.name], value)
                else:
                    sums = [a + b for a, b in zip(sums, values)]
        if not self.per_object:
            for family, value in zip((*families.values(), published), sums):
                family.add_metric([], value)
        yield from families.values()
        yield published

    def _channels(self, channels):
        labels = ["channel"] if self.per_object else []
        consumers = GaugeMetricFamily("rabbitmq_channel_consumers", "Consumers on a channel", labels=labels)
        unconfirmed = GaugeMetricFamily("rabbitmq_channel_messages_unconfirmed",
                                        "Published but not yet confirmed messages", labels=labels)
        unacked = GaugeMetricFamily("rabbitmq_channel_messages_unacked",
                                    "Delivered but not yet acknowledged messages", labels=labels)
        counters = [CounterMetricFamily(name, documentation, labels=labels)
                    for name, _field, documentation in CHANNEL_COUNTERS]
        fields = [field for _name, field, _doc in CHANNEL_COUNTERS]
        if self.per_object:
            for channel in channels:
                label = [f"{channel.connection.name} ({channel.number})"]
                consumers.add_metric(label, len(channel.consumers))
                unconfirmed.add_metric(label, _unconfirmed(channel))
                unacked.add_metric(label, len(channel.unacked))
                for family, field in zip(counters, fields):
                    family.add_metric(label, getattr(channel.stats, field))
        else:
            consumers.add_metric([], sum(len(channel.consumers) for channel in channels))
            unconfirmed.add_metric([], sum(_unconfirmed(channel) for channel in channels))
            unacked.add_metric([], sum(len(channel.unacked) for channel in channels))
            total = self.sampler.overall  # closed channels' counts stay in it, as RabbitMQ's aggregation
            for family, field in zip(counters, fields):
                family.add_metric([], getattr(total, field))
        yield consumers
        yield unconfirmed
        yield unacked
        yield from counters

    def _wal(self):
        storage = self.server.storage
        stats = storage.wal_stats() if storage is not None else None
        if not stats:
            return
        yield _counter("leveret_wal_written_bytes_total", "Bytes written to the write-ahead log",
                       stats["written_bytes"])
        yield _counter("leveret_wal_fsyncs_total", "fdatasync calls on write-ahead log segment files",
                       stats["fsyncs"])
        yield _gauge("leveret_wal_bytes", "Size of the live write-ahead log segments, bytes", stats["bytes"])
        yield _gauge("leveret_wal_pending_bytes", "Bytes appended to the write-ahead log, not yet durable",
                     stats["pending_bytes"])
        yield _fsync_histogram(stats["fsync_ms_bounds"], stats["fsync_ms_buckets"], stats["fsync_ms_sum"])
        current, floor = stats["current_segment"], stats["mirror_floor"]
        if self.server.mirror is not None and current is not None and floor is not None:
            yield _gauge("leveret_message_database_lag_segments",
                         "WAL segments the message database has still to read (0: up to the current one)",
                         max(0, current - floor))


def _fsync_histogram(bounds, buckets: list, sum_ms: float) -> HistogramMetricFamily:
    """The WAL's fsync latency buckets (upper ``bounds`` in ms, counts per
    write batch, not cumulative) as a Prometheus histogram in seconds."""
    cumulative, running = [], 0
    for bound, count in zip((*bounds, float("inf")), buckets):
        running += count
        cumulative.append(("+Inf" if bound == float("inf") else repr(bound / 1000), running))
    return HistogramMetricFamily("leveret_wal_fsync_seconds", "Time the fdatasyncs of one WAL write batch took",
                                 buckets=cumulative, sum_value=sum_ms / 1000)


def _unconfirmed(channel) -> int:
    confirms = channel.confirms
    if confirms is None:
        return 0
    return max(0, confirms.last_seq - confirms.acked_upto - len(confirms.done))


def _client_version() -> str:
    try:
        from importlib.metadata import version
        return version("prometheus-client")
    except Exception:
        return "unknown"
