"""Retention of the message database: finished messages (acked, rejected,
expired, dead-lettered, purged, dropped, deleted; see ``schema.py``) are
deleted with their events once they finished more than
``retention_seconds`` ago, or when the table holds more than
``retention_rows`` messages (oldest finished first). Messages still queued
or delivered are never deleted. Mixed into ``MessageMirror``.
"""

from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger("storage.mirror")

#: messages deleted per transaction, so the writer is never held up long
DELETE_CHUNK = 5000


class RetentionMixin:
    """``cleanup`` and the task that runs it every ``cleanup_interval``
    seconds. Uses the mirror's ``_dbt``, ``_lock``, ``_state``, ``_rows``,
    ``_n``, ``retention_seconds`` and ``retention_rows``."""

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
        rows. Works in transactions of at most ``DELETE_CHUNK`` messages.
        Returns the number of messages deleted."""
        if self._dbt is None or self._state == "failed":
            return 0
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000
        cutoff = now_ms - int(self.retention_seconds * 1000)
        deleted = 0
        while True:
            n = await self._delete_chunk("finished_at < ?", (cutoff,), DELETE_CHUNK)
            deleted += n
            if n < DELETE_CHUNK:
                break
        while self._rows > self.retention_rows:
            n = await self._delete_chunk("1", (), min(self._rows - self.retention_rows,
                                                      DELETE_CHUNK))
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
        pick = (f"SELECT id FROM message_rows WHERE finished_at IS NOT NULL AND {condition} "
                "ORDER BY finished_at, id LIMIT ?")
        async with self._lock:
            if self._dbt is None:
                return 0
            n = await self._dbt.run(_delete, pick, (*params, limit))
            self._rows -= n
            return n


def _delete(db, pick: str, params: tuple) -> int:
    """On the database thread: delete the messages ``pick`` selects, with
    their bodies, queues and events, in one transaction (one statement per
    table: the same deterministic SELECT picks the same ids); returns how
    many messages."""
    try:
        db.execute("BEGIN")
        for table, key in (("message_events", "message"), ("message_queues", "message"),
                           ("message_bodies", "id")):
            db.execute(f"DELETE FROM {table} WHERE {key} IN ({pick})", params)
        n = db.execute(f"DELETE FROM message_rows WHERE id IN ({pick})", params).rowcount
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    return n
