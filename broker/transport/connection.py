"""One AMQP connection: handshake, channel table, heartbeats, output batching
and the close handshake (AMQP 0-9-1 spec §1.4 class connection, §4.2.7
heartbeat frames). Errors are turned into connection.close in one place,
``_fail``."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from pamqp import commands

from broker.session.channel import Channel
from broker.session.route_cache import on_publish
from protocol import reply_codes
from protocol.constants import HEARTBEAT_FRAME, PROTOCOL_HEADER
from protocol.errors import AMQPError, connection_error
from protocol.framing import PUBLISH_RUN, FrameReader
from protocol.handshake import (OPEN as HANDSHAKE_OPEN, AWAIT_PROTOCOL_HEADER, BadProtocolHeader, Handshake,
                                HandshakeRefused)
from protocol.methods import decode_method, encode_method

if TYPE_CHECKING:
    from broker.queues.queue import Queue

log = logging.getLogger(__name__)

HANDSHAKE = "handshake"
OPEN = "open"
CLOSING = "closing"  # we sent connection.close, waiting for close-ok
CLOSED = "closed"

#: seconds to wait for the peer's close-ok before dropping the socket
CLOSE_OK_TIMEOUT = 3.0
#: bytes of frames one connection may collect in one loop pass before its
#: consumers wait for the next pass (keeps one write bounded)
OUTPUT_BUDGET = 1 << 20


class Connection:
    """State of one client connection; the transport protocol feeds it bytes.

    ``send(data)`` queues frame bytes; they are written once per event-loop
    pass. Consumers ask ``can_deliver()`` before each delivery: it is False
    while the socket is paused (``pause_writing``) or this pass's output
    budget is spent, and deliveries resume by themselves afterwards.
    """

    def __init__(self, server, transport: asyncio.Transport):
        config = server.config
        self.server = server
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("?", 0)
        self.name = f"connection {peer[0]}:{peer[1]} -> {local[0]}:{local[1]}"
        self.state = HANDSHAKE
        self.reader = FrameReader(config.frame_max)
        self.handshake = Handshake(server.server_properties(), config.channel_max, config.frame_max,
                                   config.heartbeat, server.authenticate, server.vhosts.__contains__)
        self.frame_max = config.frame_max
        self.channel_max = config.channel_max
        self.heartbeat = 0
        self.username = ""
        self.vhost = None
        self.cancel_notify = False
        self.channels: dict[int, Channel] = {}
        self.exclusive_queues: set[Queue] = set()
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
        self._paused = False
        self._starved = False
        #: True once a content header came in (this connection publishes):
        #: broker.transport.flow_control may pause reading it
        self.publisher = False
        self._reading_paused = False
        self._last_recv = self._last_send = self.loop.time()
        self._timer = self.loop.call_later(config.handshake_timeout, self._handshake_timeout)

    # ---- bytes in --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Parse and handle every complete frame in ``data``."""
        self._last_recv = self.loop.time()
        if self.state == CLOSED:
            return
        reader = self.reader
        reader.feed(data)
        try:
            if self.handshake.state == AWAIT_PROTOCOL_HEADER and not self._on_protocol_header():
                return
            channels = self.channels
            for frame_type, number, payload in reader.frames(self.state == OPEN):
                channel = channels.get(number)
                if channel is not None:
                    if frame_type == PUBLISH_RUN:
                        on_publish(channel, *payload)
                        self.publisher = True
                    elif frame_type == 1:
                        channel.on_method_frame(payload)
                    elif frame_type == 3:
                        channel.on_body_frame(payload)
                    elif frame_type == 2:
                        channel.on_header_frame(payload)
                        self.publisher = True
                    else:
                        raise connection_error(reply_codes.UNEXPECTED_FRAME, f"type 8 heartbeat on channel {number}")
                elif frame_type == PUBLISH_RUN:
                    self._frame_by_frame(number, payload)
                elif number == 0:
                    self._on_channel_zero(frame_type, payload)
                else:
                    self._open_channel(number, frame_type, payload)
        except AMQPError as error:
            if self.state == CLOSING:
                return  # garbage after our connection.close: nothing more to say
            self._fail(error)
        except HandshakeRefused as exc:
            log.warning("%s: handshake refused: %s", self.name, exc)
            self.state = CLOSED
            self._close_transport()
        except BadProtocolHeader as exc:
            log.warning("%s: bad protocol header %r, answering with AMQP 0-9-1's", self.name, exc.args[0])
            self.transport.write(PROTOCOL_HEADER)
            self._close_transport()
        except Exception:
            log.exception("%s: internal error", self.name)
            self._fail(connection_error(reply_codes.INTERNAL_ERROR, "internal error"))

    def _frame_by_frame(self, number: int, payloads: tuple) -> None:
        """A whole publish for a channel that is not open (or channel 0):
        its frames one by one, for the errors they get on their own."""
        for frame_type, payload in zip((1, 2, 3), payloads):
            if frame_type == 3 and not payload:
                return
            if number == 0:
                self._on_channel_zero(frame_type, payload)
            else:
                self._open_channel(number, frame_type, payload)

    def _on_protocol_header(self) -> bool:
        """Consume the 8-byte protocol header once complete; reject early a
        prefix that can never become one (spec §4.2.2)."""
        reader = self.reader
        if reader.pending() < 8:
            head = reader.peek(8)
            if not PROTOCOL_HEADER.startswith(head):
                raise BadProtocolHeader(head)
            return False
        self.send(self.handshake.on_protocol_header(reader.take(8)))
        return True

    def _on_channel_zero(self, frame_type: int, payload: bytes) -> None:
        if frame_type == 8:
            return
        if frame_type != 1:
            raise connection_error(reply_codes.UNEXPECTED_FRAME, f"content frame type {frame_type} on channel 0")
        method = decode_method(payload)
        if isinstance(method, commands.Connection.Close):
            log.info("%s: closed by client (%s %s)", self.name, method.reply_code, method.reply_text)
            self._release_all()
            self.send(encode_method(0, commands.Connection.CloseOk()))
            self.state = CLOSED
            self._close_transport()
            return
        if isinstance(method, commands.Connection.CloseOk):
            self.state = CLOSED
            self._close_transport()
            return
        if self.state == CLOSING:
            return
        if self.state == HANDSHAKE:
            if isinstance(method, commands.Connection.Open) and self.handshake.state != "awaiting connection.open":
                raise HandshakeRefused("connection.open before the handshake reached it")
            self.send(self.handshake.on_method(method))
            if self.handshake.state == HANDSHAKE_OPEN:
                self._on_open()
            return
        if isinstance(method, (commands.Connection.Blocked, commands.Connection.Unblocked)):
            return
        if isinstance(method, commands.Connection.Open):
            raise connection_error(reply_codes.CHANNEL_ERROR, "unexpected method in connection state running"
                                   ).for_method(method.index >> 16, method.index & 0xFFFF)
        if isinstance(method, commands.Connection.UpdateSecret):
            self.send(encode_method(0, commands.Connection.UpdateSecretOk()))
            return
        raise connection_error(reply_codes.CHANNEL_ERROR, "unexpected method in connection state running").for_method(
            method.index >> 16, method.index & 0xFFFF)

    def _open_channel(self, number: int, frame_type: int, payload: bytes) -> None:
        if self.state == CLOSING:
            return
        if self.state != OPEN or frame_type != 1:
            raise connection_error(reply_codes.UNEXPECTED_FRAME,
                                   f"type {frame_type}, expected method frame, got non method frame instead")
        method = decode_method(payload)
        if not isinstance(method, commands.Channel.Open):
            raise connection_error(reply_codes.CHANNEL_ERROR, "expected 'channel.open'").for_method(
                method.index >> 16, method.index & 0xFFFF)
        # RabbitMQ counts open channels against channel_max, not channel numbers
        if len(self.channels) >= self.channel_max:
            raise connection_error(
                reply_codes.NOT_ALLOWED,
                f"number of channels opened ({len(self.channels)}) has reached the negotiated "
                f"channel_max ({self.channel_max})")
        self.channels[number] = Channel(self, number)
        self.send(encode_method(number, commands.Channel.OpenOk()))

    def _on_open(self) -> None:
        handshake = self.handshake
        self.state = OPEN
        self._timer.cancel()
        self.frame_max = handshake.frame_max
        self.reader.frame_max = handshake.frame_max
        self.channel_max = handshake.channel_max
        self.heartbeat = handshake.heartbeat
        self.username = handshake.username
        self.vhost = self.server.vhosts[handshake.vhost]
        capabilities = handshake.client_properties.get("capabilities") or {}
        self.cancel_notify = bool(capabilities.get("consumer_cancel_notify"))
        product = handshake.client_properties.get("product", "?")
        log.info("%s: user '%s' opened vhost '%s' (client %s, heartbeat %ss, frame_max %d)", self.name,
                 self.username, handshake.vhost, product, self.heartbeat, self.frame_max)
        if self.heartbeat:
            self._timer = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    def forget_channel(self, channel: Channel) -> None:
        """Drop a fully closed channel so its number can be reused."""
        if self.channels.get(channel.number) is channel:
            del self.channels[channel.number]

    # ---- bytes out -------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue frame bytes; written at the end of this loop pass."""
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def before_flush(self, callback) -> None:
        """Run ``callback()`` just before this pass's write (publisher
        confirms batch their acks this way)."""
        self._before_flush.append(callback)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def hold_for_sync(self) -> None:
        """This pass's output must wait for the WAL fsync of what was
        appended so far (a delivery of a stored message: its DELIVERED
        record must be durable before the client can see it, so that after
        a crash it comes back redelivered, design.md "Durability
        contract"). Later output queues behind it, in order."""
        self._needs_sync = True

    def can_deliver(self) -> bool:
        """May a consumer on this connection get another message now?"""
        if self._paused or self._out_bytes + self._held_bytes >= OUTPUT_BUDGET:
            self._starved = True
            return False
        return True

    def room(self) -> int:
        """Bytes of deliveries consumers on this connection may still add in
        this pass (0 or less while the socket is paused or the budget is
        spent: the connection then resumes them after its write)."""
        room = 0 if self._paused else OUTPUT_BUDGET - self._out_bytes - self._held_bytes
        if room <= 0:
            self._starved = True
        return room

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._before_flush:
            callbacks, self._before_flush = self._before_flush, []
            for callback in callbacks:
                callback()
        out = self._out
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
                    self.server.storage.sync_soon(lambda: self._write_held(ticket))
                self._held.append((data, ticket))
                self._held_bytes += len(data)
            else:
                self._write(data)
        if self._starved and not self._paused:
            self._resume_consumers()

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)
            self._last_send = self.loop.time()

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
        if self._starved and not self._paused:
            self._resume_consumers()

    def pause_reading(self) -> bool:
        """Stop reading the socket (broker.transport.flow_control); True when it was
        read until now."""
        if self._reading_paused or self.transport.is_closing():
            return False
        self.transport.pause_reading()
        self._reading_paused = True
        return True

    def resume_reading(self) -> None:
        """Read the socket again after ``pause_reading``."""
        if self._reading_paused:
            self._reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._starved:
            self._resume_consumers()

    def _resume_consumers(self) -> None:
        self._starved = False
        for channel in self.channels.values():
            for consumer in channel.consumers.values():
                consumer.queue.schedule_drain()

    # ---- timers ----------------------------------------------------------

    def _handshake_timeout(self) -> None:
        if self.state == HANDSHAKE:
            log.warning("%s: handshake not finished within %ss (%s), closing", self.name,
                        self.server.config.handshake_timeout, self.handshake.state)
            self._close_transport()

    def _heartbeat_tick(self) -> None:
        if self.state in (CLOSED,):
            return
        now = self.loop.time()
        if now - self._last_recv > 2 * self.heartbeat:
            log.warning("%s: missed heartbeats from client, timeout: %ss", self.name, self.heartbeat)
            self._release_all()
            self.state = CLOSED
            self.transport.abort()
            return
        if now - self._last_send >= self.heartbeat / 2:
            self.send(HEARTBEAT_FRAME)
        self._timer = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    # ---- closing ---------------------------------------------------------

    def _fail(self, error: AMQPError) -> None:
        """Answer a connection error with connection.close and wait for
        close-ok (spec §1.4.2.9)."""
        log.warning("%s vhost '%s': connection error %s (class %d method %d)", self.name,
                    self.vhost.name if self.vhost else "", error.reply_text, error.class_id, error.method_id)
        self.close(error)

    def close(self, error: AMQPError) -> None:
        """Server-initiated connection.close (errors, shutdown)."""
        if self.state in (CLOSING, CLOSED):
            return
        self._release_all()
        self.state = CLOSING
        self.send(encode_method(0, commands.Connection.Close(reply_code=error.reply_code, reply_text=error.reply_text,
                                                             class_id=error.class_id, method_id=error.method_id)))
        self._timer.cancel()
        self._timer = self.loop.call_later(CLOSE_OK_TIMEOUT, self._close_transport)

    def _close_transport(self) -> None:
        self._flush()
        self._write_held(self._tickets)
        self.transport.close()

    def _release_all(self) -> None:
        for channel in self.channels.values():
            channel.release()
        self.channels.clear()
        for queue in list(self.exclusive_queues):
            log.info("%s vhost '%s' queue '%s': exclusive queue deleted with its connection", self.name,
                     queue.vhost.name, queue.name)
            queue.vhost.delete_queue(queue)
        self.exclusive_queues.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is gone: requeue, clean up, forget this connection."""
        if self.state == HANDSHAKE and self.handshake.state == AWAIT_PROTOCOL_HEADER:
            # a bare TCP probe (health checks, port scans): not worth an info line
            log.debug("%s: socket closed before the protocol header", self.name)
        elif self.state != CLOSED:
            log.info("%s: socket closed%s", self.name, f" ({exc})" if exc else "")
        self._release_all()
        self.state = CLOSED
        self._timer.cancel()
        self.server.connections.discard(self)
