"""WriteAheadLog: append/read, rollover, replay, group commit, failures."""

import asyncio
import errno
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storage.wal import (ACK, MESSAGE, TOPOLOGY, Position, RecordError, WalError, WriteAheadLog,
                         body_position, decode_message, encode_message)
from storage.wal import log as wal_log
from storage.wal.segment import SEGMENT_HEADER_SIZE, list_segments

from tests.storage.conftest import make_payload, open_wal, seg_path


async def test_append_read_across_rollover(wal_dir):
    wal, recs = open_wal(wal_dir, segment_size=8192)
    assert recs == []
    positions = [wal.append(TOPOLOGY, make_payload(i)) for i in range(200)]
    # readable from the in-memory buffer before anything is written
    assert wal.read(positions[0]) == make_payload(0)
    await wal.sync()
    assert len(wal.segments) > 10
    for i, pos in enumerate(positions):
        assert pos.length == len(make_payload(i))
        assert wal.read(pos) == make_payload(i)
    # positions increase, and every file respects segment_size
    assert positions == sorted(positions)
    for n in list_segments(wal_dir):
        size = seg_path(wal_dir, n).stat().st_size
        assert size <= 8192
    header = seg_path(wal_dir, 1).read_bytes()[:SEGMENT_HEADER_SIZE]
    assert header == b"LVRTWAL1" + struct.pack(">Q", 1)
    assert seg_path(wal_dir, 1).name == "00000000000000000001.wal"
    wal.close()


async def test_durable_end_is_what_on_durable_reported_and_survives_a_reopen(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=4096)
    assert wal.durable_end() is None
    reported = []
    wal.on_durable = lambda segment, end: reported.append((segment, end))
    position = [wal.append(TOPOLOGY, make_payload(i)) for i in range(60)][-1]
    assert wal.durable_end() is None  # appended, not yet written
    await wal.sync()
    assert wal.durable_end() == reported[-1] == (position.segment, wal.durable_end()[1])
    assert wal.durable_end()[1] >= position.offset + position.length
    wal.close()
    again, _ = open_wal(wal_dir, segment_size=4096)
    assert again.durable_end() == reported[-1]
    again.close()


async def test_oversized_record_gets_own_segment(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=1024)
    small = wal.append(TOPOLOGY, b"a" * 100)
    big = wal.append(TOPOLOGY, b"b" * 5000)
    after = wal.append(TOPOLOGY, b"c")
    assert small.segment == 1 and big.segment == 2 and after.segment == 3
    await wal.sync()
    assert wal.read(big) == b"b" * 5000
    wal.close()


async def test_reopen_replays_in_order_and_continues(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=16384)
    positions = [wal.append(TOPOLOGY, make_payload(i)) for i in range(300)]
    await wal.sync()
    wal.close()

    wal, recs = open_wal(wal_dir, segment_size=16384)
    assert [r.payload for r in recs] == [make_payload(i) for i in range(300)]
    assert [r.position for r in recs] == positions
    assert all(r.type == TOPOLOGY for r in recs)
    assert wal.stats["replayed_records"] == 300
    more = [wal.append(TOPOLOGY, make_payload(i)) for i in range(300, 350)]
    await wal.sync()
    assert more[0].segment == positions[-1].segment or more[0].segment == positions[-1].segment + 1
    assert wal.read(positions[5]) == make_payload(5)   # old records readable after reopen
    wal.close()

    wal, recs = open_wal(wal_dir, segment_size=16384)
    assert [r.payload for r in recs] == [make_payload(i) for i in range(350)]
    wal.close()


async def test_message_body_read_back(wal_dir):
    wal, _ = open_wal(wal_dir)
    payload = encode_message(9, "/", "ex", "rk", ["q1", "q2"], b"\x00\x3c", b"body!" * 200)
    pos = wal.append(MESSAGE, payload)
    await wal.sync()
    wal.close()
    wal, recs = open_wal(wal_dir)
    m = decode_message(recs[0].payload, with_body=False)
    assert wal.read(body_position(recs[0].position, m)) == b"body!" * 200
    assert recs[0].position == pos
    wal.close()


async def test_group_commit_one_fsync_for_one_loop_pass(wal_dir):
    wal, _ = open_wal(wal_dir)
    wal.append(TOPOLOGY, b"first")      # creates the segment file (and fsyncs the directory)
    await wal.sync()
    before = wal.stats
    fired = []
    done = asyncio.get_running_loop().create_future()
    for i in range(500):
        wal.append(MESSAGE, make_payload(i))
        wal.sync_soon(lambda i=i: fired.append(i))
    wal.sync_soon(lambda: done.set_result(None))
    await done
    after = wal.stats
    assert fired == list(range(500))
    assert after["fsyncs"] - before["fsyncs"] == 1
    assert after["writes"] - before["writes"] == 1
    assert after["pending_bytes"] == 0
    wal.close()


