"""Cutting AMQP frames out of a byte stream and writing them back
(AMQP 0-9-1 spec §2.3.5 "Frame Details", §4.2.3 "General Frame Format")."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from protocol import reply_codes
from protocol.constants import FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD
from protocol.errors import connection_error

_HEADER = struct.Struct(">BHI")
_FRAME_TYPES = frozenset({FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT})
#: compact the buffer once this many consumed bytes sit at its front
_COMPACT_AT = 1 << 16


class FrameReader:
    """Incremental frame parser over a ``bytearray`` and a read offset.

    ``feed(data)`` appends bytes; iterating ``frames()`` yields
    ``(frame_type, channel, payload: bytes)`` for every complete frame. The
    7-byte header is checked before the payload is buffered: a declared size
    above ``frame_max`` bytes (RabbitMQ's tolerance of 8 over the spec), an unknown frame type or a frame-end octet
    other than 0xCE raise AMQPError 501 FRAME_ERROR (spec §4.2.3).
    """

    __slots__ = ("_buf", "_pos", "frame_max")

    def __init__(self, frame_max: int):
        self._buf = bytearray()
        self._pos = 0
        self.frame_max = frame_max

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data

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

    def frames(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield complete frames; stop at the first incomplete one."""
        buf = self._buf
        unpack = _HEADER.unpack_from
        # RabbitMQ lets the payload reach frame_max (8 bytes over the spec's
        # limit) because many clients count frame_max as payload size
        limit = self.frame_max
        try:
            while True:
                pos = self._pos
                avail = len(buf) - pos
                if avail < 7:
                    return
                frame_type, channel, size = unpack(buf, pos)
                if frame_type not in _FRAME_TYPES:
                    raise connection_error(reply_codes.FRAME_ERROR, f"unknown frame type {frame_type}")
                if size > limit:
                    raise connection_error(
                        reply_codes.FRAME_ERROR,
                        f"type {frame_type}, {size} byte frame payload is larger than negotiated maximum "
                        f"{self.frame_max}")
                if (frame_type == FRAME_METHOD and size < 4) or (frame_type == FRAME_HEARTBEAT and size):
                    raise connection_error(reply_codes.FRAME_ERROR, f"type {frame_type}, {size} byte payload: unknown_frame")
                end = pos + 7 + size
                if avail < 8 + size:
                    return
                if buf[end] != FRAME_END:
                    raise connection_error(
                        reply_codes.FRAME_ERROR, f"frame end octet {buf[end]:#04x}, expected 0xce")
                self._pos = end + 1
                yield frame_type, channel, bytes(buf[pos + 7:end])
        finally:
            if self._pos >= _COMPACT_AT or self._pos == len(buf):
                # bytearray deletes from the front in O(1), so this is cheap
                del buf[:self._pos]
                self._pos = 0


def frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """One frame as bytes: header, payload, frame-end."""
    return _HEADER.pack(frame_type, channel, len(payload)) + payload + b"\xce"
