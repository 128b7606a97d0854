"""Bringing a schema-1 message database to schema 2 in place, at open.

Schema 1 kept bodies in table ``messages`` and indexed it by state and by
(exchange, routing key); its ``message_events`` was a rowid table with
indexes by (message, id) and (queue, message). Schema 2 (schema.py) splits
``messages`` into ``message_rows`` and ``message_bodies`` behind a view of
the old name and columns (plus ``queue``), and finds a queue's messages by
``message_rows.queue`` or ``message_queues``. The old ``message_events``
table is kept as it is: same columns, so the writer and every query work on
it unchanged (only its inserts stay slower). One transaction: a crash
during the migration leaves the schema-1 file, migrated again at the next
open.
"""

from __future__ import annotations

import logging
import sqlite3

from storage.mirror.schema import TABLES

log = logging.getLogger("storage.mirror")

_STEPS = """
DROP VIEW IF EXISTS messages_iso;
DROP VIEW IF EXISTS message_events_iso;
DROP INDEX IF EXISTS messages_exchange_key;
DROP INDEX IF EXISTS messages_state;
DROP INDEX IF EXISTS messages_message_id;
DROP INDEX IF EXISTS messages_correlation_id;
ALTER TABLE messages RENAME TO message_rows;
ALTER TABLE message_rows ADD COLUMN queue TEXT;
"""

_MOVE = """
INSERT INTO message_bodies (id, body) SELECT id, body FROM message_rows WHERE body IS NOT NULL;
ALTER TABLE message_rows DROP COLUMN body;
UPDATE message_rows SET queue = (SELECT e.queue FROM message_events e
                                 WHERE e.message = message_rows.id AND e.event = 'routed'
                                 ORDER BY e.id LIMIT 1)
    WHERE queue_count = 1;
INSERT OR IGNORE INTO message_queues (message, queue, published_at)
    SELECT e.message, e.queue, r.published_at FROM message_events e
    JOIN message_rows r ON r.id = e.message
    WHERE e.event = 'routed' AND r.queue_count > 1;
"""


def migrate_v1(db: sqlite3.Connection) -> None:
    """Migrate the schema-1 database open as ``db`` (autocommit mode) to
    schema 2 in one transaction, with a log line; the caller then creates
    the views and sets ``meta.schema_version``. Raises sqlite3.Error
    (rolled back)."""
    rows = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    log.warning("message database: migrating %d messages from schema 1 to 2 (bodies in a "
                "table of their own, fewer indexes); this runs once", rows)
    try:
        db.execute("BEGIN")
        for statement in (_STEPS + TABLES + _MOVE).split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
