"""The delayed-message exchange type ``x-delayed-message``, as the plugin
https://github.com/rabbitmq/rabbitmq-delayed-message-exchange defines it
(rabbit_exchange_type_delayed_message.erl, rabbit_delayed_message_utils.erl).

The exchange routes like the type named by its ``x-delayed-type`` argument
(direct, fanout, topic or headers): bindings, routing keys and binding
arguments mean what they mean there. What differs is *when*: a message
published with an ``x-delay`` header of more than 0 ms is held and routed
``x-delay`` ms after it was published (see broker/vhost/delayed_scheduler.py for
the holding, durability and timing). This module is the pure part: the
class, argument validation and reading ``x-delay``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from broker.exchanges.base import Exchange
from broker.exchanges.direct import DirectExchange
from broker.exchanges.fanout import FanoutExchange
from broker.exchanges.headers import HeadersExchange
from broker.exchanges.topic import TopicExchange
from protocol import reply_codes
from protocol.errors import channel_error, connection_error

#: the exchange types ``x-delayed-type`` may name
UNDERLYING_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange, "fanout": FanoutExchange, "topic": TopicExchange, "headers": HeadersExchange,
}

#: the plugin only delays up to Erlang's largest timer (ms); a longer
#: x-delay routes at once, as there
MAX_DELAY_MS = 4294967295

#: the plugin's text for a missing or non-string x-delayed-type (406)
MISSING_TYPE = "Invalid argument, 'x-delayed-type' must be an existing exchange type"


def underlying_type(arguments: dict) -> type[Exchange]:
    """The exchange class ``x-delayed-type`` names. Raises the AMQP error
    RabbitMQ with the plugin gives: 406 PRECONDITION_FAILED (channel) when
    the argument is missing or not a string, 503 COMMAND_INVALID
    (connection) "invalid exchange type" for an unknown type name."""
    name = arguments.get("x-delayed-type")
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).decode("utf-8", "replace")
    if not isinstance(name, str):
        raise channel_error(reply_codes.PRECONDITION_FAILED, MISSING_TYPE)
    cls = UNDERLYING_TYPES.get(name)
    if cls is None:
        if name == DelayedMessageExchange.type_name:
            raise channel_error(reply_codes.PRECONDITION_FAILED, MISSING_TYPE)
        raise connection_error(reply_codes.COMMAND_INVALID, f"invalid exchange type '{name}'")
    return cls


def delay_of(headers: dict | None) -> int | None:
    """The delay in ms asked for by the ``x-delay`` header, or None when the
    message is to be routed at once: no header, a value that is not a
    number (integer types; a numeric string or a float is converted, as the
    plugin's try_convert_to_int does), 0 or less, or above MAX_DELAY_MS."""
    if not headers:
        return None
    value = headers.get("x-delay")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return None
    elif isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = math.trunc(value)
    elif not isinstance(value, int):
        try:
            value = math.trunc(value)  # decimal.Decimal
        except (TypeError, ValueError, OverflowError):
            return None
    if 0 < value <= MAX_DELAY_MS:
        return value
    return None


class DelayedMessageExchange(Exchange):
    """An ``x-delayed-message`` exchange: routes exactly like an exchange of
    its ``x-delayed-type`` (held in ``inner``), and holds delayed messages
    in ``held`` (a broker.vhost.delayed_scheduler.DelayScheduler, created on first
    use by the broker; None until then)."""

    type_name = "x-delayed-message"
    delays = True

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        cls = underlying_type(arguments or {})
        self.inner = cls(name, durable, auto_delete, internal, arguments)
        self.needs_headers = cls.needs_headers  # before Exchange.__init__ reads it
        super().__init__(name, durable, auto_delete, internal, arguments)
        self.held = None

    def route(self, routing_key: str, get_headers) -> Collection:
        return self.inner.route(routing_key, get_headers)

    def _add(self, destination: Any, binding_key: str, arguments: dict) -> None:
        self.inner._add(destination, binding_key, arguments)

    def _remove(self, destination: Any, binding_key: str, arguments: dict) -> None:
        self.inner._remove(destination, binding_key, arguments)
