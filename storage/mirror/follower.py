"""Following the WAL segment files into the message database, up to the end
the broker reports as durable (the core of the message database process,
process.py; testable in one process).

The broker tells the durable end, ``(segment, end byte offset)``, after its
WAL syncs (``tell``). The follower reads the records after the database's
watermark whose end is at or before it (``wal_reader.read_wal`` with
``until``: it never reads bytes a crash could take back, nor a segment
being written) in chunks of ``batch_size`` records, feeds them to a
``MessageMirror`` and keeps at most one more batch waiting there, so its
memory stays bounded however far behind it is.

Deletion floor: ``floor`` is the lowest WAL segment it may still need, the
segment of the database's watermark (a restart resumes from there; 0 with
none yet): the broker keeps the segments from there on
(``WriteAheadLog.set_deletion_floor``). ``floor_moved(n)`` is called when
it goes up.

Lag: each record is dated by the time the first ``tell`` covering the
first record of its chunk arrived (about the fsync time), so the mirror's
``max_lag`` is the worst time from durable to committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import Callable

from storage.mirror.resume import resume_point
from storage.mirror.wal_reader import read_wal
from storage.mirror.writer import MessageMirror
from storage.wal.record import RECORD_HEADER_SIZE, Position

log = logging.getLogger("storage.mirror")

_monotonic = time.monotonic
#: most (end, time) marks kept for the lag; past it, tells are not dated
#: and the lag of later records is overestimated
MAX_MARKS = 10_000


class WalFollower:
    """Feeds ``mirror`` (started) the durable records of ``wal_dir`` past its
    watermark. ``segment_size`` (bytes, the WAL's) and the average record
    size read so far estimate the records not read yet (``mirror.behind``,
    for ``--mirror-max-backlog``)."""

    def __init__(self, mirror: MessageMirror, wal_dir: Path | str, segment_size: int = 64 << 20,
                 floor_moved: Callable[[int], None] | None = None):
        self.mirror = mirror
        self.wal_dir = Path(wal_dir)
        self.segment_size = int(segment_size)
        self.floor_moved = floor_moved
        #: the durable end the broker reported last, (segment, end offset)
        self.durable: tuple[int, int] | None = None
        self.read_to: Position | None = resume_point(self.wal_dir, mirror.watermark,
                                                     mirror.db_path)
        self._marks: deque = deque()
        self._wake = asyncio.Event()
        self._floor = self.floor
        self._bytes = self._records = 0

    @property
    def floor(self) -> int:
        """Lowest WAL segment number still needed (that of the watermark)."""
        mark = self.mirror.watermark
        return 0 if mark is None else mark.segment

    def tell(self, segment: int, end: int) -> None:
        """The broker's WAL is durable up to byte ``end`` of ``segment`` (and
        every earlier segment). Ignored unless it moves forward."""
        new = (segment, end)
        if self.durable is not None and new <= self.durable:
            return
        self.durable = new
        if len(self._marks) < MAX_MARKS:
            self._marks.append((new, _monotonic()))
        self._wake.set()

    def caught_up(self) -> bool:
        """True when every record up to the durable end has been read."""
        return self.durable is None or self._read_end() >= self.durable

    async def wait(self) -> None:
        """Until ``tell`` is called (or ``wake``)."""
        await self._wake.wait()
        self._wake.clear()

    def wake(self) -> None:
        """Make ``wait`` return (e.g. to stop)."""
        self._wake.set()

    async def step(self) -> int:
        """Read and feed the next chunk (at most ``batch_size`` records),
        then wait until at most one batch waits in the mirror; report the
        floor if it moved. Returns the number of records fed (0: caught
        up). Raises WalCorruptError / OSError when the files cannot be
        read."""
        if self.caught_up():
            self._report_floor()
            return 0
        mirror = self.mirror
        stats = {"segments": 0, "records": 0, "truncated": None}
        records = read_wal(self.wal_dir, stats, self.read_to, "the message database",
                           self.durable)
        chunk = []
        try:
            for record in records:
                chunk.append(record)
                if len(chunk) >= mirror.batch_size:
                    break
        finally:
            records.close()
        if not chunk:
            self.read_to = Position(self.durable[0], self.durable[1], 0)
            return 0
        at = self._date(chunk[0].position)
        feed = mirror.feed
        for rtype, payload, position in chunk:
            feed(rtype, payload, position, at)
            self._bytes += len(payload) + RECORD_HEADER_SIZE
        self._records += len(chunk)
        self.read_to = chunk[-1].position
        mirror.behind = self._estimate_behind()
        await mirror.flush(mirror.batch_size)
        self._report_floor()
        return len(chunk)

    def _read_end(self) -> tuple[int, int]:
        r = self.read_to
        return (0, 0) if r is None else (r[0], r[1] + r[2])

    def _date(self, position: Position) -> float:
        """When the first record of a chunk was first reported durable."""
        end = (position[0], position[1] + position[2])
        marks = self._marks
        while len(marks) > 1 and marks[0][0] < end:
            marks.popleft()
        return marks[0][1] if marks else _monotonic()

    def _estimate_behind(self) -> int:
        """Records between what was read and the durable end, from their
        byte distance and the average record size so far."""
        seg, end = self._read_end()
        distance = (self.durable[0] - seg) * self.segment_size + self.durable[1] - end
        return max(0, distance) * self._records // max(1, self._bytes)

    def _report_floor(self) -> None:
        floor = self.floor
        if floor != self._floor:
            self._floor = floor
            if self.floor_moved is not None:
                self.floor_moved(floor)
