"""``find`` / ``show`` on the scenario database, read-only."""

from __future__ import annotations

import datetime
import sqlite3

import pytest

from storage.mirror import MessageMirror, MirrorNotFound, count, find, lookup, show, to_ms
from storage.mirror.render import body_lines, cell, format_message, hex_dump, iso, to_json
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


async def test_queue_column_count_and_lookup(db):
    rows = {r["id"]: r for r in find(db)}
    assert (rows[3]["queue"], rows[1]["queue"], rows[9]["queue"]) == ("audit,mail", "orders", "jobs")
    assert count(db) == 9 and count(db, queue="orders", state="acked") == 3
    assert count(db, headers={"tenant": "acme"}) == 1
    assert count(db, cap=5) == 6 and count(db, cap=9) == 9   # past the cap: "more than 5"
    assert lookup(db, "3") == [3]                   # the internal id first
    assert lookup(db, "order-2") == [2]             # a message-id
    assert lookup(db, "corr-1") == [3, 1]           # a correlation-id, newest first
    assert lookup(db, "99") == [] and lookup(db, "nothing") == []


async def test_rendering(db):
    assert [cell(c, v) for c, v in (("exchange", ""), ("exchange", "orders"), ("message_id", None),
                                    ("published_at", BASE), ("headers", {"n": 1}), ("id", 7))] \
        == ["(default)", "orders", "", iso(BASE), '{"n": 1}', "7"]
    text = format_message(show(db, 2))
    assert "message 2  state acked" in text
    assert "delivered from 'orders' to consumer 'c2' (delivery 2)" in text
    assert "requeued in 'orders'" in text and "acked in 'orders'" in text
    assert "body (3 bytes)\n  two\n" in text
    labelled = [line for line in text.split("body (")[0].splitlines() if line.startswith("  ")]
    column = 2 + len("delivery_mode") + 2       # the longest label, then two spaces
    assert len(labelled) == 8 and all(line[column - 2:column + 1].startswith("  ") and line[column] != " "
                                      for line in labelled)
    one = format_message(show(db, 1))
    assert "\n  correlation_id  corr-1\n  content_type    application/json\n" in one
    assert "basic.get" in format_message(show(db, 8))
    assert "body (65537 bytes, not stored)" in format_message(show(db, 8))
    assert "routed to queue 'mail'" in format_message(show(db, 3))
    import json
    doc = json.loads(to_json(show(db, 1)))
    assert doc["body"] == '{"order": 1}' and doc["body_encoding"] == "utf-8"
    assert doc["events"][0]["at_iso"] == iso(BASE + 1000)
    assert json.loads(to_json(find(db, state="acked")))[0]["id"] == 8


def test_bodies_as_text_or_hex_dump():
    assert body_lines(b"line 1\nline 2", 100) == ["line 1", "line 2"]
    assert body_lines("é".encode() * 3, 3) == ["é", "..."]       # a character cut by the preview
    assert body_lines(b"", 10) == [""]
    assert body_lines(b"\x00\xffab", 10) == hex_dump(b"\x00\xffab")
    assert hex_dump(bytes(range(20))) == [
        "00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  ................",
        "00000010  10 11 12 13                                      ...."]
    assert hex_dump(b"AB\xff") == ["00000000  41 42 ff" + " " * 39 + "  AB."]
