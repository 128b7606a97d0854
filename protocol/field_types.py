"""Field-table value types pamqp cannot be asked for directly.

pamqp encodes a Python int in a field table as the smallest AMQP integer
type that holds it (``b`` for 1). RabbitMQ sends some header values as a
64-bit signed ``l`` whatever their size (``count`` in ``x-death``,
rabbit_dead_letter.erl), and clients rely on it: Java and Spring code casts
``x-death[0].count`` to ``Long``. ``Long(1)`` is an int that encodes as ``l``.
"""

from __future__ import annotations

import pamqp.encode

_table_integer = pamqp.encode.table_integer


class Long(int):
    """An int encoded in field tables as AMQP ``long-long-int`` (``l``,
    signed 64 bits). Raises TypeError at encoding when out of range."""

    __slots__ = ()


def _table_integer_keeping_long(value: int) -> bytes:
    if type(value) is Long:
        return b"l" + pamqp.encode.long_long_int(value)
    return _table_integer(value)


# pamqp's encode_table_value looks table_integer up in its module at call
# time: this is the one place where Leveret changes how pamqp encodes.
pamqp.encode.table_integer = _table_integer_keeping_long
