"""MessageMirror behaviour: backlog and metadata-only mode, a slow database,
failures, restarts, malformed input."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from storage.mirror import MessageMirror, show
from storage.mirror import loop as loop_module
from storage.wal import (ACK, MESSAGE, TOPOLOGY, Position, WriteAheadLog, encode_ack,
                         encode_message)
from tests.storage.test_mirror_scenario import BASE, content_header, dump, write_scenario

HEADER = content_header(b"body", delivery_mode=2, message_id="m")


def message(i: int, body: bytes = b"body") -> bytes:
    return encode_message(i, "/", "ex", "rk", ["q"], HEADER, body, at_ms=BASE + i)


async def test_metadata_only_under_backlog_and_back(tmp_path, caplog):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, max_backlog=100, batch_size=20, flush_interval=0)
    await mirror.start()
    caplog.set_level(logging.WARNING, logger="storage.mirror")
    for i in range(1, 301):                     # no await: the writer cannot run meanwhile
        mirror.feed(MESSAGE, message(i), Position(1, 16 + i, 10))
    assert mirror.backlog == 300 and mirror.stats["backlog_bytes"] == 300 * len(message(1))
    await mirror.flush()
    await mirror.stop()
    stats = mirror.stats
    assert stats["mode_switches"] == 2 and stats["max_backlog_seen"] == 300
    assert stats["mode"] == "full" and stats["applied"] == 300
    conn = sqlite3.connect(db)
    stored = [i for i, in conn.execute("SELECT id FROM messages WHERE body IS NOT NULL")]
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 300
    assert conn.execute("SELECT count(*) FROM messages WHERE body_size = 4").fetchone()[0] == 300
    # batches of 20 taken while > 100 waited (300, 280, ..., 120: 10 batches) and
    # until the backlog was under 25 (100 ... 40: 4 more) had no body
    assert stored == list(range(281, 301))
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert meta["mode"] == "full" and meta["bodies_missing"] == 280
    assert stats["bodies_missing"] == 280
    conn.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "storage.mirror"
                and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "storing metadata only" in warnings[0] and "storing bodies again" in warnings[1]


async def test_a_slow_database_never_blocks_feed(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, flush_interval=0)
    await mirror.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")           # the writer waits (busy_timeout) meanwhile
    try:
        mirror.feed(MESSAGE, message(1), Position(1, 16, 10))
        await asyncio.sleep(0.2)                 # the first batch is now stuck in SQLite
        for i in range(2, 20_002):               # its cost per record: bench/mirror_lag.py
            mirror.feed(MESSAGE, message(i), Position(1, 16 + i, 10))
        await asyncio.sleep(0.3)
        assert mirror.backlog == 20_000
        assert mirror.lag_seconds() >= 0.5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await mirror.stop()
    assert mirror.stats["applied"] == 20_001 and mirror.lag_seconds() == 0.0
    assert mirror.stats["max_lag"] >= 0.5


async def test_gives_up_after_repeated_errors_and_drops(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(loop_module, "RETRY_DELAY", 0.01)
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, flush_interval=0)
    await mirror.start()
    other = sqlite3.connect(db)
    other.execute("DROP TABLE message_events")   # every batch now fails
    other.commit()
    other.close()
    mirror.feed(MESSAGE, message(1), Position(1, 16, 10))
    await mirror.flush()
    assert mirror.stats["failed"] and mirror.stats["state"] == "failed"
    mirror.feed(MESSAGE, message(2), Position(1, 26, 10))
    assert mirror.stats["dropped"] == 1 and mirror.backlog == 0
    assert mirror.lag_seconds() == 0.0 and mirror.watermark is None
    assert any("db rebuild" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    await mirror.stop()


async def test_restart_keeps_watermark_and_mode(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db)
    await mirror.start()
    positions = await write_scenario(tmp_path, mirror)
    await mirror.stop()
    again = MessageMirror(db)
    await again.start()
    assert again.watermark == positions[-1] and not again.metadata_only
    assert again.stats["rows"] == 9
    await again.stop()


async def test_unusable_file_is_moved_aside(tmp_path, caplog):
    db = tmp_path / "messages.db"
    db.write_bytes(b"this is not an SQLite database" * 100)
    mirror = MessageMirror(db)
    await mirror.start()
    mirror.feed(MESSAGE, message(1), Position(1, 16, 10))
    await mirror.stop()
    assert [p.name.split("-")[0] for p in tmp_path.glob("messages.db.broken-*")] \
        == ["messages.db.broken"]
    assert show(db, 1)["message_id"] == "m"
    assert any("unusable" in r.getMessage() for r in caplog.records)


async def test_malformed_records_are_skipped(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, body_limit=3)
    await mirror.start()
    mirror.feed(MESSAGE, b"garbage", Position(1, 16, 7))
    mirror.feed(ACK, b"\x00", Position(1, 30, 1))
    mirror.feed(TOPOLOGY, b"anything", Position(1, 40, 8))
    bad_header = encode_message(2, "/", "ex", "rk", ["q"], b"\x00\x3c\x00", b"ab", at_ms=BASE)
    mirror.feed(MESSAGE, bad_header, Position(1, 50, len(bad_header)))
    mirror.feed(MESSAGE, message(3, b"abcd"), Position(1, 90, 10))
    mirror.feed(ACK, encode_ack(3, "q", at_ms=BASE + 5), Position(1, 120, 20))
    await mirror.stop()
    stats = mirror.stats
    assert (stats["errors"], stats["header_errors"], stats["applied"]) == (2, 1, 6)
    assert mirror.watermark == Position(1, 120, 20)
    m2 = show(db, 2)
    assert m2["message_id"] is None and m2["body"] == b"ab" and m2["state"] == "queued"
    m3 = show(db, 3)
    assert m3["body"] is None and m3["body_size"] == 4 and m3["state"] == "acked"


async def test_feed_after_stop_is_dropped_and_stop_is_idempotent(tmp_path):
    mirror = MessageMirror(tmp_path / "messages.db")
    await mirror.start()
    await mirror.stop()
    mirror.feed(MESSAGE, message(1), Position(1, 16, 10))
    assert mirror.stats["dropped"] == 1
    await mirror.stop()
    assert dump(tmp_path / "messages.db")[0] == []


async def test_lag_is_the_age_of_the_oldest_unapplied_record(tmp_path):
    mirror = MessageMirror(tmp_path / "messages.db")
    assert mirror.lag_seconds() == 0.0
    mirror.feed(MESSAGE, message(1), Position(1, 16, 10))     # before start: queued
    await asyncio.sleep(0.05)
    assert mirror.lag_seconds() >= 0.05
    await mirror.start()
    await mirror.flush()
    assert mirror.lag_seconds() == 0.0 and mirror.stats["applied"] == 1
    assert mirror.stats["max_lag"] >= 0.05
    await mirror.stop()


async def test_records_from_a_real_wal_in_batches(tmp_path):
    """30,000 records appended to a real WAL and fed as they are written:
    every one applied, in several batches, the last state right. (How fast
    it keeps up is measured in bench/mirror_lag.py and
    bench/mirror_apply_rate.py, not here.)"""
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, batch_size=5000)
    await mirror.start()
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open().drain()
    for sent in range(30_000):
        payload = (message(sent // 2 + 1) if sent % 2 == 0
                   else encode_ack(sent // 2 + 1, "q", at_ms=BASE))
        rtype = MESSAGE if sent % 2 == 0 else ACK
        mirror.feed(rtype, payload, wal.append(rtype, payload))
        if sent % 1000 == 999:
            await asyncio.sleep(0)
    await mirror.stop()
    wal.close()
    stats = mirror.stats
    assert stats["applied"] == 30_000 and stats["messages"] == 15_000
    assert stats["batches"] >= 6
    assert dump(db)[0][-1][-3:-1] == ("acked", BASE)
