"""Reading WAL records straight from the segment files, read-only (no
lock, nothing modified): used by ``leveret db rebuild`` (rebuild.py) and
by the message database process, which follows the WAL up to the end the
broker reports as durable (follower.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from storage.wal.errors import WalCorruptError
from storage.wal.record import Position
from storage.wal.segment import (SEGMENT_HEADER, SEGMENT_HEADER_SIZE, SEGMENT_MAGIC,
                                 TOMBSTONE_MAGIC, list_segments, pread_exact, scan_records,
                                 segment_name)

log = logging.getLogger("storage.mirror")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def read_wal(wal_dir: Path, stats: dict, after: Position | None = None, what: str = "rebuild",
             until: tuple[int, int] | None = None):
    """Generator over the records of every live segment in ``wal_dir``, in
    log order, as ``Record(type, payload, position)``; with ``after``, only
    the records past that Position; with ``until`` = (segment, end byte
    offset), only the records that end at or before it (the segments after
    it, and the bytes after it, may be being written: they are not read).
    Tombstones are skipped. A torn or corrupt record ends the last segment
    read with a warning (as in recovery, but nothing is modified; ``what``
    names the reader in it); anywhere else it raises WalCorruptError.
    Counts go to ``stats`` (segments, records, truncated)."""
    numbers = list_segments(wal_dir)
    if until is not None:
        numbers = [n for n in numbers if n <= until[0]]
    for n in numbers:
        start = SEGMENT_HEADER_SIZE
        if after is not None:
            if n < after.segment:
                continue
            if n == after.segment:
                start = after.offset + after.length
        path = wal_dir / segment_name(n)
        try:
            fd = os.open(path, os.O_RDONLY | _CLOEXEC)
        except FileNotFoundError:
            continue              # a tombstone unlinked since the listing
        try:
            head = pread_exact(fd, SEGMENT_HEADER_SIZE, 0)
            magic, number = (SEGMENT_HEADER.unpack(head) if len(head) == SEGMENT_HEADER_SIZE
                             else (None, None))
            if magic == TOMBSTONE_MAGIC and number == n:
                continue
            if magic != SEGMENT_MAGIC or number != n:
                if n == numbers[-1] and (len(head) < SEGMENT_HEADER_SIZE or not any(head)):
                    continue          # torn segment creation: holds no record
                raise WalCorruptError(f"WAL segment {path} has a bad file header {head!r}",
                                      n, str(path), 0)
            size = os.fstat(fd).st_size
            if until is not None and n == until[0]:
                size = min(size, until[1])
            end, problem, count = yield from scan_records(fd, size, n, start)
            stats["segments"] += 1
            stats["records"] += count
            if problem is not None:
                if n != numbers[-1]:
                    raise WalCorruptError(f"WAL segment {path} is corrupt at byte offset {end}: "
                                          f"{problem}", n, str(path), end)
                log.warning("WAL: %s in last segment %s at byte offset %d: %s stops there",
                            problem, path, end, what)
                stats["truncated"] = (n, end)
        finally:
            os.close(fd)
