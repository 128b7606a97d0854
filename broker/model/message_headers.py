"""Reading and rewriting a message's content-header bytes.

The publisher's content header is sent back verbatim (docs/architecture.md, "Performance principles"); a few
features change what the consumer receives: sender-selected distribution
removes ``BCC`` (rabbitmq.com/sender-selected.html), the delayed-message
exchange negates ``x-delay`` (rabbitmq-delayed-message-exchange,
rabbit_delayed_message_utils:swap_delay_header/1), dead-lettering adds
``x-death`` and drops ``expiration`` (broker/queues/dead_letter_bytes.py).

``set_headers`` re-encodes with pamqp; ``property_offset`` and
``expiration_of`` walk the property list with plain indexing, and
``splice_headers`` rewrites the header bytes without decoding the
properties (AMQP 0-9-1 spec §4.2.6.1 content header, §1.8 basic
properties in flag order).
"""

from __future__ import annotations

import struct

from pamqp.header import ContentHeader

from broker.model.message import Message

_BODY_SIZE = struct.Struct(">Q")
_U32 = struct.Struct(">I")

#: basic property flag bits (spec §1.8 class basic, in flag order)
HEADERS, DELIVERY_MODE, EXPIRATION, USER_ID = 0x2000, 0x1000, 0x0100, 0x0010
#: (flag, kind) of every basic property in order: s shortstr, t table,
#: o octet, q 64-bit timestamp
_LAYOUT = ((0x8000, "s"), (0x4000, "s"), (HEADERS, "t"), (DELIVERY_MODE, "o"), (0x0800, "o"), (0x0400, "s"),
           (0x0200, "s"), (EXPIRATION, "s"), (0x0080, "s"), (0x0040, "q"), (0x0020, "s"), (USER_ID, "s"),
           (0x0008, "s"), (0x0004, "s"))


# The property flags are the 16-bit field at offset 12 of a content header
# payload (class 2, weight 2, body size 8; spec §4.2.6.1): EXPIRATION is the
# low bit of byte 12, DELIVERY_MODE bit 4 of byte 12, USER_ID bit 4 of byte 13.
# These three tests are on the publish and enqueue paths, hence the plain
# byte indexing (a pamqp decode costs microseconds).

def has_expiration(header: bytes) -> bool:
    """True when the content header payload ``header`` carries the
    ``expiration`` property (per-message TTL, rabbitmq.com/ttl.html)."""
    return len(header) > 12 and header[12] & 0x01 != 0


def has_delivery_mode(header: bytes) -> bool:
    """True when ``header`` carries the ``delivery-mode`` property (a
    persistent message has it set to 2: protocol.hot_methods.delivery_mode)."""
    return header[12] & 0x10 != 0


def has_user_id(header: bytes) -> bool:
    """True when ``header`` carries the ``user-id`` property (checked
    against the connection's user, rabbitmq.com/validated-user-id.html)."""
    return header[13] & 0x10 != 0


def has_publish_checked_property(header: bytes) -> bool:
    """``has_expiration(header) or has_user_id(header)`` in one call: a
    property basic.publish must check before routing (406 for an invalid
    expiration or a foreign user-id), so the route cache's fast path
    (broker/session/route_cache.py) leaves the message to the general path."""
    return (header[12] << 8 | header[13]) & _PUBLISH_CHECKED != 0


_PUBLISH_CHECKED = EXPIRATION | USER_ID


def headers_or_none(message: Message) -> dict | None:
    """The ``headers`` table of ``message``, or None when it has none or its
    properties do not decode (the features that look at a header then act
    as if it were absent; a malformed header is the publisher's to answer
    for, not theirs)."""
    try:
        return message.headers() or None
    except ValueError:
        return None


def set_headers(message: Message, headers: dict | None) -> None:
    """Replace the ``headers`` property of ``message`` (None removes it, {}
    leaves an empty table, as RabbitMQ does when BCC was the only header)
    and re-encode ``message.header``; the other properties and the body
    size are kept. Raises ValueError when the original header is
    malformed."""
    properties = message.properties
    properties.headers = headers
    body_size = _BODY_SIZE.unpack_from(message.header, 4)[0]
    message.header = ContentHeader(0, body_size, properties).marshal()
    message._properties = properties


def property_offset(header: bytes, flag: int) -> int:
    """Offset in the content header payload ``header`` where the basic
    property ``flag`` starts (or would be inserted when absent). Raises
    IndexError when the header is truncated before it."""
    flags = header[12] << 8 | header[13]
    offset = 14
    for bit, kind in _LAYOUT:
        if bit == flag:
            return offset
        if flags & bit:
            if kind == "s":
                offset += 1 + header[offset]
            elif kind == "t":
                offset += 4 + _U32.unpack_from(header, offset)[0]
            else:
                offset += 1 if kind == "o" else 8
    raise ValueError(f"no basic property flag {flag:#06x}")


