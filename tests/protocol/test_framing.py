"""protocol.framing.FrameReader and frame(), checked against frames built by
pamqp (AMQP 0-9-1 spec §2.3.5 "Frame Details", §4.2.3 "General Frame Format")."""

from __future__ import annotations

import random
import struct

import pytest
from pamqp import body as pbody
from pamqp import commands
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import heartbeat as pheartbeat

from protocol import reply_codes
from protocol.constants import (FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, HEARTBEAT_FRAME,
                                PROTOCOL_HEADER)
from protocol.errors import AMQPError
from protocol.framing import FrameReader, frame

FRAME_MAX = 131072


# --- helpers ----------------------------------------------------------------------------

def method_frame(channel: int = 1) -> bytes:
    return pframe.marshal(commands.Basic.Publish(exchange="amq.direct", routing_key="rk", mandatory=True), channel)


def header_frame(channel: int = 1, body_size: int = 5) -> bytes:
    props = commands.Basic.Properties(content_type="text/plain", delivery_mode=2, headers={"a": 1})
    return pframe.marshal(pheader.ContentHeader(body_size=body_size, properties=props), channel)


def body_frame(channel: int = 1, data: bytes = b"hello") -> bytes:
    return pframe.marshal(pbody.ContentBody(data), channel)


def heartbeat_frame() -> bytes:
    return pframe.marshal(pheartbeat.Heartbeat(), 0)


def expected(raw: bytes) -> tuple[int, int, bytes]:
    """(type, channel, payload) of one pamqp-built frame, sliced independently."""
    ftype, channel, size = struct.unpack(">BHI", raw[:7])
    assert len(raw) == size + 8 and raw[-1] == 0xCE
    return ftype, channel, raw[7:-1]


def drain(reader: FrameReader) -> list[tuple[int, int, bytes]]:
    return list(reader.frames())


def mixed_stream() -> tuple[bytes, list[tuple[int, int, bytes]]]:
    raws = [method_frame(1), header_frame(1, 5), body_frame(1, b"hello"), heartbeat_frame(),
            method_frame(65535), header_frame(65535, 0), body_frame(7, b"\xce" * 20),
            pframe.marshal(commands.Channel.Open(), 3), heartbeat_frame()]
    return b"".join(raws), [expected(r) for r in raws]


def assert_frame_error(excinfo) -> None:
    err = excinfo.value
    assert err.reply_code == reply_codes.FRAME_ERROR
    assert err.connection_level is True


# --- each frame type ------------------------------------------------------------------

@pytest.mark.parametrize("raw, ftype", [
    (method_frame(), FRAME_METHOD),
    (header_frame(), FRAME_HEADER),
    (body_frame(), FRAME_BODY),
    (heartbeat_frame(), FRAME_HEARTBEAT),
], ids=["method", "header", "body", "heartbeat"])
def test_each_frame_type(raw, ftype):
    """Spec §4.2.3: method (1), header (2), body (3) and heartbeat (8) frames are cut out whole."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(raw)
    frames = drain(reader)
    assert frames == [expected(raw)]
    assert frames[0][0] == ftype
    assert reader.pending() == 0


def test_method_payload_unmarshals_with_pamqp():
    """Spec §4.2.4: a method frame payload is class id, method id, arguments."""
    raw = method_frame(9)
    reader = FrameReader(FRAME_MAX)
    reader.feed(raw)
    [(ftype, channel, payload)] = drain(reader)
    _, ch, obj = pframe.unmarshal(frame(ftype, channel, payload))
    assert ch == 9
    assert isinstance(obj, commands.Basic.Publish)
    assert (obj.exchange, obj.routing_key, obj.mandatory) == ("amq.direct", "rk", True)


def test_heartbeat_is_empty_on_channel_zero():
    """Spec §4.2.7: a heartbeat frame has channel 0 and an empty payload."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(HEARTBEAT_FRAME)
    assert drain(reader) == [(FRAME_HEARTBEAT, 0, b"")]


