"""Live/dead accounting and dead-segment deletion (tombstones)."""

import asyncio

import pytest

from storage.wal import ACK, MESSAGE, TOPOLOGY, WalError, encode_ack
from storage.wal.segment import SEGMENT_HEADER_SIZE, TOMBSTONE_MAGIC, list_segments

from tests.storage.conftest import make_payload, open_wal, seg_path

SEG = 4096


async def settle(wal):
    """Let queued deletions run: sync, then yield until the I/O is idle."""
    await wal.sync()
    for _ in range(200):
        if wal._io is None and not wal._to_delete and not wal._kick_scheduled:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("WAL I/O did not settle")


def fill(wal, count, start=0, rtype=MESSAGE):
    return [wal.append(rtype, make_payload(i, 500)) for i in range(start, start + count)]


async def test_dead_segment_is_tombstoned_and_skipped_on_replay(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    positions = fill(wal, 30)
    await settle(wal)
    seg1 = [p for p in positions if p.segment == 1]
    assert wal.live_bytes(1) == sum(p.length + 9 for p in seg1)
    for p in seg1[:-1]:
        wal.release(p)
    await settle(wal)
    assert 1 in wal.segments                      # one live record pins it
    wal.release(seg1[-1])
    assert wal.live_bytes(1) == 0
    await settle(wal)
    assert 1 not in wal.segments and wal.stats["deleted_segments"] == 1
    data = seg_path(wal_dir, 1).read_bytes()
    assert data[:8] == TOMBSTONE_MAGIC and len(data) == SEGMENT_HEADER_SIZE
    with pytest.raises(WalError):
        wal.read(seg1[0])
    assert wal.read(positions[-1]) == make_payload(29, 500)
    wal.close()

    wal, recs = open_wal(wal_dir, segment_size=SEG)
    assert [r.position for r in recs] == positions[len(seg1):]
    assert wal.stats["tombstones"] == 1
    wal.close()


async def test_current_segment_is_never_deleted(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    positions = fill(wal, 3)
    await settle(wal)
    for p in positions:
        wal.release(p)
    await settle(wal)
    assert wal.segments == [1] and wal.current_segment == 1
    with pytest.raises(WalError):
        wal.delete_segment(1)
    wal.close()


async def test_sealed_segment_dies_once_flushed(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    positions = fill(wal, 20)             # nothing written yet
    for p in positions:
        if p.segment == 1:
            wal.release(p)
    await settle(wal)
    assert 1 not in wal.segments
    wal.close()


async def test_ack_record_outlives_its_message(wal_dir):
    """An ACK in a later segment for a message in segment 1 keeps its
    segment until segment 1 is gone; otherwise the message would come back
    on replay."""
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    msg = wal.append(MESSAGE, make_payload(0, 500))
    before = fill(wal, 20, 1)
    ack = wal.append(ACK, encode_ack(0, "q"))
    after = fill(wal, 20, 100)                  # seals the ack's segment
    await settle(wal)
    assert msg.segment == 1 and ack.segment > 1 and wal.current_segment > ack.segment

    for p in before + after:                    # everything else in segments 1..ack is dead
        if p.segment <= ack.segment:
            wal.release(p)
    wal.release(ack, after_segment=msg.segment)
    await settle(wal)
    assert wal.segments[:2] == [1, ack.segment]  # the ack's segment is pinned by segment 1
    wal.release(msg)                            # acked on every queue
    await settle(wal)
    await settle(wal)
    assert wal.segments[0] == ack.segment + 1
    wal.close()
    wal, recs = open_wal(wal_dir, segment_size=SEG)
    assert recs[0].position.segment == ack.segment + 1
    wal.close()


async def test_prefix_tombstones_are_unlinked(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    positions = fill(wal, 60)
    await settle(wal)
    last_sealed = wal.current_segment - 1
    assert last_sealed >= 4
    for p in positions:
        if p.segment <= last_sealed:
            wal.release(p)
    await settle(wal)
    await settle(wal)
    # segments 1..last_sealed are dead: only the highest tombstone remains
    assert list_segments(wal_dir) == [last_sealed, wal.current_segment]
    assert seg_path(wal_dir, last_sealed).read_bytes()[:8] == TOMBSTONE_MAGIC
    wal.close()
    wal, recs = open_wal(wal_dir, segment_size=SEG)
    assert [r.position for r in recs] == [p for p in positions if p.segment > last_sealed]
    wal.close()


async def test_hole_tombstone_keeps_numbering_checkable(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    positions = fill(wal, 40)
    await settle(wal)
    assert wal.current_segment >= 4
    for p in positions:
        if p.segment == 2:
            wal.release(p)
    await settle(wal)
    assert 2 not in wal.segments and seg_path(wal_dir, 2).exists()
    wal.close()
    wal, recs = open_wal(wal_dir, segment_size=SEG)
    assert [r.position for r in recs] == [p for p in positions if p.segment != 2]
    wal.close()


async def test_release_during_replay_and_compaction_hooks(wal_dir):
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    positions = fill(wal, 40, rtype=TOPOLOGY)
    await settle(wal)
    wal.close()

    wal = type(wal)(wal_dir, segment_size=SEG)
    for rec in wal.open():
        if rec.position.segment == 1 or rec.position.offset % 2:
            wal.release(rec.position)       # the owner decides while replaying
    await settle(wal)
    assert 1 not in wal.segments
    for number in wal.segments:
        live = [p for p in positions if p.segment == number and p.offset % 2 == 0]
        assert wal.live_bytes(number) == sum(p.length + 9 for p in live)
    candidates = wal.compaction_candidates(1.01)
    assert candidates == [n for n in wal.segments if n != wal.current_segment]
    victim = candidates[0]
    wal.delete_segment(victim)                # after copying its live records forward
    await settle(wal)
    assert victim not in wal.segments
    wal.close()


async def test_compacting_a_prefix_releases_no_more_than_appended(wal_dir, caplog):
    """Compaction deletes a prefix of segments whatever their live bytes;
    an ACK in that prefix deferred on an older segment of the same prefix
    is then released into a deleted segment: no "more bytes released than
    appended" warning (it once flooded the log with one line per record,
    stalling the loop for seconds after a large pass)."""
    wal, _ = open_wal(wal_dir, segment_size=SEG)
    msg = wal.append(MESSAGE, make_payload(0, 500))
    fill(wal, 20, 1)
    ack = wal.append(ACK, encode_ack(0, "q"))
    fill(wal, 20, 100)                          # seals the ack's segment
    await settle(wal)
    assert msg.segment == 1 and wal.current_segment > ack.segment > 1
    wal.release(ack, after_segment=msg.segment)
    for number in list(wal.segments):
        if number <= ack.segment:
            wal.delete_segment(number)          # after copying their live records forward
    with caplog.at_level("WARNING", "storage.wal"):
        await settle(wal)
        await settle(wal)
    assert not [r for r in caplog.records if "more bytes released" in r.getMessage()]
    assert all(number > ack.segment for number in wal.segments)
    wal.close()
