"""Recovery outcomes: torn tail, flipped bytes, missing segments, bad headers.

Documented outcomes (see WriteAheadLog.open):
- torn or corrupt record in the LAST segment -> replay stops at the last good
  record, warning naming file and offset, file truncated there (the cut bytes
  saved as <segment>.torn-<offset>), appends continue after it. A flipped byte
  in the last segment cannot be told apart from a torn write: same outcome.
- the same in any EARLIER segment, a missing segment, a bad header ->
  WalCorruptError(segment, path, offset).
"""

import logging
import os

import pytest

from storage.wal import TOPOLOGY, WalCorruptError, WriteAheadLog
from storage.wal.segment import list_segments

from tests.storage.conftest import flip_byte, make_payload, open_wal, seg_path


async def write_log(wal_dir, count=120, segment_size=8192):
    wal, _ = open_wal(wal_dir, segment_size=segment_size)
    positions = [wal.append(TOPOLOGY, make_payload(i)) for i in range(count)]
    await wal.sync()
    wal.close()
    return positions


async def test_torn_tail_is_truncated_with_warning(wal_dir, caplog):
    positions = await write_log(wal_dir)
    last = positions[-1]
    path = seg_path(wal_dir, last.segment)
    record_start = last.offset - 9
    os.truncate(path, record_start + 9 + last.length // 2)      # cut in the middle of the payload

    caplog.set_level(logging.WARNING, logger="storage.wal")
    wal, recs = open_wal(wal_dir, segment_size=8192)
    assert [r.payload for r in recs] == [make_payload(i) for i in range(len(positions) - 1)]
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert path.name in warning[0].getMessage() and f"offset {record_start}" in warning[0].getMessage()
    assert path.stat().st_size == record_start
    assert (wal_dir / f"{path.name}.torn-{record_start}").exists()

    new = [wal.append(TOPOLOGY, make_payload(i)) for i in range(1000, 1010)]
    await wal.sync()
    assert new[0].segment == last.segment and new[0].offset == last.offset
    wal.close()

    caplog.clear()
    wal, recs = open_wal(wal_dir, segment_size=8192)
    expected = [make_payload(i) for i in range(len(positions) - 1)]
    expected += [make_payload(i) for i in range(1000, 1010)]
    assert [r.payload for r in recs] == expected
    assert [wal.read(p) for p in new] == [make_payload(i) for i in range(1000, 1010)]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    wal.close()


@pytest.mark.parametrize("cut", [1, 5, 9])
async def test_torn_record_header(wal_dir, cut):
    positions = await write_log(wal_dir, count=10)
    last = positions[-1]
    os.truncate(seg_path(wal_dir, last.segment), last.offset - 9 + cut)
    wal, recs = open_wal(wal_dir)
    assert len(recs) == 9
    wal.close()


async def test_flipped_byte_in_last_record_of_last_segment_is_a_torn_tail(wal_dir, caplog):
    positions = await write_log(wal_dir)
    last = positions[-1]
    path = seg_path(wal_dir, last.segment)
    flip_byte(path, last.offset + 3)
    wal, recs = open_wal(wal_dir, segment_size=8192)
    assert len(recs) == len(positions) - 1
    assert f"offset {last.offset - 9}" in caplog.text and path.name in caplog.text
    wal.close()


async def test_zero_filled_tail_is_a_torn_tail(wal_dir):
    positions = await write_log(wal_dir, count=10)
    with open(seg_path(wal_dir, positions[-1].segment), "ab") as f:
        f.write(bytes(4096))           # what a crash after extending the file can leave
    wal, recs = open_wal(wal_dir)
    assert len(recs) == 10
    wal.close()


async def test_flipped_byte_in_earlier_segment_raises(wal_dir):
    positions = await write_log(wal_dir)
    victim = positions[3]
    assert victim.segment == 1 and positions[-1].segment > 1
    path = seg_path(wal_dir, 1)
    size = path.stat().st_size
    flip_byte(path, victim.offset + 10)
    wal = WriteAheadLog(wal_dir)
    result = wal.open()
    got = []
    with pytest.raises(WalCorruptError) as info:
        for rec in result:
            got.append(rec)
    assert len(got) == 3
    assert info.value.segment == 1 and info.value.offset == victim.offset - 9
    assert path.name in str(info.value)
    assert path.stat().st_size == size           # nothing truncated
    wal.close()


async def test_deleted_middle_segment_raises(wal_dir):
    positions = await write_log(wal_dir)
    assert positions[-1].segment >= 3
    os.unlink(seg_path(wal_dir, 2))
    wal = WriteAheadLog(wal_dir)
    with pytest.raises(WalCorruptError) as info:
        wal.open()
    assert info.value.segment == 2 and "00000000000000000002.wal" in str(info.value)
    wal.close()


async def test_deleted_first_segment_raises(wal_dir):
    await write_log(wal_dir)
    os.unlink(seg_path(wal_dir, 1))
    with pytest.raises(WalCorruptError, match="missing"):
        open_wal(wal_dir)


@pytest.mark.parametrize("header", [b"XXXXWAL1" + bytes(8), b"LVRTWAL1" + (7).to_bytes(8, "big")])
async def test_bad_file_header_raises(wal_dir, header):
    await write_log(wal_dir)
    path = seg_path(wal_dir, 1)
    with open(path, "r+b") as f:
        f.write(header)
    with pytest.raises(WalCorruptError, match="bad file header") as info:
        open_wal(wal_dir)
    assert info.value.segment == 1 and info.value.offset == 0


async def test_bad_header_on_last_segment_raises(wal_dir):
    positions = await write_log(wal_dir)
    with open(seg_path(wal_dir, positions[-1].segment), "r+b") as f:
        f.write(b"garbage!")
    with pytest.raises(WalCorruptError):
        open_wal(wal_dir)


@pytest.mark.parametrize("content", [b"", b"LVRTW", bytes(16), bytes(100)])
async def test_torn_header_on_last_segment_is_reinitialized(wal_dir, caplog, content):
    positions = await write_log(wal_dir, count=20)
    n = positions[-1].segment + 1
    seg_path(wal_dir, n).write_bytes(content)      # crash while creating the next segment
    wal, recs = open_wal(wal_dir, segment_size=8192)
    assert len(recs) == 20
    assert wal.current_segment == n
    if content:
        assert "torn" in caplog.text
    pos = wal.append(TOPOLOGY, b"after")
    await wal.sync()
    assert pos.segment == n
    wal.close()
    wal, recs = open_wal(wal_dir, segment_size=8192)
    assert recs[-1].payload == b"after" and len(recs) == 21
    assert list_segments(wal_dir)[-1] == n
    wal.close()
