"""Live/dead accounting per segment and deletion of dead segments.

The WAL cannot know which records still matter; its owner (the broker's
index) says so. Every record appended or replayed counts as live bytes
(header + payload) in its segment until the owner declares it dead with
``release(position)`` or ``mark_dead(segment, nbytes)``. A segment that is
not the current one and has no live bytes left is deleted by the I/O thread
in the next batch, after that batch's writes are fsynced: its header is
overwritten with the tombstone magic (fsynced) and the file truncated to
16 bytes; tombstones below the oldest live segment are unlinked except the
highest (see segment.py for why tombstones exist).

An ACK record must outlive the MESSAGE record it refers to, or the message
would be live again on replay: release it with ``after_segment=`` the
message's segment and the release is applied only once that segment is
deleted (chains of such dependencies resolve in order).

Bound on disk use: live segments x segment_size + the current segment +
16 bytes per tombstone; a segment is pinned by a single live record. The
owner bounds that with compaction: for each of ``compaction_candidates(r)``
append its live records again, release the old copies (or call
``delete_segment``), which keeps every sealed segment at least r live:
disk <= live bytes / r + 2 x segment_size (r = 0.5: twice the live data).
Replay then may see a record twice (old and new copy) until the old segment
is gone; the owner deduplicates by message id.

Deletion floor: a reader of the segment files (the message database
process following the WAL) pins the segments it has not read yet with
``set_deletion_floor``: a dead segment numbered at or above the floor is
held (not deleted) until the floor passes it.
"""

from __future__ import annotations

import logging
import os

from typing import Callable

from storage.wal.errors import WalError
from storage.wal.record import RECORD_HEADER_SIZE, Position
from storage.wal.segment import SEGMENT_HEADER_SIZE, Segment

log = logging.getLogger("storage.wal.log")


class SegmentRetention:
    """Mixin of WriteAheadLog: the live/dead API. Uses the log's _segs,
    _cur, _state, _tombstones, _deferred, _to_delete, _n, _last_number and
    _schedule_kick."""

    #: int, None (no floor) or a zero-argument callable returning either
    _floor: int | Callable[[], int | None] | None = None
    #: numbers of dead segments kept because they are at or above the floor
    _held: frozenset | set = frozenset()

    def set_deletion_floor(self, floor: int | Callable[[], int | None] | None) -> None:
        """Keep every segment numbered ``floor`` or higher even once it is
        dead (None: no floor). ``floor`` may be a zero-argument callable
        returning the number (or None), asked each time a segment dies:
        call ``set_deletion_floor`` again (with the same callable) when its
        value went up, and the held segments now below it are deleted (in
        the next I/O batch, as usual). Call on the event loop thread."""
        self._floor = floor
        held, self._held = sorted(self._held), set()
        for number in held:
            seg = self._segs.get(number)
            if seg is not None:
                self._check_dead(seg)

    def _floor_now(self) -> int | None:
        floor = self._floor
        return floor() if callable(floor) else floor

    @property
    def held_segments(self) -> list[int]:
        """Dead segments not deleted yet because of the deletion floor."""
        return sorted(self._held)

    def release(self, position: Position, after_segment: int | None = None) -> None:
        """Declare the record at ``position`` (as returned by append or
        replay, not a sub-range) dead: e.g. a message acked on every queue
        it went to, or an ACK/DELIVERED record whose message is gone. See
        ``mark_dead`` for ``after_segment``."""
        self.mark_dead(position.segment, position.length + RECORD_HEADER_SIZE, after_segment)

    def mark_dead(self, segment: int, nbytes: int, after_segment: int | None = None) -> None:
        """Subtract ``nbytes`` (record header + payload) from the live bytes
        of ``segment``. A non-current segment whose live bytes reach 0 is
        deleted by the I/O thread (after the batch that is pending now, so
        records appended before are durable first). With ``after_segment``
        the subtraction waits until that segment is deleted: use it for an
        ACK record (whose message is in ``after_segment``), which must
        outlive the message or the message would come back on replay. A
        segment that is already gone is ignored. Allowed during replay."""
        if after_segment is not None and after_segment != segment and after_segment in self._segs:
            self._deferred.setdefault(after_segment, []).append((segment, nbytes))
            return
        seg = self._segs.get(segment)
        if seg is None or seg.compacted:
            # a compacted segment is deleted whatever its count says; the
            # records released into it here were copied or are dead (e.g.
            # ACKs deferred on an older segment of the same compacted prefix)
            return
        seg.live -= nbytes
        if seg.live < 0 and self._state == "open":
            log.warning("WAL segment %s: %d more bytes released than appended", seg.path, -seg.live)
            seg.live = 0
        if seg.live == 0:
            self._check_dead(seg)

    def delete_segment(self, segment: int) -> None:
        """Delete a sealed segment regardless of its live bytes (compaction:
        after its live records were appended again). Raises WalError for
        the current segment, an unknown one, or before replay finished."""
        seg = self._segs.get(segment)
        if seg is None or seg is self._cur or self._state != "open":
            raise WalError(f"cannot delete WAL segment {segment} (unknown, current, or log not open)")
        seg.compacted = True
        seg.live = 0
        self._check_dead(seg)

    def live_bytes(self, segment: int) -> int:
        """Live bytes (record headers + payloads not yet dead) of
        ``segment``; 0 for a deleted or unknown segment."""
        seg = self._segs.get(segment)
        return seg.live if seg is not None else 0

    def compaction_candidates(self, max_live_ratio: float = 0.5) -> list[int]:
        """Sealed segments (not current, not being deleted) whose live
        bytes are below ``max_live_ratio`` of their record bytes (held
        ones excepted), oldest first."""
        out = []
        for number, seg in sorted(self._segs.items()):
            if seg is not self._cur and not seg.deleting and number not in self._held:
                if seg.live < max_live_ratio * (seg.end - SEGMENT_HEADER_SIZE):
                    out.append(number)
        return out

    def segment_usage(self) -> list[tuple[int, int, int]]:
        """``(number, live bytes, record bytes)`` of every sealed segment
        (not current, not being deleted, not held by the floor), oldest
        first."""
        return [(number, seg.live, seg.end - SEGMENT_HEADER_SIZE) for number, seg in sorted(self._segs.items())
                if seg is not self._cur and not seg.deleting and number not in self._held]

    def _check_dead(self, seg: Segment) -> None:
        if (self._state == "open" and seg is not self._cur and seg.live <= 0
                and not seg.deleting and not seg.pending and seg.inflight is None
                and seg.fd is not None and seg.written == seg.end):
            if self._floor is not None:
                floor = self._floor_now()
                if floor is not None and seg.number >= floor:
                    if not self._held:
                        self._held = set()
                    self._held.add(seg.number)
                    return
            seg.deleting = True
            self._to_delete.append(seg)
            self._schedule_kick()

    def _finish_delete(self, seg: Segment) -> None:
        os.close(seg.fd)
        seg.fd = None
        del self._segs[seg.number]
        self._tombstones.add(seg.number)
        self._n["deleted"] += 1
        log.info("WAL segment %s deleted: %d records, none live, %d bytes freed",
                 seg.path, seg.records, seg.end - SEGMENT_HEADER_SIZE)
        for number, nbytes in self._deferred.pop(seg.number, ()):
            self.mark_dead(number, nbytes)

    def _prefix_tombstones(self) -> list[int]:
        """Tombstones below the oldest live segment, minus the highest."""
        if len(self._tombstones) < 2:
            return []
        lowest = min(self._segs, default=self._last_number + 1)
        return sorted(t for t in self._tombstones if t < lowest)[:-1]
