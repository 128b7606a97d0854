"""``x-delivery-limit`` (rabbitmq.com/quorum-queues.html#poison-message-handling):
a message returned to its queue (rejected or nacked with requeue, or left
unacknowledged when its channel closed) more than the limit is
dead-lettered with reason ``delivery_limit`` (dropped without a DLX), and
each redelivery carries an ``x-delivery-count`` header with the number of
earlier returns, as quorum queues do."""

from __future__ import annotations

from pamqp.header import ContentHeader

from broker.model.message import Message


def over_limit(deliveries: int, limit: int | None) -> bool:
    """True when a message handed out ``deliveries`` times, now returned,
    has been returned more than ``limit`` times."""
    return limit is not None and deliveries > limit


def with_delivery_count(message: Message, count: int) -> Message:
    """A copy of ``message`` (same id, same body, same stored flag) whose
    content header carries ``x-delivery-count`` = ``count``."""
    content_header = ContentHeader()
    content_header.unmarshal(message.header)
    properties = content_header.properties
    properties.headers = dict(properties.headers or {}, **{"x-delivery-count": count})
    header = ContentHeader(0, len(message.body), properties).marshal()
    copy = Message(message.exchange, message.routing_key, header, message.body, message.id)
    copy.stored = message.stored
    return copy
