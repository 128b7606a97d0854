"""Publisher flow control: the one mechanism that stops reading from
publishing connections, with a reason per cause (docs/architecture.md,
"Publisher flow control").

Like RabbitMQ's connection throttle (rabbit_reader.erl ``#throttle``,
``blocked_by``: ``{resource, memory}``, ``{resource, disk}``, ``flow``),
a broker-wide set of *reasons* says why publishers are not read now:

- ``LATE``: a timer is more than LATE_MS behind its due work. Message TTL
  must expire a message within 100 ms of its deadline (issue 4); when
  publishers flood the broker, reading their bytes and timed expiry
  compete for one core. As RabbitMQ's credit flow
  (rabbitmq.com/flow-control.html, "Per-Connection Flow Control") this
  is silent and short: a pause lasts at most MAX_PAUSE_S, then publishers
  are read again for at least MIN_READ_S, so a broker that cannot catch
  up still serves them.
- ``MEMORY`` and ``DISK``: a resource alarm (broker/app/alarms.py,
  rabbitmq.com/alarms.html). Publishers stay paused until the alarm
  clears, and clients that announced the ``connection.blocked``
  capability are told with connection.blocked ("low on memory", "low on
  disk") and connection.unblocked (rabbitmq.com/connection-blocked.html).
- (later) ``FLOW``: credit flow for slow consumers reuses ``block`` /
  ``unblock`` with its own reason.

While any reason holds, every connection that publishes (it has sent a
content header: ``Connection.publisher``) is paused, including one that
publishes for the first time meanwhile (``hold``): RabbitMQ likewise
blocks a connection when it next publishes. Consuming connections are
read as before: their acks and deliveries are what frees the broker.
"""

from __future__ import annotations

import asyncio
import logging

from pamqp import commands

from protocol.methods import encode_method

log = logging.getLogger(__name__)

LATE = "late"
MEMORY = "memory"
DISK = "disk"
#: the reasons clients are told about (connection.blocked reason text)
NOTIFIED = {MEMORY: "low on memory", DISK: "low on disk"}

#: lateness (ms) of due timed work past which publishers are paused
LATE_MS = 20
#: longest LATE pause (seconds)
MAX_PAUSE_S = 0.25
#: shortest time (seconds) publishers are read between two LATE pauses
MIN_READ_S = 0.05


class PublishFlow:
    """The publish flow state of one broker.

    ``connections``: the server's set of open connections
    (broker.transport.connection.Connection, seen through ``name``,
    ``state``, ``publisher``, ``handshake.client_properties``,
    ``pause_reading() -> bool``, ``resume_reading()`` and
    ``send(frame_bytes)``). ``blocked_by``:
    the reasons in force; ``paused``: the connections this object paused;
    ``late``: the timers now behind their due work; ``pauses``: how many
    times publishers were paused (for tests and benchmarks)."""

    def __init__(self, connections: set):
        self.connections = connections
        self.blocked_by: set[str] = set()
        self.paused: set = set()
        self.told: set = set()
        self.late: set = set()
        self.pauses = 0
        self._resume_timer: asyncio.TimerHandle | None = None
        self._read_until = 0.0

    # ---- reasons ----------------------------------------------------------

    def block(self, reason: str) -> None:
        """Start blocking publishers for ``reason`` (LATE, MEMORY, DISK...);
        a no-op when it already holds."""
        if reason in self.blocked_by:
            return
        self.blocked_by.add(reason)
        before = len(self.paused)
        for connection in self.connections:
            if connection.publisher:
                self.hold(connection)
        if len(self.paused) > before:
            self.pauses += 1
        log.debug("publish flow: %d publishing connections paused (blocked by %s)", len(self.paused),
                  ", ".join(sorted(self.blocked_by)))

    def unblock(self, reason: str) -> None:
        """``reason`` no longer holds: connections told about a resource
        alarm are told connection.unblocked once no such alarm remains,
        and publishers are read again once no reason at all remains."""
        if reason not in self.blocked_by:
            return
        self.blocked_by.discard(reason)
        if not self.notified_reason() and self.told:
            for connection in self.told:
                _tell(connection, None)
            self.told.clear()
        if self.blocked_by:
            return
        paused, self.paused = self.paused, set()
        for connection in paused:
            connection.resume_reading()
        log.debug("publish flow: %d publishing connections read again", len(paused))

    def notified_reason(self) -> str | None:
        """The connection.blocked reason text of the first resource alarm
        in force (memory before disk), None when there is none."""
        for reason, text in NOTIFIED.items():
            if reason in self.blocked_by:
                return text
        return None

    def hold(self, connection) -> None:
        """Pause ``connection`` (it publishes) while any reason holds, and
        tell it connection.blocked for a resource alarm (once)."""
        if not self.blocked_by:
            return
        if connection.pause_reading():
            self.paused.add(connection)
        if connection in self.paused and connection not in self.told:
            text = self.notified_reason()
            if text is not None:
                self.told.add(connection)
                _tell(connection, text)

    def forget_connection(self, connection) -> None:
        """``connection`` is closed: drop it from the paused and told sets."""
        self.paused.discard(connection)
        self.told.discard(connection)

    # ---- late timed work (the LATE reason) -----------------------------

    def report(self, source, late_ms: float) -> None:
        """``source`` (any hashable: a timer) is ``late_ms`` behind its due
        work (0 or less: caught up)."""
        if late_ms > LATE_MS:
            self.late.add(source)
            if LATE not in self.blocked_by:
                self._pause_late()
        elif source in self.late:
            self.late.discard(source)
            if not self.late:
                self._resume_late()

    def forget(self, source) -> None:
        """``source`` is gone (a deleted queue)."""
        self.report(source, 0)

    def _pause_late(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._read_until:
            return
        self.block(LATE)
        log.debug("publish flow: %d timers late", len(self.late))
        self._resume_timer = loop.call_later(MAX_PAUSE_S, self._resume_late)

    def _resume_late(self) -> None:
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        if LATE not in self.blocked_by:
            return
        self.unblock(LATE)
        self._read_until = asyncio.get_running_loop().time() + MIN_READ_S


def _tell(connection, reason: str | None) -> None:
    """connection.blocked with ``reason`` ("low on memory"), or
    connection.unblocked for None, to a client that announced the
    ``connection.blocked`` capability (rabbitmq.com/connection-blocked.html)."""
    capabilities = connection.handshake.client_properties.get("capabilities") or {}
    notify = bool(capabilities.get("connection.blocked"))
    log.info("%s: %s%s", connection.name, f"blocked ({reason})" if reason else "unblocked",
             "" if notify else " (client not told: no connection.blocked capability)")
    if notify and connection.state == "open":
        method = commands.Connection.Blocked(reason=reason) if reason else commands.Connection.Unblocked()
        connection.send(encode_method(0, method))
