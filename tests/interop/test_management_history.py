"""Leveret's own management routes: the message history (GET
/api/messages with the filters of ``leveret messages find``, GET
/api/messages/{id} with the timeline) and peek (ready messages without
taking them: nothing is delivered, no redelivered flag is set)."""

from __future__ import annotations

import time

import pika
import pytest

from tests.interop.management_client import Api, start_with_management


@pytest.fixture(scope="module")
def mgmt(tmp_path_factory):
    proc, port = start_with_management(tmp_path_factory.mktemp("mgmt-history") / "data")
    api = Api(f"http://127.0.0.1:{port}/api")
    api.proc = proc
    yield api
    proc.stop()


def publish(api: Api, queue: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(api.proc.url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(queue, durable=True)
        for i in range(count):
            channel.basic_publish("", queue, f"body-{i}".encode(),
                                  pika.BasicProperties(delivery_mode=2, message_id=f"{queue}-{i}",
                                                       correlation_id="h10-corr", headers={"n": i}))
    finally:
        connection.close()


def test_peek_takes_nothing(mgmt):
    publish(mgmt, "h10-peek", 4)
    rows = mgmt.ok("GET", "/queues/%2F/h10-peek/peek?offset=1&count=2")
    assert [(r["position"], r["payload"], r["redelivered"], r["properties"]["message_id"]) for r in rows] == [
        (1, "body-1", False, "h10-peek-1"), (2, "body-2", False, "h10-peek-2")]
    assert mgmt.ok("GET", "/queues/%2F/h10-peek")["messages_ready"] == 4
    taken = mgmt.ok("POST", "/queues/%2F/h10-peek/get", {"count": 4, "ackmode": "ack_requeue_false"})
    assert [(m["payload"], m["redelivered"]) for m in taken] == [(f"body-{i}", False) for i in range(4)]
    assert mgmt.ok("GET", "/queues/%2F/h10-peek/peek?count=5") == []
    assert mgmt.get("/queues/%2F/h10-peek/peek?count=100000")[0] == 400


def test_history_find_and_show(mgmt):
    publish(mgmt, "h10-hist", 3)
    mgmt.ok("POST", "/queues/%2F/h10-hist/get", {"count": 1, "ackmode": "ack_requeue_false"})
    deadline = time.monotonic() + 20
    while True:  # the message database follows the WAL in its own process: wait for it
        status, acked = mgmt.get("/messages?queue=h10-hist&state=acked")
        if (status == 200 and acked) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200, acked
    assert [row["message_id"] for row in acked] == ["h10-hist-0"]
    queued = mgmt.ok("GET", "/messages?queue=h10-hist&header=n=2")
    assert [row["message_id"] for row in queued] == ["h10-hist-2"]
    assert len(mgmt.ok("GET", "/messages?correlation_id=h10-corr&queue=h10-hist&limit=2")) == 2
    shown = mgmt.ok("GET", "/messages/h10-hist-0")
    assert shown["message_id"] == "h10-hist-0"
    assert "acked" in str(shown)
    assert mgmt.get("/messages/h10-no-such-message")[0] == 404
    assert mgmt.get("/messages?since=not-a-time")[0] == 400
    mgmt.ok("PUT", "/users/h10-manager", {"password": "pw", "tags": "management"})
    assert mgmt.as_user("h10-manager", "pw").get("/messages?limit=1")[0] == 401
