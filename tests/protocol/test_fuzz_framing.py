"""Fuzzing protocol/framing.FrameReader and protocol/assembler with
Hypothesis (issue 15): any byte stream, cut anywhere, only ever yields
frames or raises the protocol's error type (AMQPError, with a reply code);
what the reader buffers stays under one frame; valid streams come back
frame for frame however they are cut; the assembler holds at most the
declared body size, itself at most max_size."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands
from pamqp import frame as pframe
from pamqp.header import ContentHeader

from protocol.assembler import ContentAssembler
from protocol.constants import FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD
from protocol.errors import AMQPError
from protocol.framing import PUBLISH_RUN, FrameReader, frame
from tests.protocol.fuzz_strategies import FUZZ, client_methods, mutated, properties

FRAME_MAX = 4096

frames = st.one_of(
    st.tuples(st.just(FRAME_METHOD), st.integers(0, 65535), st.binary(min_size=4, max_size=200)),
    st.tuples(st.just(FRAME_HEADER), st.integers(0, 65535), st.binary(max_size=200)),
    st.tuples(st.just(FRAME_BODY), st.integers(0, 65535), st.binary(max_size=FRAME_MAX - 8)),
    st.tuples(st.just(FRAME_HEARTBEAT), st.just(0), st.just(b"")),
)


def publish_frames(channel: int, body: bytes, props: commands.Basic.Properties) -> bytes:
    return (pframe.marshal(commands.Basic.Publish(exchange="x", routing_key="k"), channel)
            + pframe.marshal(ContentHeader(0, len(body), props), channel)
            + (frame(FRAME_BODY, channel, body) if body else b""))


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in pieces at ``points`` (fractions of its length in 1/1000)."""
    offsets = sorted({len(data) * p // 1000 for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


def read_all(chunks: list[bytes], runs: bool) -> list:
    """Feed ``chunks`` one by one; the frames read, or the AMQPError met.
    Checks after every chunk that less than one frame is left buffered."""
    reader = FrameReader(FRAME_MAX)
    out = []
    for chunk in chunks:
        reader.feed(chunk)
        try:
            for item in reader.frames(runs):
                out.append(item)
        except AMQPError as error:
            assert 300 <= error.reply_code < 600
            return out + [error]
        assert reader.pending() < 8 + FRAME_MAX
    return out


@FUZZ
@given(st.lists(frames, max_size=12), st.lists(st.integers(0, 1000), max_size=20))
def test_valid_frames_come_back_however_cut(items, points):
    stream = b"".join(frame(*item) for item in items)
    assert read_all(cut(stream, points), runs=False) == list(items)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=300), mutated(st.builds(frame, st.sampled_from(
    [FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT]), st.integers(0, 3), st.binary(max_size=100)))),
    max_size=8), st.booleans())
def test_any_bytes_give_frames_or_amqp_error(chunks, runs):
    read_all(chunks, runs)


@FUZZ
@given(st.lists(st.tuples(st.integers(1, 3), st.binary(max_size=300), properties), min_size=1, max_size=4),
       st.lists(st.integers(0, 1000), max_size=6))
def test_publish_runs_are_the_frames_they_replace(publishes, points):
    """A whole publish read as one PUBLISH_RUN carries exactly the payloads
    the same bytes give frame by frame."""
    stream = b"".join(publish_frames(*publish) for publish in publishes)
    for chunks in (cut(stream, points), [stream]):
        by_frame = [item[2] for item in read_all(chunks, runs=False)]
        as_runs = []
        for kind, _channel, payload in read_all(chunks, runs=True):
            as_runs.extend(p for p in payload if p) if kind == PUBLISH_RUN else as_runs.append(payload)
        assert [p for p in by_frame if p] == as_runs


@FUZZ
@given(st.lists(st.tuples(st.integers(1, 3), st.binary(max_size=300), properties), min_size=1, max_size=3),
       st.data())
def test_mutated_publish_streams_give_frames_or_amqp_error(publishes, data):
    stream = b"".join(publish_frames(*publish) for publish in publishes)
    mutant = data.draw(mutated(st.just(stream)))
    points = data.draw(st.lists(st.integers(0, 1000), max_size=6))
    read_all(cut(mutant, points), runs=True)
    read_all(cut(mutant, points), runs=False)


operations = st.lists(st.one_of(
    st.tuples(st.just("method"), st.binary(min_size=4, max_size=20)),
    st.tuples(st.just("header"), st.one_of(
        st.binary(max_size=40),
        st.builds(lambda size, props: ContentHeader(0, size, props).marshal(), st.integers(0, 2**64 - 1),
                  properties),
        st.builds(lambda size, cls: struct.pack(">HHQH", cls, 0, size, 0), st.integers(0, 5000),
                  st.sampled_from([60, 50])))),
    st.tuples(st.just("body"), st.binary(max_size=700)),
    st.tuples(st.just("reset"), st.just(b"")),
), max_size=20)


@FUZZ
@given(operations, st.integers(1, 3000))
def test_assembler_takes_any_order_and_holds_at_most_max_size(ops, max_size):
    assembler = ContentAssembler(max_size)
    for op, payload in ops:
        try:
            if op == "method":
                assembler.start(payload)
            elif op == "header":
                done = assembler.on_header(payload)
                assert done is None or done[2] == b""
            elif op == "body":
                done = assembler.on_body(payload)
                if done is not None:
                    assert len(done[2]) <= max_size
            else:
                assembler.reset()
        except AMQPError as error:
            assert 300 <= error.reply_code < 600
            assembler.reset()  # what closing the channel or connection does
        assert assembler.received <= max_size or assembler.state != 2
        assert sum(map(len, assembler.chunks)) <= max_size


@FUZZ
@given(client_methods, st.integers(0, 65535))
def test_method_frames_read_back(method, channel):
    data = pframe.marshal(method, channel)
    [(kind, number, payload)] = read_all([data], runs=True)
    assert (kind, number, payload) == (FRAME_METHOD, channel, data[7:-1])
