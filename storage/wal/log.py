"""WriteAheadLog: buffered appends, group commit off the event loop,
recovery, and dead-segment deletion.

Threading model: everything runs on the asyncio event loop thread except
the disk work of a batch (pwrite, fdatasync, creating a segment file,
tombstoning/unlinking dead segments), which runs in one dedicated worker
thread via ``loop.run_in_executor``. At most one batch is in flight; while
it runs, new appends collect in memory for the next one. ``open()`` and
``close()`` are synchronous and do their I/O in the calling thread.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import zlib
from bisect import bisect_left
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import perf_counter
from typing import Callable

from storage.wal.errors import RecordError, WalError
from storage.wal.record import MAX_PAYLOAD, RECORD_HEADER, RECORD_HEADER_SIZE, TYPE_CRC, Position
from storage.wal.recovery import RecoveryResult, check_files, cut_tail, replay_segments
from storage.wal.retention import SegmentRetention
from storage.wal.segment import (SEGMENT_HEADER_SIZE, TOMBSTONE_MAGIC, Segment, pread_exact,
                                 pwrite_all, segment_header, segment_name)

log = logging.getLogger(__name__)

_fdatasync = getattr(os, "fdatasync", os.fsync)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_pack_header = RECORD_HEADER.pack
_crc32 = zlib.crc32
_running_loop = asyncio._get_running_loop   # None outside a loop, no exception
_new_tuple = tuple.__new__                   # Position(...) without the Python-level __new__
_TYPE_CRC_GET = TYPE_CRC.get
SLOW_FSYNC_MS = 1000.0
#: upper bounds (ms) of the fsync latency histogram buckets (``stats``:
#: ``fsync_ms_buckets``, one count per bound and one past the last)
FSYNC_MS_BOUNDS = (0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
#: write errors that leave the disk as it was and may pass (a full disk, a
#: quota, a file size limit): the batch is written again every
#: RETRY_WRITE_S seconds instead of failing the log. An fsync error is never
#: retried: after one, the kernel may have dropped the dirty pages.
RETRYABLE_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
RETRY_WRITE_S = 1.0


class _Batch:
    __slots__ = ("parts", "deletions", "unlinks", "lsn", "error", "fsyncs", "dir_fsyncs",
                 "fsync_ms", "handled", "created", "retry", "waiting")

    def __init__(self, parts, deletions, unlinks, lsn):
        self.parts = parts            # [(Segment, bytearray, file offset)] in log order
        self.deletions = deletions    # [Segment] to tombstone
        self.unlinks = unlinks        # [segment number] tombstone files to unlink
        self.lsn = lsn                # log bytes appended when the batch was cut
        self.error = None
        self.fsyncs = 0
        self.dir_fsyncs = 0
        self.fsync_ms = 0.0
        self.handled = False
        self.created = False          # a segment file was created (the directory needs an fsync)
        self.retry = False            # error is a retryable write error
        self.waiting = None           # the TimerHandle of a pending retry


class WriteAheadLog(SegmentRetention):
    """A segmented, CRC-checked, group-committed write-ahead log.

    ``directory`` holds the segment files (created if missing; locked with
    flock so a second process gets WalError). ``segment_size`` (bytes): a
    record that would take the current segment past it starts a new one
    (a segment holds at least one record, so a larger record makes a larger
    segment). ``fsync=False`` still writes every batch but never fsyncs:
    a process crash loses nothing written, a power loss may.

    Lifecycle: ``open()`` and iterate the result (replay), then ``append``,
    ``read``, ``sync_soon``/``sync``, ``release``; ``close()``. Appends and
    syncs must happen on one event loop thread. After a write or fsync
    error the log is failed: pending sync callbacks get the error, appends
    raise WalError; the owner should stop (fsync errors are not retried).

    Disk-use bound: a segment is deleted once it is not the current segment
    and its live bytes (records appended or replayed minus records declared
    dead with ``release``/``mark_dead``) reach zero, so disk use is at most
    (number of segments holding a live record) x segment_size + the current
    segment + 16 bytes per tombstone. One live record pins a whole segment;
    the owner bounds that by compaction (``compaction_candidates``: copy the
    live records of a mostly dead segment forward, then release the old
    ones or ``delete_segment``), which keeps every sealed segment at least
    ratio r live, i.e. disk <= live bytes / r + 2 x segment_size.

    A full disk (ENOSPC, EDQUOT, EFBIG while creating or writing a file) does
    not fail the log: the batch is logged and written again every
    RETRY_WRITE_S seconds (pwrite at fixed offsets is idempotent), syncs
    wait meanwhile, so nothing unwritten is ever reported durable, and
    what was durable stays readable. An fsync error fails the log.
    """

    def __init__(self, directory: Path | str, segment_size: int = 64 << 20, fsync: bool = True):
        if segment_size <= SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE:
            raise ValueError(f"segment_size {segment_size} is too small")
        self.directory = Path(directory)
        self.segment_size = int(segment_size)
        self.fsync = bool(fsync)
        self._state = "new"            # new, replaying, open, failed, closed
        self._segs: dict[int, Segment] = {}
        self._tombstones: set[int] = set()
        self._last_number = 0          # highest segment file found by open()
        self._cur: Segment | None = None
        self._dirty: list[Segment] = []
        self._lsn = 0                  # bytes appended since open (incl. segment headers)
        self._durable_lsn = 0          # bytes written (+ fsynced) so far
        self._waiters: deque = deque()  # (lsn, callback, on_error), lsn ascending
        self._io: _Batch | None = None
        self._kick_scheduled = False
        self._loop = None
        self._executor: ThreadPoolExecutor | None = None
        self._error: BaseException | None = None
        self._closing = False
        self._dirfd: int | None = None
        self._torn: Segment | None = None
        self._to_delete: list[Segment] = []
        self._deferred: dict[int, list[tuple[int, int]]] = {}
        self._appended = 0
        self._n = dict(written_bytes=0, replayed=0, writes=0, fsyncs=0,
                       dir_fsyncs=0, deleted=0)
        self._last_fsync_ms = 0.0
        self._max_fsync_ms = 0.0
        self._fsync_ms_buckets = [0] * (len(FSYNC_MS_BOUNDS) + 1)
        self._fsync_ms_sum = 0.0
        #: called as ``on_durable(segment, end)`` on the event loop after each
        #: I/O batch that wrote records: every record of ``segment`` ending at
        #: or before byte ``end``, and of every lower segment, is written and
        #: fsynced (written only with fsync=False). For a reader of the
        #: segment files (the message database process); must not raise.
        self.on_durable: Callable[[int, int], None] | None = None

    # ---------------------------------------------------------------- open

    def open(self) -> RecoveryResult:
        """Lock the directory, check every segment file header and the
        numbering, and return a RecoveryResult that replays the records.

        Raises WalCorruptError here for a bad file header (except a short or
        all-zero header on the last segment, which is a torn segment
        creation: it is reinitialized with a warning), a missing segment
        between the first and the last, or a first segment that is neither
        segment 1 nor a tombstone. Raises WalError if another process holds
        the directory or open() was already called. While iterating: a torn
        or corrupt record (short header, length past end of file, unknown
        type, CRC mismatch) in the last segment ends the replay there; the
        file is cut at that offset (the cut bytes are saved next to it as
        ``<segment>.torn-<offset>``) with a warning naming file and offset.
        The same in any earlier segment raises WalCorruptError. A bit flip
        in the last segment is indistinguishable from a torn write, so it
        is handled as a torn tail."""
        if self._state != "new":
            raise WalError(f"open() called on a WAL that is {self._state}")
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True)
            parent = os.open(self.directory.parent, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
            try:
                os.fsync(parent)          # the new directory's entry survives a power loss
            finally:
                os.close(parent)
        self._dirfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        try:
            fcntl.flock(self._dirfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._dirfd)
            self._dirfd = None
            raise WalError(f"WAL directory {self.directory} is in use by another process") from None
        self._state = "replaying"
        try:
            found = check_files(self.directory)
        except BaseException:
            self._state = "failed"
            self._release_files()
            raise
        self._segs, self._tombstones = found.segments, found.tombstones
        self._last_number, self._torn = found.last_number, found.torn
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="leveret-wal")
        if not self.fsync:
            log.warning("WAL in %s runs with fsync off: a power loss can lose records", self.directory)
        result = RecoveryResult()
        result._gen = self._replay(result)
        return result

    def _replay(self, result: RecoveryResult):
        t0 = perf_counter()
        try:
            yield from replay_segments(list(self._segs.values()), self._last_number, result)
            self._finish_open(self._torn)
        except BaseException:
            self._state = "failed"
            raise
        result.seconds = perf_counter() - t0
        result.done = True
        self._n["replayed"] = result.records
        log.info("WAL %s opened: %d records, %.1f MiB in %d segments replayed in %.2f s (%.0f MB/s)",
                 self.directory, result.records, result.bytes / 2**20, result.segments,
                 result.seconds, result.bytes / 1e6 / max(result.seconds, 1e-9))

    def _finish_open(self, torn: Segment | None) -> None:
        if torn is not None:
            size = os.fstat(torn.fd).st_size
            if size:
                cut_tail(torn, 0, size, "torn segment file header")
            self._segs[torn.number] = torn
            torn.pending += segment_header(torn.number)
            torn.end = SEGMENT_HEADER_SIZE
            self._dirty.append(torn)
            self._lsn += SEGMENT_HEADER_SIZE
            self._cur = torn
        elif self._last_number in self._segs:
            self._cur = self._segs[self._last_number]
        else:
            self._cur = self._new_segment(self._last_number + 1)
        self._state = "open"
        for seg in list(self._segs.values()):
            self._check_dead(seg)

    # ------------------------------------------------------- append / read

    def append(self, record_type: int, payload: bytes) -> Position:
        """Buffer one record in memory (no syscall) and return the Position
        of its payload. Durable only after a later ``sync_soon``/``sync``
        completes. Raises RecordError for an unknown type or a payload of
        4 GiB or more, WalError if the log is not open or has failed."""
        seg = self._cur
        if seg is None:
            raise self._unusable()
        n = len(payload)
        seed = _TYPE_CRC_GET(record_type)
        if seed is None or n > MAX_PAYLOAD:
            raise RecordError(f"bad record: type {record_type!r}, {n} payload bytes")
        size = n + RECORD_HEADER_SIZE
        end = seg.end
        if end + size > self.segment_size and end > SEGMENT_HEADER_SIZE:
            seg = self._roll()
            end = seg.end
        buf = seg.pending
        if not buf:
            self._dirty.append(seg)
        buf += _pack_header(n, _crc32(payload, seed), record_type)
        buf += payload
        seg.end = end + size
        seg.live += size
        seg.records += 1
        self._lsn += size
        self._appended += 1
        if self._io is None and not self._kick_scheduled:
            self._schedule_kick()
        return _new_tuple(Position, (seg.number, end + RECORD_HEADER_SIZE, n))

    def read(self, position: Position) -> bytes:
        """The ``position.length`` bytes at ``position`` (a payload or a
        sub-range of one, e.g. ``body_position``), from the segment file
        with one pread, or from memory if not written yet. Raises WalError
        for a deleted segment or a range outside what was appended."""
        seg = self._segs.get(position.segment)
        if seg is None or self._state == "closed":
            raise WalError(f"WAL segment {position.segment} is not in the log (or the log is closed)")
        offset, length = position.offset, position.length
        if offset + length <= seg.written and offset >= SEGMENT_HEADER_SIZE:
            data = pread_exact(seg.fd, length, offset)
            if len(data) == length:
                return data
            raise WalError(f"short read at {position}: segment {seg.path} is shorter than expected")
        data = seg.slice(offset, length)
        if data is None:
            raise WalError(f"{position} is outside what was appended to segment {seg.path}")
        return data

    def _roll(self) -> Segment:
        old = self._cur
        seg = self._new_segment(old.number + 1)
        log.info("WAL segment %s started (%s full at %d bytes)", seg.path,
                 segment_name(old.number), old.end)
        self._check_dead(old)
        return seg

    def _new_segment(self, number: int) -> Segment:
        seg = Segment(number, str(self.directory / segment_name(number)), None, 0)
        seg.pending += segment_header(number)
        seg.end = SEGMENT_HEADER_SIZE
        self._segs[number] = seg
        self._dirty.append(seg)
        self._lsn += SEGMENT_HEADER_SIZE
        self._cur = seg
        return seg

    # ---------------------------------------------------------- group commit

    def sync_soon(self, callback: Callable[[], None],
                  on_error: Callable[[BaseException], None] | None = None) -> None:
        """Call ``callback()`` on the running event loop once every record
        appended before this call is written and fsynced (only written with
        fsync=False). All callers in one loop pass share one write + one
        fsync; callbacks fire in call order. If the log fails first,
        ``on_error(WalError)`` is called instead (when given). Raises
        RuntimeError outside an event loop, WalError if not open."""
        if self._cur is None:
            raise self._unusable()
        loop = asyncio.get_running_loop()
        target = self._lsn
        if target <= self._durable_lsn:
            loop.call_soon(callback)
            return
        self._waiters.append((target, callback, on_error))
        if self._io is None:
            self._schedule_kick()

    async def sync(self) -> None:
        """Wait until every record appended before the call is durable
        (see ``sync_soon``). Raises WalError if the log fails meanwhile."""
        fut = asyncio.get_running_loop().create_future()

        def done():
            if not fut.done():
                fut.set_result(None)

        def failed(exc):
            if not fut.done():
                fut.set_exception(exc)

        self.sync_soon(done, failed)
        await fut

    def _schedule_kick(self) -> None:
        loop = _running_loop()
        if loop is None:     # no loop (e.g. replay-time use): flushed by the next sync or close
            return
        if self._kick_scheduled and loop is self._loop:
            return
        self._loop = loop
        self._kick_scheduled = True
        loop.call_soon(self._kick)

    def _kick(self) -> None:
        self._kick_scheduled = False
        if self._io is not None or self._state != "open":
            return
        batch = self._take_batch()
        if batch is None:
            return
        self._io = batch
        fut = self._loop.run_in_executor(self._executor, self._run_batch, batch)
        fut.add_done_callback(lambda f, b=batch: self._io_done(b, f))

    def _take_batch(self) -> _Batch | None:
        parts = []
        for seg in self._dirty:
            data = seg.pending
            if data:
                parts.append((seg, data, seg.pending_base))
                seg.inflight = data
                seg.inflight_base = seg.pending_base
                seg.pending = bytearray()
                seg.pending_base += len(data)
        self._dirty = []
        deletions, self._to_delete = self._to_delete, []
        unlinks = self._prefix_tombstones()
        if not (parts or deletions or unlinks):
            return None
        return _Batch(parts, deletions, unlinks, self._lsn)

    def _run_batch(self, batch: _Batch) -> None:
        """In the I/O thread: write each part, fsync it before the next
        part's file is touched (so a later segment never has data on disk
        while an earlier one has a hole), fsync the directory after creating
        a file, then tombstone and unlink dead segments."""
        try:
            for seg, data, base in batch.parts:
                try:
                    if seg.fd is None:
                        seg.fd = os.open(seg.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o644)
                        batch.created = True
                    pwrite_all(seg.fd, data, base)
                except OSError as exc:
                    batch.retry = exc.errno in RETRYABLE_WRITE_ERRORS
                    raise
                if self.fsync:
                    t = perf_counter()
                    _fdatasync(seg.fd)
                    batch.fsync_ms += (perf_counter() - t) * 1000.0
                    batch.fsyncs += 1
            if batch.created and self.fsync:
                os.fsync(self._dirfd)
                batch.dir_fsyncs += 1
            for seg in batch.deletions:
                pwrite_all(seg.fd, segment_header(seg.number, TOMBSTONE_MAGIC), 0)
                if self.fsync:
                    _fdatasync(seg.fd)
                os.ftruncate(seg.fd, SEGMENT_HEADER_SIZE)
            for n in batch.unlinks:
                try:
                    os.unlink(self.directory / segment_name(n))
                except FileNotFoundError:
                    pass
        except BaseException as exc:   # reported on the loop by _complete
            batch.error = exc

    def _io_done(self, batch: _Batch, fut: asyncio.Future) -> None:
        if not fut.cancelled() and fut.exception() is not None and batch.error is None:
            batch.error = fut.exception()
        self._complete(batch)

    def _complete(self, batch: _Batch) -> None:
        if batch.handled:
            return
        batch.handled = True
        if self._io is batch:
            self._io = None
        if batch.error is not None:
            if batch.retry and self._state == "open" and not self._closing:
                self._retry_later(batch)
            else:
                self._fail(batch.error)
            return
        if batch.waiting is not None:
            log.warning("WAL in %s: the write succeeded again, syncs continue", self.directory)
            batch.waiting = None
        n = self._n
        for seg, data, base in batch.parts:
            seg.written = base + len(data)
            if seg.inflight is data:
                seg.inflight = None
            n["written_bytes"] += len(data)
        n["writes"] += len(batch.parts)
        n["fsyncs"] += batch.fsyncs
        n["dir_fsyncs"] += batch.dir_fsyncs
        if batch.fsyncs:
            # one observation per batch: the time its fdatasyncs took together
            self._fsync_ms_buckets[bisect_left(FSYNC_MS_BOUNDS, batch.fsync_ms)] += 1
            self._fsync_ms_sum += batch.fsync_ms
            self._last_fsync_ms = batch.fsync_ms
            self._max_fsync_ms = max(self._max_fsync_ms, batch.fsync_ms)
            if batch.fsync_ms > SLOW_FSYNC_MS:
                log.warning("WAL fsync took %.0f ms", batch.fsync_ms)
        self._durable_lsn = batch.lsn
        for seg, _, _ in batch.parts:
            self._check_dead(seg)
        if batch.parts and self.on_durable is not None:
            last = batch.parts[-1][0]      # parts are in segment order
            self.on_durable(last.number, last.written)
        for seg in batch.deletions:
            self._finish_delete(seg)
        self._tombstones.difference_update(batch.unlinks)
        waiters = self._waiters
        while waiters and waiters[0][0] <= batch.lsn:
            callback = waiters.popleft()[1]
            try:
                callback()
            except Exception:
                log.exception("WAL sync callback %r failed", callback)
        if self._dirty or self._to_delete or self._prefix_tombstones():
            self._schedule_kick()

    def _retry_later(self, batch: _Batch) -> None:
        """A retryable write error: keep ``batch`` as the one in flight
        (new appends wait in memory) and write it again later."""
        if batch.waiting is None:
            log.error("WAL in %s: write failed: %r; retrying every %.0f s, confirms and held deliveries "
                      "wait (free disk space)", self.directory, batch.error, RETRY_WRITE_S)
        batch.error, batch.retry, batch.handled = None, False, False
        self._io = batch
        batch.waiting = self._loop.call_later(RETRY_WRITE_S, self._resubmit, batch)

    def _resubmit(self, batch: _Batch) -> None:
        if self._io is not batch or self._state != "open":
            return
        fut = self._loop.run_in_executor(self._executor, self._run_batch, batch)
        fut.add_done_callback(lambda f, b=batch: self._io_done(b, f))

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._cur = None
        self._state = "failed"
        log.error("WAL in %s failed: %r; no more records are accepted", self.directory, exc)
        err = WalError(f"WAL write/fsync failed: {exc!r}")
        err.__cause__ = exc
        while self._waiters:
            _, _, on_error = self._waiters.popleft()
            if on_error is not None:
                try:
                    on_error(err)
                except Exception:
                    log.exception("WAL sync error callback %r failed", on_error)

    def _unusable(self) -> WalError:
        if self._error is not None:
            return WalError(f"WAL failed earlier: {self._error!r}")
        return WalError(f"WAL is {self._state}: appends need open() and a finished replay")

    # ---------------------------------------------------------- inspection

    @property
    def segments(self) -> list[int]:
        """Numbers of the live (not deleted) segments, ascending."""
        return sorted(self._segs)

    def durable_end(self) -> tuple[int, int] | None:
        """(segment number, byte offset) of the end of the newest segment
        holding durable records, as ``on_durable`` reports it; None while
        no segment holds any."""
        for number in sorted(self._segs, reverse=True):
            seg = self._segs[number]
            if seg.written:
                return number, seg.written
        return None

    @property
    def current_segment(self) -> int | None:
        """Number of the segment appends go to (None until open)."""
        return self._cur.number if self._cur is not None else None

    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet durable (for back-pressure)."""
        return self._lsn - self._durable_lsn

    @property
    def stats(self) -> dict:
        """Counters: segments (live files), tombstones, bytes (logical size
        of live segments), live_bytes, pending_bytes, appended_records,
        written_bytes (segment bytes written by batches), replayed_records, writes
        (pwrite batches), fsyncs (segment file fdatasyncs), dir_fsyncs,
        last_fsync_ms / max_fsync_ms (fdatasync time of the last / slowest
        batch, ms), fsync_ms_bounds (FSYNC_MS_BOUNDS), fsync_ms_buckets
        (write batches per bucket of those upper bounds, not
        cumulative, the last past the last bound) and fsync_ms_sum,
        deleted_segments, current_segment, mirror_floor (the deletion floor
        now, None without one)."""
        n = self._n
        return {
            "segments": len(self._segs), "tombstones": len(self._tombstones),
            "bytes": sum(s.end for s in self._segs.values()),
            "live_bytes": sum(s.live for s in self._segs.values()),
            "pending_bytes": self.pending_bytes, "appended_records": self._appended,
            "written_bytes": n["written_bytes"], "replayed_records": n["replayed"],
            "writes": n["writes"], "fsyncs": n["fsyncs"], "dir_fsyncs": n["dir_fsyncs"],
            "last_fsync_ms": round(self._last_fsync_ms, 3),
            "max_fsync_ms": round(self._max_fsync_ms, 3),
            "deleted_segments": n["deleted"], "current_segment": self.current_segment,
            "fsync_ms_bounds": FSYNC_MS_BOUNDS, "fsync_ms_buckets": list(self._fsync_ms_buckets),
            "fsync_ms_sum": self._fsync_ms_sum,
            "mirror_floor": self._floor_now(),
        }

    # --------------------------------------------------------------- close

    def close(self) -> None:
        """Wait for the batch in flight, write and fsync everything still
        buffered (firing the sync callbacks it covers), tombstone segments
        already found dead, close the files and release the directory lock.
        Blocks the calling thread. Idempotent. Raises OSError if the final
        write or fsync fails (the log is then failed)."""
        if self._state == "closed":
            return
        self._closing = True  # a write error is final from now on
        try:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            if self._io is not None:
                batch = self._io
                retried = batch.waiting is not None
                if retried:
                    batch.waiting.cancel()
                    self._run_batch(batch)  # one last try
                self._complete(batch)
                if retried and batch.error is not None:
                    raise batch.error
            if self._state == "open":
                batch = self._take_batch()
                if batch is not None:
                    self._io = batch
                    self._run_batch(batch)
                    self._complete(batch)
                    if batch.error is not None:
                        raise batch.error
        finally:
            self._state = "closed"
            self._cur = None
            self._release_files()
        log.info("WAL %s closed: %d records appended, %d fsyncs", self.directory,
                 self._appended, self._n["fsyncs"])

    def _release_files(self) -> None:
        for seg in [*self._segs.values(), *([self._torn] if self._torn else [])]:
            if seg.fd is not None:
                os.close(seg.fd)
                seg.fd = None
        if self._dirfd is not None:
            os.close(self._dirfd)     # also releases the flock
            self._dirfd = None

    def __enter__(self) -> "WriteAheadLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
