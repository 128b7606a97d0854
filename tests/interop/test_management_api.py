"""The management API over HTTP (urllib) and the clients that read it
(Celery Flower's broker client, KEDA's URL shapes): authentication and
RabbitMQ's tag rules, vhost "/" as %2F and unencoded, values sent as
strings, RabbitMQ's error bodies, the query parameters (columns, sort,
pagination), the queue figures, closing a connection, health checks, the
durability of a publish through the API, and the audit lines."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from urllib.parse import quote as url_quote

import pika
import pytest

from tests.interop.management_client import Api, start_with_management
from tests.interop.server_process import BrokerProcess, free_port


@pytest.fixture(scope="module")
def mgmt(tmp_path_factory):
    proc, port = start_with_management(tmp_path_factory.mktemp("mgmt-api") / "data")
    api = Api(f"http://127.0.0.1:{port}/api")
    api.proc, api.port = proc, port
    yield api
    proc.stop()


def test_authentication_and_tags(mgmt):
    assert Api(mgmt.base, None).get("/overview")[0] == 401
    status, body = mgmt.as_user("guest", "wrong").get("/overview")
    assert (status, body) == (401, {"error": "not_authorised", "reason": "Login failed"})
    mgmt.ok("PUT", "/users/h10-plain", {"password": "pw", "tags": ""})
    mgmt.ok("PUT", "/users/h10-mon", {"password": "pw", "tags": "monitoring"})
    mgmt.ok("PUT", "/users/h10-mgmt", {"password": "pw", "tags": ["management"]})
    assert mgmt.as_user("h10-plain", "pw").get("/overview") == (
        401, {"error": "not_authorised", "reason": "Not management user"})
    monitor = mgmt.as_user("h10-mon", "pw")
    assert monitor.get("/nodes")[0] == 200 and monitor.get("/queues")[0] == 200
    assert monitor.put("/vhosts/h10-nope")[0] == 401
    assert monitor.get("/users")[0] == 401
    manager = mgmt.as_user("h10-mgmt", "pw")
    # a management user without permissions sees no vhost, and no node
    assert manager.ok("GET", "/vhosts") == []
    assert manager.get("/nodes")[0] == 401
    assert manager.get("/queues/%2F")[0] == 401
    assert manager.ok("GET", "/whoami") == {"name": "h10-mgmt", "tags": ["management"]}


def test_vhost_slash_encoded_and_unencoded(mgmt):
    assert mgmt.put("/queues/%2F/h10-slash", {"durable": "false"})[0] == 201
    assert mgmt.put("/queues/%2F/h10-slash", {"durable": "false"})[0] == 204
    assert "h10-slash" in {q["name"] for q in mgmt.ok("GET", "/queues/%2F")}
    assert "h10-slash" in {q["name"] for q in mgmt.ok("GET", "/queues//")}
    assert mgmt.ok("GET", "/queues//h10-slash")["vhost"] == "/"
    # a name holding "/" is reached as %2F
    mgmt.ok("PUT", "/exchanges/%2F/h10%2Fa", {"type": "fanout", "durable": "true", "extra": 1})
    assert mgmt.ok("GET", "/exchanges/%2F/h10%2Fa")["name"] == "h10/a"


def test_string_values_and_errors(mgmt):
    mgmt.ok("PUT", "/queues/%2F/h10-str", {"durable": "true", "auto_delete": "false",
                                           "arguments": {"x-max-length": 5}})
    queue = mgmt.ok("GET", "/queues/%2F/h10-str")
    assert (queue["durable"], queue["auto_delete"], queue["arguments"]) == (True, False, {"x-max-length": 5})
    assert mgmt.get("/queues/%2F/h10-missing") == (404, {"error": "Object Not Found", "reason": "Not Found"})
    assert mgmt.get("/queues/h10-no-vhost")[0] == 404
    status, body = mgmt.put("/queues/%2F/h10-str", {"durable": "false"})
    assert status == 400 and "inequivalent arg 'durable'" in body["reason"]
    assert mgmt.put("/exchanges/%2F/h10-bad", {"type": "nonsense"})[0] == 400
    assert mgmt.put("/queues/%2F/h10-badargs", {"arguments": {"x-max-length": "x"}})[0] == 400
    assert mgmt.call("PUT", "/queues/%2F/h10-json", raw=b"{not json")[0] == 400
    assert mgmt.post("/queues/%2F/h10-str/get", {"count": "5", "ackmode": "ack_requeue_true",
                                                 "encoding": "auto"}) == (200, [])
    assert mgmt.post("/queues/%2F/h10-str/get", {"ackmode": "sometimes"})[0] == 400
    assert mgmt.call("PATCH", "/queues/%2F/h10-str")[0] == 405


def test_columns_sort_and_pagination(mgmt):
    for name in ("h10-page-b", "h10-page-a", "h10-page-c"):
        mgmt.ok("PUT", f"/queues/%2F/{name}", {"durable": False})
    rows = mgmt.ok("GET", "/queues/%2F?columns=name,message_stats.publish_details.rate&sort=name"
                          "&sort_reverse=true&name=h10-page")
    assert rows == [{"name": n, "message_stats": {"publish_details": {"rate": 0.0}}}
                    for n in ("h10-page-c", "h10-page-b", "h10-page-a")]
    # KEDA's shape (scalers/rabbitmq_scaler.go with useRegex)
    page = mgmt.ok("GET", "/queues/%2F?page=1&use_regex=true&pagination=false&name=%5Eh10-page-%5Bab%5D$"
                          "&page_size=1")
    assert page["items"][0]["name"] == "h10-page-a"
    assert (page["page"], page["page_count"], page["page_size"], page["filtered_count"],
            page["item_count"]) == (1, 2, 1, 2, 1)
    for key in ("messages", "messages_unacknowledged", "message_stats"):
        assert key in page["items"][0]
    assert "publish_details" in page["items"][0]["message_stats"]
    assert mgmt.get("/queues/%2F?page=9&page_size=1&name=h10-page")[0] == 400
    assert mgmt.get("/queues/%2F?page=1&page_size=501")[0] == 400


def test_queue_figures_connections_and_close(mgmt):
    connection = pika.BlockingConnection(pika.URLParameters(mgmt.proc.url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare("h10-fig")
    for i in range(5):
        channel.basic_publish("", "h10-fig", f"m{i}".encode())
    channel.basic_qos(prefetch_count=2)
    channel.basic_consume("h10-fig", lambda *a: None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait for the event: the two deliveries are out
        connection.process_data_events(time_limit=0.1)
        queue = mgmt.ok("GET", "/queues/%2F/h10-fig")
        if queue["messages_unacknowledged"] == 2:
            break
    assert (queue["messages"], queue["messages_ready"], queue["messages_unacknowledged"],
            queue["consumers"]) == (5, 3, 2, 1)
    assert "rate" in queue["message_stats"]["deliver_get_details"]
    (conn,) = [c for c in mgmt.ok("GET", "/connections") if c["peer_port"] == channel_port(connection)]
    assert conn["channels"] == 1 and conn["user"] == "guest"
    assert conn["client_properties"]["product"] == "Pika Python Client Library"
    (chan,) = mgmt.ok("GET", f"/connections/{quote(conn['name'])}/channels")
    assert (chan["prefetch_count"], chan["messages_unacknowledged"], chan["confirm"]) == (2, 2, True)
    assert [c["queue"]["name"] for c in mgmt.ok("GET", "/consumers/%2F")] == ["h10-fig"]
    overview = mgmt.ok("GET", "/overview")
    assert overview["object_totals"]["connections"] >= 1
    assert overview["queue_totals"]["messages_unacknowledged"] >= 2

    assert mgmt.delete(f"/connections/{quote(conn['name'])}", headers={"X-Reason": "h10 says bye"})[0] == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        connection.process_data_events(time_limit=5)
    assert closed.value.reply_code == 320 and closed.value.reply_text == "CONNECTION_FORCED - h10 says bye"
    assert mgmt.ok("GET", "/queues/%2F/h10-fig")["messages_ready"] == 5
    assert "admin: 'guest' from 127.0.0.1:" in mgmt.proc.log_text()
    assert "close_connection" in mgmt.proc.log_text()


def channel_port(connection) -> int:
    return connection._impl._transport._sock.getsockname()[1]


def quote(name: str) -> str:
    return url_quote(name, safe="")


def test_health_checks(mgmt):
    for path in ("/health/checks/alarms", "/health/checks/local-alarms", "/health/checks/virtual-hosts",
                 "/health/checks/certificate-expiration/1/weeks", "/health/checks/ready-to-serve-clients",
                 "/health/checks/is-in-service", "/health/checks/protocol-listener/amqp",
                 f"/health/checks/port-listener/{mgmt.proc.port}", "/aliveness-test/%2F"):
        status, body = mgmt.get(path)
        assert (status, body["status"]) == (200, "ok"), path
    status, body = mgmt.get("/health/checks/port-listener/1")
    assert (status, body["status"], body["reason"]) == (503, "failed", "No active listener on port 1")
    assert mgmt.get("/health/checks/protocol-listener/stomp")[0] == 503
    assert mgmt.get("/health/checks/certificate-expiration/1/fortnights")[0] == 400


def test_publish_through_the_api_survives_a_restart(tmp_path):
    proc, port = start_with_management(tmp_path / "data")
    try:
        api = Api(f"http://127.0.0.1:{port}/api")
        api.ok("PUT", "/queues/%2F/h10-durable", {"durable": True})
        answer = api.ok("POST", "/exchanges/%2F/amq.default/publish",
                        {"routing_key": "h10-durable", "payload": "aGVsbG8=", "payload_encoding": "base64",
                         "properties": {"delivery_mode": "2", "headers": {"h": 1}}})
        assert answer == {"routed": True}
        assert api.ok("POST", "/exchanges/%2F/amq.default/publish",
                      {"routing_key": "nowhere", "payload": "x", "properties": {}}) == {"routed": False}
        proc.kill()  # the answer came after the fsync: the message is on disk
        proc.start()
        (message,) = api.ok("POST", "/queues/%2F/h10-durable/get", {"count": 1, "ackmode": "ack_requeue_false",
                                                                   "encoding": "auto"})
        assert (message["payload"], message["properties"]["headers"]) == ("hello", {"h": 1})
    finally:
        proc.stop()


def test_flower_broker_client_reads_the_queue_figures(mgmt):
    broker_module = pytest.importorskip("flower.utils.broker")
    mgmt.ok("PUT", "/queues/%2F/h10-celery", {"durable": True})
    mgmt.ok("POST", "/exchanges/%2F/amq.default/publish", {"routing_key": "h10-celery", "payload": "task",
                                                           "payload_encoding": "string", "properties": {}})
    broker = broker_module.Broker(mgmt.proc.url.replace("/%2F", "/"),
                                  http_api=f"http://guest:guest@127.0.0.1:{mgmt.port}/api/")
    queues = asyncio.run(broker.queues(["h10-celery"]))
    assert [(q["name"], q["messages"], q["messages_ready"], q["consumers"]) for q in queues] == [
        ("h10-celery", 1, 1, 0)]


def test_management_off(tmp_path):
    port = free_port()
    proc = BrokerProcess(tmp_path / "data", ["--management", "off", "--management-port", str(port)]).start()
    try:
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=2)
        assert "management API listening" not in proc.log_text()
    finally:
        proc.stop()
