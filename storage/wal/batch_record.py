"""Payload codecs of the batched queue-event records ACK_MANY and
DELIVERED_MANY: one record for many messages of one queue, where the
single-message ACK / DELIVERED records (record.py) would cost a record
header, a CRC and a queue name each (issue 5, the ``drain`` scenario: a
``multiple=true`` ack of 250 messages, a loop pass of 1,000 deliveries).

Payloads (big-endian; "short" = u8 length + UTF-8; ``at_ms`` = u64 ms
since the Unix epoch, one time for the whole batch)::

    ACK_MANY        u64 at_ms, short queue, u8 reason (REASON_*),
                    u32 n, n x u64 message id
    DELIVERED_MANY  u64 at_ms, short queue, u8 reason (0, or
                    DELIVERED_RESTATED), short consumer tag ("" for
                    basic.get), u32 n, n x u64 message id,
                    n x u32 delivery count (1 = first delivery)

Each stands for n single records in id-list order: ACK_MANY for
``ACK(id, queue, reason, at_ms)`` per id, DELIVERED_MANY for
``DELIVERED(id, queue, tag, count, at_ms)`` per id (``expand``).
"""

from __future__ import annotations

import struct
import time
from typing import NamedTuple

from storage.wal.errors import RecordError
from storage.wal.record import ACK_MANY, DELIVERED_MANY, QueueEvent, _short

_AT = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_new_tuple = tuple.__new__
_time_ns = time.time_ns
#: most ids one batched record carries (callers split longer runs)
MAX_BATCH = 1 << 20


class QueueEvents(NamedTuple):
    """A decoded ACK_MANY or DELIVERED_MANY payload: the queue, the reason
    byte, at_ms (ms since the Unix epoch), the message ids (tuple of int),
    and for DELIVERED_MANY the consumer tag and the delivery counts (tuple
    of int, one per id; ``()`` and "" for ACK_MANY)."""
    queue: str
    reason: int
    at_ms: int
    message_ids: tuple
    consumer_tag: str = ""
    delivery_counts: tuple = ()


def _ids(message_ids: list) -> bytes:
    n = len(message_ids)
    if not 0 < n <= MAX_BATCH:
        raise RecordError(f"batched record of {n} messages (1..{MAX_BATCH})")
    try:
        return _U32.pack(n) + struct.pack(f">{n}Q", *message_ids)
    except struct.error as exc:
        raise RecordError(f"bad message id in batch: {exc}") from None


def encode_ack_many(message_ids: list, queue: str, reason: int, at_ms: int | None = None) -> bytes:
    """ACK_MANY payload: every message of ``message_ids`` (a list of ints,
    1..MAX_BATCH of them) left ``queue`` for ``reason`` (REASON_*) at
    ``at_ms`` (None: now). Raises RecordError for a queue name over 255
    bytes, an empty or over-long list, or an id outside u64."""
    if at_ms is None:
        at_ms = _time_ns() // 1_000_000
    return b"".join((_AT.pack(at_ms), _short(queue), bytes((reason,)), _ids(message_ids)))


def encode_delivered_many(message_ids: list, delivery_counts: list, queue: str, consumer_tag: str = "",
                          at_ms: int | None = None, *, reason: int = 0) -> bytes:
    """DELIVERED_MANY payload: every message of ``message_ids`` was handed
    out from ``queue`` to ``consumer_tag`` ("" for basic.get), with the
    matching entry of ``delivery_counts`` (u32 each) at ``at_ms`` (None:
    now). ``reason``: 0, or DELIVERED_RESTATED for compaction's copies.
    Raises RecordError as ``encode_ack_many``, or when the two lists differ
    in length or a count is outside u32."""
    if at_ms is None:
        at_ms = _time_ns() // 1_000_000
    n = len(message_ids)
    if len(delivery_counts) != n:
        raise RecordError(f"{n} message ids but {len(delivery_counts)} delivery counts")
    ids = _ids(message_ids)
    try:
        counts = struct.pack(f">{n}I", *delivery_counts)
    except struct.error as exc:
        raise RecordError(f"bad delivery count in batch: {exc}") from None
    return b"".join((_AT.pack(at_ms), _short(queue), bytes((reason,)), _short(consumer_tag), ids, counts))


def _head(payload: bytes) -> tuple[int, str, int, int]:
    """at_ms, queue, reason, offset just past the reason byte."""
    at_ms = _AT.unpack_from(payload, 0)[0]
    n = payload[8]
    end = 9 + n
    return at_ms, str(payload[9:end], "utf-8"), payload[end], end + 1


def _id_array(payload: bytes, p: int, tail: int) -> tuple[tuple, int]:
    """The u32 count + u64 ids at ``p``; ``tail``: bytes per id that must
    follow the id array. Returns (ids, offset past them)."""
    n = _U32.unpack_from(payload, p)[0]
    p += 4
    end = p + 8 * n
    if n == 0 or len(payload) != end + tail * n:
        raise RecordError("malformed batched record: bad length")
    return struct.unpack_from(f">{n}Q", payload, p), end


def decode_ack_many(payload: bytes) -> QueueEvents:
    """Decode an ACK_MANY payload. Raises RecordError if malformed."""
    try:
        at_ms, queue, reason, p = _head(payload)
        ids, _end = _id_array(payload, p, 0)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed ack-many payload: {exc}") from None
    return _new_tuple(QueueEvents, (queue, reason, at_ms, ids, "", ()))


def decode_delivered_many(payload: bytes) -> QueueEvents:
    """Decode a DELIVERED_MANY payload. Raises RecordError if malformed."""
    try:
        at_ms, queue, reason, p = _head(payload)
        t = payload[p]
        tag = str(payload[p + 1:p + 1 + t], "utf-8")
        ids, p = _id_array(payload, p + 1 + t, 4)
        counts = struct.unpack_from(f">{len(ids)}I", payload, p)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed delivered-many payload: {exc}") from None
    return _new_tuple(QueueEvents, (queue, reason, at_ms, ids, tag, counts))


def expand(record_type: int, payload: bytes) -> list[QueueEvent]:
    """The single-message events (``QueueEvent``, as ``decode_ack`` /
    ``decode_delivered`` return them) a batched record stands for, in
    order. Raises RecordError if malformed or not a batched type."""
    if record_type == ACK_MANY:
        e = decode_ack_many(payload)
        return [_new_tuple(QueueEvent, (mid, e.queue, e.reason, e.at_ms, "", 0)) for mid in e.message_ids]
    if record_type == DELIVERED_MANY:
        e = decode_delivered_many(payload)
        return [_new_tuple(QueueEvent, (mid, e.queue, e.reason, e.at_ms, e.consumer_tag, count))
                for mid, count in zip(e.message_ids, e.delivery_counts)]
    raise RecordError(f"record type {record_type} is not a batched queue event")
