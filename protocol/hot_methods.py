"""struct fast paths for the methods on the message path (docs/architecture.md,
"Performance principles"): basic.publish, the content header, basic.ack,
basic.nack and basic.reject are decoded here, basic.deliver, basic.get-ok and
basic.return are encoded here. Field layouts are AMQP 0-9-1 spec §1.8.3
(class basic) and §4.2.6 (content header)."""

from __future__ import annotations

import struct

from protocol import reply_codes
from protocol.constants import FRAME_BODY
from protocol.errors import connection_error

_FRAME_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">HHQ")
_TAG_BITS = struct.Struct(">QB")
#: the end octet of one frame and the head of the next: end, type, channel, size
_END_HEAD = struct.Struct(">BBHI")
_DELIVER_CM = b"\x00\x3c\x00\x3c"
_GET_OK_CM = b"\x00\x3c\x00\x47"
_RETURN_CM = b"\x00\x3c\x00\x32"


def _decode_error(what: str) -> Exception:
    """RabbitMQ answers undecodable frames with 501 FRAME_ERROR "cannot decode"."""
    return connection_error(reply_codes.FRAME_ERROR, f"cannot decode {what}")


def decode_publish(payload: bytes) -> tuple[str, str, bool, bool]:
    """basic.publish payload (class/method ids included) ->
    ``(exchange, routing_key, mandatory, immediate)``.

    Raises AMQPError 501 FRAME_ERROR when truncated or not UTF-8.
    """
    try:
        n = payload[6]
        exchange = payload[7:7 + n]
        o = 7 + n
        m = payload[o]
        routing_key = payload[o + 1:o + 1 + m]
        bits = payload[o + 1 + m]
        return exchange.decode(), routing_key.decode(), bool(bits & 1), bool(bits & 2)
    except (IndexError, UnicodeDecodeError):
        raise _decode_error("basic.publish") from None


def decode_content_header(payload: bytes) -> tuple[int, int]:
    """Content header payload -> ``(class_id, body_size in bytes)``.
    Raises AMQPError 501 when shorter than the 14 fixed bytes."""
    if len(payload) < 14:
        raise _decode_error("content header")
    class_id, _weight, body_size = _CONTENT_HEAD.unpack_from(payload, 0)
    return class_id, body_size


def decode_tag_bits(payload: bytes, what: str) -> tuple[int, int]:
    """basic.ack / basic.nack / basic.reject payload ->
    ``(delivery_tag, bits)``: ack bit0 = multiple; nack bit0 = multiple,
    bit1 = requeue; reject bit0 = requeue. Raises AMQPError 501."""
    try:
        return _TAG_BITS.unpack_from(payload, 4)
    except struct.error:
        raise _decode_error(what) from None


def shortstr(value: str) -> bytes:
    """AMQP short string: length octet + UTF-8 bytes (at most 255)."""
    data = value.encode()
    return bytes((len(data),)) + data


def deliver_prefix(consumer_tag: str) -> bytes:
    """The constant part of every basic.deliver to one consumer: class and
    method ids and the consumer tag. Built once per consumer."""
    return _DELIVER_CM + shortstr(consumer_tag)


def content_frames(channel: int, header: bytes, body: bytes, frame_max: int) -> bytes:
    """Content header frame (the publisher's header payload, verbatim) and the
    body split into frames of at most ``frame_max`` bytes."""
    head = _FRAME_HEAD.pack(2, channel, len(header)) + header + b"\xce"
    size = len(body)
    if size == 0:
        return head
    chunk = frame_max - 8
    if size <= chunk:
        return head + _FRAME_HEAD.pack(3, channel, size) + body + b"\xce"
    parts = [head]
    for start in range(0, size, chunk):
        piece = body[start:start + chunk]
        parts.append(_FRAME_HEAD.pack(FRAME_BODY, channel, len(piece)))
        parts.append(piece)
        parts.append(b"\xce")
    return b"".join(parts)


