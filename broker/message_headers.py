"""Rewriting a message's ``headers`` property, for the few features that
change what the consumer receives: sender-selected distribution removes
``BCC`` (rabbitmq.com/sender-selected.html) and the delayed-message exchange
negates ``x-delay`` (rabbitmq-delayed-message-exchange,
rabbit_delayed_message_utils:swap_delay_header/1).

Everything else sends the publisher's content-header bytes back verbatim
(design.md); only these paths re-encode them, with pamqp.
"""

from __future__ import annotations

import struct

from pamqp.header import ContentHeader

from broker.message import Message

_BODY_SIZE = struct.Struct(">Q")


def set_headers(message: Message, headers: dict | None) -> None:
    """Replace the ``headers`` property of ``message`` (None removes it, {}
    leaves an empty table, as RabbitMQ does when BCC was the only header)
    and re-encode ``message.header``; the other properties and the body
    size are kept. Raises ValueError when the original header is
    malformed."""
    properties = message.properties
    properties.headers = headers
    body_size = _BODY_SIZE.unpack_from(message.header, 4)[0]
    message.header = ContentHeader(0, body_size, properties).marshal()
    message._properties = properties
