"""Handlers for class queue (AMQP 0-9-1 spec §1.7; RabbitMQ's rules for
names, exclusivity and equivalence: rabbitmq.com/queues.html). Each handler
takes ``(channel, method)``: the broker.session.channel.Channel (not
imported here: channel.py imports this module) and the decoded method."""

from __future__ import annotations

import base64
import logging
import os

from pamqp import commands

from broker.model.field_values import printed
from broker.queues import arguments as queue_arguments
from broker.queues.queue import Queue
from broker.session.exchange_methods import check_binding
from protocol import reply_codes
from protocol.errors import channel_error

log = logging.getLogger(__name__)

#: queue arguments whose values must match on re-declare (rabbit_amqqueue.erl)
ARG_DEFAULTS = {"x-queue-type": "classic"}
EQUIVALENCE_ARGS = ("x-expires", "x-message-ttl", "x-max-length", "x-max-length-bytes", "x-max-priority",
                    "x-dead-letter-exchange", "x-dead-letter-routing-key", "x-overflow", "x-queue-type",
                    "x-queue-mode", "x-single-active-consumer", "x-queue-version", "x-queue-master-locator")


def queue_name(channel, name: str) -> str:
    """The queue name ``name`` means on this channel ("" = the last queue it
    declared, spec §1.7.2.1); 404 NOT_FOUND when there is none."""
    name = name or channel.last_queue_name
    if not name:
        raise channel_error(reply_codes.NOT_FOUND, "no previously declared queue")
    return name


def resolve_queue(channel, name: str, permission: str | None = None) -> Queue:
    """The queue ``name`` names for this channel ("" = the last queue it
    declared, spec §1.7.2.1), after checking ``permission`` ("read",
    "configure"...; None: none needed) on it. Raises 404 NOT_FOUND when
    absent, 403 ACCESS_REFUSED without the permission (checked first, as
    RabbitMQ), 405 RESOURCE_LOCKED when exclusive to another connection
    (channel errors)."""
    vhost = channel.vhost
    name = queue_name(channel, name)
    if permission is not None:
        channel.grant.check(permission, "queue", name)
    queue = vhost.queues.get(name)
    if queue is None:
        raise channel_error(reply_codes.NOT_FOUND, f"no queue '{name}' in vhost '{vhost.name}'")
    check_exclusive(queue, channel)
    return queue


def check_exclusive(queue: Queue, channel) -> None:
    """405 RESOURCE_LOCKED when ``queue`` is exclusive to another connection."""
    if queue.exclusive_owner is not None and queue.exclusive_owner is not channel.connection:
        raise channel_error(
            reply_codes.RESOURCE_LOCKED,
            f"cannot obtain exclusive access to locked queue '{queue.name}' in vhost '{queue.vhost.name}'. "
            "It could be originally declared on another connection or the exclusive property value does "
            "not match that of the original declaration.")


def _check_equivalence(queue: Queue, method: commands.Queue.Declare) -> None:
    where = f"for queue '{queue.name}' in vhost '{queue.vhost.name}'"
    for field, current in (("durable", queue.durable), ("auto_delete", queue.auto_delete)):
        received = bool(getattr(method, field))
        if received != current:
            raise channel_error(reply_codes.PRECONDITION_FAILED,
                                f"inequivalent arg '{field}' {where}: received '{printed(received)}' "
                                f"but current is '{printed(current)}'")
    if bool(method.exclusive) != (queue.exclusive_owner is not None):
        raise channel_error(reply_codes.RESOURCE_LOCKED,
                            f"cannot obtain exclusive access to locked queue '{queue.name}' in vhost "
                            f"'{queue.vhost.name}'. It could be originally declared on another connection "
                            "or the exclusive property value does not match that of the original declaration.")
    arguments = method.arguments or {}
    for key in EQUIVALENCE_ARGS:
        received, current = arguments.get(key, ARG_DEFAULTS.get(key)), queue.arguments.get(key, ARG_DEFAULTS.get(key))
        if received != current:
            raise channel_error(reply_codes.PRECONDITION_FAILED,
                                f"inequivalent arg '{key}' {where}: received {_describe(received)} "
                                f"but current is {_describe(current)}")


def _describe(value) -> str:
    return "none" if value is None else f"the value '{value}'"


