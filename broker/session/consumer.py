"""Consumers: one basic.consume on one channel (AMQP 0-9-1 spec §1.8.3.3;
prefetch as RabbitMQ reinterprets basic.qos, rabbitmq.com/consumer-prefetch.html)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pamqp import commands

from broker.session import delivery
from protocol.hot_methods import DeliverEncoder, deliver_prefix

if TYPE_CHECKING:
    from broker.queues.queue import Queue


class Consumer:
    """A subscription of ``channel`` (a broker.session.channel.Channel) to
    ``queue`` under ``tag``; what a queue sees of it is
    ``broker.model.interfaces.QueueConsumer``.

    ``prefetch`` is this consumer's own limit on unacknowledged deliveries (0
    = unlimited; from basic.qos with global=false before the consume);
    ``unacked`` counts its deliveries not yet acked. ``prefix`` is the
    prebuilt start of its basic.deliver method payload, ``encoder`` builds
    its deliveries from it.
    """

    __slots__ = ("tag", "channel", "queue", "no_ack", "exclusive", "prefetch", "unacked", "prefix",
                 "arguments", "encoder")

    def __init__(self, tag: str, channel, queue: "Queue", no_ack: bool, exclusive: bool,
                 prefetch: int, arguments: dict | None = None):
        self.tag = tag
        self.channel = channel
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch
        self.unacked = 0
        self.prefix = deliver_prefix(tag)
        self.encoder = DeliverEncoder(channel.number, self.prefix)
        self.arguments = arguments or {}

    def can_take(self) -> bool:
        """True when one more delivery is allowed now: the channel's flow is
        on, its socket is writable, and neither this consumer's nor the
        channel's (global) prefetch limit is reached."""
        channel = self.channel
        if not channel.deliverable():
            return False
        if self.no_ack:
            return True
        if self.prefetch and self.unacked >= self.prefetch:
            return False
        return not channel.global_prefetch or len(channel.unacked) < channel.global_prefetch

    # bound straight to the delivery functions: no call layer per delivery
    deliver = delivery.deliver_one
    deliver_batch = delivery.deliver_batch

    def queue_deleted(self) -> None:
        """The queue was deleted under this consumer (queue.delete, x-expires,
        auto-delete): its channel forgets it and, when the client announced
        the consumer_cancel_notify capability, sends basic.cancel (nowait)
        with its consumer tag (rabbitmq.com/consumer-cancel.html), just
        before the connection's next write: after the reply to the method
        that deleted the queue, as RabbitMQ sends it when the queue process
        has ended (rabbit_channel.erl ``handle_consuming_queue_down_or_eol``;
        py-amqp raises ConsumerCancelled inside queue_delete() when the
        cancel comes first)."""
        channel = self.channel
        if channel.remove_consumer(self.tag) is not None and channel.connection.cancel_notify:
            channel.connection.before_flush(self._announce_cancel)

    def _announce_cancel(self) -> None:
        """The deferred basic.cancel of ``queue_deleted``: not when a
        basic.consume of the same pass took the tag again, and, as every
        frame, not once the channel is closing or closed (``Channel.send``)."""
        channel = self.channel
        if self.tag not in channel.consumers:
            channel.send(commands.Basic.Cancel(consumer_tag=self.tag, nowait=True))
