"""A schema-1 message database (as the previous release wrote it) is
migrated to schema 2 in place when the mirror opens it: every row, body,
event and the watermark kept, queues filled in, and writing goes on."""

from __future__ import annotations

import logging
import sqlite3

from storage.mirror import MessageMirror, find, show
from storage.wal import ACK, MESSAGE, Position, encode_ack, encode_message
from tests.storage.test_mirror_scenario import BASE, content_header

#: schema 1 as storage/mirror/schema.py made it (tables and indexes)
SCHEMA_1 = """
CREATE TABLE messages (id INTEGER PRIMARY KEY, vhost TEXT NOT NULL, exchange TEXT NOT NULL,
    routing_key TEXT NOT NULL, queue_count INTEGER NOT NULL, message_id TEXT,
    correlation_id TEXT, content_type TEXT, content_encoding TEXT, type TEXT, app_id TEXT,
    user_id TEXT, timestamp INTEGER, priority INTEGER, expiration TEXT, delivery_mode INTEGER,
    reply_to TEXT, headers TEXT, body_size INTEGER NOT NULL, body BLOB,
    published_at INTEGER NOT NULL, state TEXT NOT NULL, finished_at INTEGER);
CREATE INDEX messages_message_id ON messages(message_id);
CREATE INDEX messages_correlation_id ON messages(correlation_id);
CREATE INDEX messages_exchange_key ON messages(exchange, routing_key);
CREATE INDEX messages_published_at ON messages(published_at);
CREATE INDEX messages_state ON messages(state);
CREATE INDEX messages_finished_at ON messages(finished_at) WHERE finished_at IS NOT NULL;
CREATE TABLE message_events (id INTEGER PRIMARY KEY, message INTEGER NOT NULL
    REFERENCES messages(id) ON DELETE CASCADE, queue TEXT NOT NULL, event TEXT NOT NULL,
    at INTEGER NOT NULL, consumer_tag TEXT, delivery_count INTEGER);
CREATE INDEX message_events_message ON message_events(message, id);
CREATE INDEX message_events_queue ON message_events(queue, message);
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE VIEW messages_iso AS SELECT *, published_at AS published_at_iso FROM messages;
CREATE VIEW message_events_iso AS SELECT *, at AS at_iso FROM message_events;
INSERT INTO messages VALUES (1, '/', '', 'orders', 1, 'one', NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, 2, NULL, NULL, 3, x'6f6e65', 1000, 'acked', 1002);
INSERT INTO messages VALUES (2, '/', 'fan', '', 2, 'two', NULL, NULL, NULL, NULL, NULL,
    NULL, NULL, NULL, NULL, 2, NULL, NULL, 3, x'74776f', 1003, 'queued', NULL);
INSERT INTO message_events VALUES (1, 1, 'orders', 'routed', 1000, NULL, NULL),
    (2, 1, 'orders', 'delivered', 1001, 'c1', 1), (3, 2, 'a', 'routed', 1003, NULL, NULL),
    (4, 2, 'b', 'routed', 1003, NULL, NULL), (5, 1, 'orders', 'acked', 1002, NULL, NULL);
INSERT INTO meta VALUES ('schema_version', 1), ('wal_segment', 1), ('wal_offset', 500),
    ('wal_length', 40), ('mode', 'full'), ('body_limit', 65536);
"""


async def test_schema_1_is_migrated_in_place(tmp_path, caplog):
    db = tmp_path / "messages.db"
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA_1)
    conn.close()
    caplog.set_level(logging.WARNING, logger="storage.mirror")
    mirror = MessageMirror(db)
    await mirror.start()
    assert mirror.watermark == Position(1, 500, 40) and mirror.stats["rows"] == 2
    h = content_header(b"new", delivery_mode=2, message_id="three")
    mirror.feed(MESSAGE, encode_message(3, "/", "", "orders", ["orders"], h, b"new", at_ms=BASE),
                Position(1, 540, 40))
    mirror.feed(ACK, encode_ack(2, "a", at_ms=BASE + 1), Position(1, 580, 20))
    await mirror.stop()
    assert not list(tmp_path.glob("*.broken-*"))
    assert any("schema 1 to 2" in r.getMessage() for r in caplog.records)
    one, two, three = show(db, 1), show(db, 2), show(db, 3)
    assert (one["body"], one["state"]) == (b"one", "acked")
    assert [e["event"] for e in one["events"]] == ["routed", "delivered", "acked"]
    assert (two["body"], two["state"]) == (b"two", "queued")
    assert [(e["id"], e["queue"], e["event"]) for e in two["events"]] == [
        (3, "a", "routed"), (4, "b", "routed"), (7, "a", "acked")]
    assert (three["body"], three["events"][0]["id"]) == (b"new", 6)
    assert [m["id"] for m in find(db, queue="b")] == [2]
    assert [m["id"] for m in find(db, queue="orders")] == [3, 1]
    conn = sqlite3.connect(db)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    names = {name for name, in conn.execute("SELECT name FROM sqlite_master")}
    queues = conn.execute("SELECT id, queue FROM messages ORDER BY id").fetchall()
    conn.close()
    assert queues == [(1, "orders"), (2, None), (3, "orders")]
    assert meta["schema_version"] == 2 and meta["wal_offset"] == 580
    assert {"message_rows", "message_bodies", "message_queues", "messages"} <= names
    assert not {"messages_exchange_key", "messages_state"} & names
