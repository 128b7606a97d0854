"""The mirror tailing the WAL segment files: past ``tail_after_bytes`` of
payloads waiting it drops them and reads the records from the files, gets
the same rows as when fed in memory, goes back to feeding without losing a
record, and the WAL keeps the segments it still has to read (deletion
floor)."""

from __future__ import annotations

import asyncio
import logging

from storage.mirror import MessageMirror
from storage.wal import (ACK, CHECKPOINT, DELIVERED, MESSAGE, WriteAheadLog, encode_ack,
                         encode_delivered, encode_message)
from tests.storage.test_mirror_scenario import BASE, content_header, dump, scenario_records

HEADER = content_header(b"x" * 300, delivery_mode=2, message_id="m")


def workload(count: int) -> list[tuple[int, bytes]]:
    """The scenario's records, then ``count`` messages of 300 bytes, each
    delivered and every other one acked, with a CHECKPOINT now and then
    (appended to the WAL but never fed, as the broker does)."""
    records = list(scenario_records())
    for i in range(100, 100 + count):
        records.append((MESSAGE, encode_message(i, "/", "ex", "rk", ["q"], HEADER, b"x" * 300,
                                                at_ms=BASE + i)))
        records.append((DELIVERED, encode_delivered(i, "q", "c1", at_ms=BASE + i + 1)))
        if i % 2:
            records.append((ACK, encode_ack(i, "q", at_ms=BASE + i + 2)))
        if i % 97 == 0:
            records.append((CHECKPOINT, b"started"))
    return records


async def mirror_through_wal(tmp_path, records, pause_every: int | None = None, **options):
    """Append ``records`` to a real WAL and feed them (CHECKPOINTs only
    appended) to a mirror with ``wal_dir`` and the WAL as barrier; with
    ``pause_every``, let the writer run every that many records. Returns
    (mirror after stop, its rows, the WAL closed)."""
    wal = WriteAheadLog(tmp_path / "wal", segment_size=options.pop("segment_size", 64 << 20))
    wal.open().drain()
    mirror = MessageMirror(tmp_path / "messages.db", wal_dir=wal.directory, barrier=wal.sync,
                           flush_interval=0, **options)
    await mirror.start()
    for n, (rtype, payload) in enumerate(records, 1):
        position = wal.append(rtype, payload)
        if rtype != CHECKPOINT:
            mirror.feed(rtype, payload, position)
        if pause_every and n % pause_every == 0:
            await asyncio.sleep(0.005)
    await mirror.flush()
    assert not mirror.tailing
    await mirror.stop()
    wal.close()
    return mirror, dump(tmp_path / "messages.db")


async def test_tailing_gives_the_same_rows(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="storage.mirror")
    records = workload(600)
    (tmp_path / "fed").mkdir()
    (tmp_path / "tailed").mkdir()
    fed, reference = await mirror_through_wal(tmp_path / "fed", records, batch_size=50,
                                              segment_size=32 << 10)
    assert fed.stats["tail_switches"] == 0
    tailed, rows = await mirror_through_wal(tmp_path / "tailed", records, batch_size=50,
                                            tail_after_bytes=4096, segment_size=32 << 10)
    stats = tailed.stats
    assert stats["tail_switches"] == 1 and stats["tail_records"] > 1000
    assert stats["backlog_bytes"] == 0 and stats["tail_waiting"] == 0
    assert stats["fed"] == fed.stats["fed"] and not stats["failed"]
    assert rows[:2] == reference[:2] and len(rows[0]) == 609
    assert rows[2] == reference[2]
    assert tailed.watermark == fed.watermark
    lines = [r.getMessage() for r in caplog.records if r.name == "storage.mirror"]
    assert sum("reading them from the WAL segment files" in m for m in lines) == 1
    assert sum("caught up with the WAL" in m and "lag" in m for m in lines) == 1


async def test_switching_back_and_forth_loses_nothing(tmp_path):
    """The writer runs every few records, so the mirror falls behind,
    tails, catches up and feeds from memory again many times, with records
    fed while it reads the files."""
    records = workload(1500)
    (tmp_path / "fed").mkdir()
    (tmp_path / "tailed").mkdir()
    _, reference = await mirror_through_wal(tmp_path / "fed", records, batch_size=40,
                                            segment_size=64 << 10)
    tailed, rows = await mirror_through_wal(tmp_path / "tailed", records, pause_every=61,
                                            batch_size=40, tail_after_bytes=8000,
                                            segment_size=64 << 10)
    stats = tailed.stats
    assert stats["tail_switches"] >= 3, stats
    assert stats["tail_records"] < stats["applied"]      # part of it came from memory
    assert rows[:2] == reference[:2]
    assert rows[2] == reference[2]


async def settle(wal: WriteAheadLog) -> None:
    """Let the WAL's deletions run: they go with the I/O batch after the
    one that made the segments dead."""
    for _ in range(3):
        wal.release(wal.append(CHECKPOINT, b"settle"))
        await wal.sync()


async def test_wal_keeps_the_segments_the_mirror_still_reads(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", segment_size=8 << 10)
    wal.open().drain()
    gate = asyncio.Event()

    async def barrier():
        await gate.wait()
        await wal.sync()

    mirror = MessageMirror(tmp_path / "messages.db", wal_dir=wal.directory, barrier=barrier,
                           flush_interval=0, batch_size=30, tail_after_bytes=2000,
                           floor_moved=lambda: wal.set_deletion_floor(mirror.wal_floor))
    await mirror.start()
    wal.set_deletion_floor(mirror.wal_floor)
    assert mirror.wal_floor() == 0                  # nothing applied yet: the whole WAL
    positions = []
    for rtype, payload in workload(200):
        positions.append(wal.append(rtype, payload))
        if rtype != CHECKPOINT:
            mirror.feed(rtype, payload, positions[-1])
    assert mirror.tailing and mirror.backlog == 0
    for position in positions:                      # every record dead: all deletable
        wal.release(position)
    await settle(wal)
    last = wal.current_segment
    assert last > 5
    assert wal.segments == list(range(1, last + 1))      # all kept for the mirror
    assert wal.held_segments == list(range(1, last))
    gate.set()
    await mirror.flush()
    assert not mirror.tailing and mirror.watermark == positions[-1]
    assert mirror.wal_floor() == last
    await settle(wal)
    assert wal.segments == [last] and wal.held_segments == []
    assert len(dump(tmp_path / "messages.db")[0]) == 209
    await mirror.stop()
    assert mirror.wal_floor() is None
    wal.close()


async def test_deletion_floor_with_a_number(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", segment_size=4 << 10)
    wal.open().drain()
    wal.set_deletion_floor(3)
    positions = [wal.append(MESSAGE, b"p" * 1000) for _ in range(24)]
    for position in positions:
        wal.release(position)
    await settle(wal)
    current = wal.current_segment
    assert wal.segments == list(range(3, current + 1))   # 1 and 2 deleted, the rest held
    assert wal.held_segments == list(range(3, current))
    assert wal.compaction_candidates() == [] and wal.segment_usage() == []
    wal.set_deletion_floor(5)
    await settle(wal)
    assert wal.segments == list(range(5, current + 1))
    wal.set_deletion_floor(None)
    await settle(wal)
    assert wal.segments == [current] and wal.held_segments == []
    wal.close()
