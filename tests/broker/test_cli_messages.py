"""``leveret messages find`` and ``leveret messages show`` on the scenario
database (tests/storage/test_mirror_scenario.py lists its nine messages):
columns, filters, JSON, lookups by property, and their errors."""

from __future__ import annotations

import json
import re

from tests.broker.cli_helpers import data_dir, run_leveret as _tool  # noqa: F401  (fixture)


def test_messages_find_table(data_dir):
    from storage.mirror.render import iso
    from tests.storage.test_mirror_scenario import BASE

    result = _tool("messages", "find", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "published_at", "exchange", "routing_key", "queue", "message_id",
                                "state", "body_size"]
    assert [line.split()[0] for line in lines[2:]] == ["9", "8", "7", "6", "5", "4", "3", "2", "1"]
    assert lines[-1].split() == ["1", iso(BASE + 1000), "orders", "order.created", "orders", "order-1",
                                 "acked", "12"]
    assert lines[2].split() == ["9", iso(BASE + 9000), "(default)", "jobs", "jobs", "queued", "4"]
    assert lines[8].split()[2:6] == ["events", "audit,mail", "evt-3", "queued"]   # a fanout: both queues
    result = _tool("messages", "find", "--state", "acked", "--limit", "2",
                   env={"LEVERET_DATA_DIR": str(data_dir)})
    assert [line.split()[0] for line in result.stdout.splitlines()[2:4]] == ["8", "2"]
    assert result.stdout.splitlines()[4:] == ["showing 2 of 3 (newest first; --limit N shows more)"]
    exact = _tool("messages", "find", "--state", "acked", "--limit", "3", "--data-dir", str(data_dir))
    assert len(exact.stdout.splitlines()) == 5          # header, rule, 3 rows: nothing was left out
    result = _tool("messages", "find", "--data-dir", str(data_dir), "--queue", "nowhere")
    assert result.returncode == 0 and result.stdout.strip() == "(no messages)"


def test_messages_find_columns(data_dir):
    result = _tool("messages", "find", "--data-dir", str(data_dir), "--columns",
                   "id,correlation_id,headers,finished_at", "--correlation-id", "corr-1")
    assert result.returncode == 0, result.stderr
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == ["id", "correlation_id", "headers", "finished_at"]
    assert [row.split()[:2] for row in rows] == [["3", "corr-1"], ["1", "corr-1"]]
    # a wide cell (message 1's headers) is cut with an ellipsis, not stretched
    start = header.index("headers")
    headers = '{"n": 1, "tags": ["a", "b"], "tenant": "acme", "vip": true}'
    assert rows[1][start:start + 40] == headers[:39] + "…"
    assert len(rule.split()[2]) == 40


def test_messages_find_bad_state_or_column_is_a_usage_error(data_dir):
    bad = _tool("messages", "find", "--data-dir", str(data_dir), "--state", "bogus")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.splitlines()[-1] == (
        "leveret messages find: error: argument --state: must be one of queued, delivered, acked, "
        "rejected, expired, dead-lettered, purged, dropped, deleted, deduplicated, unrouted, got 'bogus'")
    bad = _tool("messages", "find", "--data-dir", str(data_dir), "--columns", "id,colour")
    assert bad.returncode == 2 and "argument --columns: must be columns among id, vhost" in bad.stderr


def test_state_names_are_the_databases():
    from broker.app.cli_messages import STATE_NAMES
    from storage.mirror import STATES

    assert STATE_NAMES == STATES


def test_messages_find_json_and_filters(data_dir):
    def found(*filters):
        result = _tool("messages", "find", "--data-dir", str(data_dir), "--json", *filters)
        assert result.returncode == 0, result.stderr
        return [m["id"] for m in json.loads(result.stdout)]

    assert found() == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert found("--queue", "mail") == [3]
    assert found("--header", "tenant=acme") == [1]
    assert found("--header", "n=2", "--exchange", "orders") == [2]
    assert found("--correlation-id", "corr-1", "--routing-key", "") == [3]
    assert found("--vhost", "other") == [9]
    doc = json.loads(_tool("messages", "find", "--data-dir", str(data_dir), "--json",
                           "--message-id", "order-1").stdout)
    assert doc[0]["headers"]["tenant"] == "acme" and doc[0]["state"] == "acked"
    assert doc[0]["published_at_iso"].endswith("Z") and "body" not in doc[0]


def test_messages_show_text_and_json(data_dir):
    result = _tool("messages", "show", "3", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("message 3  state queued")
    timeline = text.split("timeline\n")[1].splitlines()
    assert [line.split()[1] for line in timeline] == ["routed", "routed", "delivered", "acked"]
    assert "routed to queue 'audit'" in timeline[0] and "routed to queue 'mail'" in timeline[1]
    assert "delivered from 'audit' to consumer 'a1' (delivery 1)" in timeline[2]
    assert "\n  message_id      evt-3\n" in text and "\nbody (5 bytes)\n  three\n" in text
    doc = json.loads(_tool("messages", "show", "5", "--json", "--data-dir", str(data_dir)).stdout)
    assert doc["state"] == "dead-lettered" and doc["body"] == "five"
    assert [e["event"] for e in doc["events"]] == ["routed", "delivered", "dead-lettered"]
    missing = _tool("messages", "show", "99", "--data-dir", str(data_dir))
    assert missing.returncode == 1
    assert missing.stderr.startswith("leveret: no message '99' in ")


def test_messages_show_by_message_id_or_correlation_id(data_dir):
    by_message_id = _tool("messages", "show", "order-2", "--data-dir", str(data_dir))
    assert by_message_id.returncode == 0 and by_message_id.stdout.startswith("message 2  state acked")
    assert by_message_id.stderr == ""
    by_correlation_id = _tool("messages", "show", "corr-1", "--data-dir", str(data_dir))
    assert by_correlation_id.stdout.startswith("message 3  ")      # the newest of the two
    assert by_correlation_id.stderr == "note: 2 messages match 'corr-1'; showing the newest, 3 (others: 1)\n"
    default = _tool("messages", "show", "9", "--data-dir", str(data_dir)).stdout
    assert re.search(r"\n  exchange +\(default\)\n", default)


def test_messages_without_a_database(tmp_path):
    result = _tool("messages", "find", "--data-dir", str(tmp_path))
    assert result.returncode == 1 and "no message database" in result.stderr


