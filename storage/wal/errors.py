"""Exceptions raised by the write-ahead log."""

from __future__ import annotations


class WalError(Exception):
    """Any WAL failure: used before ``open()`` finished, after ``close()``,
    or after a write/fsync error put the log in the failed state."""


class WalCorruptError(WalError):
    """The log on disk cannot be trusted and recovery must not continue.

    Raised by ``WriteAheadLog.open()`` (or while iterating its result) for
    a bad segment file header, a segment missing from the numbering, or a
    torn/corrupt record in any segment except the last one. ``segment`` is
    the segment number (or None when the problem is not tied to one file),
    ``path`` the file, ``offset`` the byte offset in that file where the bad
    data starts (0 for header problems)."""

    def __init__(self, message: str, segment: int | None = None,
                 path: str | None = None, offset: int | None = None):
        super().__init__(message)
        self.segment = segment
        self.path = path
        self.offset = offset


class RecordError(ValueError):
    """A record or record payload that does not decode (bad CRC, bad
    length, unknown type, malformed payload)."""
