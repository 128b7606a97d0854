"""Reading queue arguments, consumer arguments and header values as clients
send them: AMQP field values decoded by pamqp (AMQP 0-9-1 spec §4.2.5.5
field tables). A long string arrives as ``str`` when it is valid UTF-8 and
as ``bytes`` otherwise; an integer may arrive as a bool, which RabbitMQ
never takes for a number (Erlang's ``true`` is not ``1``)."""

from __future__ import annotations


def integer(value) -> int | None:
    """``value`` when it is an integer field value (any size, not a bool),
    else None: how the broker reads ``x-message-ttl``, ``x-max-length``,
    ``x-priority``... (the declare-time checks, broker/queues/arguments.py,
    answer 406 for a wrong type before this is ever asked)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text(value):
    """A long-string field value as ``str``: ``bytes`` decoded as UTF-8
    (an undecodable byte becomes U+FFFD); anything else (``str``, None,
    another type) is returned unchanged."""
    return bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def printed(value) -> str:
    """``value`` as RabbitMQ prints it in its "inequivalent arg" errors (406
    PRECONDITION_FAILED on a re-declare): booleans as ``true`` / ``false``,
    anything else with ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
