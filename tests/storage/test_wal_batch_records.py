"""ACK_MANY and DELIVERED_MANY (storage/wal/batch_record.py): codecs, the
message database rows they decode to (one event per message, as the single
records give), and retention of a record naming messages in several
segments (storage/queue_events.py ``release_after``)."""

from __future__ import annotations

import struct

import pytest

from storage.mirror.rows import BatchDecoder
from storage.queue_events import release_after
from storage.wal import (ACK, DELIVERED, MESSAGE, REASON_PURGED, TOPOLOGY, RecordError, WriteAheadLog, decode_ack,
                         decode_delivered, encode_ack, encode_delivered, encode_message)
from storage.wal.batch_record import (QueueEvents, decode_ack_many, decode_delivered_many, encode_ack_many,
                                      encode_delivered_many, expand)
from storage.wal.record import ACK_MANY, DELIVERED_MANY, RECORD_TYPE_NAMES

BASE = 1_700_000_000_000
HEADER = b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x10\x00\x02"


def test_types_are_known():
    assert (ACK_MANY, DELIVERED_MANY) == (7, 8)
    assert RECORD_TYPE_NAMES[ACK_MANY] == "ack-many" and RECORD_TYPE_NAMES[DELIVERED_MANY] == "delivered-many"


def test_ack_many_round_trip_and_layout():
    payload = encode_ack_many([1, 2**64 - 1, 7], "orders", REASON_PURGED, at_ms=BASE)
    assert payload == (struct.pack(">Q", BASE) + b"\x06orders" + bytes((REASON_PURGED,))
                       + struct.pack(">I3Q", 3, 1, 2**64 - 1, 7))
    assert decode_ack_many(payload) == QueueEvents("orders", REASON_PURGED, BASE, (1, 2**64 - 1, 7), "", ())
    assert expand(ACK_MANY, payload) == [decode_ack(encode_ack(i, "orders", REASON_PURGED, at_ms=BASE))
                                         for i in (1, 2**64 - 1, 7)]


def test_delivered_many_round_trip_matches_single_records():
    payload = encode_delivered_many([5, 6], [1, 3], "qué", "ctag-1", at_ms=BASE)
    assert decode_delivered_many(payload) == QueueEvents("qué", 0, BASE, (5, 6), "ctag-1", (1, 3))
    assert expand(DELIVERED_MANY, payload) == [
        decode_delivered(encode_delivered(5, "qué", "ctag-1", 1, at_ms=BASE)),
        decode_delivered(encode_delivered(6, "qué", "ctag-1", 3, at_ms=BASE))]


@pytest.mark.parametrize("payload,decode", [
    (encode_ack_many([1, 2], "q", 0, at_ms=BASE), decode_ack_many),
    (encode_delivered_many([1, 2], [1, 1], "q", "t", at_ms=BASE), decode_delivered_many),
])
def test_malformed_payloads_raise(payload, decode):
    for cut in range(len(payload)):
        with pytest.raises(RecordError):
            decode(payload[:cut])
    with pytest.raises(RecordError):
        decode(payload + b"x")


@pytest.mark.parametrize("call", [
    lambda: encode_ack_many([], "q", 0),                     # empty
    lambda: encode_ack_many([-1], "q", 0),                   # id outside u64
    lambda: encode_delivered_many([1, 2], [1], "q"),         # counts do not match ids
    lambda: encode_delivered_many([1], [2**32], "q"),        # count outside u32
    lambda: encode_ack_many([1], "q" * 256, 0),              # queue name over 255 bytes
    lambda: expand(ACK, encode_ack(1, "q")),                 # not a batched type
])
def test_bad_batches_are_refused(call):
    with pytest.raises(RecordError):
        call()


def _ops(records):
    ops: list = []
    for _ in BatchDecoder().decode_batch([(t, p, None, 0) for t, p in records], False, 0, ops):
        pass
    return ops


def test_message_database_rows_are_the_same_as_for_single_records():
    """A batched record decodes to one event op per message, equal to the
    ops of the single records it replaces: timelines stay the same."""
    messages = [(MESSAGE, encode_message(i, "/", "", "q", ["q"], HEADER, b"b", at_ms=BASE)) for i in (1, 2, 3)]
    single = messages + [(DELIVERED, encode_delivered(i, "q", "c1", 1, at_ms=BASE + 1)) for i in (1, 2, 3)] \
        + [(ACK, encode_ack(i, "q", 0, at_ms=BASE + 2)) for i in (1, 2, 3)]
    batched = messages + [(DELIVERED_MANY, encode_delivered_many([1, 2, 3], [1, 1, 1], "q", "c1", at_ms=BASE + 1)),
                          (ACK_MANY, encode_ack_many([1, 2, 3], "q", 0, at_ms=BASE + 2))]
    assert _ops(batched) == _ops(single)
    assert [op[3] for op in _ops(batched)[3:]] == ["delivered"] * 3 + ["acked"] * 3


async def _settle(wal: WriteAheadLog) -> None:
    """Until the batch carrying the pending segment deletions is done: a
    synced record after them (dead at once)."""
    wal.release(wal.append(TOPOLOGY, b"tick"))
    await wal.sync()


async def test_release_after_waits_for_every_referenced_segment(tmp_path):
    """A record naming messages in segments 1 and 2 stays (partly) live in
    segment 3 until both are deleted: else a replay after the deletion of
    segment 3 would bring an acked message of segment 2 back."""
    wal = WriteAheadLog(tmp_path / "wal", segment_size=256)
    wal.open().drain()
    first = wal.append(MESSAGE, b"m" * 200)
    second = wal.append(MESSAGE, b"m" * 200)
    record = wal.append(ACK_MANY, encode_ack_many([1, 2], "q", 0))
    wal.append(MESSAGE, b"f" * 200)
    await wal.sync()
    release_after(wal, record, {first.segment, second.segment})
    size = record.length + 9
    assert wal.live_bytes(3) == size
    wal.release(first)                     # segment 1 dies: one share of the record goes
    await _settle(wal)
    assert 1 not in wal.segments and 0 < wal.live_bytes(3) < size
    wal.release(second)
    await _settle(wal)
    await _settle(wal)                     # segment 3 died with the last share
    assert 2 not in wal.segments and 3 not in wal.segments
    wal.close()
