"""MessageMirror: the batch writer of the message database.

``feed`` only appends to a deque. A background asyncio task (``loop``)
takes up to ``batch_size`` records at a time and has the database thread
(``db_thread``) decode them (``rows``) and apply them in one SQLite
transaction, together with the new WAL watermark (``database``). A second
task deletes old history (``retention``). It runs in the message database
process (process.py, fed by follower.py from the WAL segment files) and in
``leveret db rebuild``. This module holds the public API: lifecycle,
``feed``, lag and statistics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path

from storage.mirror import database as sql
from storage.mirror.db_thread import DatabaseThread
from storage.mirror.loop import WriterLoopMixin
from storage.mirror.retention import RetentionMixin
from storage.mirror.rows import BatchDecoder
from storage.mirror.schema import MODE_FULL, MODE_METADATA_ONLY
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

_monotonic = time.monotonic


class MessageMirror(WriterLoopMixin, RetentionMixin):
    """Mirrors WAL records into the SQLite message database at ``db_path``.

    Parameters: ``body_limit`` (bytes; larger bodies are stored as NULL),
    ``max_backlog`` (records waiting, the backlog plus ``behind``; above
    it the mirror stops storing bodies until they are under a quarter of
    it), ``batch_size`` (records per transaction), ``retention_seconds`` /
    ``retention_rows`` (finished messages are deleted once finished longer
    ago than that, or when the table holds more rows than that, oldest
    finished first), ``flush_interval`` (seconds the writer waits after a
    short batch so that the next one is bigger), ``cleanup_interval``
    (seconds between retention runs; one also runs at start).

    The feeder must only feed records that are durable in the WAL (the
    database never holds a record a crash could take back): follower.py
    reads them from the segment files up to the end the broker reports as
    fsynced. It may set ``behind`` (records known to wait outside the
    backlog, an estimate) so that ``max_backlog`` sees them.

    Lifecycle: ``await start()`` (opens or creates the database; a file
    that is not a readable mirror is moved aside to
    ``<name>.broken-<time>`` and a new one is created), ``feed(...)`` from
    the event loop thread, ``await stop()`` (applies everything fed, then
    closes). If applying a batch fails 3 times in a row the mirror stops
    (one error in the log; ``stats["failed"]``) and drops what it is fed
    from then on. The database keeps a consistent watermark, so the
    records after it are read again from the WAL at the next start;
    ``leveret db rebuild`` recreates it from the WAL at any time.
    """

    def __init__(self, db_path: Path | str, body_limit: int = 64 * 1024,
                 max_backlog: int = 200_000, batch_size: int = 10_000,
                 retention_seconds: float = 7 * 86400, retention_rows: int = 10_000_000,
                 *, flush_interval: float = 0.05, cleanup_interval: float = 60.0):
        self.db_path = Path(db_path)
        self.body_limit = int(body_limit)
        self.max_backlog = int(max_backlog)
        self.batch_size = max(1, int(batch_size))
        self.retention_seconds = retention_seconds
        self.retention_rows = int(retention_rows)
        self.flush_interval = flush_interval
        self.cleanup_interval = cleanup_interval
        #: records waiting to be fed (not in the backlog yet), estimated by the feeder
        self.behind = 0
        self._backlog: deque = deque()
        self._backlog_bytes = 0
        self._wake = asyncio.Event()
        self._idle = True
        self._inflight_since: float | None = None
        self._dbt: DatabaseThread | None = None
        #: messages stored without their body because of metadata-only mode
        self._bodies_missing = 0
        self._lock = asyncio.Lock()
        self._decoder = BatchDecoder()
        self._task: asyncio.Task | None = None
        self._cleanup_task: asyncio.Task | None = None
        self._state = "new"               # new, running, stopping, stopped, failed
        self._flushers = 0
        self._metadata_only = False
        self._rows = 0
        self._copy_of: int | None = None
        self.watermark: Position | None = None
        self._n = dict(fed=0, applied=0, batches=0, messages=0, events=0, duplicates=0,
                       orphans=0, dropped=0, retention_deleted=0, cleanups=0, mode_switches=0,
                       max_backlog_seen=0, last_batch_ms=0.0, max_batch_ms=0.0, max_lag=0.0)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open (creating if needed) the database, read the watermark and
        mode, and start the writer and cleanup tasks. Raises
        sqlite3.Error/OSError only if a fresh database cannot be created."""
        (self._dbt, self.watermark, mode, self._rows,
         self._bodies_missing) = await sql.open_database(self.db_path, self.body_limit)
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
        if self._dbt is not None:
            await self._dbt.close()
            self._dbt = None
        self._state = "stopped"
        log.info("message database %s closed: %d records applied", self.db_path,
                 self._n["applied"])

    async def flush(self, limit: int = 0) -> None:
        """Wait until at most ``limit`` records wait in the backlog (0: none,
        and no batch in flight, i.e. every record fed before the call is
        applied), or the mirror failed or stopped. The writer skips its
        batching pause meanwhile."""
        self._flushers += 1
        try:
            while (self._state in ("running", "stopping")
                   and (len(self._backlog) > limit
                        or (not limit and self._inflight_since is not None))):
                self._wake.set()
                await asyncio.sleep(0.002)
        finally:
            self._flushers -= 1

    # ------------------------------------------------------------- feeding

    def feed(self, record_type: int, payload: bytes, position: Position,
             at: float | None = None) -> None:
        """Queue one WAL record (its type, its exact payload bytes, its
        Position; ``at``: the time.monotonic() it became durable, for the
        lag figures, default now) for the database. O(1): no I/O, no
        decoding; never blocks. Must be called on the event loop thread,
        in WAL order."""
        if self._state in ("stopped", "failed"):
            self._n["dropped"] += 1
            return
        self._backlog.append((record_type, payload, position,
                              _monotonic() if at is None else at))
        self._backlog_bytes += len(payload)
        self._n["fed"] += 1
        if self._idle:
            self._idle = False
            self._wake.set()

    def lag_seconds(self) -> float:
        """Age in seconds (time.monotonic) of the oldest record fed but not
        yet applied; 0.0 when the mirror is caught up."""
        t = self._inflight_since
        if t is None:
            if not self._backlog:
                return 0.0
            t = self._backlog[0][3]
        return _monotonic() - t

    @property
    def backlog(self) -> int:
        """Records fed and not yet taken into a batch."""
        return len(self._backlog)

    @property
    def metadata_only(self) -> bool:
        """True while bodies are not stored because the mirror is behind."""
        return self._metadata_only

    @property
    def stats(self) -> dict:
        """A dict of counters and gauges: fed, applied (records taken from
        the backlog and committed), batches,
        messages / events (rows inserted), duplicates (MESSAGE records for
        ids already present), orphans (events for unknown messages),
        dropped (fed after stop or failure), errors (malformed records),
        header_errors (undecodable content headers), retention_deleted,
        cleanups (retention runs completed), mode_switches, backlog
        (records waiting), backlog_bytes (payload bytes they hold), behind,
        max_backlog_seen, last_batch_ms / max_batch_ms (decode to commit),
        lag_seconds, max_lag (seconds from feed to commit of the oldest
        record of the slowest batch: the worst lag so far), mode ("full" or
        "metadata-only"), rows (messages in the table), bodies_missing
        (messages stored without their body in metadata-only mode, as
        ``meta.bodies_missing``), state (new,
        running, stopping, stopped, failed), failed, watermark."""
        s = dict(self._n)
        s.update(errors=self._decoder.errors, header_errors=self._decoder.header_errors,
                 backlog=len(self._backlog), backlog_bytes=self._backlog_bytes,
                 behind=self.behind, lag_seconds=self.lag_seconds(),
                 mode=MODE_METADATA_ONLY if self._metadata_only else MODE_FULL,
                 rows=self._rows, state=self._state, failed=self._state == "failed",
                 bodies_missing=self._bodies_missing,
                 watermark=self.watermark)
        return s
