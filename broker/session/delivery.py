"""basic.deliver frames out: one message to a consumer (``deliver_one``),
and deliveries in bulk (``deliver_batch``): one queue's ready messages to its
only consumer, as many as its prefetch credit and its connection's output
budget allow, in one pass and one joined write. The bookkeeping of every
delivery (tags, unacked, WAL record) is ``Channel.record_deliveries``
(broker/session/acks.py), shared with basic.get-ok (docs/architecture.md, "Performance principles": one
transport write per loop pass, deliveries stop when the socket's buffer is
full and resume on resume_writing; prefetch as RabbitMQ reads basic.qos,
rabbitmq.com/consumer-prefetch.html)."""

from __future__ import annotations

#: bytes counted for a delivery besides its body: frame heads and ends,
#: method fields, consumer tag, exchange and routing key, and a typical
#: content header (the budget is a soft bound; headers are not measured)
_OVERHEAD = 512


def deliver_one(consumer, entry) -> None:
    """basic.deliver ``entry`` (a QueuedMessage just taken off
    ``consumer.queue``) to ``consumer`` (a broker.session.consumer.Consumer)
    under the channel's next delivery tag; the caller has checked
    ``consumer.can_take()``."""
    channel = consumer.channel
    tag, held = channel.record_deliveries(consumer.queue, consumer, (entry,), consumer.no_ack)
    connection = channel.connection
    if held:
        connection.hold_for_sync()
    message = entry.message
    connection.send(b"".join(consumer.encoder.frames(tag, entry.redelivered, message.exchange_routing_key,
                                                     message.header, message.body, connection.frame_max)))


def deliver_batch(consumer, ready) -> int:
    """Pop messages off the head of ``ready`` (a deque of QueuedMessage of
    ``consumer.queue``, which has no lifecycle hooks) and basic.deliver
    them to ``consumer`` (a broker.session.consumer.Consumer) under
    consecutive delivery tags; returns how many.
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
    popleft = ready.popleft
    frames = consumer.encoder.frames
    frame_max = connection.frame_max
    entries: list = []
    append = entries.append
    parts: list = []
    # encoded under the tags record_deliveries gives them below (the
    # channel's next ones, in order), in the same pass as the popping
    tag = channel.delivery_tag
    sent = 0
    while sent < count and room > 0:
        entry = popleft()
        append(entry)
        sent += 1
        tag += 1
        message = entry.message
        body = message.body
        parts += frames(tag, entry.redelivered, message.exchange_routing_key, message.header, body, frame_max)
        room -= len(body) + _OVERHEAD
    _first, held = channel.record_deliveries(consumer.queue, consumer, entries, no_ack)
    if held:
        connection.hold_for_sync()
    connection.send(b"".join(parts))
    if room <= 0:
        connection.can_deliver()  # marks the connection starved: it resumes us after its write
    return sent
