"""Starting the mirror on an existing data directory (broker start):
``catch_up`` applies the WAL records past the watermark from the segment
files, the facade's replay that follows is skipped at feed time, and the
``barrier`` keeps the database from getting ahead of the WAL."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from storage.mirror import MessageMirror, RebuildError, catch_up, rebuild_async
from storage.mirror import loop as loop_module
from storage.wal import MESSAGE, Position, WalError, WriteAheadLog, encode_message
from storage.wal.segment import segment_name
from tests.storage.test_mirror_scenario import BASE, content_header, dump, scenario_records


def message_payload(message_id: int) -> bytes:
    return encode_message(message_id, "/", "ex", "rk", ["q"], content_header(b"x", delivery_mode=2),
                          b"x", at_ms=BASE + message_id * 1000)


async def write_partly_fed(data_dir, fed: int) -> list:
    """The scenario's 24 records in a real WAL; only the first ``fed`` go to
    a mirror (the rest is what a crash or a stop left unapplied)."""
    mirror = MessageMirror(data_dir / "messages.db")
    await mirror.start()
    wal = WriteAheadLog(data_dir / "wal")
    wal.open().drain()
    positions = []
    for i, (rtype, payload) in enumerate(scenario_records()):
        positions.append(wal.append(rtype, payload))
        if i < fed:
            mirror.feed(rtype, payload, positions[-1])
    await wal.sync()
    wal.close()
    await mirror.stop()
    return positions


async def reference_rows(tmp_path) -> tuple:
    """The rows ``rebuild`` makes of the same WAL."""
    copy = tmp_path / "reference"
    (copy / "wal").mkdir(parents=True)
    for path in (tmp_path / "wal").iterdir():
        (copy / "wal" / path.name).write_bytes(path.read_bytes())
    await rebuild_async(copy)
    return dump(copy / "messages.db")[:2]


@pytest.mark.parametrize("fed", [0, 10, 24])
async def test_catch_up_then_replay(tmp_path, fed):
    positions = await write_partly_fed(tmp_path, fed)
    mirror = MessageMirror(tmp_path / "messages.db")
    await mirror.start()
    result = await catch_up(mirror, tmp_path)
    assert result["records"] == 24 - fed and mirror.watermark == positions[-1]
    wal = WriteAheadLog(tmp_path / "wal")            # the facade's replay: all skipped at once
    for rtype, payload, position in wal.open():
        mirror.feed(rtype, payload, position)
        assert mirror.backlog == 0
    payload = message_payload(10)
    mirror.feed(MESSAGE, payload, wal.append(MESSAGE, payload))   # a new record applies
    await wal.sync()
    wal.close()
    await mirror.stop()
    assert mirror.stats["skipped"] == 24 and mirror.stats["fed"] == (24 - fed) + 24 + 1
    rows, events = dump(tmp_path / "messages.db")[:2]
    reference = await reference_rows(tmp_path)
    assert (rows, events) == reference
    assert rows[-1][0] == 10


async def test_catch_up_stops_at_a_torn_tail(tmp_path, caplog):
    positions = await write_partly_fed(tmp_path, 0)
    last = positions[-1]
    os.truncate(tmp_path / "wal" / segment_name(1), last.offset + last.length // 2)
    mirror = MessageMirror(tmp_path / "messages.db")
    await mirror.start()
    assert (await catch_up(mirror, tmp_path))["records"] == 23
    await mirror.stop()
    assert mirror.watermark == positions[-2]
    assert any("catching up stops there" in r.getMessage() for r in caplog.records)


async def test_catch_up_refuses_a_locked_wal(tmp_path):
    await write_partly_fed(tmp_path, 5)
    wal = WriteAheadLog(tmp_path / "wal")             # another broker holds it
    wal.open().drain()
    mirror = MessageMirror(tmp_path / "messages.db")
    await mirror.start()
    try:
        with pytest.raises(RebuildError, match="locked"):
            await catch_up(mirror, tmp_path)
    finally:
        wal.close()
        await mirror.stop()


async def test_a_database_ahead_of_the_wal_is_reported(tmp_path, caplog):
    await write_partly_fed(tmp_path, 24)
    for path in (tmp_path / "wal").iterdir():       # the WAL was replaced by an empty one
        path.unlink()
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open().drain()
    wal.close()
    mirror = MessageMirror(tmp_path / "messages.db")
    await mirror.start()
    assert (await catch_up(mirror, tmp_path))["records"] == 0
    await mirror.stop()
    assert any("past the end of the WAL" in r.getMessage() and "db rebuild" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


async def test_the_barrier_holds_batches_back(tmp_path):
    gate = asyncio.Event()
    calls = []

    async def barrier():
        calls.append(1)
        await gate.wait()

    mirror = MessageMirror(tmp_path / "messages.db", barrier=barrier, flush_interval=0)
    await mirror.start()
    payload = message_payload(1)
    mirror.feed(MESSAGE, payload, Position(1, 25, len(payload)))
    await asyncio.sleep(0.1)
    assert calls == [1] and mirror.stats["applied"] == 0 and mirror.lag_seconds() >= 0.1
    gate.set()
    await mirror.flush()
    assert mirror.stats["applied"] == 1 and mirror.watermark == Position(1, 25, len(payload))
    await mirror.stop()


async def test_a_failing_barrier_stops_the_mirror(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(loop_module, "RETRY_DELAY", 0.01)

    async def barrier():
        raise WalError("the WAL failed")

    mirror = MessageMirror(tmp_path / "messages.db", barrier=barrier)
    await mirror.start()
    payload = message_payload(1)
    mirror.feed(MESSAGE, payload, Position(1, 25, len(payload)))
    await mirror.flush()
    assert mirror.stats["failed"] and mirror.watermark is None
    await mirror.stop()
    assert dump(tmp_path / "messages.db")[0] == []
