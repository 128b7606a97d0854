"""The mirror's SQL: opening the database (``open_database``), what it
knows about the messages a batch touches (``lookup``, one SELECT), and a
batch's rows, state updates and watermark written in one transaction
(``write``).

Why so few database calls per batch: every aiosqlite call is a round trip
to its thread, and every ``sqlite3_step`` releases the GIL. When the event
loop is busy in slices shorter than the interpreter's switch interval
(5 ms), a thread waiting for the GIL can wait that long or much longer for
each round trip. So a batch costs a fixed handful of calls: one SELECT
returning one JSON row, then multi-row INSERT/UPDATE statements of
hundreds of rows each, the watermark, COMMIT.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
import time
from pathlib import Path

import aiosqlite

from storage.mirror.rows import Resolved
from storage.mirror.schema import MESSAGE_COLUMNS, SCHEMA, SCHEMA_VERSION, WRITER_PRAGMAS
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

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


def _max_variables() -> int:
    conn = sqlite3.connect(":memory:")
    try:
        return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    finally:
        conn.close()


# Message rows per INSERT statement (23 parameters each), within SQLite's
# limit on parameters per statement.
MESSAGE_ROWS = max(1, min(1400, _max_variables() // len(MESSAGE_COLUMNS)))


def _ids_json(ids) -> str:
    return "[" + ",".join(map(str, ids)) + "]"


def _insert_messages_sql(rows: int) -> str:
    # OR IGNORE: a second MESSAGE record for an id already stored (a WAL
    # compaction copy) never replaces or fails on the first one. ``resolve``
    # already drops those; this keeps a batch from failing if one slips by.
    one = "(" + ",".join("?" * len(MESSAGE_COLUMNS)) + ")"
    return (f"INSERT OR IGNORE INTO messages ({', '.join(MESSAGE_COLUMNS)}) "
            f"VALUES {','.join([one] * rows)}")


async def insert_messages(db: aiosqlite.Connection, rows: list) -> None:
    """Insert message rows with statements of up to ``MESSAGE_ROWS`` rows
    (executemany over the full chunks, one execute for the remainder)."""
    per = MESSAGE_ROWS
    full, rest = divmod(len(rows), per)
    flat = itertools.chain.from_iterable
    if full:
        await db.executemany(_insert_messages_sql(per), [list(flat(rows[i * per:(i + 1) * per]))
                                                         for i in range(full)])
    if rest:
        await db.execute(_insert_messages_sql(rest), list(flat(rows[full * per:])))


async def lookup(db: aiosqlite.Connection, ops: list) -> tuple[dict, list]:
    """One query: {id: queue_count} of the messages referenced by ``ops``
    that are already in the database, and the (message, queue, event, at)
    history, in order, of those routed to more than one queue."""
    ids = {op[1] for op in ops}
    if not ids:
        return {}, []
    doc = _ids_json(ids)
    (known_json, history_json), = await db.execute_fetchall(_LOOKUP, (doc, doc))
    history = json.loads(history_json)
    history.sort()
    return dict(json.loads(known_json)), [h[1:] for h in history]


async def write(db: aiosqlite.Connection, out: Resolved, last: tuple, mode: str) -> None:
    """One transaction: the new message rows, the events, the state
    updates, and the watermark ``last`` (segment, offset, length of the
    batch's last WAL record) with the current ``mode``. Rolls back and
    re-raises on any error, so rows and watermark never disagree."""
    try:
        if out.messages:
            await insert_messages(db, out.messages)
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


async def _open(path: Path, body_limit: int) -> tuple[aiosqlite.Connection, dict, int]:
    # isolation_level DEFERRED: sqlite3 opens the transaction itself at
    # the first INSERT/UPDATE/DELETE, which saves a BEGIN round trip.
    db = await aiosqlite.connect(path, isolation_level="DEFERRED")
    try:
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
                                         ("body_limit", body_limit)])
        await db.commit()
        async with db.execute("SELECT count(*) FROM messages") as cur:
            rows = (await cur.fetchone())[0]
    except BaseException:
        await db.close()
        raise
    return db, meta, rows


async def open_database(path: Path, body_limit: int) -> tuple[aiosqlite.Connection,
                                                               Position | None, str | None, int]:
    """Open (creating if needed) the database at ``path`` for writing:
    pragmas, schema, ``meta.body_limit``. Returns (connection, watermark
    Position or None, mode from meta or None, message row count). A file
    that is not a readable mirror of this schema version is moved aside to
    ``<name>.broken-<unix time>`` (with its -wal/-shm) and a new one is
    created. Raises sqlite3.Error/OSError only if a fresh database cannot
    be created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db, meta, rows = await _open(path, body_limit)
    except Exception as exc:
        if not path.exists():
            raise
        broken = path.with_name(f"{path.name}.broken-{int(time.time())}")
        log.error("message database %s is unusable (%r): moved to %s, starting a new one",
                  path, exc, broken)
        os.replace(path, broken)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, broken.with_name(broken.name + suffix))
        db, meta, rows = await _open(path, body_limit)
    watermark = None
    if meta.get("wal_segment") is not None:
        watermark = Position(int(meta["wal_segment"]), int(meta["wal_offset"]),
                             int(meta["wal_length"]))
    return db, watermark, meta.get("mode"), rows
