"""Which consumer of a queue gets the next message when the plain
round-robin does not apply: single active consumer
(rabbitmq.com/consumers.html#single-active-consumer) and consumer
priorities (rabbitmq.com/consumer-priority.html).

* ``x-single-active-consumer`` (queue argument, boolean): only the first
  registered consumer still subscribed receives messages; when it is
  cancelled or its channel or connection closes, the next one in
  registration order takes over. The departed consumer's unacknowledged
  messages are requeued (channel close) before the next delivery, so the
  new active consumer gets them first.
* ``x-priority`` (basic.consume argument, integer, default 0; negative
  allowed): a message goes to the highest-priority consumer that has
  prefetch credit (and a writable socket); only when all of them are
  blocked do lower priorities get messages. Consumers of equal priority are
  served round-robin.

Queue keeps ``selector`` None (plain round-robin, the fast path) until the
queue has single active consumer or a consumer with a priority other than 0.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from broker.model.field_values import integer
from broker.queues.arguments import integer_problem, invalid_argument
from protocol import reply_codes
from protocol.errors import channel_error

if TYPE_CHECKING:
    from broker.model.interfaces import QueueConsumer as Consumer

log = logging.getLogger(__name__)


def single_active(arguments: dict) -> bool:
    """True when the queue was declared with x-single-active-consumer=true."""
    return arguments.get("x-single-active-consumer") is True


def consumer_priority(consumer: "Consumer") -> int:
    """The consumer's ``x-priority`` argument (0 when absent)."""
    return integer(consumer.arguments.get("x-priority")) or 0


def validate_consume(queue, arguments: dict, exclusive: bool) -> None:
    """Checks of basic.consume, as RabbitMQ 3.10 makes them:

    * 406 PRECONDITION_FAILED when x-priority is not an integer
      (rabbit_amqqueue consume_args):
      ``invalid arg 'x-priority' for queue 'q' in vhost 'v': "expected integer, got longstr"``;
    * 403 ACCESS_REFUSED ``queue 'q' in vhost 'v' in exclusive use`` for an
      exclusive consume on a single-active-consumer queue, even without
      other consumers (exclusive_consume_unavailable).
    """
    if exclusive and single_active(queue.arguments):
        raise channel_error(reply_codes.ACCESS_REFUSED,
                            f"queue '{queue.name}' in vhost '{queue.vhost.name}' in exclusive use")
    value = arguments.get("x-priority")
    problem = integer_problem(value) if value is not None else None
    if problem is not None:
        raise invalid_argument("x-priority", queue.name, queue.vhost.name, problem)


def needs_selector(queue, consumer: "Consumer | None" = None) -> bool:
    """Does ``queue`` (about to get ``consumer``) need a ConsumerSelector?"""
    return single_active(queue.arguments) or (consumer is not None and consumer_priority(consumer) != 0)


class ConsumerSelector:
    """Picks the next consumer of one queue (``Queue._next_consumer``).

    ``changed`` must be called whenever ``queue.consumers`` changes; the
    priority groups (highest first, each with its own round-robin position)
    are rebuilt lazily after that.
    """

    __slots__ = ("queue", "single_active", "_groups", "_active")

    def __init__(self, queue):
        self.queue = queue
        self.single_active = single_active(queue.arguments)
        #: [[priority, consumers in registration order, next index], ...], highest priority first
        self._groups: list[list] | None = None
        self._active: "Consumer | None" = None

    def changed(self) -> None:
        """A consumer was added or removed."""
        self._groups = None
        if self.single_active:
            consumers = self.queue.consumers
            active = consumers[0] if consumers else None
            if active is not self._active:
                self._active = active
                if active is not None:
                    queue = self.queue
                    log.info("vhost '%s' queue '%s': consumer '%s' on %s is now the single active consumer",
                             queue.vhost.name, queue.name, active.tag, active.channel)

    def next_consumer(self) -> "Consumer | None":
        """The consumer to deliver to now, or None when nobody can take."""
        if self.single_active:
            active = self._active
            return active if active is not None and active.can_take() else None
        groups = self._groups
        if groups is None:
            groups = self._groups = self._build()
        for group in groups:
            members = group[1]
            count = len(members)
            start = group[2]
            for step in range(count):
                index = (start + step) % count
                consumer = members[index]
                if consumer.can_take():
                    group[2] = index + 1
                    return consumer
        return None

    def _build(self) -> list[list]:
        by_priority: dict[int, list] = {}
        for consumer in self.queue.consumers:
            by_priority.setdefault(consumer_priority(consumer), []).append(consumer)
        return [[priority, by_priority[priority], 0] for priority in sorted(by_priority, reverse=True)]
