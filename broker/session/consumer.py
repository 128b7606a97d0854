"""Consumers: one basic.consume on one channel (AMQP 0-9-1 spec §1.8.3.3;
prefetch as RabbitMQ reinterprets basic.qos, rabbitmq.com/consumer-prefetch.html)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.session.delivery import deliver_batch
from protocol.hot_methods import DeliverEncoder, deliver_prefix

if TYPE_CHECKING:
    from broker.session.channel import Channel
    from broker.model.message import QueuedMessage
    from broker.queues.queue import Queue


class Consumer:
    """A subscription of ``channel`` to ``queue`` under ``tag``.

    ``prefetch`` is this consumer's own limit on unacknowledged deliveries (0
    = unlimited; from basic.qos with global=false before the consume);
    ``unacked`` counts its deliveries not yet acked. ``prefix`` is the
    prebuilt start of its basic.deliver method payload, ``encoder`` builds
    its deliveries from it.
    """

    __slots__ = ("tag", "channel", "queue", "no_ack", "exclusive", "prefetch", "unacked", "prefix",
                 "arguments", "encoder")

    def __init__(self, tag: str, channel: "Channel", queue: "Queue", no_ack: bool, exclusive: bool,
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

    def deliver(self, entry: "QueuedMessage") -> None:
        """Send one message to this consumer (basic.deliver)."""
        self.channel.deliver(self, entry)

    def deliver_batch(self, ready) -> int:
        """Deliver from the head of ``ready`` (a deque of QueuedMessage of
        a queue without lifecycle hooks) as much as credit and the output
        budget allow (broker.session.delivery); returns how many."""
        return deliver_batch(self, ready)
