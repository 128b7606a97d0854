"""Handlers for class basic (AMQP 0-9-1 spec §1.8; RabbitMQ's reading of it:
rabbitmq.com/specification.html, rabbitmq.com/consumer-prefetch.html).
Each takes ``(channel, method)``: the broker.session.channel.Channel (not
imported here: channel.py imports this module) and the decoded method."""

from __future__ import annotations

import base64
import logging
import os

from pamqp import commands

from broker.queues import consumer_selection
from broker.session.consumer import Consumer
from broker.session.queue_methods import resolve_queue
from broker.vhost import deduplication
from protocol import reply_codes
from protocol.errors import channel_error, connection_error
from protocol.hot_methods import get_ok_frames

log = logging.getLogger(__name__)

def consume(channel, method: commands.Basic.Consume) -> None:
    """basic.consume: 403 without read permission on the queue, 404 no
    queue, 405 exclusive queue of another connection, 403
    exclusive-consumer conflicts (channel errors); a reused
    consumer tag is 530 NOT_ALLOWED on the connection, as in RabbitMQ."""
    queue = resolve_queue(channel, method.queue, "read")
    tag = method.consumer_tag or "amq.ctag-" + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if tag in channel.consumers:
        raise connection_error(reply_codes.NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
    consumer_selection.validate_consume(queue, method.arguments or {}, bool(method.exclusive))
    if queue.consumers and (method.exclusive or any(c.exclusive for c in queue.consumers)):
        raise channel_error(reply_codes.ACCESS_REFUSED,
                            f"queue '{queue.name}' in vhost '{queue.vhost.name}' in exclusive use")
    consumer = Consumer(tag, channel, queue, bool(method.no_ack), bool(method.exclusive),
                        channel.prefetch_count, method.arguments)
    channel.add_consumer(consumer)
    if not method.nowait:
        channel.send(commands.Basic.ConsumeOk(consumer_tag=tag))
    queue.add_consumer(consumer)
    log.debug("%s vhost '%s' queue '%s': consumer '%s' started", channel, queue.vhost.name, queue.name, tag)


def cancel(channel, method: commands.Basic.Cancel) -> None:
    """basic.cancel; an unknown tag is not an error (spec §1.8.3.5)."""
    consumer = channel.remove_consumer(method.consumer_tag)
    if not method.nowait:
        channel.send(commands.Basic.CancelOk(consumer_tag=method.consumer_tag))
    if consumer is not None:
        consumer.queue.remove_consumer(consumer)


def get(channel, method: commands.Basic.Get) -> None:
    """basic.get -> get-ok with the head message, or get-empty; 403
    without read permission on the queue, 404 no queue."""
    queue = resolve_queue(channel, method.queue, "read")
    if queue.lifecycle is not None:
        queue.lifecycle.used()  # x-expires
    entry = queue.get()
    if entry is None:
        channel.send(commands.Basic.GetEmpty())
        return
    no_ack = bool(method.no_ack)
    if not no_ack:
        channel.ack_timer.watch(queue)
    tag, held = channel.record_deliveries(queue, None, (entry,), no_ack)
    if not no_ack and "x-message-deduplication" in queue.arguments:  # broker/vhost/deduplication.py
        deduplication.note_get(queue, channel)
    message = entry.message
    connection = channel.connection
    if held:
        connection.hold_for_sync()
    connection.send(get_ok_frames(channel.number, tag, entry.redelivered, message.exchange_routing_key,
                                  queue.message_count, message.header, message.body,
                                  connection.frame_max))


def qos(channel, method: commands.Basic.Qos) -> None:
    """basic.qos as RabbitMQ reads it: global=false sets the prefetch of
    consumers started afterwards on this channel, global=true a limit shared
    by the channel (rabbitmq.com/consumer-prefetch.html). prefetch_size other
    than 0 is 540 NOT_IMPLEMENTED."""
    if method.prefetch_size:
        raise connection_error(reply_codes.NOT_IMPLEMENTED, f"prefetch_size!=0 ({method.prefetch_size})")
    channel.set_prefetch(method.prefetch_count, bool(method.global_))
    channel.send(commands.Basic.QosOk())


def recover(channel, method: commands.Basic.Recover | commands.Basic.RecoverAsync) -> None:
    """basic.recover(requeue=true): every unacked message goes back to its
    queue, redelivered (spec §1.8.3.16). requeue=false is 540 NOT_IMPLEMENTED,
    as in RabbitMQ."""
    if not method.requeue:
        raise connection_error(reply_codes.NOT_IMPLEMENTED, "requeue=false")
    channel.settle(list(channel.take_all_unacked().items()), requeue=True)
    if isinstance(method, commands.Basic.Recover):
        channel.send(commands.Basic.RecoverOk())


HANDLERS = {
    commands.Basic.Consume: consume,
    commands.Basic.Cancel: cancel,
    commands.Basic.Get: get,
    commands.Basic.Qos: qos,
    commands.Basic.Recover: recover,
    commands.Basic.RecoverAsync: recover,
}
