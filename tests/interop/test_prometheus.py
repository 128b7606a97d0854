"""Prometheus metrics (docs/metrics.md): a real broker process with
``--prometheus-port``, scraped over HTTP and read with prometheus_client's
text parser; driven by pika."""

from __future__ import annotations

import urllib.error
import urllib.request

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.interop.pika_helpers import pika_connection
from tests.interop.server_process import free_port

#: every metric the Grafana "RabbitMQ-Overview" dashboard queries
#: (rabbitmq-server deps/rabbitmq_prometheus/docker/grafana/dashboards/RabbitMQ-Overview.json)
DASHBOARD_METRICS = (
    "rabbitmq_identity_info", "rabbitmq_build_info",
    "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages_published_total",
    "rabbitmq_queues", "rabbitmq_queues_declared_total", "rabbitmq_queues_created_total",
    "rabbitmq_queues_deleted_total",
    "rabbitmq_channels", "rabbitmq_channel_consumers", "rabbitmq_channels_opened_total",
    "rabbitmq_channels_closed_total",
    "rabbitmq_connections", "rabbitmq_connections_opened_total", "rabbitmq_connections_closed_total",
    "rabbitmq_channel_messages_published_total", "rabbitmq_channel_messages_confirmed_total",
    "rabbitmq_channel_messages_unconfirmed", "rabbitmq_channel_messages_unroutable_dropped_total",
    "rabbitmq_channel_messages_unroutable_returned_total", "rabbitmq_channel_messages_delivered_total",
    "rabbitmq_channel_messages_delivered_ack_total", "rabbitmq_channel_messages_redelivered_total",
    "rabbitmq_channel_messages_acked_total", "rabbitmq_channel_get_total", "rabbitmq_channel_get_ack_total",
    "rabbitmq_channel_get_empty_total",
    "rabbitmq_resident_memory_limit_bytes", "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_disk_space_available_bytes", "rabbitmq_process_max_fds", "rabbitmq_process_open_fds",
    "rabbitmq_process_max_tcp_sockets", "rabbitmq_process_open_tcp_sockets",
)

#: the other names issue 13 lists, and Leveret's own
ISSUE_METRICS = (
    "rabbitmq_queue_messages", "rabbitmq_queue_consumers",
    "rabbitmq_global_messages_received_total", "rabbitmq_global_messages_routed_total",
    "rabbitmq_global_messages_delivered_total", "rabbitmq_global_messages_acknowledged_total",
    "rabbitmq_global_messages_confirmed_total", "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_unroutable_returned_total", "rabbitmq_global_messages_unroutable_dropped_total",
    "rabbitmq_global_messages_dead_lettered_expired_total", "rabbitmq_global_messages_dead_lettered_rejected_total",
    "rabbitmq_global_messages_dead_lettered_maxlen_total",
    "rabbitmq_global_messages_dead_lettered_delivery_limit_total",
    "rabbitmq_disk_space_available_limit_bytes", "rabbitmq_alarms_memory_used_watermark",
    "rabbitmq_alarms_free_disk_space_watermark",
    "leveret_wal_written_bytes_total", "leveret_wal_fsyncs_total", "leveret_wal_fsync_seconds_bucket",
    "leveret_wal_fsync_seconds_count", "leveret_wal_fsync_seconds_sum",
)


