"""Delivery acknowledgement timeout (rabbitmq.com/consumers.html#acknowledgement-timeout).

A delivery (basic.deliver or basic.get without no-ack) that stays
unacknowledged for longer than the timeout closes its channel with
406 PRECONDITION_FAILED and RabbitMQ's text ``delivery acknowledgement on
channel N timed out. Timeout value used: X ms. This timeout value can be
configured, see consumers doc guide to learn more`` (class 0, method 0, as
RabbitMQ sends it); closing the channel requeues its unacknowledged messages.

The timeout, in milliseconds: the queue's ``x-consumer-timeout`` argument
when present, else the broker setting ``consumer_timeout`` (``--consumer-
timeout``, default 1,800,000 ms = 30 minutes, as RabbitMQ). 0 means no
timeout.

Cost: each tracked delivery stores its loop time in
``QueuedMessage.delivered_at``; each channel with unacknowledged deliveries
has at most one timer. ``Channel.unacked`` is in delivery order, so the
timer looks at the oldest deliveries only: it stops at the first one
younger than the smallest timeout this channel's queues use, and re-arms
for the earliest deadline it can have missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from broker.model.field_values import integer
from protocol import reply_codes
from protocol.errors import AMQPError

if TYPE_CHECKING:
    from broker.model.message import QueuedMessage
    from broker.queues.queue import Queue

log = logging.getLogger(__name__)

_NO_TIMEOUT = float("inf")


def timeout_ms(queue: "Queue", default_ms: int) -> int:
    """The acknowledgement timeout of deliveries from ``queue``, in ms (0: none)."""
    value = integer(queue.arguments.get("x-consumer-timeout"))
    return value if value is not None and value >= 0 else default_ms


class AckTimer:
    """The acknowledgement-timeout check of one channel (a
    broker.session.channel.Channel, not imported: channel.py imports this
    module).

    ``track`` is called for every delivery that waits for an ack;
    ``watch`` when the channel starts consuming from / getting from a
    queue (it may lower the smallest timeout to look for); ``cancel`` when
    the channel goes away.
    """

    __slots__ = ("channel", "default_ms", "smallest", "_handle", "_loop")

    def __init__(self, channel, default_ms: int):
        self.channel = channel
        self.default_ms = default_ms
        #: smallest timeout (seconds) of the queues this channel takes deliveries from
        self.smallest = _NO_TIMEOUT
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, queue: "Queue") -> None:
        """The channel takes deliveries from ``queue`` (basic.consume / basic.get)."""
        ms = timeout_ms(queue, self.default_ms)
        if ms and ms / 1000.0 < self.smallest:
            self.smallest = ms / 1000.0
            if self._handle is not None:  # re-arm for the shorter timeout
                self._handle.cancel()
                self._handle = None
                self._arm(self._loop.time())

    def track(self, entry: "QueuedMessage") -> None:
        """``entry`` was just delivered and waits for its ack."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        now = entry.delivered_at = loop.time()
        if self._handle is None and self.smallest != _NO_TIMEOUT:
            self._handle = loop.call_at(now + self.smallest, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        if self.channel.unacked and self.smallest != _NO_TIMEOUT:
            self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        self._handle = None
        channel = self.channel
        if channel.state != "open" or not channel.unacked:
            return
        now = self._loop.time()
        smallest = self.smallest
        due = _NO_TIMEOUT
        for entry, queue, consumer in channel.unacked.values():
            delivered_at = entry.delivered_at
            ms = timeout_ms(queue, self.default_ms)
            if ms:
                deadline = delivered_at + ms / 1000.0
                if now >= deadline:
                    self._expire(queue, consumer, ms)
                    return
                due = min(due, deadline)
            if now - delivered_at < smallest:  # every later delivery is younger still
                due = min(due, delivered_at + smallest)
                break
        if due != _NO_TIMEOUT:
            self._arm(due)

    def _expire(self, queue: "Queue", consumer, ms: int) -> None:
        channel = self.channel
        log.warning("vhost '%s' queue '%s': consumer '%s' on %s timed out waiting for delivery "
                    "acknowledgement (timeout %d ms); closing the channel", queue.vhost.name, queue.name,
                    consumer.tag if consumer is not None else "(basic.get)", channel, ms)
        channel.fail(AMQPError(reply_codes.PRECONDITION_FAILED,
                               f"delivery acknowledgement on channel {channel.number} timed out. "
                               f"Timeout value used: {ms} ms. This timeout value can be configured, "
                               "see consumers doc guide to learn more", 0, 0, connection_level=False))
