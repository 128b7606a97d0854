"""MessageMirror: the background writer of the message database.

``feed`` is called on the publish path (by the storage facade) and only
appends to a deque. A background asyncio task (``loop``) takes up to
``batch_size`` records at a time, waits until they are written to the WAL
(``barrier``), decodes them on the loop in slices of a few ms (``rows``),
and applies each batch in one SQLite transaction through aiosqlite,
together with the new WAL watermark (``database``). A second task deletes
old history (``retention``). When the payloads waiting in memory pass
``tail_after_bytes``, it drops them and reads the records from the WAL
segment files instead until it catches up (``tail``). This module holds the
public API: lifecycle, ``feed``, lag and statistics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import Awaitable, Callable

import aiosqlite

from storage.mirror import database as sql
from storage.mirror.loop import WriterLoopMixin
from storage.mirror.retention import RetentionMixin
from storage.mirror.rows import BatchDecoder
from storage.mirror.schema import MODE_FULL, MODE_METADATA_ONLY
from storage.mirror.tail import TailMixin
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

_monotonic = time.monotonic


class MessageMirror(WriterLoopMixin, TailMixin, RetentionMixin):
    """Mirrors WAL records into the SQLite message database at ``db_path``.

    Parameters: ``body_limit`` (bytes; larger bodies are stored as NULL),
    ``max_backlog`` (records waiting; above it the mirror stops storing
    bodies until the backlog is under a quarter of it), ``batch_size``
    (records per transaction), ``retention_seconds`` / ``retention_rows``
    (finished messages are deleted once finished longer ago than that, or
    when the table holds more rows than that, oldest finished first),
    ``flush_interval`` (seconds the writer waits after a short batch so
    that the next one is bigger), ``cleanup_interval`` (seconds between
    retention runs; one also runs at start), ``wal_dir`` (the WAL
    directory the fed records are in; None: unknown), ``tail_after_bytes``
    (with ``wal_dir``: the backlog keeps the fed payloads alive; past this
    many bytes the mirror drops them and reads the records from the WAL
    segment files until it has caught up, see tail.py, so its memory stays
    bounded; the owner must keep the segments from ``wal_floor()`` on, e.g.
    with ``WriteAheadLog.set_deletion_floor``), ``floor_moved`` (a callable,
    called when ``wal_floor()`` went up), ``max_backlog_bytes`` (without
    ``wal_dir``: past this many payload bytes waiting the mirror stops, as
    below, rather than grow the broker's memory without bound), ``barrier``
    (an async callable; the writer awaits it after taking a batch and
    before writing it, or before reading the WAL files: the broker passes
    one that waits until every WAL record appended so far is written (and
    fsynced), so the database never holds a record a crash could take out
    of the WAL).

    Lifecycle: ``await start()`` (opens or creates the database; a file
    that is not a readable mirror is moved aside to
    ``<name>.broken-<time>`` and a new one is created), ``feed(...)`` from
    the event loop thread, ``await stop()`` (applies everything fed, then
    closes). If applying (or reading) a batch fails 3 times in a row, or
    the backlog passes ``max_backlog_bytes`` without ``wal_dir``, the
    mirror stops (one error in the log;
    ``stats["failed"]``) and drops what it is fed from then on: the
    broker is never affected. The database keeps a consistent watermark,
    so the records after it are fed again from the WAL at the next start;
    ``leveret db rebuild`` recreates it from the WAL at any time.
    """

    def __init__(self, db_path: Path | str, body_limit: int = 64 * 1024,
                 max_backlog: int = 200_000, batch_size: int = 5000,
                 retention_seconds: float = 7 * 86400, retention_rows: int = 10_000_000,
                 *, flush_interval: float = 0.05, cleanup_interval: float = 60.0,
                 max_backlog_bytes: int = 256 << 20, wal_dir: Path | str | None = None,
                 tail_after_bytes: int = 4 << 20,
                 floor_moved: Callable[[], None] | None = None,
                 barrier: Callable[[], Awaitable[None]] | None = None):
        self.db_path = Path(db_path)
        self.body_limit = int(body_limit)
        self.max_backlog = int(max_backlog)
        self.batch_size = max(1, int(batch_size))
        self.retention_seconds = retention_seconds
        self.retention_rows = int(retention_rows)
        self.flush_interval = flush_interval
        self.cleanup_interval = cleanup_interval
        self.max_backlog_bytes = int(max_backlog_bytes)
        self.barrier = barrier
        self.wal_dir = Path(wal_dir) if wal_dir is not None else None
        self.tail_after_bytes = int(tail_after_bytes)
        self.floor_moved = floor_moved
        self._read_to: Position | None = None     # last record handed to the writer
        self._floor_segment: int | None = None
        self._tail_until: Position | None = None  # tailing: the last record fed
        self._marks: deque = deque()              # tailing: (Position, feed time)
        self._mark_t = self._tail_started = self._tail_last_t = 0.0
        self._tail_waiting = self._tail_read = 0
        self._backlog: deque = deque()
        self._backlog_bytes = 0
        self._wake = asyncio.Event()
        self._idle = True
        self._inflight_since: float | None = None
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._decoder = BatchDecoder()
        self._task: asyncio.Task | None = None
        self._cleanup_task: asyncio.Task | None = None
        self._state = "new"               # new, running, stopping, stopped, failed
        self._flushers = 0
        self._metadata_only = False
        self._rows = 0
        self._skip_until: tuple[int, int] | None = None
        self._feed_skip_until: tuple[int, int] | None = None
        self._copy_of: int | None = None
        self.watermark: Position | None = None
        self._n = dict(fed=0, applied=0, batches=0, messages=0, events=0, duplicates=0,
                       orphans=0, dropped=0, skipped=0, retention_deleted=0, cleanups=0,
                       mode_switches=0, tail_switches=0, tail_records=0, max_backlog_seen=0, last_batch_ms=0.0,
                       max_batch_ms=0.0, max_lag=0.0)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open (creating if needed) the database, read the watermark and
        mode, and start the writer and cleanup tasks. Raises
        sqlite3.Error/OSError only if a fresh database cannot be created."""
        self._db, self.watermark, mode, self._rows = await sql.open_database(
            self.db_path, self.body_limit)
        if self.watermark is not None:
            self._skip_until = (self.watermark.segment, self.watermark.offset)
            self._feed_skip_until = self._skip_until
        self._metadata_only = mode == MODE_METADATA_ONLY
        self._state = "running"
        self._task = asyncio.create_task(self._run(), name="leveret-mirror-writer")
        self._cleanup_task = asyncio.create_task(self._cleanup_loop(),
                                                 name="leveret-mirror-cleanup")
        log.info("message database %s opened: %d messages, watermark %s, mode %s",
                 self.db_path, self._rows, self.watermark,
                 MODE_METADATA_ONLY if self._metadata_only else MODE_FULL)

    async def stop(self) -> None:
        """Apply every record fed so far, stop the tasks and close the
        database. Idempotent. Records fed afterwards are dropped."""
        if self._state in ("stopped", "new"):
            self._state = "stopped"
            return
        if self._state == "running":
            self._state = "stopping"
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            try:
                await self._cleanup_task
            except asyncio.CancelledError:
                pass
        if self._db is not None:
            await self._db.close()
            self._db = None
        self._state = "stopped"
        log.info("message database %s closed: %d records applied", self.db_path,
                 self._n["applied"])

    async def flush(self) -> None:
        """Wait until the backlog is empty and no batch is in flight, i.e.
        every record fed before the call is applied (or the mirror failed
        or stopped). The writer skips its batching pause meanwhile."""
        self._flushers += 1
        try:
            while (self._state in ("running", "stopping")
                   and (self._backlog or self._inflight_since is not None
                        or self._tail_until is not None)):
                self._wake.set()
                await asyncio.sleep(0.002)
        finally:
            self._flushers -= 1

    # ------------------------------------------------------------- feeding

    def feed(self, record_type: int, payload: bytes, position: Position) -> None:
        """Queue one WAL record (its type, its exact payload bytes, its
        Position) for the database. O(1): no I/O, no decoding; never
        blocks. Must be called on the event loop thread, in WAL order.
        While tailing only the position is kept."""
        if self._state in ("stopped", "failed"):
            self._n["dropped"] += 1
            return
        if self._feed_skip_until is not None:
            if (position[0], position[1]) <= self._feed_skip_until:
                n = self._n                # already applied: replayed at start
                n["fed"] += 1
                n["skipped"] += 1
                n["applied"] += 1
                return
            self._feed_skip_until = None   # in WAL order: the rest is new
        if self._tail_until is not None:
            self._n["fed"] += 1
            self._tail_fed(position)
            if self._idle:
                self._idle = False
                self._wake.set()
            return
        self._backlog.append((record_type, payload, position, _monotonic()))
        self._backlog_bytes += len(payload)
        self._n["fed"] += 1
        if self.wal_dir is not None:
            if self._backlog_bytes > self.tail_after_bytes:
                self._start_tailing(position)
        elif self._backlog_bytes > self.max_backlog_bytes:
            self._give_up(f"its backlog passed {self.max_backlog_bytes} bytes "
                          f"({len(self._backlog)} records)")
            return
        if self._idle:
            self._idle = False
            self._wake.set()

    def skip_replayed(self) -> None:
        """From now on, records fed at or before the current watermark are
        counted as skipped at once instead of queued (until the first one
        past it): call after catching up from the WAL, before the facade
        replays the whole log (``rebuild.catch_up``)."""
        if self.watermark is not None:
            self._feed_skip_until = (self.watermark.segment, self.watermark.offset)

    def lag_seconds(self) -> float:
        """Age in seconds (time.monotonic) of the oldest record fed but not
        yet applied; 0.0 when the mirror is caught up. While tailing it
        is estimated (at most tail.MARK_INTERVAL too high)."""
        t = self._inflight_since
        if self._tail_until is not None and self._marks:
            t = self._marks[0][1] if t is None else min(t, self._marks[0][1])
        if t is None:
            if not self._backlog:
                return 0.0
            t = self._backlog[0][3]
        return _monotonic() - t

    @property
    def backlog(self) -> int:
        """Records fed and not yet taken into a batch, in memory (0 while
        tailing: see ``stats["tail_waiting"]``)."""
        return len(self._backlog)

    @property
    def metadata_only(self) -> bool:
        """True while bodies are not stored because the mirror is behind."""
        return self._metadata_only

    @property
    def stats(self) -> dict:
        """A dict of counters and gauges: fed, applied (records taken from
        the backlog and committed, skipped ones included), batches,
        messages / events (rows inserted), duplicates (MESSAGE records for
        ids already present), orphans (events for unknown messages),
        dropped (fed after stop or failure), skipped (fed again although at
        or before the watermark read at start: already applied), errors
        (malformed records), header_errors (undecodable content headers),
        retention_deleted, cleanups (retention runs completed),
        mode_switches, tail_switches (to reading the WAL files), tail_records
        (records read from them), tailing (bool), tail_waiting (records fed
        and not read yet while tailing, estimated), backlog
        (records waiting), backlog_bytes (payload bytes they hold),
        max_backlog_seen, last_batch_ms / max_batch_ms (decode to commit),
        lag_seconds, max_lag (seconds from feed to commit of the oldest
        record of the slowest batch: the worst lag so far), mode ("full" or
        "metadata-only"), rows (messages in the table), state (new,
        running, stopping, stopped, failed), failed, watermark."""
        s = dict(self._n)
        s.update(errors=self._decoder.errors, header_errors=self._decoder.header_errors,
                 backlog=len(self._backlog), backlog_bytes=self._backlog_bytes,
                 tailing=self._tail_until is not None, tail_waiting=self._tail_waiting,
                 lag_seconds=self.lag_seconds(),
                 mode=MODE_METADATA_ONLY if self._metadata_only else MODE_FULL,
                 rows=self._rows, state=self._state, failed=self._state == "failed",
                 watermark=self.watermark)
        return s