class DeliverEncoder:
    """basic.deliver (spec §1.8.3.9) + content frames for one consumer on
    one channel, from a prefix built once: ``frames(...)`` returns the
    pieces of one delivery as a tuple of bytes, for the caller to join with
    the other deliveries of its loop pass (one write per pass). ``prefix``
    is ``deliver_prefix(consumer_tag)``; ``exchange_routing_key`` is
    ``shortstr(exchange) + shortstr(routing_key)``, built once per message;
    ``header`` goes out verbatim; a body longer than ``frame_max - 8``
    bytes is split into frames."""

    __slots__ = ("channel", "prefix", "_method", "_base")

    def __init__(self, channel: int, prefix: bytes):
        self.channel = channel
        self.prefix = prefix
        # frame head, class/method ids + consumer tag, delivery tag, redelivered
        self._method = struct.Struct(f">BHI{len(prefix)}sQB")
        self._base = len(prefix) + 9

    def frames(self, delivery_tag: int, redelivered: bool, exchange_routing_key: bytes, header: bytes,
               body: bytes, frame_max: int) -> tuple:
        """The pieces of one delivery, in order."""
        channel = self.channel
        method = self._method.pack(1, channel, self._base + len(exchange_routing_key), self.prefix,
                                   delivery_tag, redelivered)
        size = len(body)
        if not size:
            return method, exchange_routing_key, _END_HEAD.pack(206, 2, channel, len(header)), header, b"\xce"
        if size <= frame_max - 8:
            return (method, exchange_routing_key, _END_HEAD.pack(206, 2, channel, len(header)), header,
                    _END_HEAD.pack(206, 3, channel, size), body, b"\xce")
        return method, exchange_routing_key, b"\xce", content_frames(channel, header, body, frame_max)


def deliver_frames(channel: int, prefix: bytes, delivery_tag: int, redelivered: bool,
                   exchange_routing_key: bytes, header: bytes, body: bytes, frame_max: int) -> bytes:
    """basic.deliver + content frames as one bytes object (see DeliverEncoder)."""
    return b"".join(DeliverEncoder(channel, prefix).frames(delivery_tag, redelivered, exchange_routing_key,
                                                           header, body, frame_max))


def get_ok_frames(channel: int, delivery_tag: int, redelivered: bool, exchange_routing_key: bytes,
                  message_count: int, header: bytes, body: bytes, frame_max: int) -> bytes:
    """basic.get-ok (spec §1.8.3.11) + content frames."""
    args = _TAG_BITS.pack(delivery_tag, redelivered) + exchange_routing_key + struct.pack(">I", message_count)
    method = _FRAME_HEAD.pack(1, channel, 4 + len(args)) + _GET_OK_CM + args + b"\xce"
    return method + content_frames(channel, header, body, frame_max)


def return_frames(channel: int, reply_code: int, reply_text: str, exchange_routing_key: bytes,
                  header: bytes, body: bytes, frame_max: int) -> bytes:
    """basic.return (spec §1.8.3.8) + content frames."""
    args = struct.pack(">H", reply_code) + shortstr(reply_text) + exchange_routing_key
    method = _FRAME_HEAD.pack(1, channel, 4 + len(args)) + _RETURN_CM + args + b"\xce"
    return method + content_frames(channel, header, body, frame_max)


def delivery_mode(header: bytes) -> int:
    """The delivery-mode property (2 = persistent) of a content header
    payload, without decoding the other properties: it follows
    content-type, content-encoding and headers (spec §1.8, basic
    properties, in flag order). Returns 0 when absent; raises AMQPError 501
    when the header is truncated."""
    flags = header[12] << 8 | header[13]
    if not flags & 0x1000:
        return 0
    try:
        return header[_after_headers(header, flags)]
    except IndexError:
        raise _decode_error("content header") from None


def header_priority(header: bytes) -> int:
    """The priority property of a content header payload (0 when absent),
    without decoding the other properties: it follows content-type,
    content-encoding, headers and delivery-mode (spec §1.8, basic
    properties, in flag order). A truncated header counts as 0."""
    flags = header[12] << 8 | header[13]
    if not flags & 0x0800:
        return 0
    try:
        return header[_after_headers(header, flags) + (1 if flags & 0x1000 else 0)]
    except IndexError:
        return 0


def _after_headers(header: bytes, flags: int) -> int:
    """Offset of the first basic property after content-type,
    content-encoding and headers in a content header payload with property
    ``flags``. Raises IndexError when the header is truncated."""
    offset = 14
    if flags & 0x8000:
        offset += 1 + header[offset]
    if flags & 0x4000:
        offset += 1 + header[offset]
    if flags & 0x2000:
        offset += 4 + int.from_bytes(header[offset:offset + 4], "big")
    return offset
