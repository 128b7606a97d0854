"""The mirror's SQL, run on the database thread (db_thread.py): opening the
database (``open_database``), and a whole batch applied in one call
(``apply_batch``): decoded (rows.py), what the database already knows about
the messages it touches (``lookup``, one SELECT), resolved into rows and
state updates, and written in one transaction with the watermark
(``write``).

Why the statements look as they do (measured one by one in
docs/message-database.md, "How fast it applies"): binding a None (or
bytes) parameter costs the sqlite3 module an adaptation lookup, about 1 us,
more than SQLite spends on the column, so a message row binds only its
non-NULL columns (one prepared statement per set of present columns: most
messages of an application share one) and bodies come as bytearrays;
events are inserted with explicit ids (so statements of different shapes
keep WAL order); updates are plain ``executemany``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from operator import itemgetter
from pathlib import Path

from storage.mirror.db_thread import DatabaseThread
from storage.mirror.migrate import migrate_v1
from storage.mirror.rows import BatchDecoder, Resolved, resolve
from storage.mirror.schema import (MESSAGE_COLUMNS, NEW_DATABASE_PRAGMAS, SCHEMA, SCHEMA_VERSION,
                                   WRITER_PRAGMAS)
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

_SET_META = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
_IDS = "(SELECT value FROM json_each(?))"
_EVENT_SHORT = "INSERT INTO message_events (id, message, queue, event, at) VALUES (?, ?, ?, ?, ?)"
_EVENT_LONG = ("INSERT INTO message_events (id, message, queue, event, at, consumer_tag, "
               "delivery_count) VALUES (?, ?, ?, ?, ?, ?, ?)")
_UPDATE_STATE = "UPDATE message_rows SET state = ?, finished_at = ? WHERE id = ?"
_WATERMARK = ("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?), (?, ?), (?, ?), "
              "(?, ?)")
_LOOKUP = ("SELECT (SELECT json_group_array(json_array(id, queue_count)) FROM message_rows "
           f"        WHERE id IN {_IDS}),"
           "       (SELECT json_group_array(json_array(id, message, queue, event, at)) "
           "        FROM message_events WHERE message IN "
           f"        (SELECT id FROM message_rows WHERE id IN {_IDS} AND queue_count > 1))")
_COLUMNS = len(MESSAGE_COLUMNS)
_BODY = MESSAGE_COLUMNS.index("body")
_FINISHED = MESSAGE_COLUMNS.index("finished_at")
_FIRST_PROPERTY = MESSAGE_COLUMNS.index("message_id")
_QUEUE = _COLUMNS + 1          # a decoded row: MESSAGE_COLUMNS, property mask, queue
_INSERT_BODIES = "INSERT OR IGNORE INTO message_bodies (id, body) VALUES (?, ?)"
_INSERT_QUEUES = ("INSERT OR IGNORE INTO message_queues (message, queue, published_at) "
                  "VALUES (?, ?, ?)")
#: statement and itemgetter per shape of message row, see ``_shape``
_shapes: dict[tuple, tuple[str, itemgetter]] = {}


def _shape(key: tuple) -> tuple[str, itemgetter]:
    """The INSERT into message_rows for decoded rows whose present
    (non-NULL) columns are ``key`` = (property mask, finished_at present,
    queue present), and the itemgetter that picks those columns from a
    row."""
    found = _shapes.get(key)
    if found is None:
        mask, finished, queue = key
        present, names = [], []
        for i, name in enumerate(MESSAGE_COLUMNS):
            if _FIRST_PROPERTY <= i < _FIRST_PROPERTY + 13:
                if not mask >> (i - _FIRST_PROPERTY) & 1:
                    continue
            elif i == _BODY or (i == _FINISHED and not finished):
                continue
            present.append(i)
            names.append(name)
        if queue:
            present.append(_QUEUE)
            names.append("queue")
        # OR IGNORE: a second MESSAGE record for an id already stored (a WAL
        # compaction copy) never replaces or fails on the first one.
        # ``resolve`` already drops those; this keeps a batch from failing if
        # one slips by.
        sql = (f"INSERT OR IGNORE INTO message_rows ({', '.join(names)}) "
               f"VALUES ({', '.join('?' * len(present))})")
        found = _shapes[key] = (sql, itemgetter(*present))
    return found


def insert_messages(db: sqlite3.Connection, rows: list) -> None:
    """Insert message rows: lists in ``MESSAGE_COLUMNS`` order, optionally
    followed by the property mask and the queue name (or None) as
    ``rows.BatchDecoder`` makes them. One ``executemany`` into message_rows
    per shape of present columns, one into message_bodies for the bodies
    (a NULL body is no row there)."""
    groups: dict[tuple, list] = {}
    bodies = []
    for row in rows:
        if len(row) > _COLUMNS:
            mask, queue = row[_COLUMNS], row[_QUEUE]
        else:
            mask = sum(1 << k for k in range(13) if row[_FIRST_PROPERTY + k] is not None)
            row = [*row, mask, None]
            queue = None
        key = (mask, row[_FINISHED] is not None, queue is not None)
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
        group.append(row)
        if row[_BODY] is not None:
            bodies.append((row[0], row[_BODY]))
    for key, group in groups.items():
        sql, pick = _shape(key)
        db.executemany(sql, map(pick, group))
    if bodies:
        db.executemany(_INSERT_BODIES, bodies)


def _ids_json(ids) -> str:
    return "[" + ",".join(map(str, ids)) + "]"


def lookup(db: sqlite3.Connection, ops: list) -> tuple[dict, list]:
    """One query: {id: queue_count} of the messages referenced by ``ops``
    that are already in the database, and the (message, queue, event, at)
    history, in order, of those routed to more than one queue."""
    ids = {op[1] for op in ops}
    if not ids:
        return {}, []
    doc = _ids_json(ids)
    (known_json, history_json), = db.execute(_LOOKUP, (doc, doc)).fetchall()
    history = json.loads(history_json)
    history.sort()
    return dict(json.loads(known_json)), [h[1:] for h in history]


def _insert_events(db: sqlite3.Connection, events: list) -> None:
    """Events get explicit ids in WAL order, from ``meta.next_event`` (kept
    in the same transaction: the events table is keyed by (message, id),
    so max(id) would be a scan); a database without it (new, or migrated
    from schema 1) starts after the largest id once."""
    found = db.execute("SELECT value FROM meta WHERE key = 'next_event'").fetchone()
    first = found[0] if found else db.execute(
        "SELECT coalesce(max(id), 0) + 1 FROM message_events").fetchone()[0]
    short, long = [], []
    for n, e in enumerate(events, first):
        if e[4] is None and e[5] is None:
            short.append((n, e[0], e[1], e[2], e[3]))
        else:
            long.append((n, *e))
    if short:
        db.executemany(_EVENT_SHORT, short)
    if long:
        db.executemany(_EVENT_LONG, long)
    db.execute(_SET_META, ("next_event", first + len(events)))


def write(db: sqlite3.Connection, out: Resolved, last: tuple, mode: str,
          bodies_missing: int) -> None:
    """One transaction: the new message rows (and bodies, and the queues
    of those routed to several), the events, the state
    updates, and the watermark ``last`` (segment, offset, length of the
    batch's last WAL record) with the current ``mode`` and the count of
    messages stored without their body in metadata-only mode. Rolls back
    and re-raises on any error, so rows and watermark never disagree."""
    try:
        db.execute("BEGIN")
        if out.messages:
            insert_messages(db, out.messages)
        if out.queues:
            db.executemany(_INSERT_QUEUES, out.queues)
        if out.events:
            _insert_events(db, out.events)
        if out.updates:
            db.executemany(_UPDATE_STATE, [(s, f, i) for i, s, f in out.updates])
        db.execute(_WATERMARK, ("wal_segment", last[0], "wal_offset", last[1],
                                "wal_length", last[2], "mode", mode,
                                "bodies_missing", bodies_missing))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise


def apply_batch(db: sqlite3.Connection, decoder: BatchDecoder, batch: list, store_bodies: bool,
                body_limit: int, copy_of: int | None, mode: str,
                bodies_missing: int) -> tuple[Resolved, int]:
    """Decode, resolve and write ``batch`` (``(type, payload, position, t)``
    tuples) in one transaction, on the database thread. ``copy_of``: see
    ``rows.Resolved``. Returns (what was written, bodies_missing counted
    with this batch's messages). Raises sqlite3.Error (rolled back)."""
    ops: list = []
    for _ in decoder.decode_batch(batch, store_bodies, body_limit, ops, step=1 << 30):
        pass
    known, history = lookup(db, ops)
    out = Resolved(copy_of)
    for _ in resolve(ops, known, history, out, step=1 << 30):
        pass
    if not store_bodies:
        bodies_missing += sum(1 for row in out.messages if row[_BODY] is None
                              and 0 < row[_BODY - 1] <= body_limit)
    write(db, out, batch[-1][2], mode, bodies_missing)
    return out, bodies_missing


def _open(path: Path, body_limit: int) -> tuple[sqlite3.Connection, tuple[dict, int]]:
    # isolation_level None: the writer opens its transactions itself
    fresh = not path.exists() or path.stat().st_size == 0
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        if fresh:
            for pragma in NEW_DATABASE_PRAGMAS:
                db.execute(pragma)
        for pragma in WRITER_PRAGMAS:
            db.execute(pragma)
        meta = {}
        if db.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchone():
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            version = meta.get("schema_version")
            if version == 1:
                migrate_v1(db)
            elif version != SCHEMA_VERSION:
                raise ValueError(f"schema version {version!r}, expected {SCHEMA_VERSION}")
        db.executescript(SCHEMA)
        with db:
            db.executemany(_SET_META, [("schema_version", SCHEMA_VERSION),
                                       ("body_limit", body_limit)])
        rows = db.execute("SELECT count(*) FROM message_rows").fetchone()[0]
    except BaseException:
        db.close()
        raise
    return db, (meta, rows)


async def open_database(path: Path, body_limit: int) -> tuple[DatabaseThread, Position | None,
                                                               str | None, int, int]:
    """Open (creating if needed) the database at ``path`` for writing, on a
    new ``DatabaseThread``: pragmas, schema, ``meta.body_limit``. Returns
    (thread, watermark Position or None, mode from meta or None, message
    row count, meta.bodies_missing). A file that is not a readable mirror
    of this schema version is moved aside to ``<name>.broken-<unix time>``
    (with its -wal/-shm) and a new one is created. Raises
    sqlite3.Error/OSError only if a fresh database cannot be created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    thread = DatabaseThread()
    try:
        try:
            meta, rows = await thread.connect(_open, path, body_limit)
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
            meta, rows = await thread.connect(_open, path, body_limit)
    except BaseException:
        await thread.close()
        raise
    watermark = None
    if meta.get("wal_segment") is not None:
        watermark = Position(int(meta["wal_segment"]), int(meta["wal_offset"]),
                             int(meta["wal_length"]))
    return thread, watermark, meta.get("mode"), rows, int(meta.get("bodies_missing") or 0)
