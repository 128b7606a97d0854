"""MessageMirror: the background writer of the message database.

``feed`` is called on the publish path (by the storage facade) and only
appends to a deque. A background asyncio task takes up to ``batch_size``
records at a time, decodes them in a worker thread (``rows.BatchDecoder``),
and applies each batch in one SQLite transaction through aiosqlite
``executemany``, together with the new WAL watermark. A second task
deletes old history (retention).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiosqlite

from storage.mirror.rows import BatchDecoder, resolve
from storage.mirror.schema import (MESSAGE_COLUMNS, MODE_FULL, MODE_METADATA_ONLY, SCHEMA,
                                   SCHEMA_VERSION, WRITER_PRAGMAS)
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

_monotonic = time.monotonic
_INSERT_MESSAGE = (f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})")
_INSERT_EVENT = ("INSERT INTO message_events (message, queue, event, at, consumer_tag, "
                 "delivery_count) VALUES (?, ?, ?, ?, ?, ?)")
_UPDATE_STATE = "UPDATE messages SET state = ?, finished_at = ? WHERE id = ?"
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
_IDS = "(SELECT value FROM json_each(?))"
_FAILURES_BEFORE_GIVING_UP = 3
_DELETE_CHUNK = 5000


def _ids_json(ids) -> str:
    return "[" + ",".join(map(str, ids)) + "]"


class MessageMirror:
    """Mirrors WAL records into the SQLite message database at ``db_path``.

    Parameters: ``body_limit`` (bytes; larger bodies are stored as NULL),
    ``max_backlog`` (records waiting; above it the mirror stops storing
    bodies until the backlog is under a quarter of it), ``batch_size``
    (records per transaction), ``retention_seconds`` / ``retention_rows``
    (finished messages are deleted once finished longer ago than that, or
    when the table holds more rows than that, oldest finished first),
    ``flush_interval`` (seconds the writer waits after a short batch so
    that the next one is bigger), ``cleanup_interval`` (seconds between
    retention runs; one also runs at start).

    Lifecycle: ``await start()`` (opens or creates the database; a file
    that is not a readable mirror is moved aside to
    ``<name>.broken-<time>`` and a new one is created), ``feed(...)`` from
    the event loop thread, ``await stop()`` (applies everything fed, then
    closes). If applying a batch fails 3 times in a row the mirror
    disables itself (logged as an error; ``stats["failed"]``) and drops
    what it is fed from then on: the broker is never affected, and
    ``leveret db rebuild`` recreates the database from the WAL.
    """

    def __init__(self, db_path: Path | str, body_limit: int = 64 * 1024,
                 max_backlog: int = 200_000, batch_size: int = 5000,
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
        self._backlog: deque = deque()
        self._backlog_bytes = 0
        self._wake = asyncio.Event()
        self._idle = True
        self._inflight_since: float | None = None
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._decoder = BatchDecoder()
        self._task: asyncio.Task | None = None
        self._cleanup_task: asyncio.Task | None = None
        self._state = "new"               # new, running, stopping, stopped, failed
        self._flushers = 0
        self._metadata_only = False
        self._rows = 0
        self.watermark: Position | None = None
        self._n = dict(fed=0, applied=0, batches=0, messages=0, events=0, duplicates=0,
                       orphans=0, dropped=0, retention_deleted=0, mode_switches=0,
                       max_backlog_seen=0, last_batch_ms=0.0, max_batch_ms=0.0, max_lag=0.0)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open (creating if needed) the database, read the watermark and
        mode, and start the writer and cleanup tasks. Raises
        sqlite3.Error/OSError only if a fresh database cannot be created."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._open()
        except Exception as exc:
            if self._db is not None:
                await self._db.close()
                self._db = None
            if not self.db_path.exists():
                raise
            broken = self.db_path.with_name(f"{self.db_path.name}.broken-{int(time.time())}")
            log.error("message database %s is unusable (%r): moved to %s, starting a new one",
                      self.db_path, exc, broken)
            os.replace(self.db_path, broken)
            for suffix in ("-wal", "-shm"):
                side = self.db_path.with_name(self.db_path.name + suffix)
                if side.exists():
                    os.replace(side, broken.with_name(broken.name + suffix))
            await self._open()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="leveret-mirror")
        self._state = "running"
        self._task = asyncio.create_task(self._run(), name="leveret-mirror-writer")
        self._cleanup_task = asyncio.create_task(self._cleanup_loop(),
                                                 name="leveret-mirror-cleanup")
        log.info("message database %s opened: %d messages, watermark %s, mode %s",
                 self.db_path, self._rows, self.watermark,
                 MODE_METADATA_ONLY if self._metadata_only else MODE_FULL)

    async def _open(self) -> None:
        self._db = db = await aiosqlite.connect(self.db_path, isolation_level=None)
        for pragma in WRITER_PRAGMAS:
            await db.execute(pragma)
        meta = {}
        async with db.execute("SELECT name FROM sqlite_master WHERE name = 'meta'") as cur:
            exists = await cur.fetchone() is not None
        if exists:
            async with db.execute("SELECT key, value FROM meta") as cur:
                meta = dict(await cur.fetchall())
            version = meta.get("schema_version")
            if version != SCHEMA_VERSION:
                raise ValueError(f"schema version {version!r}, expected {SCHEMA_VERSION}")
        await db.executescript(SCHEMA)
        await db.executemany(_SET_META, [("schema_version", SCHEMA_VERSION),
                                         ("body_limit", self.body_limit)])
        if meta.get("wal_segment") is not None:
            self.watermark = Position(int(meta["wal_segment"]), int(meta["wal_offset"]),
                                      int(meta["wal_length"]))
        self._metadata_only = meta.get("mode") == MODE_METADATA_ONLY
        async with db.execute("SELECT count(*) FROM messages") as cur:
            self._rows = (await cur.fetchone())[0]

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
        if self._executor is not None:
            self._executor.shutdown(wait=True)
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
                   and (self._backlog or self._inflight_since is not None)):
                self._wake.set()
                await asyncio.sleep(0.002)
        finally:
            self._flushers -= 1

    # ------------------------------------------------------------- feeding

    def feed(self, record_type: int, payload: bytes, position: Position) -> None:
        """Queue one WAL record (its type, its exact payload bytes, its
        Position) for the database. O(1): no I/O, no decoding; never
        blocks. Must be called on the event loop thread, in WAL order."""
        if self._state in ("stopped", "failed"):
            self._n["dropped"] += 1
            return
        self._backlog.append((record_type, payload, position, _monotonic()))
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
        """Counters: fed, applied (records), batches, messages / events
        (rows inserted), duplicates (MESSAGE records for known ids),
        orphans (events for unknown messages), dropped (fed after stop or
        failure), errors (malformed records), header_errors,
        retention_deleted, mode_switches, backlog, backlog_bytes (payload
        bytes held by the backlog), max_backlog_seen, last_batch_ms,
        max_batch_ms, lag_seconds, max_lag (seconds from feed to commit of
        the oldest record of the slowest batch: the worst lag so far), mode, rows (messages in the table), state, failed,
        watermark."""
        s = dict(self._n)
        s.update(errors=self._decoder.errors, header_errors=self._decoder.header_errors,
                 backlog=len(self._backlog), backlog_bytes=self._backlog_bytes,
                 lag_seconds=self.lag_seconds(),
                 mode=MODE_METADATA_ONLY if self._metadata_only else MODE_FULL,
                 rows=self._rows, state=self._state, failed=self._state == "failed",
                 watermark=self.watermark)
        return s

    # -------------------------------------------------------------- writer

    async def _run(self) -> None:
        backlog = self._backlog
        failures = 0
        batch = None
        while True:
            if batch is None:
                if not backlog:
                    if self._state != "running":
                        return
                    self._idle = True
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self._check_mode(len(backlog))
                n = min(len(backlog), self.batch_size)
                batch = [backlog.popleft() for _ in range(n)]
                self._backlog_bytes -= sum(len(r[1]) for r in batch)
                self._inflight_since = batch[0][3]
            try:
                await self._apply(batch)
            except Exception:
                failures += 1
                log.exception("message database: applying a batch of %d records failed "
                              "(attempt %d of %d)", len(batch), failures,
                              _FAILURES_BEFORE_GIVING_UP)
                if failures >= _FAILURES_BEFORE_GIVING_UP:
                    self._give_up()
                    return
                await asyncio.sleep(1.0)
                continue
            failures = 0
            batch = None
            self._inflight_since = None
            if len(backlog) < self.batch_size and self._state == "running" and not self._flushers:
                await asyncio.sleep(self.flush_interval)
            else:
                await asyncio.sleep(0)

    def _give_up(self) -> None:
        self._state = "failed"
        self._inflight_since = None
        self._n["dropped"] += len(self._backlog)
        self._backlog.clear()
        self._backlog_bytes = 0
        log.error("message database %s disabled after repeated errors; the broker is not "
                  "affected. Run `leveret db rebuild` while the broker is stopped to recreate it.",
                  self.db_path)

    def _check_mode(self, waiting: int) -> None:
        if waiting > self._n["max_backlog_seen"]:
            self._n["max_backlog_seen"] = waiting
        if not self._metadata_only and waiting > self.max_backlog:
            self._metadata_only = True
            self._n["mode_switches"] += 1
            log.warning("message database is %d records behind the WAL (limit %d): storing "
                        "metadata only, no bodies, until it catches up", waiting, self.max_backlog)
        elif self._metadata_only and waiting < self.max_backlog // 4:
            self._metadata_only = False
            self._n["mode_switches"] += 1
            log.warning("message database caught up (%d records behind): storing bodies again",
                        waiting)

    async def _apply(self, batch: list) -> None:
        t0 = _monotonic()
        loop = asyncio.get_running_loop()
        ops = await loop.run_in_executor(self._executor, self._decoder.decode_batch, batch,
                                         not self._metadata_only, self.body_limit)
        db = self._db
        async with self._lock:
            known: dict[int, int] = {}
            history: list = []
            ids = {op[1] for op in ops}
            if ids:
                async with db.execute(f"SELECT id, queue_count FROM messages WHERE id IN {_IDS}",
                                      (_ids_json(ids),)) as cur:
                    known = dict(await cur.fetchall())
                multi = [i for i, n in known.items() if n > 1]
                if multi:
                    async with db.execute(
                            "SELECT message, queue, event, at FROM message_events "
                            f"WHERE message IN {_IDS} ORDER BY id", (_ids_json(multi),)) as cur:
                        history = await cur.fetchall()
            out = await loop.run_in_executor(self._executor, resolve, ops, known, history)
            last = batch[-1][2]
            await db.execute("BEGIN")
            try:
                if out.messages:
                    await db.executemany(_INSERT_MESSAGE, out.messages)
                if out.events:
                    await db.executemany(_INSERT_EVENT, out.events)
                if out.updates:
                    await db.executemany(_UPDATE_STATE, out.updates)
                await db.executemany(_SET_META, [
                    ("wal_segment", last[0]), ("wal_offset", last[1]), ("wal_length", last[2]),
                    ("mode", MODE_METADATA_ONLY if self._metadata_only else MODE_FULL)])
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise
        self.watermark = last if isinstance(last, Position) else Position(*last)
        self._rows += len(out.messages)
        n = self._n
        n["applied"] += len(batch)
        n["batches"] += 1
        n["messages"] += len(out.messages)
        n["events"] += len(out.events)
        n["duplicates"] += out.duplicates
        n["orphans"] += out.orphans
        now = _monotonic()
        if now - batch[0][3] > n["max_lag"]:
            n["max_lag"] = now - batch[0][3]
        ms = (now - t0) * 1000.0
        n["last_batch_ms"] = round(ms, 3)
        n["max_batch_ms"] = max(n["max_batch_ms"], round(ms, 3))

    # ----------------------------------------------------------- retention

    async def _cleanup_loop(self) -> None:
        while True:
            try:
                await self.cleanup()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("message database retention cleanup failed")
            await asyncio.sleep(self.cleanup_interval)

    async def cleanup(self, now_ms: int | None = None) -> int:
        """Delete finished messages (and their events) that finished more
        than ``retention_seconds`` before ``now_ms`` (ms since the epoch;
        None: now), then the oldest finished ones beyond ``retention_rows``
        rows. Works in transactions of at most 5000 messages, so the writer
        is never held up long. Returns the number of messages deleted."""
        if self._db is None or self._state == "failed":
            return 0
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000
        cutoff = now_ms - int(self.retention_seconds * 1000)
        deleted = 0
        while True:
            n = await self._delete_chunk(
                "SELECT id FROM messages WHERE finished_at IS NOT NULL AND finished_at < ? "
                "ORDER BY finished_at LIMIT ?", (cutoff, _DELETE_CHUNK))
            deleted += n
            if n < _DELETE_CHUNK:
                break
        while self._rows > self.retention_rows:
            excess = min(self._rows - self.retention_rows, _DELETE_CHUNK)
            n = await self._delete_chunk(
                "SELECT id FROM messages WHERE finished_at IS NOT NULL "
                "ORDER BY finished_at, id LIMIT ?", (excess,))
            deleted += n
            if n == 0:
                break
        if deleted:
            self._n["retention_deleted"] += deleted
            log.info("message database retention: deleted %d finished messages", deleted)
        return deleted

    async def _delete_chunk(self, select: str, params: tuple) -> int:
        db = self._db
        async with self._lock:
            if db is None or self._db is None:
                return 0
            async with db.execute(select, params) as cur:
                ids = [r[0] for r in await cur.fetchall()]
            if not ids:
                return 0
            doc = _ids_json(ids)
            await db.execute("BEGIN")
            try:
                await db.execute(f"DELETE FROM message_events WHERE message IN {_IDS}", (doc,))
                await db.execute(f"DELETE FROM messages WHERE id IN {_IDS}", (doc,))
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise
            self._rows -= len(ids)
            return len(ids)
