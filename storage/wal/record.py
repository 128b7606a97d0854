"""WAL record framing and payload codecs.

A record on disk is a 9-byte header followed by the payload::

    >I  payload length in bytes (so one payload is at most 4 GiB - 1)
    >I  CRC32 (zlib.crc32) of the record type byte followed by the payload
    B   record type (MESSAGE, ACK, DELIVERED, TOPOLOGY, CHECKPOINT, REQUEUED)
    ... payload

Payloads (all integers big-endian; a "short string" is a u8 length and
that many UTF-8 bytes, at most 255; ``at_ms`` is a u64 wall-clock time in
milliseconds since the Unix epoch, taken when the record was encoded unless
the caller passes one):

MESSAGE    u64 message id, u64 at_ms (published), short vhost, short
           exchange, short routing key, u32 queue count + that many short
           queue names, u32 content-header length + the AMQP content header
           payload (kept verbatim), u64 body length + body. The body is
           always last, so it is the final ``body_length`` bytes of the
           payload.
ACK        u64 message id, u64 at_ms, short queue name, u8 reason
           (REASON_*): the message left that queue.
DELIVERED  u64 message id, u64 at_ms, short queue name, u8 reason (0; 1 =
           DELIVERED_RESTATED, repeated by compaction after a copy), short
           consumer tag ("" for basic.get), u32 delivery count
           (1 for the first delivery): the message was handed to a consumer
           of that queue, so after a crash it comes back with
           redelivered=true.
TOPOLOGY   opaque bytes, owned by the broker.
CHECKPOINT reserved.
REQUEUED   same layout as ACK (reason 0): the message went back to the
           ready list of that queue (basic.reject/nack with requeue,
           basic.recover, a consumer's channel closing with it unacked).
ACK_MANY   ACK for n messages of one queue with one reason and one at_ms
           (a multiple ack, a purge): codec in ``batch_record.py``.
DELIVERED_MANY  DELIVERED for n messages of one queue to one consumer tag
           (one loop pass of deliveries): codec in ``batch_record.py``.
"""

from __future__ import annotations

import struct
import time
import zlib
from typing import Iterable, NamedTuple

from storage.wal.errors import RecordError

MESSAGE = 1
ACK = 2
DELIVERED = 3
TOPOLOGY = 4
CHECKPOINT = 5
REQUEUED = 6
ACK_MANY = 7
DELIVERED_MANY = 8

#: reason byte of a DELIVERED record that compaction appends after copying a
#: message (it restates an earlier delivery; the message database skips it)
DELIVERED_RESTATED = 1

RECORD_TYPE_NAMES = {MESSAGE: "message", ACK: "ack", DELIVERED: "delivered",
                     TOPOLOGY: "topology", CHECKPOINT: "checkpoint", REQUEUED: "requeued",
                     ACK_MANY: "ack-many", DELIVERED_MANY: "delivered-many"}

# ACK reason byte: why the message left the queue.
REASON_ACKED = 0
REASON_REJECTED = 1
REASON_EXPIRED = 2
REASON_DEAD_LETTERED = 3
REASON_PURGED = 4
REASON_DROPPED = 5      # overflow (x-max-length / drop-head)
REASON_DELETED = 6      # the queue was deleted
REASON_DEDUPLICATED = 7  # a duplicate dropped by x-message-deduplication (broker/vhost/deduplication.py)
REASON_NAMES = {REASON_ACKED: "acked", REASON_REJECTED: "rejected",
                REASON_EXPIRED: "expired", REASON_DEAD_LETTERED: "dead-lettered",
                REASON_PURGED: "purged", REASON_DROPPED: "dropped",
                REASON_DELETED: "deleted", REASON_DEDUPLICATED: "deduplicated"}

RECORD_HEADER = struct.Struct(">IIB")
RECORD_HEADER_SIZE = RECORD_HEADER.size  # 9
MAX_PAYLOAD = 0xFFFFFFFF

# CRC32 of the type byte alone; crc32(payload, TYPE_CRC[t]) is then the CRC
# of type byte + payload without building a joined copy.
TYPE_CRC = {t: zlib.crc32(bytes((t,))) for t in RECORD_TYPE_NAMES}

