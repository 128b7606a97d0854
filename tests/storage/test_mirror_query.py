"""``find`` / ``show`` on the scenario database, read-only."""

from __future__ import annotations

import datetime
import sqlite3

import pytest

from storage.mirror import MessageMirror, MirrorNotFound, find, show, to_ms
from storage.mirror.render import format_message, format_table, iso, to_json
from storage.wal import MESSAGE, Position, encode_message
from tests.storage.test_mirror_scenario import BASE, build_database, content_header


@pytest.fixture
async def db(tmp_path):
    return await build_database(tmp_path)


def ids(rows):
    return [r["id"] for r in rows]


@pytest.mark.parametrize("filters, expected", [
    ({}, [9, 8, 7, 6, 5, 4, 3, 2, 1]),
    ({"vhost": "other"}, [9]),
    ({"queue": "orders"}, [8, 7, 6, 5, 4, 2, 1]),
    ({"queue": "mail"}, [3]),
    ({"queue": "audit", "state": "queued"}, [3]),
    ({"exchange": "events"}, [3]),
    ({"exchange": ""}, [9]),
    ({"routing_key": "order.failed"}, [5]),
    ({"exchange": "orders", "routing_key": "order.created"}, [8, 7, 6, 4, 2, 1]),
    ({"message_id": "order-2"}, [2]),
    ({"correlation_id": "corr-1"}, [3, 1]),
    ({"state": "acked"}, [8, 2, 1]),
    ({"state": "delivered"}, [7]),
    ({"state": "dead-lettered"}, [5]),
    ({"state": "expired"}, [4]),
    ({"state": "purged"}, [6]),
    ({"state": "nonsense"}, []),
    ({"headers": {"tenant": "acme"}}, [1]),
    ({"headers": {"n": 2}}, [2]),
    ({"headers": {"n": "2"}}, [2]),                # CLI form: JSON text of the number
    ({"headers": {"vip": True}}, [1]),
    ({"headers": {"vip": "true"}}, [1]),
    ({"headers": {"tags": ["a", "b"]}}, [1]),
    ({"headers": {"tenant": "acme", "n": 2}}, []),
    ({"headers": {"missing": "x"}}, []),
    ({"since": BASE + 5000}, [9, 8, 7, 6, 5]),
    ({"until": BASE + 3000}, [2, 1]),
    ({"since": BASE + 2000, "until": BASE + 4000}, [3, 2]),
    ({"limit": 2}, [9, 8]),
    ({"limit": None, "queue": "jobs"}, [9]),
])
async def test_find_filters(db, filters, expected):
    assert ids(find(db, **filters)) == expected


async def test_find_rows_have_every_column_but_the_body(db):
    (row,) = find(db, message_id="order-1")
    assert "body" not in row and row["body_size"] == 12
    assert row["headers"] == {"tenant": "acme", "n": 1, "vip": True, "tags": ["a", "b"]}
    assert row["published_at"] == BASE + 1000 and row["state"] == "acked"


async def test_iso_times_are_accepted(db):
    since = datetime.datetime.fromtimestamp((BASE + 8000) / 1000, datetime.timezone.utc)
    assert ids(find(db, since=since)) == [9, 8]
    assert ids(find(db, since=since.isoformat())) == [9, 8]
    assert ids(find(db, since=iso(BASE + 8000))) == [9, 8]
    assert ids(find(db, since=str(BASE + 8000))) == [9, 8]
    naive = since.replace(tzinfo=None).isoformat()          # naive = UTC
    assert ids(find(db, since=naive)) == [9, 8]
    assert to_ms("1970-01-02") == 86_400_000
    assert to_ms("1970-01-01T01:00:00+01:00") == 0
    with pytest.raises(ValueError):
        to_ms("yesterday")
    with pytest.raises(ValueError):
        find(db, headers={'a"b': 1})


async def test_missing_database(tmp_path):
    with pytest.raises(MirrorNotFound):
        find(tmp_path / "nope.db")
    with pytest.raises(MirrorNotFound):
        show(tmp_path / "nope.db", 1)


async def test_reads_are_read_only_and_work_while_the_writer_runs(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, flush_interval=0)
    await mirror.start()
    h = content_header(b"x", delivery_mode=2, message_id="live")
    payload = encode_message(1, "/", "ex", "rk", ["q"], h, b"x", at_ms=BASE)
    mirror.feed(MESSAGE, payload, Position(1, 16, len(payload)))
    await mirror.flush()
    assert ids(find(db, message_id="live")) == [1]          # the writer is still open
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM message_events")
    conn.close()
    await mirror.stop()


async def test_rendering(db):
    table = format_table(find(db, queue="orders", limit=3)).splitlines()
    assert table[0].split() == ["id", "published_at", "exchange", "routing_key", "message_id",
                                "state", "body_size"]
    assert table[2].split() == ["8", iso(BASE + 8000), "orders", "order.created", "big",
                                "acked", "65537"]
    assert format_table([]) == "(no messages)"
    text = format_message(show(db, 2))
    assert "message 2  state acked" in text
    assert "delivered from 'orders' to consumer 'c2' (delivery 2)" in text
    assert "requeued in 'orders'" in text and "acked in 'orders'" in text
    assert "body (3 bytes)\n  b'two'" in text
    assert "basic.get" in format_message(show(db, 8))
    assert "body (65537 bytes, not stored)" in format_message(show(db, 8))
    assert "routed to queue 'mail'" in format_message(show(db, 3))
    import json
    doc = json.loads(to_json(show(db, 1)))
    assert doc["body"] == '{"order": 1}' and doc["body_encoding"] == "utf-8"
    assert doc["events"][0]["at_iso"] == iso(BASE + 1000)
    assert json.loads(to_json(find(db, state="acked")))[0]["id"] == 8
