"""Decoding and encoding of the non-hot methods with pamqp
(AMQP 0-9-1 spec §4.2.4 method frame payload: class id, method id, arguments)."""

from __future__ import annotations

import struct

from pamqp import commands, frame as pamqp_frame
from pamqp.base import Frame as Method

from protocol import names as _names  # noqa: F401  (RabbitMQ's name rule for pamqp's constructors)
from protocol import reply_codes
from protocol.errors import connection_error
from protocol.wire_check import arguments_end

__all__ = ["Method", "decode_method", "encode_method", "method_ids"]

_IDS = struct.Struct(">HH")
#: each method class's argument types in wire order (pamqp's names)
_KINDS = {cls: tuple(cls.amqp_type(attr) for attr in cls.__slots__) for cls in commands.INDEX_MAPPING.values()}


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
        # pamqp checks no declared length against the bytes present (a
        # cut-short string comes out shorter, a table value is read from
        # the bytes after the table) and reports nothing of what it
        # consumed: the arguments are walked with every length checked
        # first, and must end where the payload ends
        if arguments_end(_KINDS[cls], args) != len(args):
            raise ValueError("arguments do not fill the method frame")
        method.unmarshal(args)
    except Exception as exc:  # pamqp raises struct.error, ValueError, OverflowError, UnicodeError
        error = connection_error(reply_codes.FRAME_ERROR, f"cannot decode {cls.name} arguments: {exc}")
        raise error.for_method(class_id, method_id) from None
    return method


def encode_method(channel: int, method: Method) -> bytes:
    """A pamqp method object -> one complete method frame for ``channel``."""
    return pamqp_frame.marshal(method, channel)
