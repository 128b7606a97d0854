"""Retention: finished messages go after retention_seconds or beyond
retention_rows (oldest finished first); live ones always stay."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from storage.mirror import MessageMirror
from storage.wal import (ACK, DELIVERED, MESSAGE, REASON_EXPIRED, Position, encode_ack,
                         encode_delivered, encode_message)
from tests.storage.test_mirror_scenario import content_header

DAY = 86_400_000
NOW = time.time_ns() // 1_000_000          # "now" (ms) passed to cleanup()
HEADER = content_header(b"x", delivery_mode=2)


def feed_history(mirror: MessageMirror, history: dict) -> None:
    """history: {id: (published_at, finished_at or None, delivered_only)}."""
    offset = 16
    for mid, (published, finished, delivered) in history.items():
        records = [(MESSAGE, encode_message(mid, "/", "ex", "rk", ["q"], HEADER, b"x",
                                            at_ms=published))]
        if delivered:
            records.append((DELIVERED, encode_delivered(mid, "q", "c", 1, at_ms=published + 1)))
        if finished is not None:
            records.append((ACK, encode_ack(mid, "q", at_ms=finished)))
        for rtype, payload in records:
            mirror.feed(rtype, payload, Position(1, offset, len(payload)))
            offset += len(payload) + 9


async def started(mirror: MessageMirror) -> MessageMirror:
    """Start ``mirror`` and wait for its start-up cleanup run."""
    await mirror.start()
    for _ in range(500):
        if mirror.stats["cleanups"]:
            return mirror
        await asyncio.sleep(0.01)
    raise AssertionError("the start-up cleanup did not run")


def table(db) -> tuple[list, list]:
    conn = sqlite3.connect(db)
    try:
        return ([r[0] for r in conn.execute("SELECT id FROM messages ORDER BY id")],
                sorted({r[0] for r in conn.execute("SELECT message FROM message_events")}))
    finally:
        conn.close()


async def test_retention_by_age(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, retention_seconds=7 * 86400, cleanup_interval=3600)
    await started(mirror)
    feed_history(mirror, {
        1: (NOW - 30 * DAY, NOW - 8 * DAY, True),    # finished 8 days ago: deleted
        2: (NOW - 30 * DAY, NOW - 6 * DAY, False),   # finished 6 days ago: kept
        3: (NOW - 30 * DAY, None, False),            # queued for 30 days: kept
        4: (NOW - 30 * DAY, None, True),             # delivered, unacked: kept
        5: (NOW - 9 * DAY, NOW - 7 * DAY - 1, False),  # just past the limit: deleted
    })
    await mirror.flush()
    assert await mirror.cleanup(now_ms=NOW) == 2
    assert table(db) == ([2, 3, 4], [2, 3, 4])
    assert mirror.stats["retention_deleted"] == 2 and mirror.stats["rows"] == 3
    assert await mirror.cleanup(now_ms=NOW) == 0
    await mirror.stop()


async def test_retention_by_rows_deletes_oldest_finished_first(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, retention_rows=3, cleanup_interval=3600)
    await started(mirror)
    feed_history(mirror, {
        1: (NOW - 10, None, False),           # live: never deleted
        2: (NOW - 9, NOW - 2, False),
        3: (NOW - 8, NOW - 5, False),         # finished first
        4: (NOW - 7, NOW - 4, False),
        5: (NOW - 6, None, True),             # live
        6: (NOW - 5, NOW - 1, False),
        7: (NOW - 4, NOW - 3, False),
    })
    await mirror.flush()
    # 7 rows, limit 3: the 4 that finished earliest go (3, 4, 7, 2); 6 stays
    assert await mirror.cleanup(now_ms=NOW) == 4
    assert table(db) == ([1, 5, 6], [1, 5, 6])
    await mirror.stop()


async def test_rows_limit_never_deletes_live_messages(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, retention_rows=1, cleanup_interval=3600)
    await started(mirror)
    feed_history(mirror, {1: (NOW, None, False), 2: (NOW, None, True), 3: (NOW, NOW, False)})
    await mirror.flush()
    assert await mirror.cleanup(now_ms=NOW) == 1
    assert table(db)[0] == [1, 2]
    await mirror.stop()


async def test_cleanup_runs_at_start_and_deleted_messages_stay_gone(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, retention_seconds=10**9, cleanup_interval=3600)
    await started(mirror)
    feed_history(mirror, {1: (NOW - 30 * DAY, NOW - 20 * DAY, False), 2: (NOW, None, False)})
    await mirror.stop()
    assert table(db)[0] == [1, 2]
    again = await started(MessageMirror(db, retention_seconds=86400, cleanup_interval=3600))
    assert again.stats["retention_deleted"] == 1 and table(db)[0] == [2]
    # a late event for a deleted message is an orphan, not a new row
    late = encode_ack(1, "q", REASON_EXPIRED, at_ms=NOW)
    again.feed(ACK, late, Position(2, 16, len(late)))
    await again.stop()
    assert again.stats["orphans"] == 1 and table(db) == ([2], [2])
