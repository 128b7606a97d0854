"""Prometheus names and labels, Leveret against the reference RabbitMQ 3.10
(its Prometheus plugin on 127.0.0.1:15702, or LEVERET_REFERENCE_PROMETHEUS_URL):
every family the RabbitMQ-Overview dashboard queries, and the global
message counters issue 13 names, exist on both with the same label names."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.interop.server_process import BrokerProcess, free_port
from tests.interop.test_prometheus import DASHBOARD_METRICS

REFERENCE_METRICS = os.environ.get("LEVERET_REFERENCE_PROMETHEUS_URL", "http://127.0.0.1:15702/metrics")

GLOBAL_METRICS = (
    "rabbitmq_global_messages_received_total", "rabbitmq_global_messages_routed_total",
    "rabbitmq_global_messages_delivered_total", "rabbitmq_global_messages_acknowledged_total",
    "rabbitmq_global_messages_confirmed_total", "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_unroutable_returned_total", "rabbitmq_global_messages_unroutable_dropped_total",
    "rabbitmq_global_messages_dead_lettered_expired_total", "rabbitmq_global_messages_dead_lettered_rejected_total",
    "rabbitmq_global_messages_dead_lettered_maxlen_total",
    "rabbitmq_global_messages_dead_lettered_delivery_limit_total",
    "rabbitmq_alarms_memory_used_watermark", "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_disk_space_available_limit_bytes", "rabbitmq_queue_messages", "rabbitmq_queue_consumers",
)


def label_names(url: str) -> dict:
    """Sample name -> the set of label-name tuples its samples carry."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    names: dict = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).add(tuple(sorted(sample.labels)))
    return names


def test_same_names_and_label_names_as_rabbitmq(tmp_path):
    try:
        reference = label_names(REFERENCE_METRICS)
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(f"reference RabbitMQ Prometheus endpoint {REFERENCE_METRICS} not reachable: {exc}")
    port = free_port()
    broker = BrokerProcess(tmp_path / "data", ["--prometheus-port", str(port)]).start()
    try:
        ours = label_names(f"http://127.0.0.1:{port}/metrics")
    finally:
        broker.stop()
    for name in DASHBOARD_METRICS + GLOBAL_METRICS:
        assert name in reference, f"{name}: not on the reference (the list is wrong)"
        assert ours.get(name) == reference[name], name
