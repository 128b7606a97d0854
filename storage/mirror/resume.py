"""Where the message database process resumes reading the WAL: after its
watermark (the last record it applied), checked against the segment files.

The watermark can point past what the WAL now holds when recovery cut a
damaged tail the database had already applied (a damaged fsynced record,
or ``--fsync never`` and a power loss): new records are appended from the
cut, so reading on from the watermark would start in the middle of one.
Recovery keeps the cut bytes as ``<segment>.torn-<offset>``
(storage/wal/recovery.py); the process then resumes at that offset, and
the rows of the records that were cut stay in the database.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from storage.wal.record import Position
from storage.wal.segment import list_segments, scan_records, segment_name

log = logging.getLogger("storage.mirror")


def resume_point(wal_dir: Path, mark: Position | None, db_path: object = "") -> Position | None:
    """The Position to read after: ``mark`` when a record of exactly that
    offset and length is in its segment (or the WAL cannot tell), else the
    cut offset (``Position(segment, offset, 0)``) with a warning. Also warns
    when the database is ahead of the whole WAL or segments it had not read
    were deleted. Raises OSError when a segment cannot be read."""
    if mark is None or not wal_dir.is_dir():
        return mark
    numbers = list_segments(wal_dir)
    path = wal_dir / segment_name(mark.segment)
    cuts = [offset for offset in _cut_offsets(path) if offset <= mark.offset]
    if not numbers or numbers[-1] < mark.segment or (
            not cuts and numbers[-1] == mark.segment
            and path.stat().st_size < mark.offset + mark.length):
        log.warning("message database %s has applied WAL records up to %s, past the end of the "
                    "WAL in %s (was the WAL replaced?); records at or before that position will "
                    "be ignored: stop the broker and run `leveret db rebuild`", db_path,
                    tuple(mark), wal_dir)
        return mark
    if numbers[0] > mark.segment + 1:
        log.warning("message database %s: WAL segments %d to %d were deleted before it read "
                    "them; their records are missing from it (`leveret db rebuild` while the "
                    "broker is stopped restores what the WAL still holds)", db_path,
                    mark.segment + 1, numbers[0] - 1)
    if mark.segment not in numbers:
        return mark
    boundary = _record_boundary(path, mark)
    if boundary is None:
        return mark
    resume = max(cuts) if cuts else boundary
    log.warning("message database %s has applied WAL records up to %s, but recovery cut segment "
                "%s before that record: resuming at byte offset %d; rows of the records cut "
                "from the WAL stay in the database", db_path, tuple(mark), path, resume)
    return Position(mark.segment, resume, 0)


def _record_boundary(path: Path, mark: Position) -> int | None:
    """None when a record at ``mark.offset`` of ``mark.length`` bytes is in
    the segment; else the end of the last whole record before it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = min(os.fstat(fd).st_size, mark.offset + mark.length)
        records = scan_records(fd, size, mark.segment)
        last_end = None
        while True:
            try:
                record = next(records)
            except StopIteration as stop:
                end = stop.value[0]
                break
            position = record.position
            if position.offset == mark.offset and position.length == mark.length:
                return None
            last_end = position.offset + position.length
        return last_end if last_end is not None else end
    finally:
        os.close(fd)


def _cut_offsets(path: Path) -> list[int]:
    """Offsets of the ``<segment>.torn-<offset>`` files recovery left."""
    offsets = []
    for saved in path.parent.glob(path.name + ".torn-*"):
        suffix = saved.name.rsplit("-", 1)[-1]
        if suffix.isdigit():
            offsets.append(int(suffix))
    return offsets