def scrape(port: int, path: str = "/metrics") -> dict:
    """Sample name -> list of (labels, value) from the endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict, name: str, **labels) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    found = [v for sample_labels, v in samples[name] if labels.items() <= sample_labels.items()]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


@pytest.fixture
def metrics_broker(fresh_broker):
    port = free_port()
    return fresh_broker("--prometheus-port", str(port)), port


def test_every_dashboard_metric_is_present(metrics_broker):
    _broker, port = metrics_broker
    samples = scrape(port)
    missing = [name for name in DASHBOARD_METRICS + ISSUE_METRICS if name not in samples]
    assert not missing
    identity = samples["rabbitmq_identity_info"][0][0]
    assert set(identity) == {"rabbitmq_node", "rabbitmq_cluster", "rabbitmq_cluster_permanent_id"}
    assert value(samples, "rabbitmq_process_resident_memory_bytes") > 0
    assert value(samples, "rabbitmq_disk_space_available_bytes") > 0


def test_values_move_with_publishes_deliveries_and_acks(metrics_broker, unique):
    broker, port = metrics_broker
    queue = unique("prom")
    before = scrape(port)
    assert value(before, "rabbitmq_global_messages_received_total") == 0
    with pika_connection(broker.url) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        persistent = pika.BasicProperties(delivery_mode=2)
        for i in range(5):
            channel.basic_publish("", queue, f"m{i}".encode(), persistent)
        with pytest.raises(pika.exceptions.UnroutableError):
            channel.basic_publish("", unique("nowhere"), b"lost", mandatory=True)
        channel.basic_publish("", unique("nowhere"), b"dropped")
        method, _props, _body = channel.basic_get(queue, auto_ack=False)
        channel.basic_ack(method.delivery_tag)
        channel.basic_get(queue, auto_ack=True)
        channel.basic_get(queue, auto_ack=False)  # left unacked
        during = scrape(port)
        per_object = scrape(port, "/metrics/per-object")
    assert value(during, "rabbitmq_global_messages_received_total") == 7
    assert value(during, "rabbitmq_global_messages_routed_total") == 5
    assert value(during, "rabbitmq_global_messages_unroutable_returned_total") == 1
    assert value(during, "rabbitmq_global_messages_unroutable_dropped_total") == 1
    assert value(during, "rabbitmq_channel_messages_confirmed_total") == 7
    assert value(during, "rabbitmq_channel_get_ack_total") == 2
    assert value(during, "rabbitmq_channel_get_total") == 1
    assert value(during, "rabbitmq_channel_messages_acked_total") == 1
    assert value(during, "rabbitmq_queue_messages_ready") == 2
    assert value(during, "rabbitmq_queue_messages_unacked") == 1
    assert value(during, "rabbitmq_queue_messages") == 3
    assert value(during, "rabbitmq_channels") == 1
    assert value(during, "rabbitmq_connections") == 1
    assert value(during, "leveret_wal_written_bytes_total") > value(before, "leveret_wal_written_bytes_total")
    assert value(per_object, "rabbitmq_queue_messages_ready", vhost="/", queue=queue) == 2
    assert value(per_object, "rabbitmq_queue_messages_unacked", vhost="/", queue=queue) == 1
    assert value(per_object, "rabbitmq_queue_messages_published_total", vhost="/", queue=queue) == 5
    assert value(per_object, "rabbitmq_channel_messages_published_total") == 7  # the one open channel
    # the closed connection's unacked message came back: redelivered on the next get
    with pika_connection(broker.url) as connection:
        channel = connection.channel()
        method, _props, _body = channel.basic_get(queue, auto_ack=True)
        assert method.redelivered
        assert channel.basic_get(queue, auto_ack=True)[0] is not None
        assert channel.basic_get(queue, auto_ack=True)[0] is not None
        assert channel.basic_get(queue, auto_ack=True)[0] is None
        channel.close()
    after = scrape(port)
    # counts of closed channels stay in the totals
    assert value(after, "rabbitmq_global_messages_received_total") == 7
    assert value(after, "rabbitmq_global_messages_redelivered_total") == 1
    assert value(after, "rabbitmq_channel_get_total") == 4
    assert value(after, "rabbitmq_channel_get_empty_total") == 1
    assert value(after, "rabbitmq_global_messages_delivered_total") == 6
    assert value(after, "rabbitmq_queue_messages") == 0
    assert value(after, "rabbitmq_channels_opened_total") == 2
    assert value(after, "rabbitmq_channels_closed_total") == 2
    # every accepted TCP connection counts, as in RabbitMQ (the fixture's readiness probe too)
    opened = value(after, "rabbitmq_connections_opened_total") - value(before, "rabbitmq_connections_opened_total")
    assert opened == 2
    assert value(after, "rabbitmq_queues_created_total") == 1


def test_prometheus_off_listens_nowhere(fresh_broker):
    port = free_port()
    broker = fresh_broker("--prometheus-port", str(port), "--prometheus", "off")
    with pytest.raises(urllib.error.URLError):
        scrape(port)
    assert "Prometheus metrics on" not in broker.log_text()
