"""``rebuild(data_dir)``: the database recreated from the WAL segments."""

from __future__ import annotations

import logging
import os
import sqlite3

import pytest

from storage.mirror import RebuildError, find, rebuild, rebuild_async, show
from storage.mirror.lock import try_lock, wait_lock
from storage.wal import (ACK, MESSAGE, WalCorruptError, WriteAheadLog, encode_ack,
                         encode_message)
from storage.wal.segment import segment_name
from tests.storage.test_mirror_scenario import (BASE, build_database, content_header, dump,
                                                write_scenario)


async def test_rebuild_gives_the_same_rows_as_live_feeding(tmp_path):
    db = await build_database(tmp_path)
    live = dump(db)
    (tmp_path / "messages.db-shm").unlink(missing_ok=True)
    summary = await rebuild_async(tmp_path)
    assert dump(db) == live
    assert summary["records"] == 24 and summary["messages"] == 9 and summary["segments"] == 1
    assert summary["truncated"] is None and summary["errors"] == 0
    assert summary["watermark"] == (live[2]["wal_segment"], live[2]["wal_offset"],
                                    live[2]["wal_length"])
    assert not (tmp_path / "messages.db.rebuild").exists()
    assert not (tmp_path / "messages.db-wal").exists()


def test_rebuild_replaces_an_old_or_broken_database(tmp_path):
    import asyncio

    asyncio.run(write_scenario(tmp_path))            # WAL only, no database yet
    (tmp_path / "messages.db").write_bytes(b"junk" * 1000)
    (tmp_path / "messages.db-wal").write_bytes(b"stale wal")
    summary = rebuild(tmp_path)
    assert not (tmp_path / "messages.db-wal").exists()        # the stale one is gone
    assert summary["messages"] == 9
    assert [r["id"] for r in find(tmp_path / "messages.db", state="acked")] == [8, 2, 1]


async def test_rebuild_refuses_while_the_wal_is_locked(tmp_path):
    await write_scenario(tmp_path)
    wal = WriteAheadLog(tmp_path / "wal")             # what the running broker holds
    wal.open().drain()
    try:
        with pytest.raises(RebuildError, match="locked"):
            await rebuild_async(tmp_path)
    finally:
        wal.close()
    assert not (tmp_path / "messages.db").exists()
    await rebuild_async(tmp_path)                     # unlocked now
    assert show(tmp_path / "messages.db", 3)["state"] == "queued"


async def test_one_writer_at_a_time(tmp_path):
    """A message database process holds ``messages.db.lock``: a second one
    waits for it, and ``rebuild`` refuses."""
    await write_scenario(tmp_path)
    db = tmp_path / "messages.db"
    held = try_lock(db)
    assert held is not None and try_lock(db) is None
    try:
        assert await wait_lock(db, timeout=0.05) is None
        with pytest.raises(RebuildError, match="message database process"):
            await rebuild_async(tmp_path)
    finally:
        os.close(held)
    os.close(await wait_lock(db, timeout=0.05))
    assert (await rebuild_async(tmp_path))["messages"] == 9


async def test_rebuild_without_a_wal(tmp_path):
    with pytest.raises(RebuildError, match="no WAL directory"):
        await rebuild_async(tmp_path)


async def test_rebuild_stops_at_a_torn_tail(tmp_path, caplog):
    positions = await write_scenario(tmp_path)
    seg = tmp_path / "wal" / segment_name(1)
    last = positions[-1]                             # message 9: cut it in half
    os.truncate(seg, last.offset + last.length // 2)
    summary = await rebuild_async(tmp_path)
    assert summary["truncated"] == (1, last.offset - 9)
    assert summary["messages"] == 8 and show(tmp_path / "messages.db", 9) is None
    assert any("rebuild stops there" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)
    assert os.path.getsize(seg) == last.offset + last.length // 2   # the WAL is not modified


async def test_rebuild_skips_deleted_segments_and_counts_orphans(tmp_path):
    """Segment 1 (messages 1-3, all acked) is deleted; their ACK records
    live on in segment 2. The rebuilt database has no row for them."""
    h = content_header(b"x" * 100, delivery_mode=2)
    payloads = [encode_message(i, "/", "ex", "rk", ["q"], h, b"x" * 100, at_ms=BASE + i)
                for i in (1, 2, 3, 4)]
    wal = WriteAheadLog(tmp_path / "wal", segment_size=16 + 3 * (9 + len(payloads[0])))
    wal.open().drain()
    msgs = [wal.append(MESSAGE, p) for p in payloads[:3]]
    acks = [wal.append(ACK, encode_ack(i, "q", at_ms=BASE + 10 + i)) for i in (1, 2, 3)]
    wal.append(MESSAGE, payloads[3])
    assert [p.segment for p in msgs] == [1, 1, 1] and [p.segment for p in acks] == [2, 2, 2]
    for pos in msgs:
        wal.release(pos)
    for pos in acks:
        wal.release(pos, after_segment=1)
    await wal.sync()
    await wal.sync()
    wal.close()
    assert os.path.getsize(tmp_path / "wal" / segment_name(1)) == 16      # a tombstone
    summary = await rebuild_async(tmp_path)
    assert [r["id"] for r in find(tmp_path / "messages.db")] == [4]
    assert (summary["segments"], summary["records"], summary["orphans"]) == (1, 4, 3)


async def test_corruption_before_the_last_segment_is_an_error(tmp_path):
    await write_scenario(tmp_path, segment_size=2048)
    segments = sorted((tmp_path / "wal").glob("*.wal"))
    assert len(segments) >= 3
    data = bytearray(segments[0].read_bytes())
    data[40] ^= 0xFF
    segments[0].write_bytes(bytes(data))
    with pytest.raises(WalCorruptError):
        await rebuild_async(tmp_path)
    assert not (tmp_path / "messages.db").exists()


async def test_sql_on_the_rebuilt_database(tmp_path):
    await write_scenario(tmp_path)
    await rebuild_async(tmp_path)
    conn = sqlite3.connect(tmp_path / "messages.db")
    rows = conn.execute(
        "SELECT m.id, e.queue, e.consumer_tag FROM messages m JOIN message_events e "
        "ON e.message = m.id WHERE e.event = 'delivered' ORDER BY e.id").fetchall()
    conn.close()
    assert rows == [(1, "orders", "c1"), (2, "orders", "c1"), (2, "orders", "c2"),
                    (3, "audit", "a1"), (5, "orders", "c1"), (7, "orders", "c1"),
                    (8, "orders", "")]
