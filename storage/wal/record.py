"""WAL record framing and payload codecs.

A record on disk is a 9-byte header followed by the payload::

    >I  payload length in bytes (so one payload is at most 4 GiB - 1)
    >I  CRC32 (zlib.crc32) of the record type byte followed by the payload
    B   record type (MESSAGE, ACK, DELIVERED, TOPOLOGY, CHECKPOINT)
    ... payload

Payloads (all integers big-endian; a "short string" is a u8 length and
that many UTF-8 bytes, at most 255):

MESSAGE    u64 message id, short vhost, short exchange, short routing key,
           u32 queue count + that many short queue names,
           u32 content-header length + the AMQP content header payload
           (kept verbatim), u64 body length + body. The body is always last,
           so it is the final ``body_length`` bytes of the payload.
ACK        u64 message id, short queue name, u8 reason (REASON_*):
           the message left that queue.
DELIVERED  same layout as ACK (reason 0): the message was handed to a
           consumer of that queue, so after a crash it comes back with
           redelivered=true.
TOPOLOGY   opaque bytes, owned by the broker.
CHECKPOINT reserved.
"""

from __future__ import annotations

import struct
import zlib
from typing import Iterable, NamedTuple

from storage.wal.errors import RecordError

MESSAGE = 1
ACK = 2
DELIVERED = 3
TOPOLOGY = 4
CHECKPOINT = 5

RECORD_TYPE_NAMES = {MESSAGE: "message", ACK: "ack", DELIVERED: "delivered",
                     TOPOLOGY: "topology", CHECKPOINT: "checkpoint"}

# ACK reason byte: why the message left the queue.
REASON_ACKED = 0
REASON_REJECTED = 1
REASON_EXPIRED = 2
REASON_DEAD_LETTERED = 3
REASON_PURGED = 4
REASON_DROPPED = 5      # overflow (x-max-length / drop-head)
REASON_DELETED = 6      # the queue was deleted
REASON_NAMES = {REASON_ACKED: "acked", REASON_REJECTED: "rejected",
                REASON_EXPIRED: "expired", REASON_DEAD_LETTERED: "dead-lettered",
                REASON_PURGED: "purged", REASON_DROPPED: "dropped",
                REASON_DELETED: "deleted"}

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
_QUEUE_EVENT = struct.Struct(">QB")   # message id + queue name length


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
    inside the payload, ``body_length`` its size in bytes."""
    message_id: int
    vhost: str
    exchange: str
    routing_key: str
    queues: tuple
    header: bytes
    body: bytes | None
    body_offset: int
    body_length: int


class QueueEvent(NamedTuple):
    """Decoded ACK or DELIVERED payload: message id, queue name, reason
    (a REASON_* value; always 0 for DELIVERED)."""
    message_id: int
    queue: str
    reason: int


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


def encode_message(message_id: int, vhost: str | bytes, exchange: str | bytes,
                   routing_key: str | bytes, queues: Iterable[str | bytes],
                   header: bytes, body: bytes) -> bytes:
    """MESSAGE payload. Names may be str (UTF-8 encoded) or bytes, at most
    255 bytes each. Raises RecordError for an over-long name."""
    if not isinstance(queues, (list, tuple)):
        queues = list(queues)
    if len(queues) == 1:
        names = _short(queues[0])
    else:
        names = b"".join([_short(q) for q in queues])
    return b"".join((_U64_pack(message_id), _short(vhost), _short(exchange), _short(routing_key),
                     _U32_pack(len(queues)), names, _U32_pack(len(header)), header,
                     _U64_pack(len(body)), body))


def decode_message(payload: bytes, with_body: bool = True) -> MessageRecord:
    """Decode a MESSAGE payload. With ``with_body=False`` the body is not
    copied (``body`` is None; ``body_offset``/``body_length`` still say
    where it is, for ``body_position``). Raises RecordError if malformed."""
    if type(payload) is not bytes:
        payload = bytes(payload)
    try:
        message_id = _U64_unpack(payload, 0)[0]
        n = payload[8]
        p = 9 + n
        vhost = payload[9:p].decode()
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
        hlen = _U32_unpack(payload, p)[0]
        p += 4
        header = payload[p:p + hlen]
        p += hlen
        blen = _U64_unpack(payload, p)[0]
        p += 8
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed message payload: {exc}") from None
    if len(header) != hlen or p + blen != len(payload):
        raise RecordError("malformed message payload: lengths do not add up")
    body = payload[p:] if with_body else None
    return _new_tuple(MessageRecord, (message_id, vhost, exchange, routing_key, tuple(queues),
                                      header, body, p, blen))


def encode_ack(message_id: int, queue: str | bytes, reason: int = REASON_ACKED) -> bytes:
    """ACK payload: the message left ``queue`` for ``reason`` (REASON_*)."""
    raw = queue.encode() if isinstance(queue, str) else bytes(queue)
    if len(raw) > 255:
        raise RecordError(f"queue name of {len(raw)} bytes (max 255)")
    return _QUEUE_EVENT.pack(message_id, len(raw)) + raw + bytes((reason,))


def encode_delivered(message_id: int, queue: str | bytes) -> bytes:
    """DELIVERED payload (same layout as ACK, reason 0)."""
    return encode_ack(message_id, queue, 0)


def decode_ack(payload: bytes) -> QueueEvent:
    """Decode an ACK or DELIVERED payload. Raises RecordError if malformed."""
    try:
        message_id, n = _QUEUE_EVENT.unpack_from(payload, 0)
        if len(payload) != 10 + n:
            raise RecordError("malformed ack payload: bad length")
        return QueueEvent(message_id, str(payload[9:9 + n], "utf-8"), payload[9 + n])
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed ack payload: {exc}") from None


decode_delivered = decode_ack


def body_position(position: Position, message: MessageRecord) -> Position:
    """Position of the message body inside the MESSAGE record at
    ``position`` (as returned by append or replay), for
    ``WriteAheadLog.read``."""
    return Position(position.segment, position.offset + message.body_offset,
                    message.body_length)
