"""Decoding AMQP content-header properties into the message database's
property columns (``schema.PROPERTY_COLUMNS``), headers as JSON.

``fast_properties`` reads the flag word, short strings, octets and the
timestamp with ``struct`` (docs/architecture.md, "Performance principles") and falls
back to pamqp's ``ContentHeader.unmarshal`` (``decode_properties``) for
anything unusual. Layout: AMQP 0-9-1 section 4.2.6.1 and the basic class
property list (flag bits 15..2).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import struct

from pamqp.decode import field_table
from pamqp.header import ContentHeader

def _json_default(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return repr(value)


_json_encode = json.JSONEncoder(default=_json_default, ensure_ascii=False,
                                separators=(",", ":")).encode


def headers_json(headers: dict | None) -> str | None:
    """The headers table as JSON text (see ``schema.py`` for the mapping of
    AMQP field types), or None for no headers."""
    if headers is None:
        return None
    return _json_encode(headers)


def decode_properties(header: bytes) -> tuple:
    """The 13 property columns (``schema.PROPERTY_COLUMNS`` order) decoded
    from an AMQP content-header payload with pamqp's
    ``ContentHeader().unmarshal``: the reference decoder, and the fallback
    of ``fast_properties``. Raises ValueError (or another pamqp/struct
    error) for a malformed header."""
    ch = ContentHeader()
    ch.unmarshal(header)
    p = ch.properties
    ts = p.timestamp
    if isinstance(ts, datetime.datetime):
        ts = int(ts.timestamp())
    return (p.message_id, p.correlation_id, p.content_type, p.content_encoding, p.message_type,
            p.app_id, p.user_id, ts, p.priority, p.expiration, p.delivery_mode, p.reply_to,
            headers_json(p.headers))


_FLAGS = struct.Struct(">H")
_U64 = struct.Struct(">Q")
# (flag bit, column index in PROPERTY_COLUMNS) in AMQP property order
_SHORT_FLAGS = ((0x8000, 2), (0x4000, 3))                                 # before headers
_MIDDLE_FLAGS = ((0x0400, 1), (0x0200, 11), (0x0100, 9), (0x0080, 0))
_LATE_FLAGS = ((0x0020, 4), (0x0010, 6), (0x0008, 5), (0x0004, None))    # None: cluster_id


class _Fallback(Exception):
    pass


def _short(data: bytes, p: int) -> tuple[str, int]:
    n = data[p]
    end = p + 1 + n
    if end > len(data):
        raise _Fallback
    return data[p + 1:end].decode("utf-8", "replace"), end


def fast_properties(header: bytes) -> tuple:
    """Same result as ``decode_properties`` for a well-formed header, about
    four times faster: the flag word, short strings, octets and the
    timestamp are read with ``struct`` (as docs/architecture.md, "Performance principles", asks of hot paths) and
    only the headers table goes through pamqp (``pamqp.decode.field_table``).
    Anything unusual (a second flag word, a truncated field) falls back to
    ``decode_properties``. Short strings that are not UTF-8 are decoded with
    replacement characters here instead of failing."""
    try:
        flags = _FLAGS.unpack_from(header, 12)[0]
        if flags & 1:
            raise _Fallback
        # columns: message_id, correlation_id, content_type, content_encoding, type,
        #          app_id, user_id, timestamp, priority, expiration, delivery_mode,
        #          reply_to, headers  (schema.PROPERTY_COLUMNS)
        out = [None] * 13
        p = 14
        for bit, col in _SHORT_FLAGS:
            if flags & bit:
                out[col], p = _short(header, p)
        if flags & 0x2000:
            n, table = field_table(header[p:])
            out[12] = headers_json(table)
            p += n
        if flags & 0x1000:
            out[10] = header[p]
            p += 1
        if flags & 0x0800:
            out[8] = header[p]
            p += 1
        for bit, col in _MIDDLE_FLAGS:
            if flags & bit:
                value, p = _short(header, p)
                out[col] = value
        if flags & 0x0040:
            ts = _U64.unpack_from(header, p)[0]
            out[7] = ts // 1000 if ts > 0xFFFFFFFF else ts     # as pamqp: large = ms
            p += 8
        for bit, col in _LATE_FLAGS:
            if flags & bit:
                value, p = _short(header, p)
                if col is not None:
                    out[col] = value
        if p != len(header):
            raise _Fallback
        return tuple(out)
    except (_Fallback, IndexError, struct.error, ValueError):
        return decode_properties(header)
