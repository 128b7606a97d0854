"""Damaged WAL files against a real broker process (docs/architecture.md, "Durability
contract"; storage/wal/README.md, "Recovery outcomes"). Each test publishes
confirmed persistent messages over several small segments, SIGKILLs the
broker after the last confirm, damages the files, and starts it again:

- damage confined to the last record of the last segment (a cut, or a
  flipped byte, which cannot be told from a torn write) is a torn tail:
  the broker starts, logs a warning naming the segment file and offset,
  and every message before that record is back, intact and in order;
- damage anywhere else (a flipped byte in an earlier segment, a segment
  missing in the middle) stops the start with exit status 3 and an error
  naming the segment, and leaves every file byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import pytest

from storage.facade import STARTED
from tests.crash.harness import drain, publish

SEGMENT_SIZE = 16 * 1024
# corpus messages of 1 byte to 4 KiB (multiples of 13 are > 128 KiB): ~10 segments
NUMBERS = [n for n in range(1, 100) if n % 13][:80]
RECORD_HEADER = struct.Struct(">IIB")   # length, CRC32, type (storage/wal/README.md)
SEGMENT_HEADER_SIZE = 16


def records(path: Path) -> list[tuple[int, int]]:
    """(offset, payload length) of every record in segment file ``path``."""
    data = path.read_bytes()
    out, offset = [], SEGMENT_HEADER_SIZE
    while offset < len(data):
        length = RECORD_HEADER.unpack_from(data, offset)[0]
        out.append((offset, length))
        offset += RECORD_HEADER.size + length
    return out


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes((byte ^ 0x5A,)))


def snapshot(data_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The topology database's SQL dump (reading it lets SQLite fold its
    own journal back in), then every WAL and topology file under
    ``data_dir`` -> sha256. The message database is left out: it is derived
    from the WAL (``leveret db rebuild``) and may catch up on the records
    before the damage."""
    with closing(sqlite3.connect(data_dir / "topology.db")) as db:
        dump = list(db.iterdump())
    return dump, {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in sorted(data_dir.rglob("*"))
                  if p.is_file() and not p.name.startswith("messages.db")}


@pytest.fixture
def crashed(fresh_broker, unique):
    """A broker SIGKILLed right after NUMBERS were confirmed on ``queue``;
    returns (proc, queue, segment files in order)."""
    proc = fresh_broker("--wal-segment-size", str(SEGMENT_SIZE))
    queue = unique("wal")
    publish(proc, queue, NUMBERS)
    proc.kill()
    segments = sorted((proc.data_dir / "wal").glob("*.wal"))
    assert len(segments) >= 4, [p.name for p in segments]
    return proc, queue, segments


def start_logging(proc) -> str:
    """Start ``proc``; return the log lines written by this start."""
    before = len(proc.log_text())
    proc.start()
    return proc.log_text()[before:]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_last_record_is_a_torn_tail(crashed, damage):
    """The last record of the last segment cut in the middle, or with one
    byte flipped: start succeeds, one warning names the segment and the
    record's offset, the messages before it are all back, and new
    publishes are appended after the cut and survive another SIGKILL."""
    proc, queue, segments = crashed
    last = segments[-1]
    *earlier, (offset, length) = records(last)
    assert earlier, "the last segment has intact records before the damaged one"
    if damage == "truncate":
        os.truncate(last, offset + RECORD_HEADER.size + length // 2)
    else:
        flip_byte(last, offset + RECORD_HEADER.size + length // 2)
    log = start_logging(proc)
    warnings = [line for line in log.splitlines() if "WARNING" in line and "torn or corrupt" in line]
    assert len(warnings) == 1, log
    assert last.name in warnings[0] and f"byte offset {offset}:" in warnings[0], warnings[0]
    # cut there; then this start appended its CHECKPOINT "started" marker
    assert last.stat().st_size == offset + RECORD_HEADER.size + len(STARTED)
    assert Path(f"{last}.torn-{offset}").exists()
    assert drain(proc, queue) == [(n, False, "ok") for n in NUMBERS[:-1]]

    publish(proc, queue, NUMBERS[-3:])
    proc.kill()
    assert "torn" not in start_logging(proc)
    assert drain(proc, queue) == [(n, False, "ok") for n in NUMBERS[-3:]]


@pytest.mark.parametrize("damage", ["flip-middle-segment", "delete-middle-segment"])
@pytest.mark.broker_log(r"ERROR broker\.app\.server: cannot recover from the write-ahead log: WAL segment \S+ is "
                        r"(corrupt at byte offset \d+|missing)")
def test_damage_before_the_last_segment_stops_the_start(crashed, damage):
    """A corrupt record in a segment that is not the last one, or a segment
    missing in the middle, is not a torn write: the broker refuses to
    start (exit status 3) with an error naming the segment, and changes
    nothing on disk, also when started again."""
    proc, queue, segments = crashed
    victim = segments[len(segments) // 2]
    if damage == "flip-middle-segment":
        offset, length = records(victim)[1]
        flip_byte(victim, offset + RECORD_HEADER.size + length // 2)
        expected = f"WAL segment {victim} is corrupt at byte offset {offset}"
    else:
        victim.unlink()
        expected = f"WAL segment {victim} is missing"
    before = snapshot(proc.data_dir)
    for _attempt in range(2):
        start = len(proc.log_text())
        with pytest.raises(RuntimeError, match="broker exited with 3"):
            proc.start()
        assert proc.proc.returncode == 3
        errors = [line for line in proc.log_text()[start:].splitlines() if " ERROR " in line]
        assert len(errors) == 1 and "cannot recover from the write-ahead log" in errors[0], errors
        assert expected in errors[0], errors[0]
        assert snapshot(proc.data_dir) == before
