"""Queue length limits (rabbitmq.com/maxlength.html): ``x-max-length``
(ready messages) and ``x-max-length-bytes`` (body bytes of ready messages;
unacknowledged ones do not count), with ``x-overflow``:

- ``drop-head`` (default): the oldest ready messages are dropped or
  dead-lettered (reason ``maxlen``) until the queue is within its limits
  (done by QueueLifecycle after each enqueue);
- ``reject-publish``: a publish that would overflow is refused: the
  publisher gets basic.nack in confirm mode, otherwise it is silently
  dropped (``admit``, before the message is persisted or enqueued);
- ``reject-publish-dlx``: refused as above, and dead-lettered.
"""

from __future__ import annotations

from broker.model.field_values import integer, text

#: the default x-overflow mode (the others are matched where they act:
#: ``admit`` and QueueLifecycle.refused)
DROP_HEAD = "drop-head"


class Limits:
    """The limits of one queue, from its arguments (None = no limit)."""

    __slots__ = ("max_length", "max_bytes", "overflow")

    def __init__(self, arguments: dict):
        self.max_length = integer(arguments.get("x-max-length"))
        self.max_bytes = integer(arguments.get("x-max-length-bytes"))
        self.overflow = text(arguments.get("x-overflow", DROP_HEAD))

    @property
    def active(self) -> bool:
        return self.max_length is not None or self.max_bytes is not None

    def over(self, count: int, size: int) -> bool:
        """True when ``count`` ready messages of ``size`` body bytes exceed a limit."""
        return ((self.max_length is not None and count > self.max_length)
                or (self.max_bytes is not None and size > self.max_bytes))



def admit(queues, message):
    """``(queues that take message, refused)`` for a message routed to
    ``queues``: a queue with x-overflow reject-publish(-dlx) that would go
    over its limit with it refuses it (rabbit_amqqueue_process:will_overflow:
    ready count + 1 > max length, or ready bytes + body size > max bytes);
    reject-publish-dlx dead-letters it from that queue with reason maxlen.
    ``refused`` tells the caller to basic.nack a confirming publisher."""
    refused = False
    taken = queues
    for queue in queues:
        lifecycle = queue.lifecycle
        if lifecycle is None or lifecycle.limits.overflow == DROP_HEAD or not lifecycle.limits.active:
            continue
        if not lifecycle.limits.over(queue.message_count + 1, lifecycle.bytes + len(message.body)):
            continue
        if taken is queues:
            taken = list(queues)
        taken.remove(queue)
        refused = True
        lifecycle.refused(message)
    return taken, refused
