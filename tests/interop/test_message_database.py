"""The message database of a running broker (issue 3, "The message
database"): after publishing, consuming, acking, rejecting, requeueing,
purging and basic.get of known messages (tests/interop/mirror_scenario.py),
``leveret messages find/show`` and plain SQL on ``messages.db`` give exactly
the expected rows and timelines, while the broker runs."""

from __future__ import annotations

import json

from storage.mirror.render import iso
from tests.interop.mirror_scenario import (EXPECTED, find, leveret, props, run_scenario, sql, timelines,
                                           wait_for_mirror)
from tests.interop.pika_helpers import pika_connection


def test_rows_and_timelines_with_sql(fresh_broker):
    proc = fresh_broker()
    _split, connection = run_scenario(proc)
    try:
        wait_for_mirror(proc, EXPECTED)
        assert timelines(proc) == EXPECTED        # no transient message, no transient queue
        rows = sql(proc, "SELECT message_id, vhost, exchange, routing_key, queue_count, "
                         "correlation_id, content_type, app_id, delivery_mode, "
                         "json_extract(headers, '$.tenant'), headers ->> '$.n', body_size, body "
                         "FROM messages ORDER BY id")
        assert rows == [
            ("order-1", "/", "", "orders", 1, "corr-1", "application/json", "shop", 2, "acme", 1,
             12, b'{"order": 1}'),
            ("order-2", "/", "", "orders", 1, None, None, None, 2, "globex", None, 3, b"two"),
            ("evt-3", "/", "events", "evt", 2, "corr-1", None, None, 2, None, None, 5, b"three"),
            ("order-4", "/", "", "orders", 1, None, None, None, 2, None, None, 7, b"order-4"),
            ("order-5", "/", "", "orders", 1, None, None, None, 2, None, None, 7, b"order-5"),
            ("job-6", "/", "", "jobs", 1, None, None, None, 2, None, None, 5, b"job-6"),
            ("job-7", "/", "", "jobs", 1, None, None, None, 2, None, None, 5, b"job-7"),
            ("order-8", "/", "", "orders", 1, None, None, None, 2, None, None, 5, b"eight")]
        # finished_at: the time of the event that finished the message, NULL while live
        assert sql(proc, "SELECT m.message_id FROM messages m WHERE m.state NOT IN ('queued', "
                         "'delivered') AND m.finished_at IS NOT (SELECT max(at) FROM "
                         "message_events e WHERE e.message = m.id)") == []
        assert sql(proc, "SELECT message_id FROM messages WHERE finished_at IS NULL "
                         "ORDER BY id") == [("evt-3",), ("order-8",)]
        # every timeline is in time order, and no message was published after its events
        assert sql(proc, "SELECT count(*) FROM message_events e JOIN message_events f ON "
                         "e.message = f.message AND f.id > e.id AND f.at < e.at") == [(0,)]
        assert sql(proc, "SELECT count(*) FROM message_events e JOIN messages m ON "
                         "m.id = e.message WHERE e.at < m.published_at") == [(0,)]
        assert sql(proc, "SELECT key, value FROM meta WHERE key IN ('mode', 'body_limit') "
                         "ORDER BY key") == [("body_limit", 65536), ("mode", "full")]
        # recipe: messages delivered and not acked, with their consumer
        assert sql(proc, "SELECT m.message_id, e.queue, e.consumer_tag FROM messages m JOIN "
                         "message_events e ON e.message = m.id WHERE m.state = 'delivered' AND "
                         "e.event = 'delivered'") == [("order-8", "orders", "")]
    finally:
        connection.close()


