"""The storage facade keeps how many times an unsettled message was handed
out (x-delivery-count / x-delivery-limit across a restart): from the
DELIVERED and DELIVERED_MANY records at replay, and through a compaction,
which restates each delivery with its count."""

from __future__ import annotations

from storage import Storage
from storage.wal import REASON_ACKED

HEADER = b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x10\x00\x02"


async def test_counts_survive_a_reopen_and_an_ack_forgets_them(tmp_path):
    storage = Storage(tmp_path / "data")
    storage.open()
    for i in range(1, 6):
        storage.persist_message(i, "/", "", "q", ["q", "r"], HEADER, b"x")
    await storage.sync()
    for count in (1, 2, 3):                       # message 1: three deliveries from q (one per pass)
        storage.record_delivered(1, "q", "c", count)
        await storage.sync()
    for i in range(2, 6):                         # one run: a DELIVERED_MANY record
        storage.record_delivered(i, "q", "c", 4 if i == 3 else 1)
    storage.record_delivered(2, "r", "c", 2)
    storage.record_delivered(4, "q", "c", 2)
    storage.record_removed(4, "q", REASON_ACKED)  # settled: its count goes
    await storage.sync()
    storage.close()

    again = Storage(tmp_path / "data")
    again.open()
    assert [again.delivery_count(1, "q"), again.delivery_count(3, "q"), again.delivery_count(2, "r")] == [3, 4, 2]
    assert again.delivery_count(2, "q") == 1 and again.delivery_count(4, "q") == 1
    again.close()


async def test_compaction_restates_the_count(tmp_path):
    storage = Storage(tmp_path / "data", segment_size=4096)
    storage.open()
    storage.persist_message(1, "/", "", "q", ["q"], HEADER, b"k" * 100)
    await storage.sync()
    storage.record_delivered(1, "q", "c", 5)
    for i in range(2, 200):                       # traffic that dies: the first segments go below 50 % live
        storage.persist_message(i, "/", "", "q", ["q"], HEADER, b"d" * 100)
        storage.record_removed(i, "q", REASON_ACKED)
    await storage.sync()
    assert await storage.compact() > 0
    await storage.sync()
    storage.close()

    again = Storage(tmp_path / "data", segment_size=4096)
    assert again.open().message_ids == [1]
    assert again.delivery_count(1, "q") == 5
    again.close()
