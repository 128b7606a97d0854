"""Decoding and encoding of the non-hot methods with pamqp
(AMQP 0-9-1 spec §4.2.4 method frame payload: class id, method id, arguments)."""

from __future__ import annotations

import struct

from pamqp import commands, frame as pamqp_frame
from pamqp.base import Frame as Method

from protocol import reply_codes
from protocol.errors import connection_error

__all__ = ["Method", "decode_method", "encode_method", "method_ids"]

_IDS = struct.Struct(">HH")
_HAS_TABLE = frozenset(cls for cls in commands.INDEX_MAPPING.values()
                       if any(cls.amqp_type(attr) == "table" for attr in cls.__slots__))


def method_ids(payload: bytes) -> tuple[int, int]:
    """``(class_id, method_id)`` of a method frame payload; 502 when shorter
    than 4 bytes."""
    if len(payload) < 4:
        raise connection_error(reply_codes.SYNTAX_ERROR, "method frame shorter than 4 bytes")
    return _IDS.unpack_from(payload, 0)


def decode_method(payload: bytes) -> Method:
    """A method frame payload -> a pamqp method object (e.g.
    ``commands.Queue.Declare``).

    Raises AMQPError 540 NOT_IMPLEMENTED for an unknown class/method and 501
    FRAME_ERROR for arguments that do not decode (as RabbitMQ does).
    """
    class_id, method_id = method_ids(payload)
    cls = commands.INDEX_MAPPING.get(class_id << 16 | method_id)
    if cls is None:
        error = connection_error(reply_codes.NOT_IMPLEMENTED, f"unknown method {class_id}.{method_id}")
        raise error.for_method(class_id, method_id)
    method = cls()
    args = payload[4:]
    try:
        method.unmarshal(args)
        # pamqp neither checks string lengths against the bytes present nor
        # reports what it consumed; re-encoding tells, except for field
        # tables (a client may pick wider integer types than pamqp does)
        if cls not in _HAS_TABLE and _encoded_length(method) != len(args):
            raise ValueError("arguments do not match their encoded length")
    except Exception as exc:  # pamqp raises struct.error, ValueError, IndexError, UnicodeError
        error = connection_error(reply_codes.FRAME_ERROR, f"cannot decode {cls.name} arguments: {exc}")
        raise error.for_method(class_id, method_id) from None
    return method


_FIXED = {"octet": 1, "short": 2, "long": 4, "longlong": 8, "timestamp": 8}


def _encoded_length(method: Method) -> int:
    """Bytes the decoded arguments occupy on the wire (table-less methods)."""
    total = bits = 0
    for attr in method.__slots__:
        kind = method.amqp_type(attr)
        if kind == "bit":
            bits += 1
            continue
        total += (bits + 7) // 8
        bits = 0
        value = getattr(method, attr)
        if kind in _FIXED:
            total += _FIXED[kind]
        else:
            raw = value.encode() if isinstance(value, str) else (value or b"")
            total += (1 if kind == "shortstr" else 4) + len(raw)
    return total + (bits + 7) // 8


def encode_method(channel: int, method: Method) -> bytes:
    """A pamqp method object -> one complete method frame for ``channel``."""
    return pamqp_frame.marshal(method, channel)
