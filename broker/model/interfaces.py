"""The small interfaces through which a lower layer sees an upper one
(docs/architecture.md, "Layers": imports only go down, so a queue that
must hand a message to a consumer knows the consumer only by this shape).
They are ``typing.Protocol`` classes: documentation and type hints, never
base classes that the implementations must import."""

from __future__ import annotations

from collections import deque
from typing import Protocol

from broker.model.message import QueuedMessage


class QueueConsumer(Protocol):
    """A consumer as a queue and the vhost see it
    (``broker.session.consumer.Consumer`` implements it). ``tag`` is its
    consumer tag, ``exclusive`` whether it was started with exclusive=true,
    ``arguments`` its basic.consume arguments (``x-priority``...).
    ``channel`` is the channel it was started on, seen only for its
    ``str`` (log lines name it) and its ``unacked`` mapping (delivery tag ->
    ``(QueuedMessage, queue, consumer or None)``, in tag order), which
    ``broker.vhost.deduplication`` reads to find a queue's unacknowledged
    messages; nothing below the session layer changes it."""

    tag: str
    exclusive: bool
    arguments: dict
    channel: object

    def can_take(self) -> bool:
        """True when one more delivery is allowed now (flow, socket, prefetch)."""

    def deliver(self, entry: QueuedMessage) -> None:
        """basic.deliver one message taken off the queue."""

    def deliver_batch(self, ready: deque) -> int:
        """Take as many messages off the head of ``ready`` as prefetch and
        the connection's output budget allow and deliver them; how many."""

    def queue_deleted(self) -> None:
        """The queue was deleted under this consumer: it is cancelled
        (basic.cancel from the broker when the client asked for
        consumer_cancel_notify, rabbitmq.com/consumer-cancel.html)."""


class Publisher(Protocol):
    """The vhost as a queue sees it when it dead-letters a message
    (``broker.vhost.namespace.VHost`` implements it): ``name`` and the
    publish pipeline (broker/vhost/publish.py ``publish``)."""

    name: str

    def publish(self, exchange, message, cached=None, keys: list[str] | None = None,
                death: tuple[str, str, list] | None = None) -> int:
        """Route ``message`` from ``exchange`` (None: the exchange it names)
        into queues; the outcome flags (broker/vhost/publish.py)."""
