"""``resume_point``: where the message database process reads on from.
When recovery cut a damaged WAL tail that the database had already applied,
new records are appended from the cut: it must resume there, not in the
middle of a new record."""

from __future__ import annotations

import logging
import os

from storage.mirror.resume import resume_point
from storage.mirror.wal_reader import read_wal
from storage.wal import MESSAGE, WriteAheadLog
from storage.wal.record import RECORD_HEADER_SIZE, Position
from tests.storage.test_mirror_follower import message_payload


def write(wal_dir, ids) -> list[Position]:
    wal = WriteAheadLog(wal_dir)
    wal.open().drain()
    positions = [wal.append(MESSAGE, message_payload(i, b"b" * (10 + i))) for i in ids]
    wal.close()
    return positions


def read_ids(wal_dir, after) -> list[bytes]:
    stats = {"segments": 0, "records": 0, "truncated": None}
    return [record.payload for record in read_wal(wal_dir, stats, after)
            if record.type == MESSAGE]


def test_an_intact_watermark_is_kept(tmp_path):
    positions = write(tmp_path / "wal", range(1, 6))
    assert resume_point(tmp_path / "wal", positions[3]) == positions[3]
    assert resume_point(tmp_path / "wal", None) is None


def test_a_watermark_past_a_cut_resumes_at_the_cut(tmp_path, caplog):
    wal_dir = tmp_path / "wal"
    positions = write(wal_dir, range(1, 6))
    mark = positions[3]                                  # the database applied up to record 4
    cut = positions[2].offset - RECORD_HEADER_SIZE       # recovery cut records 3.. (damaged)
    segment = wal_dir / sorted(os.listdir(wal_dir))[0]
    data = segment.read_bytes()
    (wal_dir / f"{segment.name}.torn-{cut}").write_bytes(data[cut:])
    os.truncate(segment, cut)
    write(wal_dir, range(10, 14))                        # the next run appends from the cut
    with caplog.at_level(logging.WARNING, "storage.mirror"):
        resume = resume_point(wal_dir, mark, "db")
    assert resume == Position(mark.segment, cut, 0)
    assert any("cut" in r.getMessage() and str(cut) in r.getMessage() for r in caplog.records)
    after = read_ids(wal_dir, resume)
    assert after == [message_payload(i, b"b" * (10 + i)) for i in range(10, 14)]
