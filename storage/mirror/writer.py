"""MessageMirror: the background writer of the message database.

``feed`` is called on the publish path (by the storage facade) and only
appends to a deque. A background asyncio task takes up to ``batch_size``
records at a time, decodes them on the loop in slices of a few ms
(``rows``), and applies each batch in one SQLite transaction through
aiosqlite ``executemany``, together with the new WAL watermark. A second
task deletes old history (retention).

Why so few database calls per batch: every aiosqlite call is a round trip
to its thread, and every ``sqlite3_step`` releases the GIL. When the event
loop is busy in slices shorter than the interpreter's switch interval
(5 ms), a thread waiting for the GIL can wait that long or much longer for
each round trip. So a batch costs a fixed handful of calls: one SELECT
returning one JSON row, then multi-row INSERT/UPDATE statements of
hundreds of rows each, the watermark, COMMIT.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sqlite3
import time
from collections import deque
from pathlib import Path

import aiosqlite

from storage.mirror.rows import BatchDecoder, Resolved, resolve
from storage.mirror.schema import (MESSAGE_COLUMNS, MODE_FULL, MODE_METADATA_ONLY, SCHEMA,
                                   SCHEMA_VERSION, WRITER_PRAGMAS)
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

_monotonic = time.monotonic
_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
_IDS = "(SELECT value FROM json_each(?))"
_INSERT_EVENTS = ("INSERT INTO message_events (message, queue, event, at, consumer_tag, "
                  "delivery_count) SELECT value->>0, value->>1, value->>2, value->>3, value->>4, "
                  "value->>5 FROM json_each(?)")
_UPDATE_STATES = ("UPDATE messages SET state = u.value->>1, finished_at = u.value->>2 "
                  "FROM json_each(?) AS u WHERE messages.id = u.value->>0")
_WATERMARK = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?), (?, ?), (?, ?)"
_LOOKUP = ("SELECT (SELECT json_group_array(json_array(id, queue_count)) FROM messages "
           f"        WHERE id IN {_IDS}),"
           "       (SELECT json_group_array(json_array(id, message, queue, event, at)) "
           "        FROM message_events WHERE message IN "
           f"        (SELECT id FROM messages WHERE id IN {_IDS} AND queue_count > 1))")
_FAILURES_BEFORE_GIVING_UP = 3
_RETRY_DELAY = 1.0          # seconds between attempts at a failed batch
_DELETE_CHUNK = 5000


def _max_variables() -> int:
    conn = sqlite3.connect(":memory:")
    try:
        return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        conn.close()


# Message rows per INSERT statement (23 parameters each), within SQLite's
# limit on parameters per statement.
_MESSAGE_ROWS = max(1, min(1400, _max_variables() // len(MESSAGE_COLUMNS)))


def _ids_json(ids) -> str:
    return "[" + ",".join(map(str, ids)) + "]"


def _insert_messages_sql(rows: int) -> str:
    one = "(" + ",".join("?" * len(MESSAGE_COLUMNS)) + ")"
    return f"INSERT INTO messages ({', '.join(MESSAGE_COLUMNS)}) VALUES {','.join([one] * rows)}"


async def _insert_messages(db: aiosqlite.Connection, rows: list) -> None:
    """Insert message rows with statements of up to ``_MESSAGE_ROWS`` rows
    (executemany over the full chunks, one execute for the remainder)."""
    per = _MESSAGE_ROWS
    full, rest = divmod(len(rows), per)
    flat = itertools.chain.from_iterable
    if full:
        await db.executemany(_insert_messages_sql(per), [list(flat(rows[i * per:(i + 1) * per]))
                                                         for i in range(full)])
    if rest:
        await db.execute(_insert_messages_sql(rest), list(flat(rows[full * per:])))


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
    retention runs; one also runs at start), ``max_backlog_bytes`` (the
    backlog keeps the fed payloads alive; past this many bytes the mirror
    stops, as below, rather than grow the broker's memory without bound).

    Lifecycle: ``await start()`` (opens or creates the database; a file
    that is not a readable mirror is moved aside to
    ``<name>.broken-<time>`` and a new one is created), ``feed(...)`` from
    the event loop thread, ``await stop()`` (applies everything fed, then
    closes). If applying a batch fails 3 times in a row, or the backlog
    passes ``max_backlog_bytes``, the mirror stops (one error in the log;
    ``stats["failed"]``) and drops what it is fed from then on: the
    broker is never affected. The database keeps a consistent watermark,
    so the records after it are fed again from the WAL at the next start;
    ``leveret db rebuild`` recreates it from the WAL at any time.
    """

    def __init__(self, db_path: Path | str, body_limit: int = 64 * 1024,
                 max_backlog: int = 200_000, batch_size: int = 5000,
                 retention_seconds: float = 7 * 86400, retention_rows: int = 10_000_000,
                 *, flush_interval: float = 0.05, cleanup_interval: float = 60.0,
                 max_backlog_bytes: int = 256 << 20):
        self.db_path = Path(db_path)
        self.body_limit = int(body_limit)
        self.max_backlog = int(max_backlog)
        self.batch_size = max(1, int(batch_size))
        self.retention_seconds = retention_seconds
        self.retention_rows = int(retention_rows)
        self.flush_interval = flush_interval
        self.cleanup_interval = cleanup_interval
        self.max_backlog_bytes = int(max_backlog_bytes)
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
        self.watermark: Position | None = None
        self._n = dict(fed=0, applied=0, batches=0, messages=0, events=0, duplicates=0,
                       orphans=0, dropped=0, skipped=0, retention_deleted=0, cleanups=0,
                       mode_switches=0, max_backlog_seen=0, last_batch_ms=0.0,
                       max_batch_ms=0.0, max_lag=0.0)

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
        self._state = "running"
        self._task = asyncio.create_task(self._run(), name="leveret-mirror-writer")
        self._cleanup_task = asyncio.create_task(self._cleanup_loop(),
                                                 name="leveret-mirror-cleanup")
        log.info("message database %s opened: %d messages, watermark %s, mode %s",
                 self.db_path, self._rows, self.watermark,
                 MODE_METADATA_ONLY if self._metadata_only else MODE_FULL)

    async def _open(self) -> None:
        # isolation_level DEFERRED: sqlite3 opens the transaction itself at
        # the first INSERT/UPDATE/DELETE, which saves a BEGIN round trip.
        self._db = db = await aiosqlite.connect(self.db_path, isolation_level="DEFERRED")
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
        await db.commit()
        if meta.get("wal_segment") is not None:
            self.watermark = Position(int(meta["wal_segment"]), int(meta["wal_offset"]),
                                      int(meta["wal_length"]))
            self._skip_until = (self.watermark.segment, self.watermark.offset)
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
        if self._backlog_bytes > self.max_backlog_bytes:
            self._give_up(f"its backlog passed {self.max_backlog_bytes} bytes "
                          f"({len(self._backlog)} records)")
            return
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
        the backlog and committed, skipped ones included), batches,
        messages / events (rows inserted), duplicates (MESSAGE records for
        ids already present), orphans (events for unknown messages),
        dropped (fed after stop or failure), skipped (fed again although at
        or before the watermark read at start: already applied), errors
        (malformed records), header_errors (undecodable content headers),
        retention_deleted, cleanups (retention runs completed),
        mode_switches, backlog
        (records waiting), backlog_bytes (payload bytes they hold),
        max_backlog_seen, last_batch_ms / max_batch_ms (decode to commit),
        lag_seconds, max_lag (seconds from feed to commit of the oldest
        record of the slowest batch: the worst lag so far), mode ("full" or
        "metadata-only"), rows (messages in the table), state (new,
        running, stopping, stopped, failed), failed, watermark."""
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
                    self._inflight_since = None
                    self._give_up("of repeated errors")
                    return
                await asyncio.sleep(_RETRY_DELAY)
                continue
            failures = 0
            batch = None
            self._inflight_since = None
            if len(backlog) < self.batch_size and self._state == "running" and not self._flushers:
                await asyncio.sleep(self.flush_interval)
            else:
                await asyncio.sleep(0)

    def _give_up(self, why: str) -> None:
        self._state = "failed"
        self._n["dropped"] += len(self._backlog)
        self._backlog.clear()
        self._backlog_bytes = 0
        self._wake.set()
        log.error("message database %s stopped because %s; the broker is not affected. It "
                  "catches up from the WAL at the next start (or run `leveret db rebuild` "
                  "while the broker is stopped).", self.db_path, why)

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
        if self._skip_until is not None:
            batch = self._skip_applied(batch)
            if not batch:
                return
        ops: list = []
        for _ in self._decoder.decode_batch(batch, not self._metadata_only, self.body_limit, ops):
            await asyncio.sleep(0)
        db = self._db
        async with self._lock:
            known, history = await self._lookup(db, ops)
            out = Resolved()
            for _ in resolve(ops, known, history, out):
                await asyncio.sleep(0)
            last = batch[-1][2]
            mode = MODE_METADATA_ONLY if self._metadata_only else MODE_FULL
            try:
                if out.messages:
                    await _insert_messages(db, out.messages)
                if out.events:
                    await db.execute(_INSERT_EVENTS, (json.dumps(out.events),))
                if out.updates:
                    await db.execute(_UPDATE_STATES, (json.dumps(out.updates),))
                await db.execute(_WATERMARK, ("wal_segment", last[0], "wal_offset", last[1],
                                              "wal_length", last[2], "mode", mode))
                await db.commit()
            except BaseException:
                if db.in_transaction:
                    await db.rollback()
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

    def _skip_applied(self, batch: list) -> list:
        """Drop the records at or before the watermark read at start: they
        are in the database already (the facade replays the whole WAL at
        start). Records arrive in WAL order, so once one is past it the
        check is off for good."""
        until = self._skip_until
        kept = [r for r in batch if (r[2][0], r[2][1]) > until]
        skipped = len(batch) - len(kept)
        if kept:
            self._skip_until = None
        if skipped:
            self._n["skipped"] += skipped
            self._n["applied"] += skipped
        return kept

    @staticmethod
    async def _lookup(db: aiosqlite.Connection, ops: list) -> tuple[dict, list]:
        """One query: {id: queue_count} of the referenced messages already in
        the database, and the (message, queue, event, at) history, in
        order, of those routed to more than one queue."""
        ids = {op[1] for op in ops}
        if not ids:
            return {}, []
        doc = _ids_json(ids)
        (known_json, history_json), = await db.execute_fetchall(_LOOKUP, (doc, doc))
        history = json.loads(history_json)
        history.sort()
        return dict(json.loads(known_json)), [h[1:] for h in history]

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
            n = await self._delete_chunk("finished_at < ?", (cutoff,), _DELETE_CHUNK)
            deleted += n
            if n < _DELETE_CHUNK:
                break
        while self._rows > self.retention_rows:
            n = await self._delete_chunk("1", (), min(self._rows - self.retention_rows,
                                                      _DELETE_CHUNK))
            deleted += n
            if n == 0:
                break
        self._n["cleanups"] += 1
        if deleted:
            self._n["retention_deleted"] += deleted
            log.info("message database retention: deleted %d finished messages", deleted)
        return deleted

    async def _delete_chunk(self, condition: str, params: tuple, limit: int) -> int:
        """Delete the ``limit`` oldest finished messages matching
        ``condition`` and their events, in one transaction (one statement
        per table: the same deterministic SELECT picks the same ids)."""
        pick = (f"SELECT id FROM messages WHERE finished_at IS NOT NULL AND {condition} "
                "ORDER BY finished_at, id LIMIT ?")
        async with self._lock:
            db = self._db
            if db is None:
                return 0
            try:
                await db.execute(f"DELETE FROM message_events WHERE message IN ({pick})",
                                 (*params, limit))
                cur = await db.execute(f"DELETE FROM messages WHERE id IN ({pick})",
                                       (*params, limit))
                n = cur.rowcount
                await cur.close()
                await db.commit()
            except BaseException:
                if db.in_transaction:
                    await db.rollback()
                raise
            self._rows -= n
            return n