def declare(channel, method: commands.Queue.Declare) -> None:
    """queue.declare: create, or check an existing queue. 403 for an
    ``amq.`` name, 403 without configure permission on the queue (a passive
    declare needs none in RabbitMQ 3.10), for a new queue 406 at the vhost's
    max-queues and 403 for a dead-letter exchange without read on the queue
    or write on the exchange (``_check_new_queue``), 404 for a passive
    declare of a missing queue, 405 for an exclusive queue of another
    connection, 406 for an inequivalent re-declare (all channel errors)."""
    vhost = channel.vhost
    name = method.queue
    if method.passive:
        queue = resolve_queue(channel, name)
    else:
        generated = not name
        if generated:
            name = "amq.gen-" + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        elif name.startswith("amq."):
            raise channel_error(reply_codes.ACCESS_REFUSED, f"queue name '{name}' contains reserved prefix 'amq.*'")
        channel.grant.check("configure", "queue", name)
        queue = vhost.queues.get(name)
        if queue is None:
            _check_new_queue(channel, name, method.arguments or {})
            queue_arguments.validate(name, vhost.name, method.arguments or {})
            owner = channel.connection if method.exclusive else None
            queue = Queue(vhost, name, bool(method.durable), owner, bool(method.auto_delete), method.arguments)
            vhost.add_queue(queue)
            if owner is not None:
                owner.add_exclusive_queue(queue)
            log.info("%s vhost '%s' queue '%s': declared (durable=%s exclusive=%s auto_delete=%s)",
                     channel, vhost.name, name, queue.durable, owner is not None, queue.auto_delete)
        else:
            check_exclusive(queue, channel)
            _check_equivalence(queue, method)
    if queue.lifecycle is not None:
        queue.lifecycle.used()  # x-expires: a declaration renews the lease
    channel.remember_queue(queue.name)
    if not method.nowait:
        channel.send(commands.Queue.DeclareOk(queue=queue.name, message_count=queue.message_count,
                                              consumer_count=queue.consumer_count))


def _check_new_queue(channel, name: str, arguments: dict) -> None:
    """What RabbitMQ 3.10 checks before creating a queue: the vhost's
    max-queues (406, broker/access/limits.py), then with
    x-dead-letter-exchange read permission on the queue and write on the
    exchange (403)."""
    vhost = channel.vhost
    channel.connection.server.access.check_queue_limit(vhost.name, len(vhost.queues), name)
    dead_letter_exchange = arguments.get("x-dead-letter-exchange")
    if isinstance(dead_letter_exchange, str):
        channel.grant.check("read", "queue", name)
        channel.grant.check("write", "exchange", dead_letter_exchange)


def bind(channel, method: commands.Queue.Bind) -> None:
    """queue.bind: 403 without write on the queue or read on the exchange
    (broker.session.exchange_methods.check_binding), 403 for the default
    exchange, then 404 for a missing exchange or queue (the exchange is
    named first, as RabbitMQ), 406 for invalid binding arguments."""
    check_binding(channel, method.exchange, "queue", queue_name(channel, method.queue))
    exchange = channel.vhost.exchange_for_binding(method.exchange)
    queue = resolve_queue(channel, method.queue)
    routing_key = method.routing_key
    if not routing_key and not method.queue:
        routing_key = queue.name  # spec §1.7.2.3: both empty -> the last declared queue's name
    channel.vhost.bind(exchange, queue, routing_key, method.arguments or {})
    if not method.nowait:
        channel.send(commands.Queue.BindOk())


def unbind(channel, method: commands.Queue.Unbind) -> None:
    """queue.unbind; 403 without write on the queue or read on the
    exchange (check_binding); a missing exchange, queue or binding is not
    an error (as RabbitMQ), the default exchange is 403, an exclusive queue
    of another connection 405."""
    vhost = channel.vhost
    check_binding(channel, method.exchange, "queue", queue_name(channel, method.queue))
    exchange = vhost.exchanges.get(method.exchange)
    queue = vhost.queues.get(method.queue or channel.last_queue_name)
    if exchange is not None and queue is not None:
        if exchange.has_binding(queue, method.routing_key, method.arguments or {}):
            check_exclusive(queue, channel)
        vhost.unbind(exchange, queue, method.routing_key, method.arguments or {})
    channel.send(commands.Queue.UnbindOk())


def purge(channel, method: commands.Queue.Purge) -> None:
    """queue.purge -> purge-ok with the number of ready messages dropped
    (403 without read permission on the queue);
    for a stored queue purge-ok waits for the fsync of the purge records, so
    purged messages do not come back after a crash."""
    queue = resolve_queue(channel, method.queue, "read")
    count = queue.purge()
    log.info("%s vhost '%s' queue '%s': purged %d messages", channel, queue.vhost.name, queue.name, count)
    if queue.stored and count:
        channel.connection.hold_for_sync()
    if not method.nowait:
        channel.send(commands.Queue.PurgeOk(message_count=count))


def delete(channel, method: commands.Queue.Delete) -> None:
    """queue.delete: 403 without configure permission on the queue;
    deleting a missing queue succeeds with count 0 (as RabbitMQ). 406 for
    if-unused with consumers or if-empty with messages."""
    vhost = channel.vhost
    name = queue_name(channel, method.queue)
    channel.grant.check("configure", "queue", name)
    queue = vhost.queues.get(name)
    count = 0
    if queue is not None:
        check_exclusive(queue, channel)
        where = f"queue '{name}' in vhost '{vhost.name}'"
        if method.if_unused and queue.consumers:
            raise channel_error(reply_codes.PRECONDITION_FAILED, f"{where} in use")
        if method.if_empty and queue.message_count:
            raise channel_error(reply_codes.PRECONDITION_FAILED, f"{where} not empty")
        count = vhost.delete_queue(queue)
        log.info("%s vhost '%s' queue '%s': deleted with %d messages", channel, vhost.name, name, count)
    if not method.nowait:
        channel.send(commands.Queue.DeleteOk(message_count=count))


HANDLERS = {
    commands.Queue.Declare: declare,
    commands.Queue.Bind: bind,
    commands.Queue.Unbind: unbind,
    commands.Queue.Purge: purge,
    commands.Queue.Delete: delete,
}
