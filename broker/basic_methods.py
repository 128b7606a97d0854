"""Handlers for class basic (AMQP 0-9-1 spec §1.8; RabbitMQ's reading of it:
rabbitmq.com/specification.html, rabbitmq.com/consumer-prefetch.html)."""

from __future__ import annotations

import base64
import logging
import os
from typing import TYPE_CHECKING

from pamqp import commands

from broker import consumer_selection, deduplication, delayed_scheduler, message_ttl, queue_limits
from broker.consumer import Consumer
from broker.delayed_routes import hold_copies
from broker.message import Message
from broker.publish_outcome import answer_confirm, persist, return_unroutable
from broker.queue_methods import resolve_queue
from protocol import reply_codes
from protocol.errors import channel_error, connection_error
from protocol.hot_methods import get_ok_frames

if TYPE_CHECKING:
    from broker.channel import Channel

log = logging.getLogger(__name__)

#: property-flags bit of user-id in the content header (spec §1.8, basic properties)
_USER_ID_FLAG = 0x0010


def publish(channel: "Channel", publish_args: tuple, header: bytes, body: bytes) -> None:
    """A complete basic.publish command (``publish_args`` as decoded by
    ``protocol.hot_methods.decode_publish``): route it, or hold it in a
    transaction.

    Errors: 404 NOT_FOUND (no such exchange), 403 ACCESS_REFUSED (internal
    exchange), 406 PRECONDITION_FAILED (user-id property is not the
    connection's user, as RabbitMQ checks: rabbitmq.com/validated-user-id.html)
    are channel errors; immediate=true is 540 NOT_IMPLEMENTED on the
    connection, as in RabbitMQ.
    """
    exchange_name, routing_key, mandatory, immediate = publish_args
    if immediate:
        raise connection_error(reply_codes.NOT_IMPLEMENTED, "immediate=true")
    vhost = channel.vhost
    exchange = vhost.exchanges.get(exchange_name)
    if exchange is None:
        raise channel_error(reply_codes.NOT_FOUND, f"no exchange '{exchange_name}' in vhost '{vhost.name}'")
    if exchange.internal:
        raise channel_error(reply_codes.ACCESS_REFUSED,
                            f"cannot publish to internal exchange '{exchange_name}' in vhost '{vhost.name}'")
    message = Message(exchange_name, routing_key, header, body)
    if header[13] & _USER_ID_FLAG:  # low byte of the 16-bit property flags
        _check_user_id(channel, message)
    if header[12] & 0x01:  # expiration property: 406 when invalid (broker/message_ttl.py)
        message_ttl.check_expiration(message)
    if channel.tx is not None:
        channel.tx.add_publish(exchange, message, mandatory)
        return
    route(channel, exchange, message, mandatory)


def route(channel: "Channel", exchange, message: Message, mandatory: bool) -> bool:
    """Enqueue ``message`` on every queue ``exchange`` routes it to; an
    unroutable mandatory message goes back as basic.return 312 NO_ROUTE
    (spec §1.8.3.8), before the publisher confirm. A copy held by a
    delayed-message exchange on the way does not count as routed
    (broker/delayed_routes.py). Returns True when a queue refused it
    (x-overflow reject-publish: basic.nack in confirm mode)."""
    if exchange.type_name == "x-delayed-message" and delayed_scheduler.hold(channel, exchange, message, mandatory):
        return False
    held: list = []
    vhost = channel.vhost
    queues = vhost.route(exchange, message, held)
    if deduplication.exchange_duplicate(vhost, exchange, message):
        queues = held = ()  # dropped whole, not held anywhere either
    persisted = hold_copies(vhost, message, held) if held else False
    if queues:
        queues = deduplication.drop_queue_duplicates(vhost, message, queues)
    refused = False
    if queues:
        queues, refused = queue_limits.admit(queues, message)  # x-overflow reject-publish(-dlx)
        if queues and persist(vhost, message, queues):
            persisted = True
        for queue in queues:
            queue.enqueue(message)
    elif mandatory:
        return_unroutable(channel, message)
    answer_confirm(channel, persisted, refused)
    return refused


def _check_user_id(channel: "Channel", message: Message) -> None:
    try:
        user_id = message.properties.user_id
    except ValueError:
        raise connection_error(reply_codes.SYNTAX_ERROR, "malformed content header properties") from None
    if user_id is not None and user_id != channel.connection.username:
        raise channel_error(reply_codes.PRECONDITION_FAILED,
                            f"user_id property set to '{user_id}' but authenticated user was "
                            f"'{channel.connection.username}'")


