"""Deliveries in bulk: one queue's ready messages to its only consumer, as
many as its prefetch credit and its connection's output budget allow, in
one pass and one joined write (design.md, "Performance principles": one
transport write per loop pass, deliveries stop when the socket's buffer is
full and resume on resume_writing; prefetch as RabbitMQ reads basic.qos,
rabbitmq.com/consumer-prefetch.html)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections import deque

    from broker.session.consumer import Consumer

#: bytes counted for a delivery besides its body: frame heads and ends,
#: method fields, consumer tag, exchange and routing key, and a typical
#: content header (the budget is a soft bound; headers are not measured)
_OVERHEAD = 512


def deliver_batch(consumer: "Consumer", ready: "deque") -> int:
    """Pop messages off the head of ``ready`` (a deque of QueuedMessage of
    ``consumer.queue``, which has no lifecycle hooks) and basic.deliver
    them to ``consumer`` under consecutive delivery tags; returns how many.
    Stops at the consumer's or the channel's (global) prefetch limit, when
    the channel is not deliverable (flow off, closing) or when the
    connection's output budget for this pass is spent (the connection then
    resumes its consumers after its write)."""
    channel = consumer.channel
    connection = channel.connection
    if not (channel.flow_active and channel.state == "open"):
        return 0
    room = connection.room()
    if room <= 0:
        return 0
    count = len(ready)
    no_ack = consumer.no_ack
    if not no_ack:
        if consumer.prefetch:
            count = min(count, consumer.prefetch - consumer.unacked)
        if channel.global_prefetch:
            count = min(count, channel.global_prefetch - len(channel.unacked))
        if count <= 0:
            return 0
    queue = consumer.queue
    stored = queue.stored
    frames = consumer.encoder.frames
    frame_max = connection.frame_max
    unacked = channel.unacked
    popleft = ready.popleft
    tag = channel.delivery_tag
    parts: list = []
    sent = 0
    held = False
    first = None
    while sent < count and room > 0:
        entry = popleft()
        message = entry.message
        tag += 1
        sent += 1
        if not no_ack:
            unacked[tag] = (entry, queue, consumer)
            if first is None:
                first = entry
            else:
                entry.delivered_at = first.delivered_at
        if stored:
            # a stored message's DELIVERED record must be durable first
            held = queue.delivered(entry, consumer.tag, no_ack) or held
        else:
            entry.deliveries += 1
        body = message.body
        parts += frames(tag, entry.redelivered, message.exchange_routing_key, message.header, body, frame_max)
        room -= len(body) + _OVERHEAD
        if first is entry:
            channel.ack_timer.track(entry)
    channel.delivery_tag = tag
    if not no_ack:
        consumer.unacked += sent
    if held:
        connection.hold_for_sync()
    connection.send(b"".join(parts))
    if room <= 0:
        connection.can_deliver()  # marks the connection starved: it resumes us after its write
    return sent
