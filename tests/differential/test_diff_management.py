"""The same management API calls against the reference RabbitMQ 3.10
(management API on 127.0.0.1:15682, guest/guest) and Leveret give the same
keys, with the same JSON types, for every field that rabbitmqadmin,
Celery Flower, KEDA and the Kubernetes probes read. The scenario is the
same on both: a durable queue bound to a topic exchange, three messages, a
pika consumer with prefetch 2 holding two of them unacknowledged.

RabbitMQ emits queue and channel figures every 5 s (collect_statistics_interval):
each read waits for the event (the figures present and settled), bounded."""

from __future__ import annotations

import socket
import time
import uuid

import pika
import pytest

from tests.interop.management_client import Api, start_with_management

REFERENCE_API = "http://127.0.0.1:15682/api"
REFERENCE_AMQP = "amqp://guest:guest@127.0.0.1:5682/%2F"

#: endpoint -> the dotted fields the clients read
FIELDS = {
    "overview": ["rabbitmq_version", "management_version", "cluster_name", "node", "listeners",
                 "message_stats.publish", "message_stats.publish_details.rate",
                 "message_stats.deliver_get_details.rate", "message_stats.ack_details.rate",
                 "queue_totals.messages", "queue_totals.messages_ready", "queue_totals.messages_unacknowledged",
                 "object_totals.queues", "object_totals.connections", "object_totals.channels",
                 "object_totals.consumers", "object_totals.exchanges", "exchange_types"],
    "node": ["name", "type", "running", "mem_used", "mem_limit", "mem_alarm", "disk_free", "disk_free_limit",
             "disk_free_alarm", "fd_used", "fd_total", "sockets_used", "sockets_total", "proc_used",
             "proc_total", "uptime", "partitions"],
    "queue": ["name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "type", "state", "node",
              "messages", "messages_ready", "messages_unacknowledged", "messages_details.rate",
              "messages_ready_details.rate", "messages_unacknowledged_details.rate", "consumers", "memory",
              "policy", "exclusive_consumer_tag", "consumer_utilisation",
              "message_stats.publish_details.rate", "message_stats.deliver_get_details.rate",
              "message_stats.ack_details.rate", "message_stats.deliver_details.rate"],
    "exchange": ["name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"],
    "binding": ["source", "vhost", "destination", "destination_type", "routing_key", "arguments",
                "properties_key"],
    "connection": ["name", "user", "vhost", "channels", "host", "port", "peer_host", "peer_port", "state",
                   "protocol", "auth_mechanism", "ssl", "client_properties", "frame_max", "timeout",
                   "connected_at", "node"],
    "channel": ["name", "number", "user", "vhost", "connection_details.name", "connection_details.peer_port",
                "consumer_count", "messages_unacknowledged", "messages_unconfirmed", "prefetch_count",
                "global_prefetch_count", "confirm", "transactional", "state", "node"],
    "consumer": ["consumer_tag", "queue.name", "queue.vhost", "channel_details.name",
                 "channel_details.connection_name", "channel_details.peer_port", "ack_required", "exclusive",
                 "prefetch_count", "arguments"],
    "vhost": ["name", "description", "tags", "tracing", "messages", "messages_ready",
              "messages_unacknowledged"],
    "user": ["name", "tags", "password_hash", "hashing_algorithm"],
    "permission": ["user", "vhost", "configure", "write", "read"],
    "whoami": ["name", "tags"],
    "keda_page": ["items", "page", "page_count", "page_size", "filtered_count", "item_count", "total_count"],
    "health": ["status"],
}


