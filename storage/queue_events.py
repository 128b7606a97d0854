"""Batching of the per-message queue events (delivered, acked/removed) into
one WAL record per run (issue 5, the ``drain`` scenario): a loop pass that
hands 1,000 messages to one consumer appends one DELIVERED_MANY record, a
``multiple=true`` ack of 250 messages one ACK_MANY record, instead of a
record (header, CRC, queue name, encode call, append call) per message.

Events are collected in order; consecutive events of one kind for one
queue (and one consumer tag, or one reason) form a run. ``flush`` appends
the runs, in order, as records: a run of one message as the single record
(ACK / DELIVERED), longer runs as the batched one. The owner (the storage
facade) calls ``flush`` before anything that must come after the events
in the log: a sync request (so a delivery is written to its socket only
after its DELIVERED record is durable), a REQUEUED record, compaction,
close; and once per loop pass when nothing else did.

Retention: a batched record names messages whose MESSAGE records may lie
in several segments, and must not be deleted before any of them (see
storage/wal/retention.py, ``after_segment``): its bytes are released in
shares, one per such segment, each deferred until that segment is gone.
"""

from __future__ import annotations

import asyncio
import logging

from storage.wal import ACK, DELIVERED, WalError, WriteAheadLog, encode_ack, encode_delivered
from storage.wal.batch_record import encode_ack_many, encode_delivered_many
from storage.wal.record import ACK_MANY, DELIVERED_MANY, RECORD_HEADER_SIZE, Position

log = logging.getLogger(__name__)
_running_loop = asyncio._get_running_loop   # None outside a loop, no exception
#: ids per batched record at most; a longer run is split
RUN_LIMIT = 8192


def release_after(wal: WriteAheadLog, position: Position, segments) -> None:
    """Declare the record at ``position`` dead once every segment in
    ``segments`` (numbers of the MESSAGE records it refers to) is deleted:
    one share of its bytes per segment, each deferred on that segment
    (``mark_dead(after_segment=)``). No segments: dead now."""
    nbytes = position.length + RECORD_HEADER_SIZE
    if not segments:
        wal.mark_dead(position.segment, nbytes)
        return
    share, extra = divmod(nbytes, len(segments))
    mark_dead = wal.mark_dead
    for segment in segments:
        mark_dead(position.segment, share + extra, segment)
        extra = 0


class QueueEventBuffer:
    """Pending delivered / removed events of one storage facade.

    ``delivered(...)`` and ``removed(...)`` only append to the current run
    (the caller has already updated the live index); ``flush()`` appends
    the runs to ``wal``. ``pending`` is true while events wait."""

    __slots__ = ("wal", "runs", "kind", "queue", "extra", "ids", "counts", "segments",
                 "scheduled", "pending")

    def __init__(self, wal: WriteAheadLog):
        self.wal = wal
        self.runs: list[tuple] = []   # closed runs: (kind, queue, extra, ids, counts, segments)
        self.kind = 0                 # kind of the open run (ACK or DELIVERED), 0: none
        self.queue = self.extra = None
        self.ids: list[int] = []
        self.counts: list[int] = []
        self.segments: set[int] = set()
        self.scheduled = False
        self.pending = False

    def delivered(self, message_id: int, segment: int, queue: str, consumer_tag: str, count: int) -> None:
        """Message ``message_id`` (its MESSAGE record in ``segment``) was
        handed out from ``queue`` to ``consumer_tag`` for the ``count``-th
        time."""
        if self.kind != DELIVERED or self.queue != queue or self.extra != consumer_tag:
            self._open(DELIVERED, queue, consumer_tag)
        self.ids.append(message_id)
        self.counts.append(count)
        self.segments.add(segment)

    def removed(self, message_id: int, segment: int, queue: str, reason: int) -> None:
        """Message ``message_id`` (its MESSAGE record in ``segment``) left
        ``queue`` for ``reason`` (REASON_*)."""
        if self.kind != ACK or self.queue != queue or self.extra != reason:
            self._open(ACK, queue, reason)
        self.ids.append(message_id)
        self.segments.add(segment)

    def _open(self, kind: int, queue: str, extra) -> None:
        if self.ids:
            self.runs.append((self.kind, self.queue, self.extra, self.ids, self.counts, self.segments))
            self.ids, self.counts, self.segments = [], [], set()
        elif not self.pending:
            self.pending = True
            if not self.scheduled:
                loop = _running_loop()
                if loop is not None:     # no loop (recovery): flushed by the next sync or close
                    # Two hops: after the callbacks this pass scheduled (a
                    # queue's drain after an ack, then its connection's write
                    # and sync request), so the ACK record shares the fsync of
                    # the deliveries the ack made room for instead of taking
                    # one of its own in front of them.
                    self.scheduled = True
                    loop.call_soon(loop.call_soon, self._scheduled_flush)
        self.kind, self.queue, self.extra = kind, queue, extra

    def _scheduled_flush(self) -> None:
        self.scheduled = False
        try:
            self.flush()
        except WalError as exc:     # failed or closed log: a sync request would raise it too
            log.error("WAL %s: queue events (delivered/acked) not written: %s", self.wal.directory, exc)

    def flush(self) -> None:
        """Append every pending run to the WAL, in order."""
        if not self.pending:
            return
        runs = self.runs
        if self.ids:
            runs.append((self.kind, self.queue, self.extra, self.ids, self.counts, self.segments))
        self.runs, self.ids, self.counts, self.segments = [], [], [], set()
        self.kind = 0
        self.pending = False
        for kind, queue, extra, ids, counts, segments in runs:
            for start in range(0, len(ids), RUN_LIMIT):
                part = ids[start:start + RUN_LIMIT] if len(ids) > RUN_LIMIT else ids
                self._append(kind, queue, extra, part, counts[start:start + len(part)], segments)

    def _append(self, kind: int, queue: str, extra, ids: list, counts: list, segments: set) -> None:
        if len(ids) == 1:
            if kind == ACK:
                record_type, payload = ACK, encode_ack(ids[0], queue, extra)
            else:
                record_type, payload = DELIVERED, encode_delivered(ids[0], queue, extra, counts[0])
        elif kind == ACK:
            record_type, payload = ACK_MANY, encode_ack_many(ids, queue, extra)
        else:
            record_type, payload = DELIVERED_MANY, encode_delivered_many(ids, counts, queue, extra)
        position = self.wal.append(record_type, payload)
        release_after(self.wal, position, segments)
