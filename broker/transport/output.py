"""Output batching of one connection: frames queued with ``send`` are written
in one transport write per event-loop pass; output that must wait for a WAL
fsync is held, in order, until it completes; consumers are turned away while
the socket's buffer is full or the pass's output budget is spent, and resumed
after the write (docs/architecture.md, "Performance principles": one transport write per
loop pass, deliveries stop when the socket's buffer is full and resume on
resume_writing)."""

from __future__ import annotations

from collections import deque

#: bytes of frames one connection may collect in one loop pass before its
#: consumers wait for the next pass (keeps one write bounded)
OUTPUT_BUDGET = 1 << 20


class Output:
    """The outgoing bytes of one connection (``Connection.output``).

    ``loop`` is the running event loop, ``transport`` the connection's
    asyncio transport, ``storage`` the server's storage facade (its
    ``sync_soon(callback)`` runs ``callback`` once what the WAL holds so far
    is fsynced), ``resume_consumers`` a callable (no arguments) run after a
    write when a consumer was turned away (``can_deliver`` / ``room`` said
    no) and the socket is writable again. ``last_send`` is the loop time of
    the last write (the heartbeat timer reads it), ``paused`` whether asyncio
    asked to stop writing (``pause`` / ``resume``).
    """

    __slots__ = ("loop", "transport", "last_send", "paused", "_storage", "_resume_consumers", "_out", "_out_bytes",
                 "_flush_scheduled", "_before_flush", "_held", "_held_bytes", "_tickets", "_needs_sync", "_starved",
                 "_end")

    def __init__(self, loop, transport, storage, resume_consumers):
        self.loop = loop
        self.transport = transport
        self.last_send = loop.time()
        self.paused = False
        self._storage = storage
        self._resume_consumers = resume_consumers
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush_scheduled = False
        self._before_flush: list = []
        # output waiting for a WAL fsync: (bytes, ticket), ticket 0 = only
        # queued behind an earlier chunk (see hold_for_sync)
        self._held: deque = deque()
        self._held_bytes = 0
        self._tickets = 0
        self._needs_sync = False
        self._starved = False
        # after ``finish``: how many of ``_out`` to write, the rest dropped
        self._end: int | None = None

    def send(self, data: bytes) -> None:
        """Queue frame bytes; written at the end of this loop pass."""
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def before_flush(self, callback) -> None:
        """Run ``callback()`` just before this pass's write (publisher
        confirms batch their acks this way)."""
        self._before_flush.append(callback)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def finish(self, data: bytes) -> None:
        """Queue ``data`` as the last frame of the connection (its
        connection.close or close-ok): anything sent after it, now or in
        later passes (a confirm or basic.cancel due at the next write), is
        dropped, as RabbitMQ sends nothing after connection.close-ok
        (rabbit_reader.erl, state closed). Called again (close-ok after our
        own close), the new frame is the last one."""
        self.send(data)
        self._end = len(self._out)

    def hold_for_sync(self) -> None:
        """This pass's output must wait for the WAL fsync of what was
        appended so far (a delivery of a stored message: its DELIVERED
        record must be durable before the client can see it, so that after
        a crash it comes back redelivered, docs/architecture.md "Durability
        contract"). Later output queues behind it, in order."""
        self._needs_sync = True

    def can_deliver(self) -> bool:
        """May a consumer on this connection get another message now? False
        while the socket is paused or this pass's budget is spent (the
        consumers are then resumed after the write)."""
        if self.paused or self._out_bytes + self._held_bytes >= OUTPUT_BUDGET:
            self._starved = True
            return False
        return True

    def room(self) -> int:
        """Bytes of deliveries consumers on this connection may still add in
        this pass (0 or less while the socket is paused or the budget is
        spent: the consumers are then resumed after the write)."""
        room = 0 if self.paused else OUTPUT_BUDGET - self._out_bytes - self._held_bytes
        if room <= 0:
            self._starved = True
        return room

    def pause(self) -> None:
        """The socket's buffer is full (asyncio's pause_writing)."""
        self.paused = True

    def resume(self) -> None:
        """The socket drained (asyncio's resume_writing): consumers turned
        away meanwhile get their turn."""
        self.paused = False
        if self._starved:
            self._resume()

    def flush(self) -> None:
        """Write this pass's output now (run once per pass by ``send``):
        the ``before_flush`` callbacks first, then one write, or, after
        ``hold_for_sync``, hold it until the fsync."""
        self._flush_scheduled = False
        if self._before_flush:
            callbacks, self._before_flush = self._before_flush, []
            for callback in callbacks:
                callback()
        out = self._out
        if self._end is not None:
            del out[self._end:]
            self._end = 0
            if not out:
                self._out_bytes = 0
        if out:
            self._out = []
            data = out[0] if len(out) == 1 else b"".join(out)
            self._out_bytes = 0
            if self._needs_sync or self._held:
                ticket = 0
                if self._needs_sync:
                    self._needs_sync = False
                    self._tickets += 1
                    ticket = self._tickets
                    self._storage.sync_soon(lambda: self._write_held(ticket))
                self._held.append((data, ticket))
                self._held_bytes += len(data)
            else:
                self._write(data)
        if self._starved and not self.paused:
            self._resume()

    def close(self) -> None:
        """Write everything queued or held now: the transport is about to
        close."""
        self.flush()
        self._write_held(self._tickets)

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)
            self.last_send = self.loop.time()

    def _write_held(self, ticket: int) -> None:
        """The fsync for ``ticket`` is done: write held output up to the
        next chunk that waits for a later fsync."""
        held = self._held
        parts = []
        while held and held[0][1] <= ticket:
            parts.append(held.popleft()[0])
        if not parts:
            return
        self._held_bytes -= sum(map(len, parts))
        self._write(b"".join(parts))
        if self._starved and not self.paused:
            self._resume()

    def _resume(self) -> None:
        self._starved = False
        self._resume_consumers()
