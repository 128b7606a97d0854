"""The one object ``broker/`` calls for durability (design.md, "Layout" and
"Durability contract"): the write-ahead log for persistent messages and
their acks, the topology database for durable exchanges, queues and
bindings, and (when attached) the message database mirror."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, NamedTuple

from storage.topology import TopologyStore
from storage.wal import (ACK, DELIVERED, MESSAGE, REASON_DELETED, Position, WriteAheadLog, decode_ack,
                         decode_delivered, decode_message, encode_ack, encode_delivered, encode_message)

log = logging.getLogger(__name__)


class RecoveredMessage(NamedTuple):
    """A persistent message still queued somewhere after replay: ``queues``
    it is still in (names, in its original routing order), ``delivered``
    the subset where it had been delivered but not acked (so it comes back
    redelivered), ``body`` the Position of its body in the WAL."""
    message_id: int
    vhost: str
    exchange: str
    routing_key: str
    header: bytes
    body: Position
    queues: tuple
    delivered: frozenset


class Recovery(NamedTuple):
    """What ``Storage.open`` found: messages in publish order, the highest
    message id seen (ids continue above it), replay statistics."""
    messages: list
    max_message_id: int
    segments: int
    records: int
    seconds: float


class _Live:
    """A message in the WAL still needed by ``remaining`` durable queues."""
    __slots__ = ("position", "remaining", "delivered")

    def __init__(self, position: Position, remaining: set):
        self.position = position
        self.remaining = remaining
        self.delivered: set | None = None


class Storage:
    """Durability for one data directory: WAL in ``<data_dir>/wal``,
    topology in ``<data_dir>/topology.db``.

    ``fsync`` False never fsyncs the WAL (benchmarks only: a power loss may
    lose confirmed messages). Raises ``storage.wal.WalCorruptError`` from
    ``open`` when the log is damaged other than at its tail.
    """

    def __init__(self, data_dir: Path, fsync: bool = True, segment_size: int = 64 << 20):
        self.data_dir = Path(data_dir)
        self.fsync = fsync
        self.wal = WriteAheadLog(self.data_dir / "wal", segment_size=segment_size, fsync=fsync)
        self.topology = TopologyStore(self.data_dir / "topology.db")
        self.mirror = None
        self._live: dict[int, _Live] = {}

    # ---- start and stop --------------------------------------------------

    def open(self) -> Recovery:
        """Open the topology database and replay the WAL."""
        started = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.topology.open()
        result = self.wal.open()
        live = self._live
        max_id = 0
        for record_type, payload, position in result:
            if record_type == MESSAGE:
                message = decode_message(payload, with_body=False)
                live[message.message_id] = _Live(position, set(message.queues))
                max_id = max(max_id, message.message_id)
            elif record_type in (ACK, DELIVERED):
                event = decode_ack(payload) if record_type == ACK else decode_delivered(payload)
                entry = live.get(event.message_id)
                if entry is None:
                    self.wal.release(position)
                    continue
                self.wal.release(position, after_segment=entry.position.segment)
                if record_type == ACK:
                    entry.remaining.discard(event.queue)
                    if not entry.remaining:
                        self.wal.release(entry.position)
                        del live[event.message_id]
                else:
                    if entry.delivered is None:
                        entry.delivered = set()
                    entry.delivered.add(event.queue)
            self._feed_mirror(record_type, payload, position)
        messages = []
        for message_id, entry in live.items():
            record = decode_message(self.wal.read(entry.position), with_body=False)
            position = entry.position
            body = Position(position.segment, position.offset + record.body_offset, record.body_length)
            queues = tuple(q for q in record.queues if q in entry.remaining)
            messages.append(RecoveredMessage(message_id, record.vhost, record.exchange, record.routing_key,
                                             record.header, body, queues, frozenset(entry.delivered or ())))
        seconds = time.monotonic() - started
        return Recovery(messages, max_id, result.segments, result.records, seconds)

    def close(self) -> None:
        """Flush and fsync the WAL, close the databases."""
        self.wal.close()
        self.topology.close()

    # ---- messages --------------------------------------------------------

    def persist_message(self, message_id: int, vhost: str, exchange: str, routing_key: str,
                        queues: list[str], header: bytes, body: bytes) -> Position:
        """Append a persistent message routed to the durable ``queues``;
        returns the Position of its body (for ``read_body``). Durable once
        a later ``sync_soon`` callback runs."""
        payload = encode_message(message_id, vhost, exchange, routing_key, queues, header, body)
        position = self.wal.append(MESSAGE, payload)
        self._live[message_id] = _Live(position, set(queues))
        self._feed_mirror(MESSAGE, payload, position)
        body_length = len(body)
        return Position(position.segment, position.offset + len(payload) - body_length, body_length)

    def record_delivered(self, message_id: int, queue: str) -> None:
        """The message was handed to a consumer from ``queue``: after a
        crash it comes back redelivered."""
        entry = self._live.get(message_id)
        if entry is None:
            return
        payload = encode_delivered(message_id, queue)
        position = self.wal.append(DELIVERED, payload)
        self.wal.release(position, after_segment=entry.position.segment)
        self._feed_mirror(DELIVERED, payload, position)

    def record_removed(self, message_id: int, queue: str, reason: int) -> None:
        """The message left ``queue`` for good (acked, rejected, purged,
        deleted...: a REASON_* of storage.wal); once it has left every
        queue its WAL record is dead."""
        entry = self._live.get(message_id)
        if entry is None:
            return
        payload = encode_ack(message_id, queue, reason)
        position = self.wal.append(ACK, payload)
        self.wal.release(position, after_segment=entry.position.segment)
        self._feed_mirror(ACK, payload, position)
        entry.remaining.discard(queue)
        if not entry.remaining:
            del self._live[message_id]
            self.wal.release(entry.position)

    def forget_queue(self, message_id: int, queue: str) -> None:
        """Recovery found a message for a queue that no longer exists."""
        self.record_removed(message_id, queue, REASON_DELETED)

    def read_body(self, position: Position) -> bytes:
        """Read a body back from the WAL (bytes)."""
        return self.wal.read(position)

    def sync_soon(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything appended so far is fsynced."""
        self.wal.sync_soon(callback)

    def _feed_mirror(self, record_type: int, payload: bytes, position: Position) -> None:
        if self.mirror is not None:
            self.mirror.feed(record_type, payload, position)