async def test_group_commit_many_tasks(wal_dir):
    wal, _ = open_wal(wal_dir)
    wal.append(TOPOLOGY, b"first")
    await wal.sync()
    fsyncs = wal.stats["fsyncs"]
    order = []

    async def publisher(i):
        wal.append(MESSAGE, make_payload(i))
        await wal.sync()
        order.append(i)

    await asyncio.gather(*(publisher(i) for i in range(200)))
    assert sorted(order) == list(range(200))
    assert wal.stats["fsyncs"] - fsyncs == 1
    wal.close()


async def test_appends_during_fsync_go_to_next_batch(wal_dir, monkeypatch):
    threads = []
    gate = threading.Event()
    real = wal_log._fdatasync

    def slow_fdatasync(fd):
        threads.append(threading.current_thread())
        gate.wait(5)
        real(fd)

    monkeypatch.setattr(wal_log, "_fdatasync", slow_fdatasync)
    wal, _ = open_wal(wal_dir)
    a = wal.append(TOPOLOGY, b"A" * 100)
    fired = []
    wal.sync_soon(lambda: fired.append("A"))
    for _ in range(3):
        await asyncio.sleep(0)          # the batch starts; the loop keeps running meanwhile
    assert wal._io is not None and fired == []
    assert wal.read(a) == b"A" * 100      # served while the write/fsync is in flight
    b = wal.append(TOPOLOGY, b"B" * 100)
    wal.sync_soon(lambda: fired.append("B"))
    gate.set()
    await wal.sync()
    assert fired == ["A", "B"]
    assert wal.stats["fsyncs"] == 2
    assert all(t is not threading.main_thread() for t in threads)   # fsync off the loop thread
    assert wal.read(b) == b"B" * 100
    wal.close()


async def test_sync_with_nothing_pending_and_fsync_off(wal_dir):
    wal, _ = open_wal(wal_dir, fsync=False)
    pos = wal.append(ACK, b"ack")
    await wal.sync()
    stats = wal.stats
    assert stats["fsyncs"] == 0 and stats["writes"] == 1
    assert wal.read(pos) == b"ack"
    fired = []
    wal.sync_soon(lambda: fired.append(1))      # nothing pending: next loop pass, no write
    await asyncio.sleep(0)
    assert fired == [1] and wal.stats["writes"] == 1
    wal.close()
    wal, recs = open_wal(wal_dir)
    assert [r.payload for r in recs] == [b"ack"]
    wal.close()


async def test_appends_flush_without_sync(wal_dir):
    """Appends are written in the background even if nobody asks to sync."""
    wal, _ = open_wal(wal_dir)
    wal.append(ACK, b"x")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if wal.stats["pending_bytes"] == 0:
            break
    assert wal.stats["pending_bytes"] == 0 and wal.stats["fsyncs"] == 1
    wal.close()


def test_close_flushes_without_loop(wal_dir):
    wal, _ = open_wal(wal_dir)
    wal.append(TOPOLOGY, b"sync-less")
    wal.close()
    wal.close()     # idempotent
    wal, recs = open_wal(wal_dir)
    assert [r.payload for r in recs] == [b"sync-less"]
    wal.close()


async def test_fsync_failure_fails_the_log(wal_dir, monkeypatch, caplog):
    wal, _ = open_wal(wal_dir)

    def broken(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(wal_log, "_fdatasync", broken)
    wal.append(TOPOLOGY, b"x")
    errors = []
    wal.sync_soon(lambda: errors.append("confirmed!"), errors.append)
    with pytest.raises(WalError):
        await wal.sync()
    assert len(errors) == 1 and isinstance(errors[0], WalError)
    with pytest.raises(WalError):
        wal.append(TOPOLOGY, b"y")
    assert "failed" in caplog.text
    wal.close()


def test_usage_errors(wal_dir):
    wal = WriteAheadLog(wal_dir)
    with pytest.raises(WalError):
        wal.append(TOPOLOGY, b"x")          # not open
    result = wal.open()
    with pytest.raises(WalError):
        wal.append(TOPOLOGY, b"x")          # replay not finished
    result.drain()
    assert result.done
    with pytest.raises(RecordError):
        wal.append(0, b"x")
    with pytest.raises(WalError):
        wal.read(Position(99, 16, 1))
    with pytest.raises(WalError):
        wal.read(Position(1, 16, 1000))
    other = WriteAheadLog(wal_dir)
    with pytest.raises(WalError, match="in use"):
        other.open()                        # directory locked by the first one
    with pytest.raises(WalError):
        wal.open()
    wal.close()
    with pytest.raises(ValueError):
        WriteAheadLog(wal_dir, segment_size=10)


async def test_stats(wal_dir):
    wal, _ = open_wal(wal_dir)
    wal.append(TOPOLOGY, b"12345")
    await wal.sync()
    s = wal.stats
    assert s["segments"] == 1 and s["appended_records"] == 1
    assert s["bytes"] == SEGMENT_HEADER_SIZE + 9 + 5 == s["written_bytes"]
    assert s["live_bytes"] == 14 and s["fsyncs"] == 1 and s["dir_fsyncs"] == 1
    assert s["last_fsync_ms"] >= 0 and s["current_segment"] == 1
    wal.close()


def test_storage_wal_imports_no_broker_or_protocol():
    code = ("import sys, storage.wal; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('broker', 'protocol')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parents[2])