def test_payload_is_immutable_bytes():
    """Spec §4.2.3: returned payloads are independent of the receive buffer."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(body_frame(1, b"abc"))
    [(_, _, payload)] = drain(reader)
    assert type(payload) is bytes
    reader.feed(body_frame(1, b"xyz"))
    assert drain(reader) == [(FRAME_BODY, 1, b"xyz")]
    assert payload == b"abc"


# --- several frames, any split ----------------------------------------------------------

def test_many_frames_in_one_feed():
    """Spec §2.3.5: a byte stream carries frames back to back, on many channels."""
    data, want = mixed_stream()
    reader = FrameReader(FRAME_MAX)
    reader.feed(data)
    assert drain(reader) == want
    assert reader.pending() == 0


def test_incomplete_frame_waits():
    """Spec §4.2.3: a frame is delivered only when its frame-end octet has arrived."""
    raw = body_frame(1, b"hello")
    reader = FrameReader(FRAME_MAX)
    reader.feed(raw[:-1])
    assert drain(reader) == []
    assert reader.pending() == len(raw) - 1
    reader.feed(raw[-1:])
    assert drain(reader) == [expected(raw)]


def test_byte_by_byte():
    """Spec §4.2.3: fed byte by byte, each frame is released exactly when its last byte arrives."""
    data, want = mixed_stream()
    ends = []
    pos = 0
    for ftype, channel, payload in want:
        pos += len(payload) + 8
        ends.append(pos)
    reader = FrameReader(FRAME_MAX)
    got = []
    for i in range(len(data)):
        reader.feed(data[i:i + 1])
        new = drain(reader)
        if i + 1 in ends:
            assert len(new) == 1, f"frame ending at {i + 1} not released"
        else:
            assert new == [], f"frame released early at byte {i + 1}"
        got += new
    assert got == want
    assert reader.pending() == 0


def test_two_pieces_at_every_offset():
    """Spec §4.2.3: the stream cut in two at any offset yields the same frames."""
    data, want = mixed_stream()
    for cut in range(len(data) + 1):
        reader = FrameReader(FRAME_MAX)
        reader.feed(data[:cut])
        got = drain(reader)
        reader.feed(data[cut:])
        got += drain(reader)
        assert got == want, f"cut at {cut}"
        assert reader.pending() == 0


def test_single_frame_two_pieces_at_every_offset():
    """Spec §4.2.3: one frame split in two at any offset is reassembled."""
    raw = header_frame(2, 100)
    for cut in range(len(raw) + 1):
        reader = FrameReader(FRAME_MAX)
        reader.feed(raw[:cut])
        first = drain(reader)
        assert first == ([] if cut < len(raw) else [expected(raw)])
        reader.feed(raw[cut:])
        assert first + drain(reader) == [expected(raw)]


def test_early_stop_keeps_remaining_frames():
    """Spec §2.3.5: a consumer that stops iterating early loses no frame."""
    data, want = mixed_stream()
    reader = FrameReader(FRAME_MAX)
    reader.feed(data)
    gen = reader.frames()
    first = next(gen)
    gen.close()
    assert first == want[0]
    assert drain(reader) == want[1:]


# --- frame_max ------------------------------------------------------------------------

@pytest.mark.parametrize("frame_max", [4096, 8192, 131072])
def test_frame_exactly_frame_max_accepted(frame_max):
    """Spec §4.2.1/§4.9: frame_max counts the whole frame, header and frame-end included."""
    raw = body_frame(1, b"x" * (frame_max - 8))
    assert len(raw) == frame_max
    reader = FrameReader(frame_max)
    reader.feed(raw)
    assert drain(reader) == [expected(raw)]


@pytest.mark.parametrize("frame_max", [4096, 8192, 131072])
def test_frame_eight_bytes_over_tolerated(frame_max):
    """RabbitMQ (rabbit_reader.erl) lets a payload reach frame_max, since many clients count
    frame_max as the payload size; Leveret does the same so those clients work."""
    raw = body_frame(1, b"x" * frame_max)
    assert len(raw) == frame_max + 8
    reader = FrameReader(frame_max)
    reader.feed(raw)
    assert drain(reader) == [expected(raw)]


@pytest.mark.parametrize("frame_max", [4096, 8192, 131072])
def test_frame_over_tolerance_rejected_from_header_alone(frame_max):
    """Spec §4.2.3: a frame over frame_max (+8 tolerance) is 501 FRAME_ERROR from the 7-byte
    header, before its payload."""
    raw = body_frame(1, b"x" * (frame_max + 1))
    reader = FrameReader(frame_max)
    reader.feed(raw[:6])
    assert drain(reader) == []
    reader.feed(raw[6:7])
    with pytest.raises(AMQPError) as info:
        drain(reader)
    assert_frame_error(info)
    assert str(frame_max) in info.value.text


def test_oversized_frame_after_good_frames():
    """Spec §4.2.3: good frames before an oversized one are still delivered in order."""
    good = method_frame(1)
    bad_header = struct.pack(">BHI", FRAME_BODY, 1, 5000)
    reader = FrameReader(4096)
    reader.feed(good + bad_header)
    gen = reader.frames()
    assert next(gen) == expected(good)
    with pytest.raises(AMQPError) as info:
        next(gen)
    assert_frame_error(info)


def test_huge_declared_size_rejected():
    """Spec §4.2.3: a 4 GiB declared size is refused without waiting for it."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(struct.pack(">BHI", FRAME_BODY, 1, 0xFFFFFFFF))
    with pytest.raises(AMQPError) as info:
        drain(reader)
    assert_frame_error(info)


