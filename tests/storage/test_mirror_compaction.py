"""WAL compaction copies in the message database: compaction appends a live
message again (same id, same publish time, only the queues it is still in)
followed by a DELIVERED record (consumer tag "", delivery count 1) per
queue where it is out for delivery. The mirror and ``db rebuild`` keep the
first MESSAGE record's row and timeline and ignore the copy."""

from __future__ import annotations

import sqlite3

from storage.mirror import MessageMirror, rebuild_async, show
from storage.mirror.database import insert_messages
from storage.wal import (ACK, DELIVERED, MESSAGE, REASON_REJECTED, WriteAheadLog, encode_ack,
                         encode_delivered, encode_message)
from tests.storage.test_mirror_scenario import BASE, content_header, dump

H = content_header(b"body", delivery_mode=2, message_id="order-42")


def original() -> list[tuple[int, bytes]]:
    """Message 1 to queues a and b (delivered from a to c1, rejected in b);
    message 2 to q (ready)."""
    return [
        (MESSAGE, encode_message(1, "/", "fan", "", ["a", "b"], H, b"body", at_ms=BASE)),
        (DELIVERED, encode_delivered(1, "a", "c1", 1, at_ms=BASE + 1)),
        (ACK, encode_ack(1, "b", REASON_REJECTED, at_ms=BASE + 2)),
        (MESSAGE, encode_message(2, "/", "", "q", ["q"], H, b"body", at_ms=BASE + 3)),
    ]


def copies() -> list[tuple[int, bytes]]:
    """What compaction appends for them, then what happens next: message 1
    acked in a, message 2 delivered to c2 and acked."""
    return [
        (MESSAGE, encode_message(1, "/", "fan", "", ["a"], H, b"body", at_ms=BASE)),
        (DELIVERED, encode_delivered(1, "a", at_ms=BASE + 10)),
        (MESSAGE, encode_message(2, "/", "", "q", ["q"], H, b"body", at_ms=BASE + 3)),
        (ACK, encode_ack(1, "a", at_ms=BASE + 11)),
        (DELIVERED, encode_delivered(2, "q", "c2", 1, at_ms=BASE + 12)),
        (ACK, encode_ack(2, "q", at_ms=BASE + 13)),
    ]


EXPECTED_1 = [("a", "routed", None, None), ("b", "routed", None, None),
              ("a", "delivered", "c1", 1), ("b", "rejected", None, None),
              ("a", "acked", None, None)]
EXPECTED_2 = [("q", "routed", None, None), ("q", "delivered", "c2", 1), ("q", "acked", None, None)]


def timeline(db, message_id: int) -> list[tuple]:
    return [(e["queue"], e["event"], e["consumer_tag"], e["delivery_count"])
            for e in show(db, message_id)["events"]]


async def write(tmp_path, records, mirror=None, per_batch=False, **wal_options) -> WriteAheadLog:
    """Append ``records`` to the WAL in tmp_path/wal (left open), feeding
    ``mirror``; with ``per_batch`` every record is its own batch."""
    wal = WriteAheadLog(tmp_path / "wal", **wal_options)
    wal.open().drain()
    for rtype, payload in records:
        position = wal.append(rtype, payload)
        if mirror is not None:
            mirror.feed(rtype, payload, position)
            if per_batch:
                await mirror.flush()
    await wal.sync()
    return wal


async def test_a_compaction_copy_changes_nothing_in_one_batch(tmp_path):
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db)
    await mirror.start()
    (await write(tmp_path, original() + copies(), mirror)).close()
    await mirror.stop()
    assert mirror.stats["duplicates"] == 3 and mirror.stats["messages"] == 2
    assert timeline(db, 1) == EXPECTED_1 and timeline(db, 2) == EXPECTED_2
    m1 = show(db, 1)
    assert (m1["queue_count"], m1["state"], m1["finished_at"], m1["published_at"]) \
        == (2, "acked", BASE + 11, BASE)
    assert show(db, 2)["state"] == "acked"


async def test_a_compaction_copy_across_batches_and_rebuild(tmp_path):
    """One record per batch (the copy's DELIVERED in the batch after its
    MESSAGE), then ``rebuild`` from the same WAL: identical rows."""
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, flush_interval=0)
    await mirror.start()
    (await write(tmp_path, original() + copies(), mirror, per_batch=True)).close()
    await mirror.stop()
    assert mirror.stats["duplicates"] == 3 and mirror.stats["batches"] == 10
    assert timeline(db, 1) == EXPECTED_1 and timeline(db, 2) == EXPECTED_2
    live = dump(db)
    summary = await rebuild_async(tmp_path)
    assert summary["duplicates"] == 3 and summary["messages"] == 2
    assert dump(db)[:2] == live[:2]


async def test_a_copy_after_a_restart_is_ignored(tmp_path):
    """The original was applied in an earlier run; the copy arrives after a
    restart (caught up from the WAL): the row is not replaced."""
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db)
    await mirror.start()
    (await write(tmp_path, original(), mirror)).close()
    await mirror.stop()
    again = MessageMirror(db)
    await again.start()
    (await write(tmp_path, copies(), again)).close()
    await again.stop()
    assert again.stats["duplicates"] == 3
    assert timeline(db, 1) == EXPECTED_1 and timeline(db, 2) == EXPECTED_2


async def test_a_second_message_row_is_never_inserted(tmp_path):
    """Belt and braces: the INSERT itself ignores an id already stored."""
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db)
    await mirror.start()
    (await write(tmp_path, original()[:1], mirror)).close()
    await mirror.stop()
    conn = sqlite3.connect(db)
    row = [1, "/", "other", "rk", 1] + [None] * 13 + [4, b"new!", BASE + 99, "queued", None]
    with conn:
        insert_messages(conn, [row])
    assert conn.execute("SELECT exchange, body FROM messages").fetchall() == [("fan", b"body")]
    conn.close()


async def test_rebuild_after_the_original_segment_is_gone(tmp_path):
    """Compaction deleted the segment with the original records: the
    rebuilt row comes from the copy (the queues it was still in, the
    delivery it restates); the old events left in no segment are lost."""
    records = original()
    first = 16 + sum(9 + len(p) for _t, p in records)
    wal = await write(tmp_path, records, segment_size=first)
    for rtype, payload in copies():
        assert wal.append(rtype, payload).segment >= 2
    wal.delete_segment(1)
    await wal.sync()
    await wal.sync()
    wal.close()
    summary = await rebuild_async(tmp_path)
    db = tmp_path / "messages.db"
    assert summary["duplicates"] == 0 and summary["messages"] == 2
    assert timeline(db, 1) == [("a", "routed", None, None), ("a", "delivered", "", 1),
                               ("a", "acked", None, None)]
    assert show(db, 1)["queue_count"] == 1 and show(db, 1)["published_at"] == BASE
    assert timeline(db, 2) == EXPECTED_2
