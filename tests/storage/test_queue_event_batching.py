"""The storage facade batches the delivered / removed events of one loop pass
into one record per run (storage/queue_events.py), and recovery reads them
back: the live index after a reopen is as if every event had its own record."""

from __future__ import annotations

import asyncio

from storage import Storage
from storage.live_index import DELIVERED, queue_names
from storage.mirror.wal_reader import read_wal
from storage.wal import ACK, DELIVERED as DELIVERED_RECORD, MESSAGE, REASON_ACKED, REASON_PURGED, REQUEUED
from storage.wal.record import ACK_MANY, DELIVERED_MANY

HEADER = b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x10\x00\x02"


def _types(data_dir) -> list[int]:
    stats = dict(segments=0, records=0, truncated=None)
    return [record.type for record in read_wal(data_dir / "wal", stats)]


async def test_one_record_per_run_and_replay(tmp_path):
    storage = Storage(tmp_path / "data")
    storage.open()
    for i in range(1, 41):
        storage.persist_message(i, "/", "", "q", ["q", "r"] if i > 30 else ["q"], HEADER, b"x" * 200)
    await storage.sync()
    for i in range(1, 41):                            # one pass of deliveries from q
        storage.record_delivered(i, "q", "ctag", 1)
    storage.record_delivered(35, "r", "other", 2)     # another queue: a run of its own
    await storage.sync()
    for i in range(1, 21):                            # a multiple ack of 20
        storage.record_removed(i, "q", REASON_ACKED)
    storage.record_requeued(21, "q")                  # flushes the ack run first
    storage.record_removed(40, "r", REASON_PURGED)
    await storage.sync()
    storage.close()

    types = [t for t in _types(tmp_path / "data") if t != 5]     # without CHECKPOINTs
    assert types == [MESSAGE] * 40 + [DELIVERED_MANY, DELIVERED_RECORD, ACK_MANY, REQUEUED, ACK]

    again = Storage(tmp_path / "data")
    recovery = again.open()
    assert recovery.message_ids == list(range(21, 41))
    for i in range(21, 41):
        entry = again.live[i]
        names = ("q",) if i <= 30 else ("q", "r") if i < 40 else ("q",)
        assert queue_names(entry) == names
        assert entry[DELIVERED] == (frozenset({"q", "r"}) if i == 35 else frozenset({"q"}))
    again.close()


async def test_acked_messages_stay_gone_once_their_segments_are_deleted(tmp_path):
    """The ACK_MANY record must outlive every segment holding a message it
    acks: after the acked messages' segments are deleted and more traffic,
    a reopen finds exactly the unacked ones."""
    storage = Storage(tmp_path / "data", segment_size=2048)
    storage.open()
    for i in range(1, 61):
        storage.persist_message(i, "/", "", "q", ["q"], HEADER, b"y" * 150)
    await storage.sync()
    for i in range(1, 61):
        storage.record_delivered(i, "q", "c", 1)
    await storage.sync()
    for i in list(range(1, 30)) + list(range(31, 60)):   # all but 30 and 60, in one run
        storage.record_removed(i, "q", REASON_ACKED)
    await storage.sync()
    for i in range(61, 121):                              # later traffic, acked at once
        storage.persist_message(i, "/", "", "q", ["q"], HEADER, b"z" * 150)
        storage.record_removed(i, "q", REASON_ACKED)
    await storage.sync()
    await asyncio.sleep(0)
    await storage.sync()
    assert storage.wal.stats["deleted_segments"] > 0
    storage.close()
    again = Storage(tmp_path / "data", segment_size=2048)
    assert again.open().message_ids == [30, 60]
    assert all(again.live[i][DELIVERED] == frozenset({"q"}) for i in (30, 60))
    again.close()
