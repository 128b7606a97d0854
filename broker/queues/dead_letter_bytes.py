"""The dead-lettered copy's content header built as bytes, for the common
case of a message's first death (rabbitmq.com/dlx.html; RabbitMQ 3.10
rabbit_dead_letter:make_msg and update_x_death_header).

A message that has no ``x-death`` yet gets, appended to its headers table
(the publisher's other headers stay byte for byte, with their field types),
``x-death`` = [{count: 1 (long), exchange, [original-expiration,] queue,
reason, routing-keys, time (timestamp, whole seconds)}] with the entry's
fields in sorted order (rabbit_misc:sort_field_table), then
``x-first-death-exchange``, ``x-first-death-queue`` and
``x-first-death-reason``; the ``expiration`` property is removed. This is
what broker/queues/dead_letter.py's pamqp path builds (there the whole table is
re-encoded, sorted); a later death, or a message with CC/BCC headers, still
goes that way.
"""

from __future__ import annotations

import functools
import struct

from broker.model.message_headers import expiration_of, splice_headers

_U32 = struct.Struct(">I")
_COUNT_ONE = b"\x05countl" + struct.pack(">q", 1)
_TIME = struct.Struct(">Q")


def _longstr_field(name: bytes, value: bytes) -> bytes:
    """One field-table entry: short-string name, 'S', long string."""
    return bytes((len(name),)) + name + b"S" + _U32.pack(len(value)) + value


@functools.lru_cache(maxsize=1024)
def _constant_parts(reason: str, queue: str, exchange: str) -> tuple[bytes, bytes, bytes]:
    """The parts of the x-death entry and first-death headers that depend
    only on (reason, queue, exchange): count + exchange, queue + reason,
    and the three ``x-first-death-*`` entries."""
    reason_b, queue_b, exchange_b = reason.encode(), queue.encode(), exchange.encode()
    head = _COUNT_ONE + _longstr_field(b"exchange", exchange_b)
    middle = _longstr_field(b"queue", queue_b) + _longstr_field(b"reason", reason_b)
    first = (_longstr_field(b"x-first-death-exchange", exchange_b) + _longstr_field(b"x-first-death-queue", queue_b)
             + _longstr_field(b"x-first-death-reason", reason_b))
    return head, middle, first


def first_death_header(header: bytes, reason: str, queue: str, exchange: str, routing_key: str,
                       now_s: int) -> bytes | None:
    """The content header payload of the dead-lettered copy of a message
    with content header ``header``, published to ``exchange`` with
    ``routing_key``, leaving ``queue`` for ``reason`` at Unix time
    ``now_s`` (seconds). None when this fast path does not apply: the
    header mentions ``x-death``, ``x-first-death`` or ``CC`` (so BCC too),
    or is malformed."""
    if b"x-death" in header or b"x-first-death" in header or b"CC" in header:
        return None
    head, middle, first = _constant_parts(reason, queue, exchange)
    key = routing_key.encode()
    keys = b"S" + _U32.pack(len(key)) + key
    expiration = expiration_of(header)
    entry = b"".join((head, b"" if expiration is None else _longstr_field(b"original-expiration", expiration),
                      middle, b"\x0crouting-keysA", _U32.pack(len(keys)), keys, b"\x04timeT", _TIME.pack(now_s)))
    x_death = b"\x07x-deathA" + _U32.pack(5 + len(entry)) + b"F" + _U32.pack(len(entry)) + entry
    return splice_headers(header, x_death + first, drop_expiration=True)
