"""Cutting AMQP frames out of a byte stream and writing them back
(AMQP 0-9-1 spec §2.3.5 "Frame Details", §4.2.3 "General Frame Format")."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from protocol import reply_codes
from protocol.constants import FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD
from protocol.errors import AMQPError, connection_error
from protocol.wire_check import check_content_header

_HEADER = struct.Struct(">BHI")
#: a content header frame's head and fixed fields: type, channel, size, class, weight, body size
_CONTENT = struct.Struct(">BHIHHQ")
_FRAME_TYPES = frozenset({FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT})
#: a partial frame at least this long is collected in a bytearray
_ACCUMULATE_AT = 1 << 16
#: the item type ``frames(runs=True)`` yields for a whole publish (not a frame type)
PUBLISH_RUN = -1


class FrameReader:
    """Incremental frame parser over a buffer and a read offset.

    ``feed(data)`` appends bytes; iterating ``frames()`` yields
    ``(frame_type, channel, payload: bytes)`` for every complete frame. The
    7-byte header is checked before the payload is buffered: a declared size
    above ``frame_max`` bytes (RabbitMQ's tolerance of 8 over the spec), an unknown frame type or a frame-end octet
    other than 0xCE raise AMQPError 501 FRAME_ERROR (spec §4.2.3).

    ``frames(runs=True)`` also recognises a whole publish (docs/architecture.md,
    "Performance principles"): a basic.publish method frame followed, on the
    same channel and already complete in the buffer, by a class-60 content
    header frame and then either nothing (body size 0) or exactly one body
    frame of the declared size. It comes as one item ``(PUBLISH_RUN,
    channel, (method_payload, header_payload, body))``; anything else
    (bodies over several frames, frames not yet arrived, a header of another
    class) comes frame by frame and meets the assembler's checks. Either
    way a content header whose properties do not decode is AMQPError 541
    (protocol/wire_check.check_content_header).

    The buffer is the received ``bytes`` object itself while it is small, so
    each payload is sliced out of it once, without a bytearray in between;
    a partial frame of 64 KiB or more is collected in a ``bytearray`` so
    that its pieces are not copied again on every read.
    """

    __slots__ = ("_buf", "_pos", "frame_max")

    def __init__(self, frame_max: int):
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self.frame_max = frame_max

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        buf = self._buf
        if self._pos:
            buf = buf[self._pos:]
            self._pos = 0
        if not buf:
            self._buf = data if type(data) is bytes else bytes(data)
        elif type(buf) is bytearray:
            buf += data
            self._buf = buf
        elif len(buf) >= _ACCUMULATE_AT:
            buf = bytearray(buf)
            buf += data
            self._buf = buf
        else:
            self._buf = buf + data

    def pending(self) -> int:
        """Bytes buffered but not yet returned as frames."""
        return len(self._buf) - self._pos

    def peek(self, count: int) -> bytes:
        """The next ``count`` raw bytes (or fewer), not consumed."""
        return bytes(self._buf[self._pos:self._pos + count])

    def take(self, count: int) -> bytes:
        """Remove and return the next ``count`` raw bytes (for the protocol
        header, which is not a frame)."""
        data = bytes(self._buf[self._pos:self._pos + count])
        self._pos += len(data)
        return data

    def frames(self, runs: bool = False) -> Iterator[tuple[int, int, Any]]:
        """Yield complete frames (and, with ``runs``, whole publishes); stop
        at the first incomplete frame."""
        buf = self._buf
        copy = type(buf) is not bytes  # bytearray slices must become bytes
        runs = runs and not copy
        unpack = _HEADER.unpack_from
        content = _CONTENT.unpack_from
        # RabbitMQ lets the payload reach frame_max (8 bytes over the spec's
        # limit) because many clients count frame_max as payload size
        limit = self.frame_max
        total = len(buf)
        try:
            while True:
                pos = self._pos
                avail = total - pos
                if avail < 7:
                    return
                frame_type, channel, size = unpack(buf, pos)
                if frame_type not in _FRAME_TYPES or size > limit or (
                        frame_type == FRAME_METHOD and size < 4) or (frame_type == FRAME_HEARTBEAT and size):
                    raise _header_error(frame_type, size, limit)
                end = pos + 7 + size
                if avail < 8 + size:
                    return
                if buf[end] != FRAME_END:
                    raise connection_error(
                        reply_codes.FRAME_ERROR, f"frame end octet {buf[end]:#04x}, expected 0xce")
                if runs and frame_type == FRAME_METHOD and buf[pos + 8] == 60 and buf[pos + 10] == 40 \
                        and buf[pos + 7] == 0 and buf[pos + 9] == 0 and total - end >= 23:
                    # basic.publish: are its content header and body here too?
                    h_type, h_channel, h_size, class_id, _weight, body_size = content(buf, end + 1)
                    h_end = end + 8 + h_size
                    if (h_type == FRAME_HEADER and h_channel == channel and 14 <= h_size <= limit
                            and class_id == 60 and h_end < total and buf[h_end] == FRAME_END):
                        check_content_header(buf[end + 8:h_end])
                        if not body_size:
                            self._pos = h_end + 1
                            yield PUBLISH_RUN, channel, (buf[pos + 7:end], buf[end + 8:h_end], b"")
                            continue
                        b_end = h_end + 8 + body_size
                        if b_end < total and body_size <= limit:
                            b_type, b_channel, b_size = unpack(buf, h_end + 1)
                            if (b_type == FRAME_BODY and b_channel == channel and b_size == body_size
                                    and buf[b_end] == FRAME_END):
                                self._pos = b_end + 1
                                yield PUBLISH_RUN, channel, (buf[pos + 7:end], buf[end + 8:h_end],
                                                             buf[h_end + 8:b_end])
                                continue
                self._pos = end + 1
                yield frame_type, channel, bytes(buf[pos + 7:end]) if copy else buf[pos + 7:end]
        finally:
            pos = self._pos
            if pos:
                # keep only the partial frame at the end (the next feed appends to it)
                self._buf = buf[pos:] if pos < len(buf) else b""
                self._pos = 0


def _header_error(frame_type: int, size: int, limit: int) -> AMQPError:
    """501 FRAME_ERROR for a frame header that is wrong before its payload is read."""
    if frame_type not in _FRAME_TYPES:
        return connection_error(reply_codes.FRAME_ERROR, f"unknown frame type {frame_type}")
    if size > limit:
        return connection_error(
            reply_codes.FRAME_ERROR,
            f"type {frame_type}, {size} byte frame payload is larger than negotiated maximum {limit}")
    return connection_error(reply_codes.FRAME_ERROR, f"type {frame_type}, {size} byte payload: unknown_frame")


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """One frame as bytes: header, payload, frame-end."""
    return _HEADER.pack(frame_type, channel, len(payload)) + payload + b"\xce"
