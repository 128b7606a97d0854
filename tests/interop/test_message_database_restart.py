"""The message database across a SIGKILL and restart (no duplicate rows,
new events appended after the old ones), ``leveret db rebuild`` (refused
while the broker runs, the same rows once it is stopped), and the
``--mirror`` / ``--mirror-body-limit`` settings."""

from __future__ import annotations

import sqlite3

from tests.interop.mirror_scenario import (EXPECTED, db_path, leveret, props, run_scenario, sql,
                                           wait_for_mirror, wait_until)
from tests.interop.pika_helpers import pika_connection


def dump(proc) -> tuple[list, list]:
    return (sql(proc, "SELECT * FROM messages ORDER BY id"),
            sql(proc, "SELECT * FROM message_events ORDER BY id"))


def test_sigkill_restart_then_rebuild(fresh_broker):
    proc = fresh_broker()
    _split, _connection = run_scenario(proc)          # order-8 stays unacked until the kill
    wait_for_mirror(proc, EXPECTED)
    before = dump(proc)
    proc.kill()
    proc.start()
    wait_until(lambda: "messages.db opened: 8 messages, watermark Position" in proc.log_text(),
               True)
    assert dump(proc) == before                       # the WAL replay added nothing
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.confirm_delivery()
        method, p, _ = ch.basic_get("orders")
        assert p.message_id == "order-8" and method.redelivered
        ch.basic_ack(method.delivery_tag)
        method, p, _ = ch.basic_get("mail")
        assert p.message_id == "evt-3"
        ch.basic_ack(method.delivery_tag)
        ch.basic_publish("", "orders", b"nine", props("order-9"))
    expected = dict(EXPECTED)                         # order-8: its second delivery
    expected["order-8"] = ("acked", EXPECTED["order-8"][1] + [
        ("orders", "delivered", "", 2), ("orders", "acked", None, None)])
    expected["evt-3"] = ("acked", EXPECTED["evt-3"][1] + [
        ("mail", "delivered", "", 1), ("mail", "acked", None, None)])
    expected["order-9"] = ("queued", [("orders", "routed", None, None)])
    wait_for_mirror(proc, expected)
    messages, events = dump(proc)
    assert [m[0] for m in messages] == [m[0] for m in before[0]] + [messages[-1][0]]
    assert events[:len(before[1])] == before[1]       # history kept, new events after it
    assert [e[3] for e in events[len(before[1]):]] == ["delivered", "acked", "delivered", "acked",
                                                       "routed"]

    refused = leveret("db", "rebuild", "--data-dir", str(proc.data_dir))
    assert refused.returncode == 1 and "locked" in refused.stderr
    proc.stop()
    stopped = dump(proc)
    assert stopped == (messages, events)
    result = leveret("db", "rebuild", "--data-dir", str(proc.data_dir))
    assert result.returncode == 0, result.stderr
    assert "9 messages" in result.stdout
    assert dump(proc) == stopped


def _publish(proc, bodies: list[bytes]) -> None:
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.confirm_delivery()
        ch.queue_declare("q", durable=True)
        for i, body in enumerate(bodies):
            ch.basic_publish("", "q", body, props(f"m{i}"))


def test_mirror_off_then_rebuilt_with_a_body_limit(fresh_broker):
    proc = fresh_broker("--mirror", "off")
    _publish(proc, [b"abc", b"abcd"])
    proc.stop()
    assert not db_path(proc).exists()
    assert "message database off" in proc.log_text()
    result = leveret("db", "rebuild", "--data-dir", str(proc.data_dir),
                     env={"LEVERET_MIRROR_BODY_LIMIT": "3"})
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(db_path(proc))
    rows = conn.execute("SELECT message_id, body_size, body, state FROM messages").fetchall()
    conn.close()
    assert rows == [("m0", 3, b"abc", "queued"), ("m1", 4, None, "queued")]


def test_body_limit_of_a_running_broker(fresh_broker):
    proc = fresh_broker("--mirror-body-limit", "3")
    _publish(proc, [b"abc", b"abcd", b""])
    wait_until(lambda: sql(proc, "SELECT message_id, body_size, body FROM messages")
               if db_path(proc).exists() else None,
               [("m0", 3, b"abc"), ("m1", 4, None), ("m2", 0, b"")])
    assert sql(proc, "SELECT value FROM meta WHERE key = 'body_limit'") == [(3,)]


def test_a_mirror_behind_stores_metadata_only_and_says_so(fresh_broker):
    """--mirror-max-backlog 1: any batch of two or more records is written
    without bodies, with a warning; once caught up, bodies again."""
    proc = fresh_broker("--mirror-max-backlog", "1")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare("q", durable=True)
        for i in range(200):                          # no confirms: one burst
            ch.basic_publish("", "q", b"body", props(f"m{i}"))
        ch.confirm_delivery()
        ch.basic_publish("", "q", b"last", props("m200"))
    wait_until(lambda: sql(proc, "SELECT count(*) FROM messages") if db_path(proc).exists()
               else None, [(201,)])
    (without, with_body), = sql(proc, "SELECT sum(body IS NULL), sum(body IS NOT NULL) "
                                      "FROM messages")
    assert without > 0 and without + with_body == 201
    assert sql(proc, "SELECT count(*) FROM messages WHERE body_size != length(body) OR "
                     "(body IS NULL AND body_size != 4)") == [(0,)]
    log = proc.log_text()
    assert "WARNING storage.mirror: message database is" in log
    assert "storing metadata only, no bodies, until it catches up" in log
    wait_until(lambda: "storing bodies again" in proc.log_text(), True)
