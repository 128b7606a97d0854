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


def method_ids(payload: bytes) -> tuple[int, int]:
    """``(class_id, method_id)`` of a method frame payload; 502 when shorter
    than 4 bytes."""
    if len(payload) < 4:
        raise connection_error(reply_codes.SYNTAX_ERROR, "method frame shorter than 4 bytes")
    return _IDS.unpack_from(payload, 0)


def decode_method(payload: bytes) -> Method:
    """A method frame payload -> a pamqp method object (e.g.
    ``commands.Queue.Declare``).

    Raises AMQPError 540 NOT_IMPLEMENTED for an unknown class/method and 502
    SYNTAX_ERROR for arguments that do not decode.
    """
    class_id, method_id = method_ids(payload)
    cls = commands.INDEX_MAPPING.get(class_id << 16 | method_id)
    if cls is None:
        error = connection_error(reply_codes.NOT_IMPLEMENTED, f"unknown method {class_id}.{method_id}")
        raise error.for_method(class_id, method_id)
    method = cls()
    try:
        method.unmarshal(payload[4:])
    except Exception as exc:  # pamqp raises struct.error, ValueError, IndexError, UnicodeError
        error = connection_error(reply_codes.SYNTAX_ERROR, f"cannot decode {cls.name}: {exc}")
        raise error.for_method(class_id, method_id) from None
    return method


def encode_method(channel: int, method: Method) -> bytes:
    """A pamqp method object -> one complete method frame for ``channel``."""
    return pamqp_frame.marshal(method, channel)
