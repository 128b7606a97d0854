"""Messages as the broker holds them: the publisher's content header bytes and
body, shared by every queue the message is routed to (docs/architecture.md,
"Performance principles")."""

from __future__ import annotations

import itertools

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from protocol.hot_methods import shortstr

_ids = itertools.count(1)


class Message:
    """One published message.

    ``header`` is the content header frame payload exactly as the publisher
    sent it (class, weight, body size, property flags and properties) and is
    sent back verbatim on delivery; ``body`` is the body bytes.
    ``stored`` is True once the message is in the WAL (persistent, routed
    to a durable queue), else None.
    ``exchange_routing_key`` is the two short strings as they appear in
    basic.deliver, built once (or passed in, as a slice of the publish). Properties are decoded only on first use of
    ``properties``.
    """

    __slots__ = ("id", "exchange", "routing_key", "exchange_routing_key", "header", "body", "_properties",
                 "stored", "bcc")

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes | None,
                 message_id: int | None = None, exchange_routing_key: bytes | None = None):
        self.id = next(_ids) if message_id is None else message_id
        #: True once persisted in the WAL, else None
        self.stored = None
        #: the BCC routing keys, removed from the headers at publish but
        #: still used when the message is dead-lettered (sender-selected.html);
        #: kept in memory only
        self.bcc: list | None = None
        self.exchange = exchange
        self.routing_key = routing_key
        self.exchange_routing_key = (shortstr(exchange) + shortstr(routing_key) if exchange_routing_key is None
                                     else exchange_routing_key)
        self.header = header
        self.body = body
        self._properties: Basic.Properties | None = None

    @property
    def properties(self) -> Basic.Properties:
        """The decoded basic properties (pamqp); raises ValueError when the
        header is malformed."""
        if self._properties is None:
            content_header = ContentHeader()
            content_header.unmarshal(self.header)
            self._properties = content_header.properties
        return self._properties

    def headers(self) -> dict | None:
        """The ``headers`` property (a field table) or None."""
        return self.properties.headers



def to_cold(message: Message) -> "tuple | Message":
    """What ``Queue.cold`` keeps of a transient message: the tuple
    ``(id, exchange, routing_key, exchange_routing_key, header, body)``.
    It holds only ints, strs and bytes, so the cyclic garbage collector
    untracks it after its first pass: a deep queue of transient messages
    then costs no object that every full collection walks (issue 4: 1M
    messages with TTLs must expire within 100 ms, and a full collection over
    two objects per message took 0.5 s). A message with BCC keys (a list)
    stays a Message."""
    if message.bcc is None:
        return (message.id, message.exchange, message.routing_key, message.exchange_routing_key,
                message.header, message.body)
    return message


def from_cold(item: tuple) -> Message:
    """The Message of a ``to_cold`` tuple (a new object, same id)."""
    return Message(item[1], item[2], item[4], item[5], item[0], item[3])


def cold_message_id(item) -> int:
    """The message id of an item of ``Queue.cold``: a stored message's id
    (negative: comes back redelivered), a ``to_cold`` tuple, a Message or a
    QueuedMessage."""
    kind = type(item)
    if kind is int:
        return -item if item < 0 else item
    if kind is tuple:
        return item[0]
    if kind is Message:
        return item.id
    return item.message.id


def cold_message(item) -> Message:
    """The Message of a ``Queue.cold`` item that is not a stored id."""
    kind = type(item)
    if kind is tuple:
        return from_cold(item)
    if kind is Message:
        return item
    return item.message


def continue_ids_after(message_id: int) -> None:
    """Make new message ids start above ``message_id`` (after recovery:
    WAL message ids must stay unique across restarts)."""
    global _ids
    _ids = itertools.count(message_id + 1)


class QueuedMessage:
    """A message's place in one queue: the shared ``message``, the queue's
    sequence number ``seq`` (original order, used to requeue in place), the
    ``redelivered`` flag (set once it was delivered and came back) and
    ``deliveries``, how many times this queue handed it out; ``deadline``:
    its TTL deadline in ms since the Unix epoch once handed out (0: none),
    kept for a requeue (broker/queues/lifecycle.py)."""

    __slots__ = ("message", "seq", "redelivered", "deliveries", "delivered_at", "deadline")

    def __init__(self, message: Message, seq: int, redelivered: bool = False):
        self.message = message
        self.seq = seq
        self.redelivered = redelivered
        self.deliveries = 1 if redelivered else 0
        #: event-loop time of the last delivery awaiting an ack (broker.session.consumer_timeout)
        self.delivered_at = 0.0
        self.deadline = 0