def consume(channel: "Channel", method: commands.Basic.Consume) -> None:
    """basic.consume: 404 no queue, 405 exclusive queue of another
    connection, 403 exclusive-consumer conflicts (channel errors); a reused
    consumer tag is 530 NOT_ALLOWED on the connection, as in RabbitMQ."""
    queue = resolve_queue(channel, method.queue)
    tag = method.consumer_tag or "amq.ctag-" + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if tag in channel.consumers:
        raise connection_error(reply_codes.NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
    consumer_selection.validate_consume(queue, method.arguments or {}, bool(method.exclusive))
    if queue.consumers and (method.exclusive or any(c.exclusive for c in queue.consumers)):
        raise channel_error(reply_codes.ACCESS_REFUSED,
                            f"queue '{queue.name}' in vhost '{queue.vhost.name}' in exclusive use")
    consumer = Consumer(tag, channel, queue, bool(method.no_ack), bool(method.exclusive),
                        channel.prefetch_count, method.arguments)
    channel.consumers[tag] = consumer
    if not consumer.no_ack:
        channel.ack_timer.watch(queue)
    if not method.nowait:
        channel.send(commands.Basic.ConsumeOk(consumer_tag=tag))
    queue.add_consumer(consumer)
    log.debug("%s vhost '%s' queue '%s': consumer '%s' started", channel, queue.vhost.name, queue.name, tag)


def cancel(channel: "Channel", method: commands.Basic.Cancel) -> None:
    """basic.cancel; an unknown tag is not an error (spec §1.8.3.5)."""
    consumer = channel.consumers.pop(method.consumer_tag, None)
    if not method.nowait:
        channel.send(commands.Basic.CancelOk(consumer_tag=method.consumer_tag))
    if consumer is not None:
        consumer.queue.remove_consumer(consumer)


def get(channel: "Channel", method: commands.Basic.Get) -> None:
    """basic.get -> get-ok with the head message, or get-empty."""
    queue = resolve_queue(channel, method.queue)
    if queue.lifecycle is not None:
        queue.lifecycle.used()  # x-expires
    entry = queue.get()
    if entry is None:
        channel.send(commands.Basic.GetEmpty())
        return
    channel.delivery_tag += 1
    tag = channel.delivery_tag
    message = entry.message
    if not method.no_ack:
        channel.unacked[tag] = (entry, queue, None)
        channel.ack_timer.watch(queue)
        channel.ack_timer.track(entry)
        if "x-message-deduplication" in queue.arguments:  # broker/deduplication.py
            deduplication.note_get(queue, channel)
    connection = channel.connection
    if queue.delivered(entry, "", bool(method.no_ack)):
        connection.hold_for_sync()
    connection.send(get_ok_frames(channel.number, tag, entry.redelivered, message.exchange_routing_key,
                                  queue.message_count, message.header, message.body,
                                  connection.frame_max))


def qos(channel: "Channel", method: commands.Basic.Qos) -> None:
    """basic.qos as RabbitMQ reads it: global=false sets the prefetch of
    consumers started afterwards on this channel, global=true a limit shared
    by the channel (rabbitmq.com/consumer-prefetch.html). prefetch_size other
    than 0 is 540 NOT_IMPLEMENTED."""
    if method.prefetch_size:
        raise connection_error(reply_codes.NOT_IMPLEMENTED, f"prefetch_size!=0 ({method.prefetch_size})")
    if method.global_:
        channel.global_prefetch = method.prefetch_count
        for consumer in channel.consumers.values():
            consumer.queue.schedule_drain()
    else:
        channel.prefetch_count = method.prefetch_count
    channel.send(commands.Basic.QosOk())


def recover(channel: "Channel", method: commands.Basic.Recover | commands.Basic.RecoverAsync) -> None:
    """basic.recover(requeue=true): every unacked message goes back to its
    queue, redelivered (spec §1.8.3.16). requeue=false is 540 NOT_IMPLEMENTED,
    as in RabbitMQ."""
    if not method.requeue:
        raise connection_error(reply_codes.NOT_IMPLEMENTED, "requeue=false")
    unacked, channel.unacked = channel.unacked, {}
    channel.settle(list(unacked.items()), requeue=True)
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
