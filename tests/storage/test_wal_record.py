"""Record framing and payload codecs."""

import struct
import time
import zlib

import pytest

from storage.wal import record as r
from storage.wal import (ACK, CHECKPOINT, DELIVERED, MESSAGE, REQUEUED, TOPOLOGY, Position,
                         RecordError, body_position, decode_ack, decode_delivered, decode_message,
                         decode_record, decode_requeued, encode_ack, encode_delivered,
                         encode_message, encode_record, encode_requeued)


def test_type_constants():
    assert (MESSAGE, ACK, DELIVERED, TOPOLOGY, CHECKPOINT, REQUEUED) == (1, 2, 3, 4, 5, 6)
    assert r.RECORD_TYPE_NAMES[REQUEUED] == "requeued"
    assert r.RECORD_HEADER_SIZE == 9


def test_header_layout_is_length_crc_type():
    payload = b"hello world"
    rec = encode_record(TOPOLOGY, payload)
    assert rec[:9] == struct.pack(">IIB", len(payload), zlib.crc32(bytes((TOPOLOGY,)) + payload),
                                  TOPOLOGY)
    assert rec[9:] == payload


@pytest.mark.parametrize("rtype", [MESSAGE, ACK, DELIVERED, TOPOLOGY, CHECKPOINT, REQUEUED])
@pytest.mark.parametrize("payload", [b"", b"x", bytes(range(256)) * 40])
def test_record_round_trip(rtype, payload):
    data = b"junk" + encode_record(rtype, payload) + encode_record(ACK, b"next")
    t, p, end = decode_record(data, 4)
    assert (t, p) == (rtype, payload)
    assert decode_record(data, end)[:2] == (ACK, b"next")


def test_every_flipped_bit_is_detected():
    rec = encode_record(MESSAGE, b"some payload bytes")
    for i in range(len(rec)):
        for bit in (0x01, 0x80):
            bad = bytearray(rec)
            bad[i] ^= bit
            with pytest.raises(RecordError):
                decode_record(bytes(bad))


def test_truncated_and_unknown_type():
    rec = encode_record(ACK, b"abcdef")
    for cut in range(len(rec)):
        with pytest.raises(RecordError):
            decode_record(rec[:cut])
    with pytest.raises(RecordError):
        encode_record(0, b"")
    with pytest.raises(RecordError):
        encode_record(9, b"")
    with pytest.raises(RecordError):
        encode_record(99, b"")
    forged = struct.pack(">IIB", 1, zlib.crc32(b"\x09z"), 9) + b"z"
    with pytest.raises(RecordError, match="unknown record type"):
        decode_record(forged)


def test_message_round_trip():
    header = b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x90\x00"
    body = b"B" * 1000
    payload = encode_message(2**64 - 1, "/", "amq.topic", "stock.usd.nyse", ["q1", "qué", b"raw"],
                             header, body, at_ms=1_700_000_000_123)
    m = decode_message(payload)
    assert m.message_id == 2**64 - 1 and m.at_ms == 1_700_000_000_123
    assert payload[:16] == struct.pack(">QQ", 2**64 - 1, 1_700_000_000_123)
    assert (m.vhost, m.exchange, m.routing_key) == ("/", "amq.topic", "stock.usd.nyse")
    assert m.queues == ("q1", "qué", "raw")
    assert m.header == header and m.body == body
    assert m.body_length == 1000 and payload[m.body_offset:] == body
    lazy = decode_message(memoryview(payload), with_body=False)
    assert lazy.body is None and lazy.body_offset == m.body_offset
    pos = body_position(Position(3, 100, len(payload)), m)
    assert pos == Position(3, 100 + m.body_offset, 1000)


def test_message_edge_cases():
    m = decode_message(encode_message(0, "", "", "", [], b"", b""))
    assert m.queues == () and m.body == b"" and m.header == b""
    with pytest.raises(RecordError):
        encode_message(1, "/", "x" * 256, "", [], b"", b"")
    payload = encode_message(1, "/", "ex", "rk", ["q"], b"h", b"body")
    for cut in range(len(payload)):
        with pytest.raises(RecordError):
            decode_message(payload[:cut])
    with pytest.raises(RecordError):
        decode_message(payload + b"extra")


def test_message_at_ms_defaults_to_now():
    before = time.time_ns() // 1_000_000
    m = decode_message(encode_message(5, "/", "ex", "rk", ["q"], b"h", b"body"))
    after = time.time_ns() // 1_000_000
    assert before <= m.at_ms <= after
    assert m[:9] == (5, "/", "ex", "rk", ("q",), b"h", b"body", m.body_offset, 4)


def test_ack_and_requeued():
    for reason in r.REASON_NAMES:
        ev = decode_ack(encode_ack(42, "orders", reason, at_ms=1234))
        assert ev == (42, "orders", reason, 1234, "", 0)
        assert (ev.message_id, ev.queue, ev.reason, ev.at_ms) == (42, "orders", reason, 1234)
    assert encode_ack(42, "q", 3, at_ms=7) == struct.pack(">QQB", 42, 7, 1) + b"q" + bytes((3,))
    assert r.REASON_NAMES[r.REASON_DEAD_LETTERED] == "dead-lettered"
    req = encode_requeued(9, "work", at_ms=99)
    assert req == encode_ack(9, "work", 0, at_ms=99)
    assert decode_ack(req) == decode_requeued(req) == (9, "work", 0, 99, "", 0)
    before = time.time_ns() // 1_000_000
    assert before <= decode_ack(encode_ack(1, "q")).at_ms <= time.time_ns() // 1_000_000
    with pytest.raises(RecordError):
        decode_ack(encode_ack(1, "q")[:-1])
    with pytest.raises(RecordError):
        decode_ack(encode_ack(1, "q") + b"x")
    with pytest.raises(RecordError):
        encode_ack(1, "q" * 256)


def test_delivered():
    payload = encode_delivered(7, "q", "amq.ctag-1", 3, at_ms=555)
    assert payload == (struct.pack(">QQB", 7, 555, 1) + b"q" + b"\x00" + b"\x0aamq.ctag-1"
                       + struct.pack(">I", 3))
    ev = decode_delivered(payload)
    assert ev == (7, "q", 0, 555, "amq.ctag-1", 3)
    assert (ev.consumer_tag, ev.delivery_count) == ("amq.ctag-1", 3)
    get = decode_delivered(encode_delivered(8, "q"))      # basic.get: no tag, first delivery
    assert (get.consumer_tag, get.delivery_count) == ("", 1)
    for cut in range(len(payload)):
        with pytest.raises(RecordError):
            decode_delivered(payload[:cut])
    with pytest.raises(RecordError):
        decode_delivered(payload + b"x")
    with pytest.raises(RecordError):
        decode_ack(payload)                 # the DELIVERED tail is not an ACK payload
    with pytest.raises(RecordError):
        encode_delivered(1, "q", "t" * 256)
    with pytest.raises(RecordError):
        encode_delivered(1, "q", "t", 2**32)
