"""Tailing the WAL segment files (mixed into ``MessageMirror``).

While the mirror keeps up, ``feed`` queues each record's payload in memory.
When the payloads waiting pass ``tail_after_bytes``, ``feed`` drops them and
the mirror switches to *tailing*: it keeps only the Position of the last
record fed, and the writer reads the records after the last one it took
(``_read_to``, else the watermark) straight from the segment files
(``wal_reader.read_wal``), up to that position, after the ``barrier`` (so
everything it reads is written and fsynced), one batch at a time. It goes
back to in-memory feeding when it has read up to the last record fed: that
check and the switch happen synchronously on the event loop thread, so no
record is fed between them and none is lost or applied twice.

The segments it still has to read must not be deleted: ``wal_floor`` is the
lowest segment number it may read, for ``WriteAheadLog.set_deletion_floor``;
``floor_moved`` (an optional callable) is called each time it goes up.

Lag while tailing: the feed time of the records is not kept; ``feed``
records one (Position, time.monotonic()) mark per ``MARK_INTERVAL`` seconds
and a record read from the files is dated by the last mark at or before it
(at most ``MARK_INTERVAL`` early).
"""

from __future__ import annotations

import logging
import time
from collections import deque

from storage.mirror.wal_reader import read_wal
from storage.wal.errors import WalError
from storage.wal.record import Position

log = logging.getLogger("storage.mirror")

_monotonic = time.monotonic
#: seconds between two feed-time marks while tailing
MARK_INTERVAL = 0.01
#: most marks kept (one per MARK_INTERVAL: 1,000 s of lag); past it none
#: are added and the lag of the records read is overestimated
MAX_MARKS = 100_000


class TailMixin:
    """Tailing state and steps. Uses the mirror's backlog, wal_dir,
    barrier, batch_size, counters, ``_read_to``, ``_tail_until`` (None
    unless tailing: the last Position fed), ``_marks``."""

    def wal_floor(self) -> int | None:
        """Lowest WAL segment number the mirror may still read from the
        files: the segment of the last record it took (or of its
        watermark); 0 before it has any (it may read the whole WAL); None
        when it reads no WAL files (no ``wal_dir``, failed or stopped)."""
        if self.wal_dir is None or self._state in ("failed", "stopped"):
            return None
        mark = self._read_to if self._read_to is not None else self.watermark
        return 0 if mark is None else mark[0]

    @property
    def tailing(self) -> bool:
        """True while the mirror reads the WAL segment files instead of
        keeping the records fed in memory."""
        return self._tail_until is not None

    def _taken(self, position: Position) -> None:
        """``position`` is the last record handed to the writer: moves the
        floor, telling ``floor_moved`` when its segment changed."""
        self._read_to = position
        if position[0] != self._floor_segment:
            self._floor_segment = position[0]
            self._floor_changed()

    def _floor_changed(self) -> None:
        if self.floor_moved is not None:
            try:
                self.floor_moved()
            except Exception:
                log.exception("message database: the WAL deletion floor callback failed")

    def _start_tailing(self, position: Position) -> None:
        """From ``feed`` (``position``: the record just queued): drop the
        in-memory backlog and read the records from the WAL files."""
        backlog = self._backlog
        first = backlog[0]
        now = _monotonic()
        log.warning("message database is %d records (%d payload bytes, %.3f s) behind the WAL: "
                    "reading them from the WAL segment files after %s instead of keeping them "
                    "in memory, until it catches up", len(backlog), self._backlog_bytes,
                    now - first[3], tuple(self._read_to or self.watermark or ()) or "the start")
        self._marks = deque([(first[2], first[3])])
        self._mark_t = now
        self._tail_until = position
        self._tail_waiting = len(backlog)
        self._tail_started = now
        self._tail_read = 0
        self._n["tail_switches"] += 1
        backlog.clear()
        self._backlog_bytes = 0

    def _tail_fed(self, position: Position) -> None:
        """``feed`` while tailing: remember the position (and now and then
        its time)."""
        self._tail_until = position
        self._tail_waiting += 1
        t = _monotonic()
        if t - self._mark_t >= MARK_INTERVAL and len(self._marks) < MAX_MARKS:
            self._marks.append((position, t))
            self._mark_t = t

    def _stop_tailing(self) -> None:
        now = _monotonic()
        log.warning("message database caught up with the WAL after %.1f s reading %d records "
                    "from the segment files (lag %.3f s): keeping the records fed in memory "
                    "again", now - self._tail_started, self._tail_read,
                    now - self._tail_last_t)
        self._tail_until = None
        self._tail_waiting = 0
        self._marks.clear()

    async def _tail_batch(self) -> list | None:
        """The next batch read from the WAL files (after the barrier), or
        None after switching back to in-memory feeding (caught up). Raises
        WalError / WalCorruptError / OSError when the records cannot be
        read."""
        after = self._read_to if self._read_to is not None else self.watermark
        until = self._tail_until
        if after is not None and until <= after:
            self._stop_tailing()               # synchronous with feed: nothing fed between
            return None
        self._check_mode(self._tail_waiting)
        if self.barrier is not None:
            await self.barrier()               # every record up to ``until`` is written
        records = self._read_files(after, until)
        first = records[0][2]
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= first:
            marks.popleft()
        t = marks[0][1] if marks else _monotonic()
        self._tail_last_t = t
        batch = [(r[0], r[1], r[2], t) for r in records]
        self._inflight_since = t
        self._tail_waiting = max(0, self._tail_waiting - len(batch))
        self._tail_read += len(batch)
        self._n["tail_records"] += len(batch)
        self._taken(batch[-1][2])
        return batch

    def _read_files(self, after: Position | None, until: Position) -> list:
        """Up to ``batch_size`` records after ``after`` (None: from the
        start of the WAL) and up to ``until``, from the segment files."""
        stats = {"segments": 0, "records": 0, "truncated": None}
        records = read_wal(self.wal_dir, stats, after, "tailing")
        out = []
        limit = self.batch_size
        try:
            for record in records:
                position = record.position
                if position > until:
                    break
                out.append(record)
                if position == until or len(out) >= limit:
                    break
        finally:
            records.close()
        if not out:
            raise WalError(f"the WAL records after {after} up to {until} are not in the segment "
                           f"files of {self.wal_dir}")
        return out
