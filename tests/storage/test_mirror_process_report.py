"""The message database process tells the broker its mode and how many
bodies it left out (``M <mode> <bodies missing>`` lines), so that
metadata-only mode is visible outside the log: a real process, a real WAL
far past a small ``max_backlog``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

from storage.wal import MESSAGE, WriteAheadLog, encode_message
from tests.storage.test_mirror_scenario import BASE, content_header

ROOT = Path(__file__).resolve().parents[2]
COUNT = 300


async def test_mode_and_missing_bodies_are_reported(tmp_path):
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open().drain()
    header = content_header(b"body", delivery_mode=2, message_id="m")
    for i in range(1, COUNT + 1):
        wal.append(MESSAGE, encode_message(i, "/", "", "q", ["q"], header, b"body", at_ms=BASE))
    await wal.sync()
    segment, end = wal.durable_end()
    wal.close()
    db = tmp_path / "messages.db"
    config = {"db_path": str(db), "wal_dir": str(tmp_path / "wal"), "log_level": "warning",
              "options": {"max_backlog": 100, "batch_size": 20, "flush_interval": 0}}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "storage.mirror.process", json.dumps(config), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(b"S %d %d\n" % (segment, end)), 60)
    assert proc.returncode == 0, err
    modes = [line.split()[1:] for line in out.splitlines() if line.startswith(b"M ")]
    assert modes[0] == [b"full", b"0"]
    assert any(mode == b"metadata-only" for mode, _n in modes)
    conn = sqlite3.connect(db)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    without = conn.execute("SELECT count(*) FROM messages WHERE body IS NULL").fetchone()[0]
    conn.close()
    assert modes[-1] == [b"full", b"%d" % without] and 0 < without < COUNT
    assert meta["bodies_missing"] == without and meta["mode"] == "full"
    assert b"storing metadata only" in err and b"storing bodies again" in err
