"""POST /api/queues/vh/q/move: messages go from a queue (a dead-letter
queue) to another queue or an exchange, none lost; a missing destination
is refused before anything moves; a move interrupted by SIGKILL loses
nothing and duplicates only messages flagged redelivered in the source."""

from __future__ import annotations

import threading
import time

import pika
import pytest

from tests.interop.management_client import Api, start_with_management


def fill(proc, queue: str, count: int, prefix: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(proc.url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        for i in range(count):
            channel.basic_publish("", queue, f"{prefix}-{i}".encode(),
                                  pika.BasicProperties(delivery_mode=2, message_id=f"{prefix}-{i}"))
        channel.confirm_delivery()  # after the burst: the queue.declare-ok round trip waits for it
        channel.queue_declare(queue, durable=True)
    finally:
        connection.close()


def drain(api: Api, queue: str) -> list[tuple[str, bool]]:
    """(message_id, redelivered) of every ready message, taken."""
    rows = []
    while True:
        batch = api.ok("POST", f"/queues/%2F/{queue}/get", {"count": 1000, "ackmode": "ack_requeue_false"})
        if not batch:
            return rows
        rows.extend((m["properties"]["message_id"], m["redelivered"]) for m in batch)


@pytest.fixture
def broker_api(tmp_path):
    proc, port = start_with_management(tmp_path / "data")
    api = Api(f"http://127.0.0.1:{port}/api")
    api.proc = proc
    yield api
    proc.stop()


def test_move_to_queue_and_exchange(broker_api):
    api = broker_api
    fill(api.proc, "h10-dlq", 5, "m")
    api.ok("PUT", "/queues/%2F/h10-work", {"durable": True})
    assert api.post("/queues/%2F/h10-dlq/move", {"destination": "h10-missing"})[0] == 404
    assert api.post("/queues/%2F/h10-dlq/move", {"destination": "h10-dlq"})[0] == 400
    assert api.ok("GET", "/queues/%2F/h10-dlq")["messages"] == 5
    assert api.ok("POST", "/queues/%2F/h10-dlq/move", {"destination": "h10-work", "count": "3"}) == {
        "moved": 3, "routed": 3}
    api.ok("PUT", "/exchanges/%2F/h10-fan", {"type": "fanout"})
    api.ok("POST", "/bindings/%2F/e/h10-fan/q/h10-work", {"routing_key": ""})
    assert api.ok("POST", "/queues/%2F/h10-dlq/move", {"destination": "h10-fan",
                                                       "destination_type": "exchange"}) == {"moved": 2, "routed": 2}
    assert drain(api, "h10-dlq") == []
    assert drain(api, "h10-work") == [(f"m-{i}", False) for i in range(5)]
    assert "move vhost '/' queue 'h10-dlq' -> queue 'h10-work': 3 messages" in api.proc.log_text()


def test_move_interrupted_by_sigkill(broker_api):
    api = broker_api
    total = 20_000
    fill(api.proc, "h10-src", total, "k")
    api.ok("PUT", "/queues/%2F/h10-dst", {"durable": True})
    def request_move():
        try:
            api.post("/queues/%2F/h10-src/move", {"destination": "h10-dst"})
        except OSError:
            pass  # the broker was killed before it answered: expected

    mover = threading.Thread(target=request_move)
    mover.start()
    deadline = time.monotonic() + 30
    while api.ok("GET", "/queues/%2F/h10-dst")["messages"] == 0:  # the move has begun
        assert time.monotonic() < deadline
    api.proc.kill()
    mover.join(timeout=30)
    api.proc.start()

    source = drain(api, "h10-src")
    destination = drain(api, "h10-dst")
    assert source and destination, "the kill came after the move ended: nothing was interrupted"
    moved = [message_id for message_id, _ in destination]
    assert len(moved) == len(set(moved)), "a message is twice in the destination"
    assert {message_id for message_id, _ in source} | set(moved) == {f"k-{i}" for i in range(total)}
    unflagged_twice = [m for m, redelivered in source if m in set(moved) and not redelivered]
    assert unflagged_twice == []
