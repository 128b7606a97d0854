"""``x-cache-persistence`` = ``disk``: the deduplication cache of a durable
exchange of type ``x-message-deduplication`` survives a restart, as the
plugin's disc_copies Mnesia table does (rabbitmq-message-deduplication,
README "Exchange level deduplication").

Every value the cache takes is appended to ``<data dir>/dedup-cache.db``
(SQLite, through aiosqlite, table ``dedup_cache``: vhost, exchange, the
value as its Python ``repr``, and its expiry in ms since the Unix epoch or
NULL) in the background, one transaction per loop pass that added any; rows
past the exchange's ``x-cache-size`` newest and expired ones are deleted
then. At start the rows of each such exchange are read back, oldest first,
into its cache (broker/vhost/deduplication.py ``DedupCache.restore``). Like the
plugin's table, the newest values (those of the last loop pass or so
before a crash) can be lost; a value lost is only a duplicate let through.
A deleted exchange's rows are deleted.
"""

from __future__ import annotations

import asyncio
import logging
from itertools import groupby
from operator import itemgetter
from pathlib import Path

import aiosqlite

from broker.model.clock import now_ms

log = logging.getLogger(__name__)

FILE_NAME = "dedup-cache.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup_cache (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    vhost TEXT NOT NULL,
    exchange TEXT NOT NULL,
    key TEXT NOT NULL,
    expires_ms INTEGER
);
CREATE INDEX IF NOT EXISTS dedup_cache_exchange ON dedup_cache (vhost, exchange, seq);
"""


class DedupJournal:
    """The on-disk copy of the disk-persisted deduplication caches of one
    broker (``path``: the SQLite file). ``open`` reads what is saved;
    ``add`` and ``forget`` are called from the event loop and written by a
    background task; ``close`` writes what is pending. Values added before
    ``open`` wait for it; once closed (also after an ``open`` that failed)
    the journal is a no-op: ``add`` and ``forget`` keep nothing."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        #: pending writes in order: ("add", vhost, exchange, key repr,
        #: expires_ms) and ("forget", vhost, exchange)
        self._ops: list[tuple] = []
        self._sizes: dict[tuple[str, str], int] = {}
        self._writer: asyncio.Task | None = None
        self._closed = False

    async def open(self) -> dict[tuple[str, str], list[tuple[str, int | None]]]:
        """Open (or create) the file; returns the saved values per (vhost,
        exchange): ``(repr of the value, expires_ms or None)``, oldest
        first. Raises aiosqlite.Error when the file cannot be used."""
        self._db = await aiosqlite.connect(self.path)
        await self._db.executescript(_SCHEMA)
        await self._db.commit()
        saved: dict[tuple[str, str], list] = {}
        async with self._db.execute("SELECT vhost, exchange, key, expires_ms FROM dedup_cache ORDER BY seq") as rows:
            async for vhost, exchange, key, expires_ms in rows:
                saved.setdefault((vhost, exchange), []).append((key, expires_ms))
        log.info("deduplication caches on disk %s: %d values of %d exchanges", self.path,
                 sum(len(v) for v in saved.values()), len(saved))
        self._wake()  # what was added before the file was open
        return saved

    def add(self, vhost: str, exchange: str, key_repr: str, expires_ms: int | None, size: int) -> None:
        """Save one value the cache of ``exchange`` (``x-cache-size``
        ``size``) took."""
        if self._closed:
            return
        self._ops.append(("add", vhost, exchange, key_repr, expires_ms))
        self._sizes[(vhost, exchange)] = size
        self._wake()

    def forget(self, vhost: str, exchange: str) -> None:
        """Delete every saved value of ``exchange`` (deleted, or no longer
        a disk-persisted deduplication exchange)."""
        if self._closed:
            return
        self._ops.append(("forget", vhost, exchange))
        self._wake()

    def _wake(self) -> None:
        if self._db is not None and self._ops and (self._writer is None or self._writer.done()):
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Write what is pending, in order, one transaction per round."""
        db = self._db
        while db is not None and self._ops:
            ops, self._ops = self._ops, []
            sizes, self._sizes = self._sizes, {}
            try:
                for kind, group in groupby(ops, key=itemgetter(0)):
                    if kind == "add":
                        await db.executemany("INSERT INTO dedup_cache (vhost, exchange, key, expires_ms) "
                                             "VALUES (?, ?, ?, ?)", [op[1:] for op in group])
                    else:
                        await db.executemany("DELETE FROM dedup_cache WHERE vhost = ? AND exchange = ?",
                                             [op[1:] for op in group])
                for (vhost, exchange), size in sizes.items():
                    await db.execute(
                        "DELETE FROM dedup_cache WHERE vhost = ? AND exchange = ? AND seq <= (SELECT seq FROM "
                        "dedup_cache WHERE vhost = ? AND exchange = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                        (vhost, exchange, vhost, exchange, size))
                if sizes:
                    await db.execute("DELETE FROM dedup_cache WHERE expires_ms < ?", (now_ms(),))
                await db.commit()
            except (aiosqlite.Error, ValueError) as exc:
                log.error("deduplication caches on disk %s: %d changes not saved: %s", self.path, len(ops), exc)

    async def close(self) -> None:
        """Write what is pending and close the file (idempotent); from then
        on ``add`` and ``forget`` do nothing."""
        self._closed = True
        if self._db is None:
            self._ops.clear()
            self._sizes.clear()
            return
        if self._writer is not None:
            await self._writer
        await self._write()
        db, self._db = self._db, None
        await db.close()
