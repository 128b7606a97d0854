"""FrameReader.frames(runs=True): a basic.publish, its content header and
its single body frame, complete in the buffer on one channel, come as one
PUBLISH_RUN item; every other sequence comes frame by frame, so the
assembler still sees (and rejects) it (AMQP 0-9-1 spec §4.2.6, docs/architecture.md
"Performance principles")."""

from __future__ import annotations

import struct

import pytest
from pamqp import commands
from pamqp import frame as pframe

from protocol import reply_codes
from protocol.errors import AMQPError
from protocol.framing import PUBLISH_RUN, FrameReader
from tests.protocol.test_framing import FRAME_MAX, body_frame, expected, header_frame, method_frame


def publish(channel: int = 1, body: bytes = b"hello") -> bytes:
    frames = method_frame(channel) + header_frame(channel, len(body))
    return frames + body_frame(channel, body) if body else frames


def run_item(channel: int, body: bytes) -> tuple:
    """The PUBLISH_RUN item expected for ``publish(channel, body)``."""
    return (PUBLISH_RUN, channel, (expected(method_frame(channel))[2], expected(header_frame(channel, len(body)))[2],
                                   body))


def read(data: bytes, runs: bool = True, frame_max: int = FRAME_MAX) -> list:
    reader = FrameReader(frame_max)
    reader.feed(data)
    return list(reader.frames(runs))


def test_whole_publish_is_one_item():
    """Method + header + one body frame on one channel: one item, payloads exact."""
    assert read(publish(3) * 2) == [run_item(3, b"hello")] * 2


def test_empty_body_publish_is_one_item():
    """Spec §4.2.6: a body size of 0 means no body frame follows."""
    assert read(publish(1, b"") + publish(1)) == [run_item(1, b""), run_item(1, b"hello")]


def test_without_runs_frames_come_one_by_one():
    """frames() keeps its frame-by-frame contract unless asked for runs."""
    raws = [method_frame(1), header_frame(1, 5), body_frame(1)]
    assert read(b"".join(raws), runs=False) == [expected(r) for r in raws]


@pytest.mark.parametrize("raws", [
    [method_frame(1), header_frame(2, 5), body_frame(1)],              # header on another channel
    [method_frame(1), header_frame(1, 5), body_frame(2)],              # body on another channel
    [method_frame(1), header_frame(1, 5), body_frame(1, b"hel"), body_frame(1, b"lo")],  # split body
    [method_frame(1), body_frame(1), header_frame(1, 5)],              # body before header
    [method_frame(1), method_frame(1)],                                # no content at all
    [pframe.marshal(commands.Basic.Get(queue="q"), 1), header_frame(1, 5), body_frame(1)],  # not a publish
], ids=["header-channel", "body-channel", "split-body", "body-first", "two-methods", "not-publish"])
def test_other_sequences_come_frame_by_frame(raws):
    """Anything but the exact publish shape is left to the assembler (505 and friends)."""
    assert read(b"".join(raws)) == [expected(r) for r in raws]


def test_header_of_another_class_comes_frame_by_frame():
    """A content header for class 61 is the assembler's 505, so it is not joined."""
    head = bytearray(header_frame(1, 5))
    head[7:9] = struct.pack(">H", 61)
    raws = [method_frame(1), bytes(head), body_frame(1)]
    assert read(b"".join(raws)) == [expected(r) for r in raws]


def test_partial_publish_waits_then_continues():
    """A publish whose body has not arrived yet: the method frame comes alone
    (the assembler holds it), the rest once it is there."""
    data = publish(1)
    reader = FrameReader(FRAME_MAX)
    reader.feed(data[:-3])
    first = list(reader.frames(True))
    reader.feed(data[-3:])
    rest = list(reader.frames(True))
    assert first == [expected(method_frame(1)), expected(header_frame(1, 5))]
    assert rest == [expected(body_frame(1))]


def test_body_larger_than_frame_max_is_a_frame_error():
    """Spec §4.2.3: a body frame above frame_max is 501, runs or not."""
    body = b"x" * 200
    with pytest.raises(AMQPError) as info:
        read(publish(1, body), frame_max=128)
    assert info.value.reply_code == reply_codes.FRAME_ERROR


def test_bad_frame_end_after_a_publish_is_a_frame_error():
    """Spec §4.2.3: the frame-end octet of the body frame is checked too."""
    data = bytearray(publish(1))
    data[-1] = 0
    with pytest.raises(AMQPError) as info:
        read(bytes(data))
    assert info.value.reply_code == reply_codes.FRAME_ERROR


def test_big_frame_in_pieces_is_collected():
    """A frame over 64 KiB fed in small pieces comes out whole and intact."""
    body = bytes(range(256)) * 400
    reader = FrameReader(FRAME_MAX)
    data = publish(1, body)
    got = []
    for start in range(0, len(data), 1000):
        reader.feed(data[start:start + 1000])
        got += reader.frames(True)
    raws = [method_frame(1), header_frame(1, len(body)), body_frame(1, body)]
    assert got == [expected(r) for r in raws]
    assert reader.pending() == 0