_crc32 = zlib.crc32
_pack_header = RECORD_HEADER.pack
_unpack_header = RECORD_HEADER.unpack_from
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U32_pack, _U32_unpack = _U32.pack, _U32.unpack_from
_U64_pack, _U64_unpack = _U64.pack, _U64.unpack_from
_new_tuple = tuple.__new__
_ID_AT = struct.Struct(">QQ")           # message id + at_ms
_ID_AT_pack = _ID_AT.pack
_QUEUE_EVENT = struct.Struct(">QQB")    # message id + at_ms + queue name length
_QUEUE_EVENT_SIZE = _QUEUE_EVENT.size   # 17
_time_ns = time.time_ns


def now_ms() -> int:
    """Wall-clock milliseconds since the Unix epoch (the default ``at_ms``)."""
    return _time_ns() // 1_000_000


class Position(NamedTuple):
    """Where a payload lives: segment number, byte offset of the payload
    (not of the record header) in that segment file, payload length in
    bytes. Returned by ``WriteAheadLog.append`` and by replay; accepted by
    ``WriteAheadLog.read`` (also for a sub-range, see ``body_position``)."""
    segment: int
    offset: int
    length: int


class Record(NamedTuple):
    """One replayed record: type (MESSAGE, ACK, ...), payload bytes, and
    the payload's Position."""
    type: int
    payload: bytes
    position: Position


class MessageRecord(NamedTuple):
    """Decoded MESSAGE payload. ``queues`` is a tuple of names, ``header``
    the verbatim AMQP content-header payload; ``body`` is None when decoded
    with ``with_body=False``. ``body_offset`` is the body's byte offset
    inside the payload, ``body_length`` its size in bytes. ``at_ms``: when
    it was published, ms since the Unix epoch (added last, so the indexes
    of the other fields did not change)."""
    message_id: int
    vhost: str
    exchange: str
    routing_key: str
    queues: tuple
    header: bytes
    body: bytes | None
    body_offset: int
    body_length: int
    at_ms: int


class QueueEvent(NamedTuple):
    """Decoded ACK, REQUEUED or DELIVERED payload: message id, queue name,
    reason (a REASON_* value; always 0 for DELIVERED and REQUEUED), at_ms
    (ms since the Unix epoch), and for DELIVERED the consumer tag ("" for
    basic.get) and delivery count (1 = first delivery); ACK and REQUEUED
    decode with consumer_tag "" and delivery_count 0."""
    message_id: int
    queue: str
    reason: int
    at_ms: int
    consumer_tag: str = ""
    delivery_count: int = 0


def record_crc(record_type: int, payload: bytes) -> int:
    """CRC32 of the type byte followed by the payload. Raises RecordError
    for an unknown type."""
    try:
        return _crc32(payload, TYPE_CRC[record_type])
    except KeyError:
        raise RecordError(f"unknown record type {record_type!r}") from None


def encode_record(record_type: int, payload: bytes) -> bytes:
    """Header + payload, ready to be written. Raises RecordError for an
    unknown type or a payload of 4 GiB or more."""
    if len(payload) > MAX_PAYLOAD:
        raise RecordError(f"payload of {len(payload)} bytes is too large")
    return _pack_header(len(payload), record_crc(record_type, payload), record_type) + payload