# --- malformed input ------------------------------------------------------------------

@pytest.mark.parametrize("end", [0x00, 0xCD, 0xCF, 0xFF])
def test_bad_frame_end_octet(end):
    """Spec §4.2.3: a frame-end octet other than 0xCE is 501 FRAME_ERROR."""
    raw = body_frame(1, b"hello")
    reader = FrameReader(FRAME_MAX)
    reader.feed(raw[:-1])
    assert drain(reader) == []
    reader.feed(bytes([end]))
    with pytest.raises(AMQPError) as info:
        drain(reader)
    assert_frame_error(info)


def test_bad_frame_end_on_heartbeat():
    """Spec §4.2.3: the frame-end check applies to empty frames too."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(HEARTBEAT_FRAME[:-1] + b"\x00")
    with pytest.raises(AMQPError) as info:
        drain(reader)
    assert_frame_error(info)


@pytest.mark.parametrize("ftype", [0, 4, 5, 6, 7, 9, 65, 206, 255])
def test_unknown_frame_type(ftype):
    """Spec §4.2.3: a frame type other than 1, 2, 3, 8 is 501 FRAME_ERROR, from the header alone."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(struct.pack(">BHI", ftype, 0, 10))
    with pytest.raises(AMQPError) as info:
        drain(reader)
    assert_frame_error(info)


