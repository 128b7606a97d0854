"""Segment files: naming, the 16-byte file header, and the record scanner.

A segment is ``NNNNNNNNNNNNNNNNNNNN.wal`` (the segment number, 20 digits,
zero-padded) in the WAL directory. It starts with a 16-byte header::

    8s  magic: b"LVRTWAL1" for a live segment,
               b"LVRTDEAD" for a tombstone (a deleted segment, see below)
    >Q  segment number (must match the file name)

followed by records (see ``record.py``) back to back, with no padding.

A segment whose records are all dead is not unlinked straight away: its
header is overwritten with the tombstone magic (fsynced) and the file is
truncated to 16 bytes. Numbering therefore stays contiguous, so a segment
that goes missing in the middle of the log is detected as corruption rather
than mistaken for a deletion. Tombstones below the oldest live segment are
unlinked, except the highest of them, so the lowest file is always segment
1 or a tombstone (a missing first segment is detected too).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

from storage.wal.record import RECORD_HEADER, RECORD_HEADER_SIZE, TYPE_CRC, Position, Record

SEGMENT_MAGIC = b"LVRTWAL1"
TOMBSTONE_MAGIC = b"LVRTDEAD"
SEGMENT_HEADER = struct.Struct(">8sQ")
SEGMENT_HEADER_SIZE = SEGMENT_HEADER.size  # 16
SCAN_CHUNK = 8 << 20   # bytes read per pread while scanning

_NAME = re.compile(r"^(\d{20})\.wal$")


def segment_name(number: int) -> str:
    """File name of segment ``number``: 20 zero-padded digits + ".wal"."""
    return f"{number:020d}.wal"


def parse_segment_name(name: str) -> int | None:
    """Segment number for a segment file name, None for any other name."""
    m = _NAME.match(name)
    return int(m.group(1)) if m else None


def segment_header(number: int, magic: bytes = SEGMENT_MAGIC) -> bytes:
    """The 16 header bytes of segment ``number``."""
    return SEGMENT_HEADER.pack(magic, number)


def list_segments(directory: Path) -> list[int]:
    """Segment numbers present in ``directory``, ascending."""
    return sorted(n for n in (parse_segment_name(e) for e in os.listdir(directory))
                  if n is not None)


def pread_exact(fd: int, length: int, offset: int) -> bytes:
    """Read ``length`` bytes at ``offset``, looping over short reads; the
    result is shorter only at end of file."""
    data = os.pread(fd, length, offset)
    if len(data) == length or not data:
        return data
    parts = [data]
    got = len(data)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_all(fd: int, data, offset: int) -> None:
    """Write all of ``data`` at ``offset``, looping over short writes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def scan_records(fd: int, size: int, number: int, start: int = SEGMENT_HEADER_SIZE,
                 chunk: int = SCAN_CHUNK):
    """Generator over the records of segment ``number`` (open as ``fd``,
    ``size`` bytes long), starting at byte ``start``.

    Reads ``chunk`` bytes per pread (a record larger than that is read in
    one piece) and yields ``Record(type, payload, Position)``. Its return
    value (``StopIteration.value``, or the value of ``yield from``) is
    ``(end, problem, count)``: ``end`` is the offset just past the last good
    record, ``problem`` None when the file ends cleanly there or else a
    description of the torn/corrupt record found at ``end``, ``count`` the
    number of good records. It never raises for bad data; the caller decides
    whether a problem is a torn tail or corruption. Raises OSError on I/O
    errors."""
    unpack = RECORD_HEADER.unpack_from
    crcs = TYPE_CRC
    crc32 = zlib.crc32
    new = tuple.__new__   # NamedTuple construction without the Python-level __new__
    hsize = RECORD_HEADER_SIZE
    buf = b""
    base = start      # file offset of buf[0]
    pos = 0           # read position in buf
    count = 0
    while True:
        off = base + pos
        if off >= size:
            return off, None, count
        if pos + hsize > len(buf):
            if off + hsize > size:
                return off, f"torn record header ({size - off} bytes left)", count
            buf, base, pos = _refill(fd, buf, base, pos, hsize, size, chunk)
        length, crc, rtype = unpack(buf, pos)
        end = pos + hsize + length
        if end > len(buf):
            if off + hsize + length > size:
                return off, (f"torn record: header says {length} payload bytes, "
                             f"{size - off - hsize} left in the file"), count
            buf, base, pos = _refill(fd, buf, base, pos, hsize + length, size, chunk)
            end = hsize + length
        seed = crcs.get(rtype)
        if seed is None:
            return off, f"unknown record type {rtype}", count
        payload = buf[pos + hsize:end]
        if crc32(payload, seed) != crc:
            return off, "CRC mismatch", count
        yield new(Record, (rtype, payload, new(Position, (number, off + hsize, length))))
        count += 1
        pos = end


def _refill(fd: int, buf: bytes, base: int, pos: int, need: int, size: int,
            chunk: int) -> tuple[bytes, int, int]:
    """Keep buf[pos:], read more so at least ``need`` bytes are buffered
    (up to ``chunk``, never past ``size``); returns (buf, base, pos=0)."""
    rest = buf[pos:]
    new_base = base + pos
    have_to = new_base + len(rest)
    want = min(max(need, chunk) - len(rest), size - have_to)
    data = pread_exact(fd, want, have_to)
    if len(data) < want:
        raise OSError(f"segment shrank while being read (offset {have_to})")
    return rest + data, new_base, 0


class Segment:
    """In-memory state of one live segment (internal to WriteAheadLog).

    Byte ranges of the file: [0, written) is on disk (written by the I/O
    thread and, with fsync on, fsynced); [inflight_base, +len(inflight)) is
    being written by the I/O thread; [pending_base, +len(pending)) is
    still only in memory. ``end`` is the logical size. ``live`` counts the
    bytes (header + payload) of records not yet declared dead; a segment
    that compaction deletes (``compacted``) stops counting them."""

    __slots__ = ("number", "path", "fd", "written", "end", "pending", "pending_base",
                 "inflight", "inflight_base", "live", "records", "deleting", "compacted")

    def __init__(self, number: int, path: str, fd: int | None, written: int):
        self.number = number
        self.path = path
        self.fd = fd
        self.written = written
        self.end = written
        self.pending = bytearray()
        self.pending_base = written
        self.inflight = None
        self.inflight_base = written
        self.live = 0
        self.records = 0
        self.deleting = False
        #: deleted by compaction whatever its live bytes: releases no longer count
        self.compacted = False

    def slice(self, offset: int, length: int) -> bytes | None:
        """Bytes [offset, offset+length) from the in-memory buffers, or
        None if the range is not entirely inside one of them."""
        for buf, base in ((self.pending, self.pending_base),
                          (self.inflight, self.inflight_base)):
            if buf is not None and base <= offset and offset + length <= base + len(buf):
                return bytes(buf[offset - base:offset - base + length])
        return None
