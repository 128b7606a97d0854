"""Reading stored messages back from the WAL in bulk (a deep queue's
``cold`` part coming back to memory, issue 3; the ``drain`` scenario of
issue 5): records that lie close together in one segment (a backlog in
publish order) are read with one pread per run of up to READ_SPAN bytes,
and each is cut out of that span by offset, without copying its payload
first.
"""

from __future__ import annotations

import struct

from storage.live_index import WHERE, segment_of, unpack_position
from storage.wal import MessageRecord, Position, WalError, WriteAheadLog, decode_message
from storage.wal.errors import RecordError
from storage.wal.record import header_and_body_at

#: most bytes one pread covers, and the largest gap between two records it
#: reads through
READ_SPAN = 1 << 20
READ_GAP = 16 << 10

_MASK32 = 0xFFFFFFFF
_U32 = struct.Struct(">I").unpack_from
#: exchange + routing key bytes -> (exchange, routing key, those bytes):
#: a backlog repeats a few of them
_names: dict[bytes, tuple] = {}


def _runs(live: dict, message_ids: list[int]):
    """Yield lists of packed positions (one segment, ascending, close
    together) covering ``message_ids`` in order. Raises KeyError for an id
    that is not live."""
    run: list[int] = []
    first = end = 0
    for message_id in message_ids:
        where = live[message_id][WHERE]
        offset = (where >> 32) & _MASK32
        if run and ((where >> 64) != (run[0] >> 64) or not 0 <= offset - end <= READ_GAP
                    or offset + (where & _MASK32) - first > READ_SPAN):
            yield run
            run = []
        if not run:
            first = offset
        run.append(where)
        end = offset + (where & _MASK32)
    if run:
        yield run


def _span(wal: WriteAheadLog, run: list[int]) -> tuple[bytes | None, int]:
    """(bytes covering every record of ``run``, file offset of its first
    byte), or (None, 0) when the span is not in one place (part written,
    part still in memory): the caller then reads record by record."""
    start = (run[0] >> 32) & _MASK32
    last = run[-1]
    length = ((last >> 32) & _MASK32) + (last & _MASK32) - start
    try:
        return wal.read(Position(segment_of(run[0]), start, length)), start
    except WalError:
        return None, 0


def read_messages(wal: WriteAheadLog, live: dict, message_ids: list[int]) -> list[MessageRecord]:
    """The MESSAGE records of ``message_ids`` (live ids, see
    storage/live_index.py), decoded, in order. Raises KeyError for an id
    no durable queue holds."""
    out = []
    for run in _runs(live, message_ids):
        span, start = _span(wal, run) if len(run) > 1 else (None, 0)
        if span is None:
            out.extend(decode_message(wal.read(unpack_position(where))) for where in run)
        else:
            out.extend(decode_message(span[((w >> 32) & _MASK32) - start:((w >> 32) & _MASK32) - start
                                           + (w & _MASK32)]) for w in run)
    return out


def read_for_delivery(wal: WriteAheadLog, live: dict, message_ids: list[int]) -> list[tuple]:
    """What a delivery needs of each message of ``message_ids``, in order:
    ``(exchange, routing_key, exchange_routing_key, header, body)``, where
    ``exchange_routing_key`` is the two short strings as basic.deliver
    carries them (cut from the record: the MESSAGE layout has them side by
    side) and ``header`` the verbatim content header. Raises KeyError for
    an id no durable queue holds, RecordError for a record that does not
    decode."""
    out = []
    append = out.append
    for run in _runs(live, message_ids):
        span, start = _span(wal, run) if len(run) > 1 else (None, 0)
        for where in run:
            offset = ((where >> 32) & _MASK32) - start
            if span is None:
                append(_fields(wal.read(unpack_position(where)), 0, where & _MASK32))
            else:
                append(_fields(span, offset, where & _MASK32))
    return out


def _fields(data: bytes, p: int, length: int) -> tuple:
    """Delivery fields of the MESSAGE payload at ``data[p:p + length]``
    (layout: storage/wal/record.py)."""
    end = p + length
    try:
        p += 16 + 1 + data[p + 16]                       # id, at_ms, vhost
        e = data[p]
        q = p + 2 + e + data[p + 1 + e]
        erk = data[p:q]
        names = _names.get(erk)
        if names is None:
            if len(_names) >= 4096:
                _names.clear()
            names = _names[erk] = (str(data[p + 1:p + 1 + e], "utf-8"), str(data[p + 2 + e:q], "utf-8"), erk)
        count = _U32(data, q)[0]
        q += 4
        for _ in range(count):
            q += 1 + data[q]
        header, q, b = header_and_body_at(data, q)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"malformed stored message: {exc}") from None
    if q + b != end:
        raise RecordError("malformed stored message: lengths do not add up")
    return names[0], names[1], names[2], header, data[q:end]
