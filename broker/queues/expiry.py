"""Queue expiry (rabbitmq.com/ttl.html#queue-ttl): a queue declared with
``x-expires`` (ms) is deleted once it has been unused for that long:
no consumers, no basic.get, no re-declaration. The timer starts when the
queue is created, and again at every start of the broker for a durable
queue (as RabbitMQ does: a restart resets it)."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)


class QueueExpiry:
    """The x-expires timer of one queue (``ms``: the lease in ms)."""

    __slots__ = ("queue", "ms", "_timer")

    def __init__(self, queue, ms: int):
        self.queue = queue
        self.ms = ms
        self._timer: asyncio.TimerHandle | None = None
        self.touch()

    def touch(self) -> None:
        """The queue was used (declared, basic.get, consumer gone or
        added): restart the lease, or stop it while it has consumers."""
        self.cancel()
        queue = self.queue
        if queue.deleted or queue.consumers:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # built outside the broker's loop (tests of pure parts)
            return
        self._timer = loop.call_later(self.ms / 1000.0, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        queue = self.queue
        if queue.deleted or queue.consumers:
            return
        log.info("vhost '%s' queue '%s': deleted, unused for %d ms (x-expires)", queue.vhost.name,
                 queue.name, self.ms)
        queue.vhost.delete_queue(queue)
