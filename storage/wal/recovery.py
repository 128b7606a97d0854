"""Recovery: check the segment files of a WAL directory and replay them.

Outcomes (the durability contract in docs/architecture.md):

- A torn or corrupt record in the LAST segment (short header, a length
  running past the end of the file, an unknown type, a CRC mismatch) ends
  the replay at that record: a warning names the file and byte offset, the
  cut bytes are saved as ``<segment>.torn-<offset>`` for inspection, the
  file is truncated there and appends continue after it. A flipped bit in
  the last segment cannot be told apart from a torn write, so it gets the
  same treatment. Records reported durable (fsynced) before a crash are
  never in that tail, because a batch is fsynced before it is confirmed.
- A last segment whose 16-byte header is short or all zeros is a segment
  whose creation was torn by a crash: it is reinitialized with a warning.
- Anything else is corruption and raises WalCorruptError(segment, path,
  offset): a torn/corrupt record in an earlier segment, a bad file header,
  a segment missing between the first and the last, or a first file that
  is neither segment 1 nor a tombstone (see segment.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from storage.wal.errors import WalCorruptError
from storage.wal.segment import (SEGMENT_HEADER, SEGMENT_HEADER_SIZE, SEGMENT_MAGIC,
                                 TOMBSTONE_MAGIC, Segment, list_segments, pread_exact,
                                 pwrite_all, scan_records, segment_name)

log = logging.getLogger("storage.wal.log")
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class RecoveryResult:
    """Returned by ``WriteAheadLog.open()``: an iterator over every valid
    record in log order, as ``Record(type, payload, position)``.

    The log accepts appends once the iteration is exhausted (``drain()``
    does that without looking at the records). Iterating may raise
    WalCorruptError (corruption in a segment other than the last) or
    OSError. Afterwards: ``segments`` (live segments scanned), ``records``,
    ``bytes`` (segment bytes scanned), ``truncated`` ((segment, offset) of
    a torn tail that was cut off, or None), ``seconds``, ``done``."""

    def __init__(self):
        self._gen = iter(())
        self.segments = 0
        self.records = 0
        self.bytes = 0
        self.truncated: tuple[int, int] | None = None
        self.seconds = 0.0
        self.done = False

    def __iter__(self):
        return self._gen        # iterate the generator directly: no Python-level __next__

    def __next__(self):
        return next(self._gen)

    def drain(self) -> int:
        """Consume the remaining records; returns ``records``."""
        for _ in self._gen:
            pass
        return self.records


class DirectoryState:
    """What ``check_files`` found: live segments by number (ascending, each
    with an O_RDWR fd), tombstone numbers, the highest segment number
    (0 for an empty directory), and the torn-header last segment if any."""

    def __init__(self):
        self.segments: dict[int, Segment] = {}
        self.tombstones: set[int] = set()
        self.last_number = 0
        self.torn: Segment | None = None

    def close(self) -> None:
        for seg in [*self.segments.values(), *([self.torn] if self.torn else [])]:
            if seg.fd is not None:
                os.close(seg.fd)
                seg.fd = None


def check_files(directory: Path) -> DirectoryState:
    """Open every segment file of ``directory`` and check headers and
    numbering. Raises WalCorruptError (after closing what it opened)."""
    state = DirectoryState()
    try:
        _check(directory, state)
    except BaseException:
        state.close()
        raise
    return state


def _check(directory: Path, state: DirectoryState) -> None:
    numbers = list_segments(directory)
    if not numbers:
        return
    state.last_number = numbers[-1]
    for prev, n in zip(numbers, numbers[1:]):
        if n != prev + 1:
            path = directory / segment_name(prev + 1)
            raise WalCorruptError(f"WAL segment {path} is missing (found {segment_name(prev)}"
                                  f" then {segment_name(n)})", prev + 1, str(path), 0)
    for n in numbers:
        path = str(directory / segment_name(n))
        fd = os.open(path, os.O_RDWR | _CLOEXEC)
        try:
            head = pread_exact(fd, SEGMENT_HEADER_SIZE, 0)
        except BaseException:
            os.close(fd)
            raise
        magic, number = (SEGMENT_HEADER.unpack(head) if len(head) == SEGMENT_HEADER_SIZE
                         else (None, None))
        if magic == SEGMENT_MAGIC and number == n:
            state.segments[n] = Segment(n, path, fd, 0)
        elif magic == TOMBSTONE_MAGIC and number == n:
            if os.fstat(fd).st_size > SEGMENT_HEADER_SIZE:
                os.ftruncate(fd, SEGMENT_HEADER_SIZE)   # crash between tombstone and truncate
            os.close(fd)
            state.tombstones.add(n)
        elif n == numbers[-1] and (len(head) < SEGMENT_HEADER_SIZE or not any(head)):
            state.torn = Segment(n, path, fd, 0)
        else:
            os.close(fd)
            raise WalCorruptError(f"WAL segment {path} has a bad file header {head!r}", n, path, 0)
    if numbers[0] != 1 and numbers[0] not in state.tombstones:
        path = directory / segment_name(numbers[0])
        raise WalCorruptError(f"WAL segments before {path} are missing", numbers[0] - 1,
                              str(path), 0)


def replay_segments(segments: list[Segment], last_number: int, result: RecoveryResult):
    """Generator: yield every record of ``segments`` in order, then set
    each segment's written/end/live/records and add to ``result``. A problem
    in segment ``last_number`` is a torn tail (``cut_tail``); elsewhere it
    raises WalCorruptError."""
    for seg in segments:
        size = os.fstat(seg.fd).st_size
        try:
            os.posix_fadvise(seg.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        end, problem, count = yield from scan_records(seg.fd, size, seg.number)
        if problem is not None:
            if seg.number != last_number:
                raise WalCorruptError(
                    f"WAL segment {seg.path} is corrupt at byte offset {end}: {problem}"
                    " (not the last segment, so this is not a torn write)",
                    seg.number, seg.path, end)
            cut_tail(seg, end, size, problem)
            result.truncated = (seg.number, end)
        seg.written = seg.end = seg.pending_base = seg.inflight_base = end
        seg.live += end - SEGMENT_HEADER_SIZE   # += : the owner may have released some already
        seg.records = count
        result.segments += 1
        result.records += count
        result.bytes += end


def cut_tail(seg: Segment, end: int, size: int, problem: str) -> None:
    """Save bytes [end, size) of ``seg`` as ``<path>.torn-<end>``, truncate
    the file at ``end`` (fsynced) and log one warning naming file and
    offset."""
    saved = f"{seg.path}.torn-{end}"
    tail = pread_exact(seg.fd, size - end, end)
    fd = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o644)
    try:
        pwrite_all(fd, tail, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.ftruncate(seg.fd, end)
    os.fsync(seg.fd)
    log.warning("WAL: torn or corrupt record (%s) in last segment %s at byte offset %d: "
                "replay ends there, file truncated to %d bytes (%d bytes cut, saved to %s)",
                problem, seg.path, end, end, size - end, saved)
