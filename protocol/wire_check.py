"""Bounds checks of AMQP argument bytes before pamqp decodes them
(AMQP 0-9-1 spec §4.2.5 "Field Formats", §4.2.5.5 field tables, with
RabbitMQ's field value types: rabbitmq.com/amqp-0-9-1-errata.html#section_3).

pamqp decodes what it is given without checking that a declared length
fits the bytes present: a cut-short string comes out shorter, a value at
the end of a field table is read from the bytes after the table, and
what a method's arguments consumed is not reported. These functions walk
the same bytes with every length checked and return where the walk ends;
the callers (protocol/methods.py, the content header checks) then compare
that with the payload's length. They raise ValueError for anything that
does not fit, and never read past ``end``.
"""

from __future__ import annotations

from protocol import reply_codes
from protocol.errors import connection_error

#: fixed-size field value types (RabbitMQ's table types): tag -> size in bytes
#: (``\x00``: void, as pamqp reads it: seen in the wild)
_FIXED_VALUE = {b"t": 1, b"b": 1, b"B": 1, b"s": 2, b"u": 2, b"I": 4, b"i": 4, b"l": 8, b"L": 8,
                b"f": 4, b"d": 8, b"D": 5, b"T": 8, b"V": 0, b"\x00": 0}
#: method argument types (pamqp's names) of a fixed size in bytes
_FIXED_ARGUMENT = {"octet": 1, "short": 2, "long": 4, "longlong": 8, "timestamp": 8}
#: how deep tables and arrays may nest (RabbitMQ has no limit; Python's
#: recursion has one)
MAX_DEPTH = 64


def _length(data: bytes, offset: int, end: int, size: int) -> int:
    if offset + size > end:
        raise ValueError(f"length at {offset} runs past the end ({end})")
    return int.from_bytes(data[offset:offset + size], "big")


def short_string_end(data: bytes, offset: int, end: int) -> int:
    """End offset of the short string (length octet + bytes) at ``offset``."""
    stop = offset + 1 + _length(data, offset, end, 1)
    if stop > end:
        raise ValueError(f"short string at {offset} runs past the end ({end})")
    return stop


def long_string_end(data: bytes, offset: int, end: int) -> int:
    """End offset of the long string (4-byte length + bytes) at ``offset``."""
    stop = offset + 4 + _length(data, offset, end, 4)
    if stop > end:
        raise ValueError(f"long string at {offset} runs past the end ({end})")
    return stop


def table_end(data: bytes, offset: int, end: int, depth: int = 0) -> int:
    """End offset of the field table (4-byte size, then name/value pairs)
    at ``offset``: its size fits before ``end`` and its pairs fill it
    exactly."""
    stop = offset + 4 + _length(data, offset, end, 4)
    if stop > end:
        raise ValueError(f"field table at {offset} runs past the end ({end})")
    position = offset + 4
    while position < stop:
        key_end = short_string_end(data, position, stop)
        data[position + 1:key_end].decode()  # pamqp decodes keys strictly
        position = _value_end(data, key_end, stop, depth)
    return stop


def _array_end(data: bytes, offset: int, end: int, depth: int) -> int:
    stop = offset + 4 + _length(data, offset, end, 4)
    if stop > end:
        raise ValueError(f"field array at {offset} runs past the end ({end})")
    position = offset + 4
    while position < stop:
        position = _value_end(data, position, stop, depth)
    return stop


def _value_end(data: bytes, offset: int, end: int, depth: int) -> int:
    if offset >= end:
        raise ValueError(f"field value type missing at {offset}")
    tag = data[offset:offset + 1]
    offset += 1
    size = _FIXED_VALUE.get(tag)
    if size is not None:
        if offset + size > end:
            raise ValueError(f"field value {tag!r} at {offset} runs past the end ({end})")
        if tag == b"T":
            _timestamp(data, offset, end)
        return offset + size
    if tag == b"S" or tag == b"x":
        return long_string_end(data, offset, end)
    if depth >= MAX_DEPTH:
        raise ValueError(f"field tables nested deeper than {MAX_DEPTH}")
    if tag == b"F":
        return table_end(data, offset, end, depth + 1)
    if tag == b"A":
        return _array_end(data, offset, end, depth + 1)
    raise ValueError(f"unknown field value type {tag!r} at {offset - 1}")


