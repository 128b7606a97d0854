"""A known message history driven through a real broker with pika, for the
message database tests (test_message_database*.py), and helpers to read
``<data_dir>/messages.db`` with the CLI and with plain sqlite3.

Only persistent messages (delivery_mode 2) routed to durable queues reach
the WAL, hence the database; the scenario also publishes a transient
message to a durable queue and a persistent one to a transient queue, which
must not appear.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pika

REPO_ROOT = Path(__file__).resolve().parents[2]

#: message_id -> (state, timeline); a timeline entry is (queue, event,
#: consumer_tag, delivery_count). Fanout order of "routed" is not fixed.
EXPECTED = {
    "order-1": ("acked", [("orders", "routed", None, None), ("orders", "delivered", "c1", 1),
                          ("orders", "acked", None, None)]),
    "order-2": ("rejected", [("orders", "routed", None, None), ("orders", "delivered", "c1", 1),
                             ("orders", "rejected", None, None)]),
    "evt-3": ("queued", [("audit", "routed", None, None), ("mail", "routed", None, None),
                         ("audit", "delivered", "", 1), ("audit", "acked", None, None)]),
    "order-4": ("acked", [("orders", "routed", None, None), ("orders", "delivered", "c1", 1),
                          ("orders", "requeued", None, None), ("orders", "delivered", "c1", 2),
                          ("orders", "acked", None, None)]),
    "order-5": ("acked", [("orders", "routed", None, None), ("orders", "delivered", "c1", 1),
                          ("orders", "requeued", None, None), ("orders", "delivered", "", 2),
                          ("orders", "acked", None, None)]),
    "job-6": ("purged", [("jobs", "routed", None, None), ("jobs", "purged", None, None)]),
    "job-7": ("purged", [("jobs", "routed", None, None), ("jobs", "purged", None, None)]),
    "order-8": ("delivered", [("orders", "routed", None, None), ("orders", "delivered", "", 1)]),
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def props(message_id: str, delivery_mode: int = 2, **extra) -> pika.BasicProperties:
    return pika.BasicProperties(delivery_mode=delivery_mode, message_id=message_id, **extra)


def _wait(connection, condition, timeout: float = 10.0) -> None:
    """Let pika process I/O until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for deliveries"
        connection.process_data_events(time_limit=0.02)


def run_scenario(proc):
    """Drive the scenario on ``proc``. Returns (split, connection): ``split``
    is a time (ms) after order-1, order-2 and evt-3 were published and
    before the others were; ``connection`` holds order-8 delivered and
    unacked (close it, or kill the broker, to end the test)."""
    connection = pika.BlockingConnection(pika.URLParameters(proc.url))
    ch = connection.channel()
    ch.confirm_delivery()
    ch.exchange_declare("events", "fanout", durable=True)
    for queue in ("orders", "audit", "mail", "jobs"):
        ch.queue_declare(queue, durable=True)
    ch.queue_bind("audit", "events")
    ch.queue_bind("mail", "events")
    ch.queue_declare("scratch")                               # transient queue
    ch.basic_publish("", "orders", b'{"order": 1}', props(
        "order-1", correlation_id="corr-1", content_type="application/json", app_id="shop",
        headers={"tenant": "acme", "n": 1}))
    ch.basic_publish("", "orders", b"two", props("order-2", headers={"tenant": "globex"}))
    ch.basic_publish("events", "evt", b"three", props("evt-3", correlation_id="corr-1"))
    last = now_ms()
    while now_ms() <= last:                                   # the clock moves on (< 1 ms)
        pass
    split = now_ms()
    ch.basic_publish("", "orders", b"transient", props("transient", delivery_mode=1))
    ch.basic_publish("", "scratch", b"not durable", props("scratch-1"))
    for message_id in ("order-4", "order-5"):
        ch.basic_publish("", "orders", message_id.encode(), props(message_id))
    for message_id in ("job-6", "job-7"):
        ch.basic_publish("", "jobs", message_id.encode(), props(message_id))

    got = []
    ch.basic_qos(prefetch_count=10)
    ch.basic_consume("orders", lambda _c, method, p, _b: got.append((method, p.message_id)),
                     consumer_tag="c1")
    _wait(connection, lambda: len(got) == 5)
    tags = {message_id: method.delivery_tag for method, message_id in got}
    assert list(tags) == ["order-1", "order-2", "transient", "order-4", "order-5"]
    ch.basic_ack(tags["order-1"])
    ch.basic_reject(tags["order-2"], requeue=False)
    ch.basic_ack(tags["transient"])
    ch.basic_nack(tags["order-4"], requeue=True)             # back, and again to c1
    _wait(connection, lambda: len(got) == 6)
    assert got[5][1] == "order-4" and got[5][0].redelivered
    ch.basic_ack(got[5][0].delivery_tag)
    ch.basic_cancel("c1")
    ch.close()                                                # order-5 (unacked) requeued
    ch = connection.channel()
    ch.confirm_delivery()
    method, p, _ = ch.basic_get("orders")
    assert p.message_id == "order-5" and method.redelivered
    ch.basic_ack(method.delivery_tag)
    method, p, _ = ch.basic_get("audit")
    assert p.message_id == "evt-3"
    ch.basic_ack(method.delivery_tag)
    assert ch.queue_purge("jobs").method.message_count == 2
    ch.basic_publish("", "orders", b"eight", props("order-8"))
    method, p, _ = ch.basic_get("orders")                     # left unacked
    assert p.message_id == "order-8"
    return split, connection


def db_path(proc) -> Path:
    return Path(proc.data_dir) / "messages.db"


def sql(proc, query: str, params=()) -> list:
    """Rows of ``query`` on the live database, through plain sqlite3."""
    conn = sqlite3.connect(db_path(proc))
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def timelines(proc) -> dict:
    """{message_id: (state, [(queue, event, consumer_tag, delivery_count)])}
    with the routed events of a message sorted (fanout order is not fixed)."""
    out = {}
    for message_id, state, mid in sql(proc, "SELECT message_id, state, id FROM messages"):
        events = sql(proc, "SELECT queue, event, consumer_tag, delivery_count FROM "
                           "message_events WHERE message = ? ORDER BY id", (mid,))
        routed = sorted(e for e in events if e[1] == "routed")
        out[message_id] = (state, routed + [e for e in events if e[1] != "routed"])
    return out


def wait_until(read, expected, timeout: float = 15.0):
    """Poll ``read()`` every 50 ms until it returns ``expected`` (an
    sqlite3.OperationalError, e.g. before the schema exists, counts as not
    yet); raises AssertionError with the last value after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = read()
        except sqlite3.OperationalError as exc:
            seen = exc
        if seen == expected:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"never got {expected!r}; last: {seen!r}")


def wait_for_mirror(proc, expected: dict, timeout: float = 15.0) -> None:
    """Poll the database until its timelines equal ``expected``."""
    wait_until(lambda: timelines(proc) if db_path(proc).exists() else None, expected, timeout)


def leveret(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m broker ARGS`` in the repository, without LEVERET_* from
    the test's environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEVERET_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, env=environ)


def find(proc, *filters: str) -> list[str]:
    """message_ids from ``leveret messages find --json FILTERS``, newest first."""
    result = leveret("messages", "find", "--data-dir", str(proc.data_dir), "--json", *filters)
    assert result.returncode == 0, result.stderr
    return [m["message_id"] for m in json.loads(result.stdout)]
