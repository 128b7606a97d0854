"""Leveret's write-ahead log: a self-contained library (no broker imports).

Public API::

    WriteAheadLog(directory, segment_size=64 << 20, fsync=True)
        .open() -> RecoveryResult (iterate: Record(type, payload, position))
        .append(record_type, payload) -> Position
        .read(position) -> bytes
        .sync_soon(callback, on_error=None); await .sync()
        .release(position, after_segment=None); .mark_dead(segment, nbytes, after_segment=None)
        .live_bytes(segment); .delete_segment(segment); .compaction_candidates(ratio)
        .set_deletion_floor(int | callable | None); .held_segments
        .segments; .current_segment; .pending_bytes; .stats; .close()

Record types and payload codecs live in ``storage.wal.record`` (the batched
ACK_MANY / DELIVERED_MANY codecs in ``storage.wal.batch_record``); the on-disk
segment format in ``storage.wal.segment``.
"""

from storage.wal.errors import RecordError, WalCorruptError, WalError
from storage.wal.log import RecoveryResult, WriteAheadLog
from storage.wal.record import (ACK, ACK_MANY, CHECKPOINT, DELIVERED, DELIVERED_MANY, MESSAGE, REASON_ACKED,
                                REASON_DEAD_LETTERED, REASON_DEDUPLICATED, REASON_DELETED, REASON_DROPPED,
                                REASON_EXPIRED, REASON_NAMES, REASON_PURGED, REASON_REJECTED,
                                RECORD_TYPE_NAMES, REQUEUED, TOPOLOGY, MessageRecord, Position,
                                QueueEvent, Record, body_position, decode_ack,
                                decode_delivered, decode_message, decode_record,
                                decode_requeued, encode_ack, encode_delivered, encode_message,
                                encode_record, encode_requeued, now_ms)

__all__ = [
    "WriteAheadLog", "RecoveryResult", "WalError", "WalCorruptError", "RecordError",
    "Position", "Record", "MessageRecord", "QueueEvent",
    "MESSAGE", "ACK", "DELIVERED", "TOPOLOGY", "CHECKPOINT", "REQUEUED", "ACK_MANY", "DELIVERED_MANY",
    "RECORD_TYPE_NAMES",
    "REASON_ACKED", "REASON_REJECTED", "REASON_EXPIRED", "REASON_DEAD_LETTERED",
    "REASON_PURGED", "REASON_DROPPED", "REASON_DELETED", "REASON_DEDUPLICATED", "REASON_NAMES",
    "encode_record", "decode_record", "encode_message", "decode_message",
    "encode_ack", "decode_ack", "encode_delivered", "decode_delivered",
    "encode_requeued", "decode_requeued", "body_position", "now_ms",
]