def _type(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def shape(row: dict, fields: list[str]) -> dict[str, str]:
    """field -> JSON type of its value, "missing" when absent."""
    result = {}
    for field in fields:
        value: object = row
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                value = KeyError
                break
            value = value[part]
        result[field] = "missing" if value is KeyError else _type(value)
    return result


def wait_for(read, ready, what: str, timeout: float = 25.0):
    """``read()`` until ``ready(value)`` (RabbitMQ's statistics come every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ready(value):
            return value
        assert time.monotonic() < deadline, f"{what}: not ready within {timeout} s: {value}"
        time.sleep(0.2)


def scenario(api: Api, amqp_url: str) -> dict[str, dict[str, str]]:
    """The shapes of every endpoint's row of the scenario's objects."""
    tag = uuid.uuid4().hex[:8]
    queue, exchange = f"h10-diff-q-{tag}", f"h10-diff-x-{tag}"
    api.ok("PUT", f"/exchanges/%2F/{exchange}", {"type": "topic", "durable": "true"})
    api.ok("PUT", f"/queues/%2F/{queue}", {"durable": "true", "arguments": {"x-max-length": 100}})
    api.ok("POST", f"/bindings/%2F/e/{exchange}/q/{queue}", {"routing_key": "k.#", "arguments": {}})
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for i in range(3):
            channel.basic_publish(exchange, "k.x", f"m{i}".encode())
        channel.basic_qos(prefetch_count=2)
        channel.basic_consume(queue, lambda *a: None)
        port = connection._impl._transport._sock.getsockname()[1]

        def settled(row):
            return (row.get("messages_unacknowledged") == 2 and row.get("messages") == 3
                    and "publish_details" in row.get("message_stats", {})
                    and "deliver_get_details" in row.get("message_stats", {}))

        def pump_and_read(path):
            def read():
                connection.process_data_events(time_limit=0)
                return api.ok("GET", path)
            return read

        shapes = {"queue": shape(wait_for(pump_and_read(f"/queues/%2F/{queue}"), settled, "queue"),
                                 FIELDS["queue"])}
        conn = wait_for(lambda: [c for c in api.ok("GET", "/connections") if c.get("peer_port") == port],
                        lambda rows: rows and "channels" in rows[0], "connection")[0]
        shapes["connection"] = shape(conn, FIELDS["connection"])
        chan = wait_for(lambda: [c for c in api.ok("GET", "/channels")
                                 if c.get("connection_details", {}).get("peer_port") == port],
                        lambda rows: rows and rows[0].get("messages_unacknowledged") == 2, "channel")[0]
        shapes["channel"] = shape(chan, FIELDS["channel"])
        consumer = [c for c in api.ok("GET", "/consumers/%2F") if c["queue"]["name"] == queue][0]
        shapes["consumer"] = shape(consumer, FIELDS["consumer"])
        shapes["overview"] = shape(api.ok("GET", "/overview"), FIELDS["overview"])
    finally:
        connection.close()
    shapes["node"] = shape(api.ok("GET", "/nodes")[0], FIELDS["node"])
    shapes["exchange"] = shape(api.ok("GET", f"/exchanges/%2F/{exchange}"), FIELDS["exchange"])
    binding = [b for b in api.ok("GET", "/bindings/%2F") if b["source"] == exchange][0]
    shapes["binding"] = shape(binding, FIELDS["binding"])
    shapes["vhost"] = shape(api.ok("GET", "/vhosts/%2F"), FIELDS["vhost"])
    shapes["user"] = shape(api.ok("GET", "/users/guest"), FIELDS["user"])
    shapes["permission"] = shape(api.ok("GET", "/permissions/%2F/guest"), FIELDS["permission"])
    shapes["whoami"] = shape(api.ok("GET", "/whoami"), FIELDS["whoami"])
    shapes["keda_page"] = shape(api.ok("GET", f"/queues/%2F?page=1&use_regex=true&pagination=false"
                                              f"&name=%5E{queue}$&page_size=10"), FIELDS["keda_page"])
    shapes["health"] = shape(api.ok("GET", "/health/checks/alarms"), FIELDS["health"])
    api.ok("DELETE", f"/queues/%2F/{queue}")
    api.ok("DELETE", f"/exchanges/%2F/{exchange}")
    return shapes


@pytest.fixture(scope="module")
def reference_api():
    try:
        with socket.create_connection(("127.0.0.1", 15682), timeout=1.0):
            pass
    except OSError as exc:
        pytest.skip(f"reference RabbitMQ management API not reachable on 15682 ({exc}); "
                    "start it with ../shared/tools/reference-rabbitmq start")
    return Api(REFERENCE_API)


def test_same_keys_as_rabbitmq(reference_api, tmp_path):
    reference = scenario(reference_api, REFERENCE_AMQP)
    missing = {endpoint: [f for f, t in fields.items() if t == "missing"] for endpoint, fields in reference.items()}
    assert not any(missing.values()), f"the reference lacks fields the scenario expects: {missing}"
    proc, port = start_with_management(tmp_path / "data")
    try:
        observed = scenario(Api(f"http://127.0.0.1:{port}/api"), proc.url)
    finally:
        proc.stop()
    differences = {endpoint: {field: (observed[endpoint][field], kind) for field, kind in fields.items()
                              if observed[endpoint][field] != kind}
                   for endpoint, fields in reference.items()}
    assert not any(differences.values()), f"Leveret (left) differs from RabbitMQ (right): {differences}"
