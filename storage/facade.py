"""The one object ``broker/`` calls for durability (docs/architecture.md, "Layers" and
"Durability contract"): the write-ahead log for persistent messages and
their acks, the topology database for durable exchanges, queues and
bindings. (The message database process follows the WAL files on its
own: storage/mirror/supervisor.py.)

Memory: only a small index entry (storage/live_index.py) per stored message
stays in RAM; content headers and bodies are read back from the WAL on demand
(``read_message``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, NamedTuple

from storage import cold_read, compaction
from storage.live_index import (WHERE, moved, new_entry, pack_position, segment_of, unpack_position,
                                 with_delivered, without_queue)
from storage.queue_events import QueueEventBuffer, release_after
from storage.topology import TopologyStore
from storage.wal import (ACK, CHECKPOINT, DELIVERED, MESSAGE, REASON_DELETED, REQUEUED, MessageRecord,
                         WriteAheadLog, decode_ack, decode_delivered, decode_message,
                         encode_message, encode_requeued)
from storage.wal.batch_record import decode_ack_many, decode_delivered_many
from storage.wal.record import ACK_MANY, DELIVERED_MANY, RECORD_HEADER_SIZE

log = logging.getLogger(__name__)

#: payload of the CHECKPOINT record ``close`` appends last: its absence at
#: the end of the log means the broker crashed
CLEAN_SHUTDOWN = b"clean shutdown"
STARTED = b"started"


class Recovery(NamedTuple):
    """What ``Storage.open`` found: the ids of live messages in publish
    order (look each up with ``Storage.live``), the highest message id seen
    (new ids continue above it), whether the last run ended with a clean
    shutdown (``close``), replay statistics."""
    message_ids: list
    max_message_id: int
    clean: bool
    segments: int
    records: int
    seconds: float


class Storage:
    """Durability for one data directory: WAL in ``<data_dir>/wal``,
    topology in ``<data_dir>/topology.db``.

    ``fsync`` False never fsyncs the WAL (benchmarks only: a power loss may
    lose confirmed messages). ``segment_size``: WAL segment size in bytes.
    Raises ``storage.wal.WalCorruptError`` from ``open`` when the log is
    damaged other than at its tail.
    """

    def __init__(self, data_dir: Path, fsync: bool = True, segment_size: int = 64 << 20):
        self.data_dir = Path(data_dir)
        self.fsync = fsync
        self.wal = WriteAheadLog(self.data_dir / "wal", segment_size=segment_size, fsync=fsync)
        self.topology = TopologyStore(self.data_dir / "topology.db")
        #: message id -> index entry (storage/live_index.py), for every
        #: message some durable queue holds
        self.live: dict[int, tuple] = {}
        self._names: dict[str, str] = {}
        #: what ``open(keep=...)`` kept per replayed message (recovery only)
        self.replayed: dict[int, object] = {}
        #: delivered/removed events waiting to be appended as one record per run
        self.events = QueueEventBuffer(self.wal)
        #: (message id, queue) -> times handed out from that queue, for the
        #: unsettled messages handed out more than once (once is what the
        #: live index's delivered mark already says): x-delivery-count and
        #: x-delivery-limit keep counting across a restart
        self.delivery_counts: dict[tuple[int, str], int] = {}

    # ---- start and stop --------------------------------------------------

    def open(self, keep: Callable | None = None) -> Recovery:
        """Open the topology database and replay the WAL. ``keep(record)``
        (MessageRecord without body) may return a value to remember for a
        replayed message in ``replayed`` (message id -> value; the caller
        clears it after recovery), or None."""
        started = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.topology.open()
        result = self.wal.open()
        live = self.live
        release = self.wal.release
        max_id = 0
        record_type = None
        for record_type, payload, position in result:
            if record_type == MESSAGE:
                message = decode_message(payload, with_body=False)
                max_id = max(max_id, message.message_id)
                if keep is not None:
                    kept = keep(message)
                    if kept is not None:
                        self.replayed[message.message_id] = kept
                self._replay_message(message, position)
            elif record_type == ACK or record_type == DELIVERED:
                event = decode_ack(payload) if record_type == ACK else decode_delivered(payload)
                segment = self._replay_event(record_type == DELIVERED, event.message_id, event.queue,
                                             event.delivery_count)
                release(position, after_segment=segment)
            elif record_type == ACK_MANY or record_type == DELIVERED_MANY:
                delivered = record_type == DELIVERED_MANY
                events = decode_delivered_many(payload) if delivered else decode_ack_many(payload)
                queue = events.queue
                counts = events.delivery_counts or (0,) * len(events.message_ids)
                segments = {self._replay_event(delivered, message_id, queue, count)
                            for message_id, count in zip(events.message_ids, counts)}
                segments.discard(None)
                release_after(self.wal, position, segments)
            else:
                release(position)  # REQUEUED, CHECKPOINT: not needed for recovery
        seconds = time.monotonic() - started
        clean = record_type is None or (record_type == CHECKPOINT and payload == CLEAN_SHUTDOWN)
        # Until ``close`` appends CLEAN_SHUTDOWN after it, this marker makes
        # the next start see a crash.
        self.wal.release(self.wal.append(CHECKPOINT, STARTED))
        return Recovery(sorted(live), max_id, clean, result.segments, result.records, seconds)

    def _replay_event(self, delivered: bool, message_id: int, queue: str, count: int) -> int | None:
        """Apply one replayed DELIVERED (``delivered``, for the ``count``-th
        time; 0: a restatement by compaction without a count) or ACK event
        to the index; returns the segment of the message's record (None
        when the message is not live), which the event's record must not
        outlive."""
        live = self.live
        entry = live.get(message_id)
        if entry is None:
            return None
        if delivered:
            live[message_id] = with_delivered(entry, queue)
            if count > 1:
                self.delivery_counts[(message_id, queue)] = count
        else:
            if self.delivery_counts:
                self.delivery_counts.pop((message_id, queue), None)
            left = without_queue(entry, queue)
            if left is None:
                self.wal.release(unpack_position(entry[WHERE]))
                del live[message_id]
            else:
                live[message_id] = left
        return segment_of(entry[WHERE])

    def _replay_message(self, message: MessageRecord, position) -> None:
        """A MESSAGE record; a second one with the same id is a compaction
        copy, carrying the queues the message was still in: it wins."""
        live = self.live
        entry = live.get(message.message_id)
        where = pack_position(position)
        if entry is None:
            names = message.queues
            if len(names) == 1:
                names = (self._shared_name(names[0]),)
            live[message.message_id] = new_entry(where, self._shared_name(message.vhost), names)
            return
        self.wal.release(unpack_position(entry[WHERE]))
        live[message.message_id] = moved(entry, where, message.queues)

    def _shared_name(self, name: str) -> str:
        """One str object per distinct vhost or queue name (replay decodes a
        fresh copy per record: 50+ bytes per queued message otherwise)."""
        return self._names.setdefault(name, name)

    def close(self) -> None:
        """Append the clean-shutdown CHECKPOINT record, flush and fsync the
        WAL, close the databases."""
        if self.wal.current_segment is not None:
            self.events.flush()
            self.wal.append(CHECKPOINT, CLEAN_SHUTDOWN)
        self.wal.close()
        self.topology.close()

    # ---- messages --------------------------------------------------------

    def persist_message(self, message_id: int, vhost: str, exchange: str, routing_key: str,
                        queues: list[str], header: bytes, body: bytes) -> None:
        """Append a persistent message routed to the durable ``queues``
        (names, in routing order). Durable once a later ``sync_soon``
        callback runs."""
        payload = encode_message(message_id, vhost, exchange, routing_key, queues, header, body)
        if self.events.pending:   # keep the log in event order (message database history)
            self.events.flush()
        position = self.wal.append(MESSAGE, payload)
        where = (position[0] << 64) | (position[1] << 32) | position[2]     # live_index.pack_position
        self.live[message_id] = (where, vhost, queues[0], None) if len(queues) == 1 else \
            new_entry(where, vhost, queues)

    def read_message(self, message_id: int) -> MessageRecord:
        """The stored message (exchange, routing key, content header, body)
        read back from the WAL with one pread. Raises KeyError when no
        durable queue holds it any more."""
        return decode_message(self.wal.read(unpack_position(self.live[message_id][WHERE])))

    def read_messages(self, message_ids: list[int]) -> list[MessageRecord]:
        """``read_message`` for many ids at once, with one pread per run of
        neighbouring records (storage/cold_read.py). Raises KeyError as
        ``read_message``."""
        return cold_read.read_messages(self.wal, self.live, message_ids)

    def read_for_delivery(self, message_ids: list[int]) -> list[tuple]:
        """``(exchange, routing_key, exchange_routing_key, header, body)``
        per id, read as ``read_messages`` reads, without decoding the rest
        of the record (storage/cold_read.py). Raises KeyError as
        ``read_message``, storage.wal.RecordError for a damaged record."""
        return cold_read.read_for_delivery(self.wal, self.live, message_ids)

    def record_delivered(self, message_id: int, queue: str, consumer_tag: str = "",
                         delivery_count: int = 1) -> None:
        """The message was handed out from ``queue`` (to ``consumer_tag``,
        "" for basic.get; ``delivery_count``: 1 for the first delivery):
        after a crash it comes back redelivered. The record is appended with
        the other events of this loop pass (storage/queue_events.py), at the
        latest by the next ``sync_soon``/``sync``: a delivery must wait for
        that sync before it is written to its socket."""
        entry = self.live.get(message_id)
        if entry is None:
            return
        delivered = entry[3]
        if delivered is None or queue not in delivered:
            self.live[message_id] = with_delivered(entry, queue)
        if delivery_count > 1:
            self.delivery_counts[(message_id, queue)] = delivery_count
        self.events.delivered(message_id, entry[0] >> 64, queue, consumer_tag, delivery_count)

    def delivery_count(self, message_id: int, queue: str) -> int:
        """How many times the unsettled message was handed out from
        ``queue`` (at least 1: call it for a message that comes back
        redelivered)."""
        return self.delivery_counts.get((message_id, queue), 1)

    def record_requeued(self, message_id: int, queue: str) -> None:
        """The message went back to the ready list of ``queue`` (history for
        the message database; recovery does not need it)."""
        if message_id not in self.live:
            return
        self.events.flush()     # after the DELIVERED it follows
        payload = encode_requeued(message_id, queue)
        position = self.wal.append(REQUEUED, payload)
        self.wal.release(position)

    def record_removed(self, message_id: int, queue: str, reason: int) -> None:
        """The message left ``queue`` for good (acked, rejected, purged,
        deleted...: a REASON_* of storage.wal); once it has left every
        queue its WAL record is dead. The ACK record is appended with the
        other events of this loop pass; losing it in a crash means a
        redelivery, never a loss."""
        if self.delivery_counts:
            self.delivery_counts.pop((message_id, queue), None)
        live = self.live
        entry = live.get(message_id)
        if entry is None:
            return
        where = entry[0]
        if entry[2] == queue:           # its only queue (live_index: a str then)
            del live[message_id]
            # Dead now, though its ACK is appended later: a crash before that
            # finds the message gone, as if the ack had been written.
            self.wal.mark_dead(where >> 64, (where & 0xFFFFFFFF) + RECORD_HEADER_SIZE)
        else:
            left = without_queue(entry, queue)
            if left is None:
                del live[message_id]
                self.wal.release(unpack_position(where))
            elif left is entry:
                return
            else:
                live[message_id] = left
        self.events.removed(message_id, where >> 64, queue, reason)

    def forget_queue(self, message_id: int, queue: str) -> None:
        """Recovery found a message for a queue that no longer exists."""
        self.record_removed(message_id, queue, REASON_DELETED)

    async def compact(self) -> int:
        """One WAL compaction pass (storage/compaction.py); returns the
        number of segments deleted."""
        self.events.flush()
        return await compaction.compact(self.wal, self.live, delivery_counts=self.delivery_counts)

    async def sync(self) -> None:
        """Wait until everything recorded so far is fsynced (raises WalError
        when the disk write fails)."""
        self.events.flush()
        await self.wal.sync()

    def sync_soon(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything recorded so far is fsynced."""
        self.events.flush()
        self.wal.sync_soon(callback)
