"""One AMQP connection: handshake, channel table, heartbeats and the close
handshake (AMQP 0-9-1 spec §1.4 class connection, §4.2.7 heartbeat frames);
its output batching is broker.transport.output. Errors are turned into
connection.close in one place, ``_fail``."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pamqp import commands

from broker.session.channel import Channel
from broker.session.route_cache import on_publish
from broker.transport.login import Login
from broker.transport.output import Output
from protocol import reply_codes
from protocol.constants import (FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, HEARTBEAT_FRAME,
                                PROTOCOL_HEADER)
from protocol.errors import AMQPError, connection_error
from protocol.framing import PUBLISH_RUN, FrameReader
from protocol.handshake import (OPEN as HANDSHAKE_OPEN, AWAIT_PROTOCOL_HEADER, BadProtocolHeader, Handshake,
                                HandshakeRefused, looks_like_tls)
from protocol.methods import decode_method, encode_method
from protocol.sasl import certificate_user

if TYPE_CHECKING:
    from broker.queues.queue import Queue

log = logging.getLogger(__name__)

HANDSHAKE = "handshake"
OPEN = "open"
CLOSING = "closing"  # we sent connection.close, waiting for close-ok
CLOSED = "closed"

#: seconds to wait for the peer's close-ok before dropping the socket
CLOSE_OK_TIMEOUT = 3.0
#: longest wait (seconds) for the client to close its socket after our
#: connection.close-ok (RabbitMQ's ?CLOSING_TIMEOUT, rabbit_reader.erl)
CLOSED_SOCKET_TIMEOUT = 30.0


class Connection:
    """State of one client connection; the transport protocol feeds it bytes.

    ``send(data)`` queues frame bytes; they are written once per event-loop
    pass. Consumers ask ``can_deliver()`` before each delivery: it is False
    while the socket is paused (``pause_writing``) or this pass's output
    budget is spent, and deliveries resume by themselves afterwards.
    ``send``, ``before_flush``, ``hold_for_sync``, ``can_deliver`` and
    ``room`` are those of ``output`` (broker.transport.output.Output).
    ``exclusive_queues`` are the queues declared exclusive on this
    connection, deleted with it.
    """

    def __init__(self, server, transport: asyncio.Transport):
        config = server.config
        self.server = server
        server.churn.connection_created += 1
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("?", 0)
        self.name = f"connection {peer[0]}:{peer[1]} -> {local[0]}:{local[1]}"
        self.state = HANDSHAKE
        self.reader = FrameReader(config.frame_max)
        self.peer_address = peer[0]
        #: login, connection.open and the connection limits (broker.transport.login)
        self.login = login = Login(self)
        self.handshake = Handshake(server.server_properties(), config.channel_max, config.frame_max,
                                   config.heartbeat, login.authenticate, login.open_vhost,
                                   certificate_user(transport.get_extra_info("peercert")),
                                   login.authenticate_external)
        self.frame_max = config.frame_max
        self.channel_max = config.channel_max
        self.heartbeat = 0
        self.username = ""
        self.vhost = None
        #: the user's permissions in the vhost (broker.access.Grant), set by connection.open
        self.grant = None
        self.cancel_notify = False
        self.channels: dict[int, Channel] = {}
        self.exclusive_queues: set[Queue] = set()
        self.output = output = Output(self.loop, transport, server.storage, self._resume_consumers)
        # the output's bound methods themselves: the hot send adds no call layer
        self.send = output.send
        self.before_flush = output.before_flush
        self.hold_for_sync = output.hold_for_sync
        self.can_deliver = output.can_deliver
        self.room = output.room
        #: True once a content header came in (this connection publishes):
        #: broker.transport.flow_control may pause reading it
        self.publisher = False
        self._reading_paused = False
        self._last_recv = self.loop.time()
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
                    elif frame_type == FRAME_METHOD:
                        channel.on_method_frame(payload)
                    elif frame_type == FRAME_BODY:
                        channel.on_body_frame(payload)
                    elif frame_type == FRAME_HEADER:
                        channel.on_header_frame(payload)
                        self.publisher = True
                    else:
                        raise connection_error(reply_codes.UNEXPECTED_FRAME,
                                               f"type {FRAME_HEARTBEAT} heartbeat on channel {number}")
                elif frame_type == PUBLISH_RUN:
                    self._frame_by_frame(number, payload)
                elif number == 0:
                    self._on_channel_zero(frame_type, payload)
                    if self.state == CLOSED:
                        break  # the frames after connection.close are discarded, unread
                else:
                    self._open_channel(number, frame_type, payload)
            if self.publisher and self.server.flow.blocked_by and not self._reading_paused:
                self.server.flow.hold(self)  # it published while publishers are blocked
        except AMQPError as error:
            if self.state == CLOSING:
                return  # garbage after our connection.close: nothing more to say
            self._fail(error)
        except HandshakeRefused as exc:
            log.warning("%s: handshake refused: %s", self.name, exc)
            self.state = CLOSED
            self._close_transport()
        except BadProtocolHeader as exc:
            log.warning("%s: bad protocol header %r%s, answering with AMQP 0-9-1's", self.name, exc.args[0],
                        " (a TLS handshake: amqps is on the TLS port)" if looks_like_tls(exc.args[0]) else "")
            self.transport.write(PROTOCOL_HEADER)
            self._close_transport()
        except Exception:
            log.exception("%s: internal error", self.name)
            self._fail(connection_error(reply_codes.INTERNAL_ERROR, "internal error"))

    def _frame_by_frame(self, number: int, payloads: tuple) -> None:
        """A whole publish for a channel that is not open (or channel 0):
        its frames one by one, for the errors they get on their own."""
        for frame_type, payload in zip((FRAME_METHOD, FRAME_HEADER, FRAME_BODY), payloads):
            if frame_type == FRAME_BODY and not payload:
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
        if frame_type == FRAME_HEARTBEAT:
            return
        if frame_type != FRAME_METHOD:
            raise connection_error(reply_codes.UNEXPECTED_FRAME, f"content frame type {frame_type} on channel 0")
        method = decode_method(payload)
        if isinstance(method, commands.Connection.Close):
            log.info("%s: closed by client (%s %s)", self.name, method.reply_code, method.reply_text)
            self._on_client_close()
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
        if self.state != OPEN or frame_type != FRAME_METHOD:
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
        self.server.access.open_channel(self.username)  # 530 at the user's max-channels
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
            self.server.access.channel_closed(self.username)

    def add_exclusive_queue(self, queue: "Queue") -> None:
        """``queue`` was declared exclusive to this connection (its
        ``exclusive_owner``): it is deleted when the connection closes
        (spec §1.7.2.1 queue.declare exclusive); deleted earlier (queue.delete,
        auto-delete, x-expires), it is forgotten through its vhost's
        ``queue_deleted`` event."""
        # one subscriber per vhost (subscribing again is a no-op), not one
        # per connection: a deletion costs one call however many connections
        queue.vhost.queue_deleted.subscribe(_forget_exclusive_queue)
        self.exclusive_queues.add(queue)

    # ---- flow control ----------------------------------------------------

    def pause_reading(self) -> bool:
        """Stop reading the socket (broker.transport.flow_control); True when it was
        read until now. A closed connection is not paused: it waits for
        the client's end of file."""
        if self._reading_paused or self.transport.is_closing() or self.state == CLOSED:
            return False
        self.transport.pause_reading()
        self._reading_paused = True
        return True

    def resume_reading(self) -> None:
        """Read the socket again after ``pause_reading``."""
        if self._reading_paused:
            self._reading_paused = False
            # heartbeats are checked again from now (as rabbit_heartbeat's pause)
            self._last_recv = self.loop.time()
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def pause_writing(self) -> None:
        """asyncio flow control: the socket's buffer is full."""
        self.output.pause()

    def resume_writing(self) -> None:
        """asyncio flow control: the socket's buffer drained."""
        self.output.resume()

    def _resume_consumers(self) -> None:
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
        if self._reading_paused:
            self._last_recv = now  # not read on purpose: its heartbeats wait in the socket
        if now - self._last_recv > 2 * self.heartbeat:
            log.warning("%s: missed heartbeats from client, timeout: %ss", self.name, self.heartbeat)
            self._release_all()
            self.state = CLOSED
            self.transport.abort()
            return
        if now - self.output.last_send >= self.heartbeat / 2:
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
        self.output.finish(encode_method(0, commands.Connection.Close(
            reply_code=error.reply_code, reply_text=error.reply_text, class_id=error.class_id,
            method_id=error.method_id)))
        self._timer.cancel()
        self._timer = self.loop.call_later(CLOSE_OK_TIMEOUT, self._close_transport)

    def _on_client_close(self) -> None:
        """connection.close from the client: close-ok is the last frame
        sent (channels send the confirms already due before it), input is
        discarded from now on, and the socket is left for the client to
        close, or closed after min(heartbeat, 30) seconds, as RabbitMQ does
        (rabbit_reader.erl ``close_connection``, ``handle_frame`` in state
        closed). Closing at once would fail a client whose later writes
        (amqplib queues publishes per channel, so its close can overtake
        them) then meet a closed socket."""
        self._release_all()
        self.output.finish(encode_method(0, commands.Connection.CloseOk()))
        self.state = CLOSED
        self._timer.cancel()
        wait = self.heartbeat if 0 < self.heartbeat < CLOSED_SOCKET_TIMEOUT else CLOSED_SOCKET_TIMEOUT
        self._timer = self.loop.call_later(wait, self._close_transport)

    def _close_transport(self) -> None:
        self.output.close()
        self.transport.close()

    def _release_all(self) -> None:
        for channel in self.channels.values():
            channel.shutdown()
        if self.channels:
            self.server.access.channel_closed(self.username, len(self.channels))
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
        self.login.closed()
        self.server.churn.connection_closed += 1
        self.server.flow.forget_connection(self)


def _forget_exclusive_queue(queue: "Queue") -> None:
    """``VHost.queue_deleted`` subscriber: an exclusive queue deleted before
    its connection closed leaves the owner's ``exclusive_queues``."""
    owner = queue.exclusive_owner
    if owner is not None:
        owner.exclusive_queues.discard(queue)