def arguments_end(kinds: tuple[str, ...], data: bytes, offset: int = 0) -> int:
    """End offset of method arguments of pamqp ``kinds`` (``"octet"``,
    ``"shortstr"``, ``"table"``, ``"bit"``...) starting at ``offset``:
    consecutive bits share octets (spec §4.2.5.2)."""
    end = len(data)
    bits = 0
    for kind in kinds:
        if kind == "bit":
            if bits == 0:
                offset += 1
            bits = (bits + 1) % 8
            continue
        bits = 0
        size = _FIXED_ARGUMENT.get(kind)
        if size is not None:
            offset += size
        elif kind == "shortstr":
            offset = short_string_end(data, offset, end)
        elif kind == "longstr":
            offset = long_string_end(data, offset, end)
        elif kind == "table":
            offset = table_end(data, offset, end)
        else:
            raise ValueError(f"unknown argument type {kind!r}")
        if offset > end:
            raise ValueError(f"{kind} argument runs past the end ({end})")
    if offset > end:
        raise ValueError(f"bit arguments run past the end ({end})")
    return offset


#: basic properties in flag order (spec §1.8 class basic; flag bit 15 is
#: the first): the kind of each, "s" shortstr, "t" table, "o" octet, "T"
#: timestamp
_PROPERTY_KINDS = "sstoossssTssss"
#: flags of the properties that are octets (delivery-mode, priority)
_OCTETS = 0x1800
_TIMESTAMP_LIMIT = 253402300799  # 9999-12-31 in seconds: what Python's datetime holds
#: property flags -> the kinds of the properties present, in order
_PRESENT: dict[int, str] = {}


def _present(flags: int) -> str:
    kinds = _PRESENT.get(flags)
    if kinds is None:
        if flags & 0x3:
            raise ValueError(f"property flags {flags:#06x} name no basic property")
        kinds = _PRESENT[flags] = "".join(kind for bit, kind in enumerate(_PROPERTY_KINDS)
                                          if flags & (0x8000 >> bit))
    return kinds


def properties_end(header: bytes) -> int:
    """End offset of the basic properties of a content header payload
    (class, weight, body size, property flags, then the properties present:
    spec §4.2.6.1). Checks the lengths, that short strings and table keys
    are UTF-8 and that timestamps fit a date (pamqp decodes both strictly);
    a flag beyond the fourteen basic properties (or the continuation bit)
    raises ValueError too. On the publish path: a few hundred ns for the
    usual headers."""
    end = len(header)
    if end < 14:
        raise ValueError("content header shorter than 14 bytes")
    flags = header[12] << 8 | header[13]
    if not flags & ~_OCTETS:
        return 14 + (flags >> 12 & 1) + (flags >> 11 & 1)
    offset = 14
    for kind in _present(flags):
        if kind == "s":
            stop = offset + 1 + header[offset]  # IndexError past the end
            if stop > end:
                raise ValueError(f"short string at {offset} runs past the end ({end})")
            header[offset + 1:stop].decode()
            offset = stop
        elif kind == "o":
            offset += 1
        elif kind == "t":
            offset = table_end(header, offset, end)
        else:
            _timestamp(header, offset, end)
            offset += 8
    return offset


def _timestamp(data: bytes, offset: int, end: int) -> None:
    """A timestamp pamqp can turn into a datetime (it reads values past
    2**32 as milliseconds)."""
    value = _length(data, offset, end, 8)
    if value > 0xFFFFFFFF:
        value /= 1000
    if value > _TIMESTAMP_LIMIT:
        raise ValueError(f"timestamp {value} at {offset} is past the year 9999")


#: content headers already found good (publishers repeat theirs): at most
#: _GOOD_HEADERS_MAX of at most _GOOD_HEADER_SIZE bytes each
_GOOD_HEADERS: dict[bytes, None] = {}
_GOOD_HEADERS_MAX = 4096
_GOOD_HEADER_SIZE = 256


def check_content_header(header: bytes) -> None:
    """Raise AMQPError 541 INTERNAL_ERROR (a connection error, class and
    method 0: what RabbitMQ 3.10 answers) when the basic properties of a
    content header payload do not decode exactly to its end. The broker
    decodes properties only when it needs them (docs/architecture.md,
    "Performance principles"): this check at the door is what makes that
    later decoding safe."""
    if header in _GOOD_HEADERS:
        return
    try:
        good = properties_end(header) == len(header)
    except (ValueError, IndexError):
        good = False
    if not good:
        raise connection_error(reply_codes.INTERNAL_ERROR, "content header properties do not decode")
    if len(header) <= _GOOD_HEADER_SIZE:
        if len(_GOOD_HEADERS) >= _GOOD_HEADERS_MAX:
            _GOOD_HEADERS.clear()
        _GOOD_HEADERS[bytes(header)] = None