def decode_record(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Decode the record starting at ``offset`` in ``data``.

    Returns (record type, payload, offset just past the record). Raises
    RecordError when the header or payload is cut short, the type is
    unknown, or the CRC does not match."""
    if offset + RECORD_HEADER_SIZE > len(data):
        raise RecordError(f"truncated record header at offset {offset}")
    length, crc, rtype = _unpack_header(data, offset)
    start = offset + RECORD_HEADER_SIZE
    end = start + length
    if end > len(data):
        raise RecordError(f"truncated record at offset {offset}: needs {length} payload bytes")
    seed = TYPE_CRC.get(rtype)
    if seed is None:
        raise RecordError(f"unknown record type {rtype} at offset {offset}")
    payload = bytes(data[start:end])
    if _crc32(payload, seed) != crc:
        raise RecordError(f"CRC mismatch at offset {offset}")
    return rtype, payload, end


_short_cache: dict = {}


def _short(value: str | bytes) -> bytes:
    """u8 length + UTF-8 bytes, cached: vhosts, exchanges, queue names and
    most routing keys repeat, and a dict hit is several times cheaper."""
    try:
        return _short_cache[value]
    except KeyError:
        pass
    except TypeError:                    # bytearray / memoryview: not hashable
        value = bytes(value)
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 255:
        raise RecordError(f"short string of {len(raw)} bytes (max 255)")
    out = bytes((len(raw),)) + raw
    if len(_short_cache) >= 4096:
        _short_cache.clear()
    _short_cache[value] = out
    return out


_route_cache: dict = {}


def _route(key: tuple) -> bytes:
    """The MESSAGE payload bytes between at_ms and the header length for
    ``key`` = (vhost, exchange, routing key, *queues), cached: a stream of
    publishes repeats a few routes."""
    try:
        return _route_cache[key]
    except KeyError:
        pass
    except TypeError:                    # bytearray / memoryview names: not hashable
        return _encode_route(key)
    if len(_route_cache) >= 4096:
        _route_cache.clear()
    route = _route_cache[key] = _encode_route(key)
    return route


def _encode_route(key: tuple) -> bytes:
    queues = key[3:]
    return b"".join((_short(key[0]), _short(key[1]), _short(key[2]), _U32_pack(len(queues)),
                     *[_short(q) for q in queues]))


def encode_message(message_id: int, vhost: str | bytes, exchange: str | bytes,
                   routing_key: str | bytes, queues: Iterable[str | bytes],
                   header: bytes, body: bytes, *, at_ms: int | None = None) -> bytes:
    """MESSAGE payload. Names may be str (UTF-8 encoded) or bytes, at most
    255 bytes each. ``at_ms``: publish time in ms since the Unix epoch
    (None: now). Raises RecordError for an over-long name."""
    if at_ms is None:
        at_ms = _time_ns() // 1_000_000
    if type(queues) is list and len(queues) == 1:
        key = (vhost, exchange, routing_key, queues[0])
    else:
        key = (vhost, exchange, routing_key, *queues)
    return b"".join((_ID_AT_pack(message_id, at_ms), _route(key), _U32_pack(len(header)), header,
                     _U64_pack(len(body)), body))


def header_and_body_at(data: bytes, p: int) -> tuple[bytes, int, int]:
    """The tail of a MESSAGE payload starting at ``data[p]`` (just past the
    queue names): (content header bytes, offset of the body in ``data``,
    body length). Raises struct.error when ``data`` is cut short before the
    body length, RecordError when the header is."""
    hlen = _U32_unpack(data, p)[0]
    p += 4
    header = data[p:p + hlen]
    if len(header) != hlen:
        raise RecordError("malformed message payload: content header cut short")
    p += hlen
    return header, p + 8, _U64_unpack(data, p)[0]


def decode_message(payload: bytes, with_body: bool = True) -> MessageRecord:
    """Decode a MESSAGE payload. With ``with_body=False`` the body is not
    copied (``body`` is None; ``body_offset``/``body_length`` still say
    where it is, for ``body_position``). Raises RecordError if malformed."""
    if type(payload) is not bytes:
        payload = bytes(payload)
    try:
        message_id, at_ms = _ID_AT.unpack_from(payload, 0)
        n = payload[16]
        p = 17 + n
        vhost = payload[17:p].decode()
        n = payload[p]
        q = p + 1 + n
        exchange = payload[p + 1:q].decode()
        n = payload[q]
        p = q + 1 + n
        routing_key = payload[q + 1:p].decode()
        count = _U32_unpack(payload, p)[0]
        p += 4
        queues = []
        for _ in range(count):
            n = payload[p]
            queues.append(payload[p + 1:p + 1 + n].decode())
            p += 1 + n
        header, p, blen = header_and_body_at(payload, p)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed message payload: {exc}") from None
    if p + blen != len(payload):
        raise RecordError("malformed message payload: lengths do not add up")
    body = payload[p:] if with_body else None
    return _new_tuple(MessageRecord, (message_id, vhost, exchange, routing_key, tuple(queues),
                                      header, body, p, blen, at_ms))


def _queue_name(queue: str | bytes) -> bytes:
    raw = queue.encode() if isinstance(queue, str) else bytes(queue)
    if len(raw) > 255:
        raise RecordError(f"queue name of {len(raw)} bytes (max 255)")
    return raw


def encode_ack(message_id: int, queue: str | bytes, reason: int = REASON_ACKED, *,
               at_ms: int | None = None) -> bytes:
    """ACK payload: the message left ``queue`` for ``reason`` (REASON_*)
    at ``at_ms`` (ms since the Unix epoch; None: now). Raises RecordError
    for a queue name over 255 bytes."""
    raw = _queue_name(queue)
    if at_ms is None:
        at_ms = _time_ns() // 1_000_000
    return _QUEUE_EVENT.pack(message_id, at_ms, len(raw)) + raw + bytes((reason,))


def encode_requeued(message_id: int, queue: str | bytes, at_ms: int | None = None) -> bytes:
    """REQUEUED payload (ACK layout, reason 0): the message went back to
    the ready list of ``queue``. Decode with ``decode_ack``."""
    return encode_ack(message_id, queue, 0, at_ms=at_ms)


def encode_delivered(message_id: int, queue: str | bytes, consumer_tag: str | bytes = "",
                     delivery_count: int = 1, at_ms: int | None = None, *, restated: bool = False) -> bytes:
    """DELIVERED payload: ACK layout (reason 0, or DELIVERED_RESTATED when
    ``restated``: compaction repeating a delivery already recorded, not a
    new one) followed by the consumer tag (short string, "" for basic.get)
    and the delivery count (u32, 1 for the first delivery). Raises
    RecordError for a name over 255 bytes or a count outside 0..2**32-1."""
    if not 0 <= delivery_count <= 0xFFFFFFFF:
        raise RecordError(f"delivery count {delivery_count} out of range")
    reason = DELIVERED_RESTATED if restated else 0
    return b"".join((encode_ack(message_id, queue, reason, at_ms=at_ms), _short(consumer_tag),
                     _U32_pack(delivery_count)))


def decode_ack(payload: bytes) -> QueueEvent:
    """Decode an ACK or REQUEUED payload (``QueueEvent`` with consumer_tag
    "" and delivery_count 0). Raises RecordError if malformed."""
    try:
        message_id, at_ms, n = _QUEUE_EVENT.unpack_from(payload, 0)
        if len(payload) != _QUEUE_EVENT_SIZE + 1 + n:
            raise RecordError("malformed ack payload: bad length")
        end = _QUEUE_EVENT_SIZE + n
        return _new_tuple(QueueEvent, (message_id, str(payload[_QUEUE_EVENT_SIZE:end], "utf-8"),
                                       payload[end], at_ms, "", 0))
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed ack payload: {exc}") from None


def decode_delivered(payload: bytes) -> QueueEvent:
    """Decode a DELIVERED payload (``QueueEvent`` with reason 0, the
    consumer tag and the delivery count). Raises RecordError if malformed."""
    try:
        message_id, at_ms, n = _QUEUE_EVENT.unpack_from(payload, 0)
        end = _QUEUE_EVENT_SIZE + n
        queue = str(payload[_QUEUE_EVENT_SIZE:end], "utf-8")
        reason = payload[end]
        t = payload[end + 1]
        tag_end = end + 2 + t
        tag = str(payload[end + 2:tag_end], "utf-8")
        if len(payload) != tag_end + 4:
            raise RecordError("malformed delivered payload: bad length")
        count = _U32_unpack(payload, tag_end)[0]
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed delivered payload: {exc}") from None
    return _new_tuple(QueueEvent, (message_id, queue, reason, at_ms, tag, count))


decode_requeued = decode_ack


def body_position(position: Position, message: MessageRecord) -> Position:
    """Position of the message body inside the MESSAGE record at
    ``position`` (as returned by append or replay), for
    ``WriteAheadLog.read``."""
    return Position(position.segment, position.offset + message.body_offset,
                    message.body_length)
