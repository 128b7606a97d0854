"""``WalFollower`` (the core of the message database process): it applies
the WAL records past the database's watermark from the segment files, never
past the durable end the broker reports, and the WAL keeps the segments it
has not read (deletion floor). Also the WAL's ``on_durable`` report."""

from __future__ import annotations

import logging

import pytest

from storage.mirror import MessageMirror, rebuild_async
from storage.mirror.follower import WalFollower
from storage.wal import CHECKPOINT, MESSAGE, WriteAheadLog, encode_message
from tests.storage.test_mirror_scenario import BASE, content_header, dump, scenario_records


def message_payload(message_id: int, body: bytes = b"x") -> bytes:
    return encode_message(message_id, "/", "ex", "rk", ["q"],
                          content_header(body, delivery_mode=2), body,
                          at_ms=BASE + message_id * 1000)


def end_of(position) -> tuple[int, int]:
    return position.segment, position.offset + position.length


async def write_partly_applied(data_dir, applied: int) -> list:
    """The scenario's 24 records in a real WAL; only the first ``applied``
    go to the database (the rest is what a crash or a stop left)."""
    mirror = MessageMirror(data_dir / "messages.db")
    await mirror.start()
    wal = WriteAheadLog(data_dir / "wal")
    wal.open().drain()
    positions = []
    for i, (rtype, payload) in enumerate(scenario_records()):
        positions.append(wal.append(rtype, payload))
        if i < applied:
            mirror.feed(rtype, payload, positions[-1])
    await wal.sync()
    wal.close()
    await mirror.stop()
    return positions


async def follow(data_dir, until, **options) -> MessageMirror:
    """A started mirror on ``data_dir`` after a follower applied the WAL up
    to ``until`` (``(segment, end)``); returned stopped."""
    mirror = MessageMirror(data_dir / "messages.db", flush_interval=0, **options)
    await mirror.start()
    follower = WalFollower(mirror, data_dir / "wal")
    follower.tell(*until)
    while await follower.step():
        pass
    assert follower.caught_up()
    await mirror.stop()
    return mirror


async def reference_rows(tmp_path) -> tuple:
    """The rows ``rebuild`` makes of the same WAL."""
    copy = tmp_path / "reference"
    (copy / "wal").mkdir(parents=True)
    for path in (tmp_path / "wal").iterdir():
        (copy / "wal" / path.name).write_bytes(path.read_bytes())
    await rebuild_async(copy)
    return dump(copy / "messages.db")[:2]


@pytest.mark.parametrize("applied", [0, 10, 24])
async def test_follows_from_the_watermark(tmp_path, applied):
    positions = await write_partly_applied(tmp_path, applied)
    mirror = await follow(tmp_path, end_of(positions[-1]), batch_size=7)
    assert mirror.watermark == positions[-1] and mirror.stats["fed"] == 24 - applied
    assert dump(tmp_path / "messages.db")[:2] == await reference_rows(tmp_path)


async def test_never_reads_past_the_durable_end(tmp_path):
    positions = await write_partly_applied(tmp_path, 0)
    with open(tmp_path / "wal" / "00000001.wal", "ab") as f:
        f.write(b"\x07" * 40)                        # bytes being written: never looked at
    mirror = await follow(tmp_path, end_of(positions[11]))
    assert mirror.watermark == positions[11] and mirror.stats["fed"] == 12


async def test_a_database_ahead_of_the_wal_is_reported(tmp_path, caplog):
    await write_partly_applied(tmp_path, 24)
    for path in (tmp_path / "wal").iterdir():       # the WAL was replaced by an empty one
        path.unlink()
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open().drain()
    wal.close()
    mirror = MessageMirror(tmp_path / "messages.db")
    await mirror.start()
    WalFollower(mirror, tmp_path / "wal")
    await mirror.stop()
    assert any("past the end of the WAL" in r.getMessage() and "db rebuild" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


async def settle(wal: WriteAheadLog) -> None:
    """Let the WAL's deletions run: they go with the I/O batch after the
    one that made the segments dead."""
    for _ in range(3):
        wal.release(wal.append(CHECKPOINT, b"settle"))
        await wal.sync()


async def test_the_wal_keeps_the_segments_the_follower_has_not_read(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", segment_size=8 << 10)
    wal.open().drain()
    reported = []
    wal.on_durable = lambda segment, end: reported.append((segment, end))
    mirror = MessageMirror(tmp_path / "messages.db", flush_interval=0, batch_size=5)
    await mirror.start()
    follower = WalFollower(mirror, wal.directory, wal.segment_size,
                           floor_moved=wal.set_deletion_floor)
    wal.set_deletion_floor(follower.floor)
    assert follower.floor == 0                      # nothing applied yet: the whole WAL
    positions = [wal.append(MESSAGE, message_payload(i, b"b" * 300)) for i in range(1, 101)]
    for position in positions:                      # every record dead: all deletable
        wal.release(position)
    await settle(wal)
    last = wal.current_segment
    assert last > 3 and reported[-1][0] == last
    assert wal.segments == list(range(1, last + 1))      # all kept for the follower
    assert wal.held_segments == list(range(1, last))
    told = reported[-1]
    follower.tell(*told)
    while await follower.step():
        assert mirror.behind >= 0
    await mirror.flush()
    await follower.step()                           # caught up: reports the floor
    assert end_of(mirror.watermark) == told and follower.floor == last
    await settle(wal)
    assert wal.segments == [last] and wal.held_segments == []
    assert len(dump(tmp_path / "messages.db")[0]) == 100
    await mirror.stop()
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


async def test_on_durable_reports_the_end_of_each_written_batch(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal", segment_size=4 << 10)
    wal.open().drain()
    reported = []
    wal.on_durable = lambda segment, end: reported.append((segment, end))
    first = wal.append(MESSAGE, b"a" * 100)
    await wal.sync()
    assert reported == [end_of(first)]
    positions = [wal.append(MESSAGE, b"p" * 1000) for _ in range(6)]   # into a new segment
    await wal.sync()
    assert reported[-1] == end_of(positions[-1]) and positions[-1].segment > 1
    wal.close()
    assert reported[-1] == end_of(positions[-1])   # nothing more to write at close