def expiration_of(header: bytes) -> bytes | None:
    """The raw ``expiration`` property (a short string) of a content header
    payload, or None when absent or truncated; no pamqp decoding."""
    if len(header) < 14 or not has_expiration(header):
        return None
    try:
        offset = property_offset(header, EXPIRATION)
        end = offset + 1 + header[offset]
    except (IndexError, struct.error):
        return None
    return header[offset + 1:end] if end <= len(header) else None


def splice_headers(header: bytes, entries: bytes, drop_expiration: bool) -> bytes | None:
    """A copy of the content header payload ``header`` whose headers table
    gets the encoded field-table ``entries`` (name + type + value, each)
    appended, created when absent; with ``drop_expiration`` the
    ``expiration`` property is removed. Everything else (other properties,
    the existing table entries with their original field types, body size)
    is kept byte for byte. None when the header is malformed (the caller
    falls back to a pamqp round trip)."""
    try:
        flags = header[12] << 8 | header[13]
        start = property_offset(header, HEADERS)
        if flags & HEADERS:
            old = _U32.unpack_from(header, start)[0]
            table_end = start + 4 + old
            table = header[start + 4:table_end]
        else:
            table_end, table = start, b""
        exp_start = exp_end = None
        if drop_expiration and flags & EXPIRATION:
            exp_start = property_offset(header, EXPIRATION)
            exp_end = exp_start + 1 + header[exp_start]
    except (IndexError, struct.error):
        return None
    if table_end > len(header) or (exp_end is not None and exp_end > len(header)):
        return None
    flags |= HEADERS
    parts = [header[:12], (flags & ~EXPIRATION if exp_start is not None else flags).to_bytes(2, "big"),
             header[14:start], _U32.pack(len(table) + len(entries)), table, entries]
    if exp_start is None:
        parts.append(header[table_end:])
    else:
        parts += (header[table_end:exp_start], header[exp_end:])
    return b"".join(parts)


#: bytes taken by a field value of a fixed-size type (AMQP 0-9-1 errata /
#: RabbitMQ field types, as pamqp.decode.TABLE_MAPPING reads them)
_FIXED = {ord(c): n for c, n in (("t", 1), ("b", 1), ("B", 1), ("s", 2), ("u", 2), ("I", 4), ("i", 4),
                                  ("l", 8), ("L", 8), ("f", 4), ("d", 8), ("D", 5), ("T", 8), ("V", 0),
                                  ("\x00", 0))}
#: long-string, array, table, byte array: a u32 length then that many bytes
_SIZED = frozenset(b"SAFx")
#: signed integer field types and their struct formats
_SIGNED = {ord("b"): ">b", ord("s"): ">h", ord("I"): ">i", ord("l"): ">q"}


def signed_int_field(header: bytes, name: bytes) -> tuple[int, int, str] | None:
    """The top-level entry ``name`` of the headers table of a content
    header payload, when it is a signed integer (field type b, s, I or l):
    ``(value, offset of the value, struct format)``; None when the headers
    have no such entry. Raises LookupError when the entry has another type
    or the table cannot be walked (the caller decodes with pamqp)."""
    if not header[12] & 0x20:
        return None
    try:
        offset = property_offset(header, HEADERS)
        end = offset + 4 + _U32.unpack_from(header, offset)[0]
        offset += 4
        while offset < end:
            key_end = offset + 1 + header[offset]
            key, kind = header[offset + 1:key_end], header[key_end]
            offset = key_end + 1
            if key == name:
                fmt = _SIGNED.get(kind)
                if fmt is None:
                    raise LookupError(f"{name!r} is of field type {chr(kind)!r}")
                return struct.unpack_from(fmt, header, offset)[0], offset, fmt
            size = _FIXED.get(kind)
            if size is None:
                if kind not in _SIZED:
                    raise LookupError(f"unknown field type {chr(kind)!r}")
                size = 4 + _U32.unpack_from(header, offset)[0]
            offset += size
    except (IndexError, struct.error):
        raise LookupError("malformed headers table") from None
    return None


def with_int_at(header: bytes, offset: int, fmt: str, value: int) -> bytes:
    """A copy of ``header`` with the integer at ``offset`` (from
    ``signed_int_field``) replaced by ``value`` in the same field type."""
    out = bytearray(header)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)