def test_find_filters_and_show(fresh_broker):
    proc = fresh_broker()
    split, connection = run_scenario(proc)
    connection.close()                                   # order-8 goes back to the queue
    expected = dict(EXPECTED, **{"order-8": ("queued", EXPECTED["order-8"][1] + [
        ("orders", "requeued", None, None)])})
    wait_for_mirror(proc, expected)
    newest_first = ["order-8", "job-7", "job-6", "order-5", "order-4", "evt-3", "order-2",
                    "order-1"]
    assert find(proc) == newest_first
    assert find(proc, "--vhost", "/") == newest_first and find(proc, "--vhost", "x") == []
    assert find(proc, "--queue", "mail") == ["evt-3"]
    assert find(proc, "--queue", "jobs") == ["job-7", "job-6"]
    assert find(proc, "--exchange", "events") == ["evt-3"]
    assert find(proc, "--routing-key", "orders") == ["order-8", "order-5", "order-4", "order-2",
                                                     "order-1"]
    assert find(proc, "--message-id", "order-2") == ["order-2"]
    assert find(proc, "--correlation-id", "corr-1") == ["evt-3", "order-1"]
    assert find(proc, "--header", "tenant=acme") == ["order-1"]
    assert find(proc, "--header", "n=1", "--header", "tenant=acme") == ["order-1"]
    assert find(proc, "--header", "tenant=nobody") == []
    assert find(proc, "--state", "purged") == ["job-7", "job-6"]
    assert find(proc, "--state", "queued") == ["order-8", "evt-3"]
    assert find(proc, "--state", "rejected", "--routing-key", "orders") == ["order-2"]
    assert find(proc, "--since", iso(split)) == newest_first[:5]
    assert find(proc, "--until", str(split)) == newest_first[5:]
    assert find(proc, "--since", str(split), "--until", str(split)) == []
    assert find(proc, "--limit", "2") == ["order-8", "job-7"]

    doc = json.loads(leveret("messages", "find", "--data-dir", str(proc.data_dir), "--json",
                             "--message-id", "order-1").stdout)[0]
    assert (doc["state"], doc["headers"], doc["exchange"], doc["routing_key"], doc["body_size"]) \
        == ("acked", {"tenant": "acme", "n": 1}, "", "orders", 12)
    assert "body" not in doc and doc["published_at_iso"] == iso(doc["published_at"])
    table = leveret("messages", "find", "--data-dir", str(proc.data_dir), "--state", "purged")
    assert [line.split()[-3:-1] for line in table.stdout.splitlines()[2:]] == [
        ["job-7", "purged"], ["job-6", "purged"]]

    (mid,), = sql(proc, "SELECT id FROM messages WHERE message_id = 'order-4'")
    text = leveret("messages", "show", str(mid), "--data-dir", str(proc.data_dir))
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"message {mid}  state acked")
    assert "message_id     order-4" in text.stdout
    steps = [line.split(None, 2)[1:] for line in text.stdout.split("timeline\n")[1].splitlines()]
    assert steps == [["routed", "routed to queue 'orders'"],
                     ["delivered", "delivered from 'orders' to consumer 'c1' (delivery 1)"],
                     ["requeued", "requeued in 'orders'"],
                     ["delivered", "delivered from 'orders' to consumer 'c1' (delivery 2)"],
                     ["acked", "acked in 'orders'"]]
    (mid,), = sql(proc, "SELECT id FROM messages WHERE message_id = 'order-5'")
    shown = json.loads(leveret("messages", "show", str(mid), "--json", "--data-dir",
                               str(proc.data_dir)).stdout)
    assert (shown["message_id"], shown["body"], shown["body_encoding"], shown["state"]) \
        == ("order-5", "order-5", "utf-8", "acked")
    assert [(e["event"], e["consumer_tag"], e["delivery_count"]) for e in shown["events"]] == [
        ("routed", None, None), ("delivered", "c1", 1), ("requeued", None, None),
        ("delivered", "", 2), ("acked", None, None)]
    assert [e["at_iso"] for e in shown["events"]] == [iso(e["at"]) for e in shown["events"]]
    missing = leveret("messages", "show", "999", "--data-dir", str(proc.data_dir))
    assert missing.returncode == 1 and "no message '999'" in missing.stderr


def test_queue_delete_records_deleted(fresh_broker):
    """queue.delete finishes the messages ready in the queue as "deleted"
    (not "purged"); the other queue of a fanout keeps its copy queued."""
    proc = fresh_broker()
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.exchange_declare("fan", "fanout", durable=True)
        for name in ("gone", "kept"):
            ch.queue_declare(name, durable=True)
            ch.queue_bind(name, "fan")
        ch.confirm_delivery()
        ch.basic_publish("fan", "", b"x", props("doomed"))
        ch.queue_delete("gone")
    wait_for_mirror(proc, {"doomed": ("queued", [("gone", "routed", None, None), ("kept", "routed", None, None),
                                                  ("gone", "deleted", None, None)])})
