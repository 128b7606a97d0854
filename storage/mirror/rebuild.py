"""Recreate the message database from the WAL segments (``leveret db
rebuild``).

Layout: the WAL in ``<data_dir>/wal/``, the database at
``<data_dir>/messages.db``. The segment files are read directly (read-only)
with the segment scanner and the record decoders, and fed through the same
``MessageMirror`` code the broker uses, so a rebuilt database has the same
rows as one fed live (minus history already deleted from the WAL).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from pathlib import Path

from storage.mirror.lock import try_lock
from storage.mirror.wal_reader import read_wal
from storage.mirror.writer import MessageMirror

log = logging.getLogger("storage.mirror")

WAL_DIR = "wal"
DB_NAME = "messages.db"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class RebuildError(Exception):
    """The rebuild cannot run: no WAL directory, or it is locked (the
    broker is running)."""


def db_path(data_dir: Path | str) -> Path:
    """Where the message database of ``data_dir`` lives."""
    return Path(data_dir) / DB_NAME


def _lock(wal_dir: Path) -> int:
    """flock the WAL directory the way ``WriteAheadLog.open`` does; returns
    the fd holding the lock. Raises RebuildError if it is held."""
    fd = os.open(wal_dir, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RebuildError(f"WAL directory {wal_dir} is locked by another process (is the "
                           "broker running?); stop it before rebuilding") from None
    return fd


async def rebuild_async(data_dir: Path | str, **mirror_options) -> dict:
    """``rebuild`` for callers already inside an event loop."""
    data_dir = Path(data_dir)
    wal_dir = data_dir / WAL_DIR
    if not wal_dir.is_dir():
        raise RebuildError(f"no WAL directory at {wal_dir}")
    target = db_path(data_dir)
    tmp = target.with_name(target.name + ".rebuild")
    t0 = time.monotonic()
    stats = {"segments": 0, "records": 0, "truncated": None}
    fd = _lock(wal_dir)
    writer = try_lock(target)
    try:
        if writer is None:
            raise RebuildError(f"message database {target} is locked by a message database "
                               "process (is the broker running?); stop it before rebuilding")
        for path in (tmp, *(tmp.with_name(tmp.name + s) for s in ("-wal", "-shm"))):
            path.unlink(missing_ok=True)
        mirror = MessageMirror(tmp, **mirror_options)
        await mirror.start()
        try:
            await _feed_all(mirror, read_wal(wal_dir, stats))
            await mirror.cleanup()
            result = mirror.stats
        finally:
            await mirror.stop()
        if result["failed"]:
            raise RebuildError(f"writing {tmp} failed (see the log)")
        for suffix in ("-wal", "-shm"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(tmp, target)
    finally:
        if writer is not None:
            os.close(writer)
        os.close(fd)
    summary = {"db_path": str(target), "segments": stats["segments"],
               "records": stats["records"], "messages": result["rows"],
               "events": result["events"], "orphans": result["orphans"],
               "duplicates": result["duplicates"], "errors": result["errors"],
               "retention_deleted": result["retention_deleted"],
               "truncated": stats["truncated"], "watermark": result["watermark"],
               "seconds": round(time.monotonic() - t0, 3)}
    log.info("message database rebuilt from %s: %s", wal_dir, summary)
    return summary


def rebuild(data_dir: Path | str, **mirror_options) -> dict:
    """Delete and recreate ``<data_dir>/messages.db`` from the WAL segments
    in ``<data_dir>/wal``, holding the WAL directory lock meanwhile.

    The new database is built next to the old one (``messages.db.rebuild``)
    and renamed over it at the end, so a failed rebuild leaves the old one.
    ``mirror_options`` go to ``MessageMirror`` (body_limit, retention...).
    Returns a summary dict: db_path, segments (live segments read), records
    (WAL records read), messages (message rows in the new database),
    events (event rows inserted), orphans (events whose MESSAGE record is
    no longer in the WAL), duplicates (compaction copies), errors
    (malformed records), retention_deleted, truncated ((segment, offset)
    of a torn tail, or None), watermark (Position of the last record, or
    None), seconds.
    Raises RebuildError (no WAL directory; directory or database locked,
    i.e. the broker or its message database process is running; the
    database could not be written),
    WalCorruptError (corruption outside the tail of the last segment).
    Runs its own event loop: call ``rebuild_async`` from inside one."""
    return asyncio.run(rebuild_async(data_dir, **mirror_options))


async def _feed_all(mirror: MessageMirror, records) -> None:
    """Feed ``records`` to a running mirror, waiting for it every two
    batches, so memory stays bounded by two batches of payloads."""
    chunk = 2 * mirror.batch_size
    pending = 0
    for record in records:
        mirror.feed(record.type, record.payload, record.position)
        pending += 1
        if pending >= chunk:
            await mirror.flush()
            pending = 0
    await mirror.flush()
