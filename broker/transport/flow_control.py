"""Publisher flow control while the broker is late with its timed work.

Message TTL must expire a message within 100 ms of its deadline (issue 4),
wherever it sits. When publishers flood the broker, reading their bytes
and timed expiry compete for one core, and the expiry timer falls behind.
Like RabbitMQ's credit flow (rabbitmq.com/flow-control.html, "Per-Connection
Flow Control"), which stops reading from publishing connections while the
queues they feed are busy, Leveret stops reading from connections that
publish while a timer is more than LATE_MS behind its due work, and reads
them again as soon as the work is caught up. Consumers' connections are
not paused (their acks and deliveries are what the broker is catching up
with). A pause lasts at most MAX_PAUSE_S, then publishers are read again
for at least MIN_READ_S, so a broker that cannot catch up still serves
them.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

#: lateness (ms) of due timed work past which publishers are paused
LATE_MS = 20
#: longest pause (seconds)
MAX_PAUSE_S = 0.25
#: shortest time (seconds) publishers are read between two pauses
MIN_READ_S = 0.05


class PublishFlow:
    """The flow state of one broker: ``connections`` is the server's set
    of open broker.transport.connection.Connection (those with ``publisher`` True are
    paused); ``late`` the sources (timers) now behind their due work."""

    def __init__(self, connections: set):
        self.connections = connections
        self.late: set = set()
        self.paused: list = []
        self.pauses = 0
        self._resume_timer: asyncio.TimerHandle | None = None
        self._read_until = 0.0

    def report(self, source, late_ms: float) -> None:
        """``source`` (any hashable: a timer) is ``late_ms`` behind its due
        work (0 or less: caught up)."""
        if late_ms > LATE_MS:
            self.late.add(source)
            if not self.paused:
                self._pause()
        elif source in self.late:
            self.late.discard(source)
            if not self.late:
                self._resume()

    def forget(self, source) -> None:
        """``source`` is gone (a deleted queue)."""
        self.report(source, 0)

    def _pause(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._read_until:
            return
        paused = self.paused
        for connection in self.connections:
            if connection.publisher and connection.pause_reading():
                paused.append(connection)
        if paused:
            self.pauses += 1
            log.debug("publish flow: %d publishing connections paused, %d timers late", len(paused),
                      len(self.late))
            self._resume_timer = loop.call_later(MAX_PAUSE_S, self._resume)

    def _resume(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        if not self.paused:
            return
        for connection in self.paused:
            connection.resume_reading()
        self.paused.clear()
        self._read_until = asyncio.get_running_loop().time() + MIN_READ_S