def test_http_request_is_frame_error():
    """Spec §4.2.3: an HTTP request is garbage: unknown frame type 'G' -> 501."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(AMQPError) as info:
        drain(reader)
    assert_frame_error(info)


def test_random_garbage_only_raises_frame_error():
    """Spec §4.2.3: arbitrary input yields frames, waits, or raises 501 — never another exception."""
    rng = random.Random(20240901)
    outcomes = set()
    for _ in range(3000):
        reader = FrameReader(rng.choice([4096, 131072]))
        length = rng.randrange(0, 64)
        data = bytes(rng.randrange(256) for _ in range(length))
        if rng.random() < 0.5 and length >= 1:
            # plausible type byte to reach the later checks more often
            data = bytes([rng.choice([1, 2, 3, 8])]) + data[1:]
        try:
            reader.feed(data)
            drain(reader)
            outcomes.add("ok")
        except AMQPError as err:
            assert err.reply_code == reply_codes.FRAME_ERROR
            outcomes.add("501")
    assert outcomes == {"ok", "501"}


def test_garbage_after_good_frame():
    """Spec §4.2.3: a good frame is delivered before the garbage that follows is rejected."""
    good = method_frame(1)
    reader = FrameReader(FRAME_MAX)
    reader.feed(good + b"\x00garbage!")
    got = []
    with pytest.raises(AMQPError) as info:
        for f in reader.frames():
            got.append(f)
    assert got == [expected(good)]
    assert_frame_error(info)


# --- buffer management ----------------------------------------------------------------

def test_buffer_compacted_when_fully_consumed():
    """docs/architecture.md, "One publish" step 1: bytearray + offset; consumed bytes are dropped once all frames are read."""
    reader = FrameReader(FRAME_MAX)
    payload = b"y" * 4000
    raw = body_frame(1, payload) * 20          # > 64 KiB
    assert len(raw) > 65536
    reader.feed(raw)
    assert len(drain(reader)) == 20
    assert reader.pending() == 0
    assert len(reader._buf) == 0 and reader._pos == 0


def test_buffer_compacted_across_64k_with_partial_tail():
    """docs/architecture.md, "One publish" step 1: after >64 KiB of frames the consumed front is dropped, the partial frame kept."""
    reader = FrameReader(FRAME_MAX)
    one = body_frame(1, b"z" * 1000)
    raw = one * 70                              # 70 * 1008 bytes > 64 KiB
    tail = one[:3]
    reader.feed(raw + tail)
    frames = drain(reader)
    assert len(frames) == 70 and all(f == expected(one) for f in frames)
    assert reader.pending() == 3
    assert bytes(reader._buf) == tail and reader._pos == 0
    reader.feed(one[3:])
    assert drain(reader) == [expected(one)]


def test_buffer_stays_bounded_over_long_stream():
    """docs/architecture.md, "One publish" step 1: a long stream, always ending mid-frame, never grows the buffer unboundedly."""
    reader = FrameReader(FRAME_MAX)
    one = body_frame(1, bytes(range(256)) * 10)
    stream = one * 600                          # ~1.5 MB
    step = 3001                                  # never aligned with frame boundaries
    count = 0
    peak = 0
    for i in range(0, len(stream), step):
        reader.feed(stream[i:i + step])
        for f in reader.frames():
            assert f == expected(one)
            count += 1
        peak = max(peak, len(reader._buf))
    assert count == 600
    assert reader.pending() == 0
    assert peak < 65536 + 2 * len(one) + step


def test_frames_fed_after_compaction_still_parse():
    """docs/architecture.md, "One publish" step 1: frames keep parsing correctly across many compactions."""
    data, want = mixed_stream()
    reader = FrameReader(FRAME_MAX)
    for _ in range(200):
        reader.feed(data[:10])
        assert drain(reader) == []
        reader.feed(data[10:])
        assert drain(reader) == want


# --- peek / take / pending ------------------------------------------------------------

def test_peek_take_pending_for_protocol_header():
    """Spec §4.2.2: the 8-byte protocol header is read raw before any frame."""
    raw = method_frame(0)
    reader = FrameReader(FRAME_MAX)
    reader.feed(PROTOCOL_HEADER + raw)
    assert reader.pending() == 8 + len(raw)
    assert reader.peek(8) == PROTOCOL_HEADER
    assert reader.pending() == 8 + len(raw)     # peek consumes nothing
    assert reader.take(8) == PROTOCOL_HEADER
    assert reader.pending() == len(raw)
    assert drain(reader) == [expected(raw)]
    assert reader.pending() == 0


def test_peek_and_take_short_buffer():
    """Spec §4.2.2: peek/take return what is there when fewer bytes have arrived."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(b"AMQ")
    assert reader.peek(8) == b"AMQ"
    assert type(reader.peek(8)) is bytes
    assert reader.take(8) == b"AMQ"
    assert reader.pending() == 0
    assert reader.take(8) == b""
    reader.feed(b"P\x00\x00\x09\x01")
    assert reader.peek(8) == b"P\x00\x00\x09\x01"


def test_pending_counts_partial_frames():
    """Spec §4.2.3: bytes of an incomplete frame stay pending."""
    data, want = mixed_stream()
    reader = FrameReader(FRAME_MAX)
    reader.feed(data + method_frame(1)[:5])
    assert drain(reader) == want
    assert reader.pending() == 5


# --- writer ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [method_frame(1), header_frame(300), body_frame(65535, b"b" * 1000),
                                 heartbeat_frame(), body_frame(1, b"")],
                         ids=["method", "header", "body", "heartbeat", "empty-body"])
def test_frame_writer_matches_pamqp(raw):
    """Spec §4.2.3: frame() writes type, channel, size, payload, 0xCE exactly as pamqp does."""
    ftype, channel, payload = expected(raw)
    assert frame(ftype, channel, payload) == raw


def test_frame_writer_round_trip_through_reader():
    """Spec §4.2.3: what frame() writes, FrameReader reads back."""
    frames = [(FRAME_METHOD, 0, b"\x00\x0a\x00\x33"), (FRAME_BODY, 12, bytes(range(256))), (FRAME_HEARTBEAT, 0, b"")]
    reader = FrameReader(FRAME_MAX)
    reader.feed(b"".join(frame(*f) for f in frames))
    assert drain(reader) == frames
