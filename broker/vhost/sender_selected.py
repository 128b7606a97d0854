"""Sender-selected distribution: the ``CC`` and ``BCC`` message headers
(https://www.rabbitmq.com/sender-selected.html).

When a message carries ``CC`` and/or ``BCC`` headers whose values are
arrays of long strings, each string is an extra routing key: the message is
routed through the same exchange once per key (the publish routing key
first, then CC, then BCC) and every queue reached gets it once. ``BCC`` is
removed from the headers the queues deliver; ``CC`` stays. A CC or BCC
header that is not an array closes the channel with 406 PRECONDITION_FAILED
"invalid message: {unacceptable_type_in_header,"CC",longstr}", as RabbitMQ
3.10 does (rabbit_basic:header_routes/1); array elements that are not
strings are skipped (RabbitMQ routes with the string ones only).
"""

from __future__ import annotations

import datetime
import decimal
import logging
from typing import TYPE_CHECKING

from broker.exchanges.routing import route_message_keys
from broker.queues.dead_letter import routing_header_keys
from broker.model.message_headers import headers_or_none, set_headers
from protocol import reply_codes
from protocol.errors import channel_error

if TYPE_CHECKING:
    from broker.exchanges import Exchange
    from broker.model.message import Message

log = logging.getLogger(__name__)


def _type_name(value) -> str:
    """RabbitMQ's name for the AMQP field type of a decoded header value
    (an integer is named by its size, as pika and most clients encode it)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -(1 << 31) <= value < (1 << 31) else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, (str, bytes, bytearray)):
        return "longstr"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, datetime.datetime):
        return "timestamp"
    return "void"


def _keys(name: str, value) -> list[str] | None:
    """The routing keys of one CC/BCC value (None: no such header). Raises
    406 when it is not an array (the element rules:
    broker/queues/dead_letter.routing_header_keys)."""
    if value is None:
        return None
    keys = routing_header_keys(value)
    if keys is None:
        raise channel_error(reply_codes.PRECONDITION_FAILED,
                            f'invalid message: {{unacceptable_type_in_header,"{name}",{_type_name(value)}}}')
    return keys


def extra_keys(message: "Message") -> list[str] | None:
    """The CC then BCC routing keys of ``message``, or None when it has
    neither; removes ``BCC`` from its headers (the content header is
    re-encoded). Cheap when the header bytes do not contain ``CC`` at all
    (the common case: no properties are decoded). Raises 406 (channel
    error) for a CC or BCC header that is not an array."""
    if b"\x02CC" not in message.header and b"\x03BCC" not in message.header:
        return None
    headers = headers_or_none(message)
    if headers is None:
        return None
    cc = _keys("CC", headers.get("CC"))
    bcc = _keys("BCC", headers.get("BCC"))
    if cc is None and bcc is None:
        return None
    if bcc is not None:
        headers = dict(headers)
        del headers["BCC"]
        set_headers(message, headers)
        message.bcc = bcc
    return (cc or []) + (bcc or [])


def route(vhost, exchange: "Exchange", message: "Message", keys: list[str],
          held: list | None = None) -> list:
    """The queues ``message`` reaches through ``exchange`` with its own
    routing key and each of ``keys``, each queue once, in order reached;
    ``held`` as for ``VHost.route``."""
    if exchange.name != "":
        out = route_message_keys(exchange, [message.routing_key, *keys], message.headers, vhost.exchanges.get,
                                 held)
    else:
        out = []
        for key in [message.routing_key, *keys]:
            queue = vhost.queues.get(key)
            if queue is not None and queue not in out:
                out.append(queue)
    log.debug("vhost '%s' exchange '%s': CC/BCC routed to %d queues", vhost.name, exchange.name, len(out))
    return out
