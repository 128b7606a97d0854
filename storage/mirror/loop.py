"""The background task of ``MessageMirror`` (mixed into it): takes up to
``batch_size`` fed records at a time and has the database thread decode
them (``rows``) and apply them in one transaction with the new watermark
(``database.apply_batch``, one call per batch). Chooses full or metadata-only rows from the number of
records waiting, retries a failed batch, and gives up after repeated
failures.
"""

from __future__ import annotations

import asyncio
import logging
import time

from storage.mirror import database as sql
from storage.mirror.schema import MODE_FULL, MODE_METADATA_ONLY
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

_monotonic = time.monotonic
FAILURES_BEFORE_GIVING_UP = 3
#: seconds between attempts at a failed batch
RETRY_DELAY = 1.0


class WriterLoopMixin:
    """``_run`` (the writer task) and what it calls. Uses the mirror's
    backlog, state, decoder, database thread, lock and counters."""

    async def _run(self) -> None:
        backlog = self._backlog
        failures = 0
        batch = None
        while True:
            if batch is None:
                if not backlog:
                    if self._metadata_only:
                        self._check_mode(self.behind)   # caught up: bodies again
                    if self._state != "running":
                        return
                    self._idle = True
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self._check_mode(len(backlog) + self.behind)
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
                              FAILURES_BEFORE_GIVING_UP)
                if failures >= FAILURES_BEFORE_GIVING_UP:
                    self._inflight_since = None
                    self._give_up("of repeated errors")
                    return
                await asyncio.sleep(RETRY_DELAY)
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
        elif self._metadata_only and waiting < max(1, self.max_backlog // 4):
            self._metadata_only = False
            self._n["mode_switches"] += 1
            log.warning("message database caught up (%d records behind): storing bodies again",
                        waiting)

    async def _apply(self, batch: list) -> None:
        t0 = _monotonic()
        mode = MODE_METADATA_ONLY if self._metadata_only else MODE_FULL
        async with self._lock:
            out, self._bodies_missing = await self._dbt.run(
                sql.apply_batch, self._decoder, batch, not self._metadata_only, self.body_limit,
                self._copy_of, mode, self._bodies_missing)
        last = batch[-1][2]
        self._copy_of = out.copy_of
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
