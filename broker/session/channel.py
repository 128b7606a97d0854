"""Channels: per-channel state, method dispatch, deliveries, acknowledgements
and the close handshake (AMQP 0-9-1 spec §1.5 class channel, §1.8 class basic)."""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING

from pamqp import commands

from broker.session import basic_methods, publish_methods
from broker.session import confirms
from broker.session import exchange_methods
from broker.session import queue_methods
from broker.session import tx_methods
from broker.session.acks import OPEN, ChannelDeliveries
from broker.session.consumer import Consumer
from broker.session.consumer_timeout import AckTimer
from broker.model.message import QueuedMessage
from protocol import reply_codes
from protocol.assembler import IDLE, ContentAssembler
from protocol.constants import (BASIC_ACK, BASIC_NACK, BASIC_PUBLISH, BASIC_REJECT, CHANNEL_CLOSE, CHANNEL_CLOSE_OK,
                                CLASS_BASIC, CLASS_CHANNEL)
from protocol.errors import AMQPError, channel_error
from protocol.hot_methods import decode_publish, decode_tag_bits
from protocol.methods import Method, decode_method, encode_method

if TYPE_CHECKING:
    from broker.queues.queue import Queue

log = logging.getLogger(__name__)

_IDS = struct.Struct(">HH")
# method ids of the basic methods decoded with struct (hot: one per publish or ack)
_PUBLISH, _ACK, _REJECT, _NACK = BASIC_PUBLISH[1], BASIC_ACK[1], BASIC_REJECT[1], BASIC_NACK[1]
CLOSING = "closing"  # we sent channel.close and wait for close-ok
CLOSED = "closed"

_HANDLERS = {
    **exchange_methods.HANDLERS,
    **queue_methods.HANDLERS,
    **basic_methods.HANDLERS,
    **tx_methods.HANDLERS,
}


class Channel(ChannelDeliveries):
    """One open channel of a connection.

    Holds the consumers started on it (``consumers``: tag -> Consumer), the
    deliveries not yet acknowledged (``unacked``: delivery tag ->
    ``(QueuedMessage, Queue, Consumer | None)``, in delivery-tag order),
    prefetch settings, publisher-confirm and transaction state. Channel errors
    raised by handlers are turned into channel.close here; connection errors
    propagate to the connection.
    """

    def __init__(self, connection, number: int):
        self.connection = connection
        self.number = number
        self.vhost = connection.vhost
        #: the user's permissions in the vhost (broker.access.Grant): every
        #: method handler checks through it (RabbitMQ's rabbit_channel mapping)
        self.grant = connection.grant
        #: exchange names a publish may go to without a check (the grant's
        #: ``writable``: the route cache's one set lookup per publish)
        self.writable = connection.grant.writable
        self.state = OPEN
        self.assembler = ContentAssembler(connection.server.config.max_message_size)
        self.consumers: dict[str, Consumer] = {}
        self.unacked: dict[int, tuple[QueuedMessage, "Queue", Consumer | None]] = {}
        self.delivery_tag = 0
        self.prefetch_count = 0
        self.global_prefetch = 0
        self.flow_active = True
        self.confirms: confirms.PublisherConfirms | None = None
        self.tx: tx_methods.Transaction | None = None
        self.last_queue_name = ""
        #: (exchange, routing_key, mandatory, immediate) of the publish being assembled
        self.publish_args: tuple = ()
        #: closes the channel when a delivery stays unacked too long (broker.session.consumer_timeout)
        self.ack_timer = AckTimer(self, connection.server.config.consumer_timeout)

    def __repr__(self) -> str:
        return f"{self.connection.name} channel {self.number}"

    # ---- frames in -------------------------------------------------------

    def on_method_frame(self, payload: bytes) -> None:
        """Handle one method frame addressed to this channel."""
        class_id, method_id = _IDS.unpack_from(payload, 0)
        if self.state != OPEN:
            self._on_frame_while_closing(payload, class_id, method_id)
            return
        try:
            if self.assembler.state != IDLE:
                raise self.assembler.unexpected("method")
            if class_id == CLASS_BASIC:
                if method_id == _PUBLISH:
                    # decoded now, as RabbitMQ does: a bad publish fails before its content
                    self.publish_args = decode_publish(payload)
                    self.assembler.start(payload)
                    return
                if method_id == _ACK:
                    tag, bits = decode_tag_bits(payload, "basic.ack")
                    self.ack(tag, bool(bits & 1))
                    return
                if method_id == _NACK:
                    tag, bits = decode_tag_bits(payload, "basic.nack")
                    self.reject(tag, bool(bits & 1), bool(bits & 2), BASIC_NACK)
                    return
                if method_id == _REJECT:
                    tag, bits = decode_tag_bits(payload, "basic.reject")
                    self.reject(tag, False, bool(bits & 1), BASIC_REJECT)
                    return
            self.handle(decode_method(payload))
        except AMQPError as error:
            self.fail(error.for_method(class_id, method_id))

    def frames_of_publish(self, method: bytes, header: bytes, body: bytes) -> None:
        """A whole basic.publish that the route cache does not take
        (broker/session/route_cache.py), handled frame by frame, exactly as if its
        frames had come one at a time."""
        self.on_method_frame(method)
        self.on_header_frame(header)
        if body:
            self.on_body_frame(body)

    def on_header_frame(self, payload: bytes) -> None:
        if self.state != OPEN:
            return
        self._on_content(self.assembler.on_header, payload)

    def on_body_frame(self, payload: bytes) -> None:
        if self.state != OPEN:
            return
        self._on_content(self.assembler.on_body, payload)

    def _on_content(self, feed, payload: bytes) -> None:
        try:
            command = feed(payload)  # assembler errors carry their own method ids
        except AMQPError as error:
            self.fail(error)
            return
        if command is not None:
            try:
                publish_methods.publish(self, self.publish_args, command[1], command[2])
            except AMQPError as error:
                self.fail(error.for_method(*BASIC_PUBLISH))

    def handle(self, method: Method) -> None:
        """Dispatch a decoded (non-hot) method to its handler."""
        handler = _HANDLERS.get(type(method))
        if handler is not None:
            handler(self, method)
        elif isinstance(method, commands.Channel.Close):
            self._on_close(method)
        elif isinstance(method, commands.Channel.Flow):
            self._on_flow(method)
        elif isinstance(method, commands.Confirm.Select):
            self.select_confirms()
            if not method.nowait:
                self.send(commands.Confirm.SelectOk())
        elif isinstance(method, commands.Channel.Open):
            raise AMQPError(reply_codes.CHANNEL_ERROR, "second 'channel.open' seen", connection_level=True)
        else:
            raise AMQPError(reply_codes.COMMAND_INVALID, "unimplemented method",
                            connection_level=True)

    def send(self, method: Method) -> None:
        """Queue one method frame for this channel; dropped once the channel
        is closing or closed: RabbitMQ's channel.close (server) and
        channel.close-ok are the last frames on a channel
        (rabbit_channel.erl ``send/2`` drops in state closing), so a
        confirm or basic.cancel due later cannot reach the client, nor a
        new channel that reuses the number."""
        if self.state == OPEN:
            self.connection.send(encode_method(self.number, method))

    def _send_close(self, method: Method) -> None:
        """channel.close or channel.close-ok, sent whatever the state."""
        self.connection.send(encode_method(self.number, method))

    # ---- close -----------------------------------------------------------

    def fail(self, error: AMQPError) -> None:
        """Answer a channel error with channel.close; connection errors go up."""
        if error.connection_level:
            raise error
        if self.state != OPEN:
            return  # already closing: the first error's channel.close stands
        log.warning("%s vhost '%s': channel error %s (class %d method %d)", self, self.vhost.name,
                    error.reply_text, error.class_id, error.method_id)
        self._stop(CLOSING)
        self._send_close(commands.Channel.Close(reply_code=error.reply_code, reply_text=error.reply_text,
                                                class_id=error.class_id, method_id=error.method_id))

    def _on_close(self, method: commands.Channel.Close) -> None:
        self._stop(CLOSED)
        self._send_close(commands.Channel.CloseOk())
        self.connection.forget_channel(self)

    def shutdown(self) -> None:
        """The connection is closing (connection.close either way, or the
        socket is gone): release the channel and send the confirms already
        due, before the connection's close or close-ok; nothing is sent on
        it afterwards."""
        self._stop(CLOSED)

    def _stop(self, state: str) -> None:
        """Leave the open state for ``state`` (CLOSING or CLOSED): release
        consumers and unacked messages, and send the publisher confirms
        settled so far first, as RabbitMQ sends the confirms of the methods
        it handled before the close (rabbit_channel.erl
        ``send_confirms_and_nacks`` after each method); confirms still
        waiting for an fsync are dropped (the client sees the channel close
        before their answer, rabbitmq.com/confirms.html)."""
        if self.state != OPEN:
            return
        self.release()
        if self.confirms is not None:
            self.confirms.emit()
        self.state = state

    def _on_frame_while_closing(self, payload: bytes, class_id: int, method_id: int) -> None:
        # After we sent channel.close everything but close/close-ok is dropped
        # (spec §1.5.2.5).
        if class_id != CLASS_CHANNEL:
            return
        if method_id == CHANNEL_CLOSE_OK[1]:
            self.state = CLOSED
            self.connection.forget_channel(self)
        elif method_id == CHANNEL_CLOSE[1]:
            self._send_close(commands.Channel.CloseOk())

    def release(self) -> None:
        """Cancel this channel's consumers and requeue its unacknowledged
        messages in their original order (spec §1.8.3.14, RabbitMQ requeues
        on channel close). Safe to call more than once."""
        for consumer in list(self.consumers.values()):
            consumer.queue.remove_consumer(consumer)
        self.consumers.clear()
        if self.tx is not None:
            self.tx.rollback(self)
        self.requeue_entries(self.take_all_unacked().values())
        self.assembler.reset()
        self.ack_timer.cancel()

    # ---- state the method handlers change -------------------------------------

    def set_prefetch(self, count: int, global_: bool) -> None:
        """basic.qos as RabbitMQ reads it (rabbitmq.com/consumer-prefetch.html):
        ``global_`` False sets the prefetch (unacked deliveries, 0 =
        unlimited) of consumers started afterwards on this channel, True the
        limit shared by the whole channel, which applies at once."""
        if global_:
            self.global_prefetch = count
            for consumer in self.consumers.values():
                consumer.queue.schedule_drain()
        else:
            self.prefetch_count = count

    def add_consumer(self, consumer: Consumer) -> None:
        """Register a consumer started by basic.consume (its tag is new on
        this channel); its deliveries are watched by the acknowledgement
        timeout unless it is no-ack."""
        self.consumers[consumer.tag] = consumer
        if not consumer.no_ack:
            self.ack_timer.watch(consumer.queue)

    def remove_consumer(self, tag: str) -> Consumer | None:
        """Forget the consumer ``tag`` (basic.cancel, or its queue was
        deleted); the removed Consumer, None when unknown. Detaching it
        from its queue is the caller's business."""
        return self.consumers.pop(tag, None)

    def remember_queue(self, name: str) -> None:
        """``name`` was declared on this channel: an empty queue name in
        later methods means it (spec §1.7.2.1)."""
        self.last_queue_name = name

    def select_tx(self) -> None:
        """tx.select: make the channel transactional (idempotent). 406
        PRECONDITION_FAILED on a channel in confirm mode (as RabbitMQ)."""
        if self.confirms is not None:
            raise channel_error(reply_codes.PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = tx_methods.Transaction()

    def select_confirms(self) -> None:
        """confirm.select: put the channel in publisher-confirm mode
        (idempotent; rabbitmq.com/confirms.html). 406 PRECONDITION_FAILED on
        a transactional channel (as RabbitMQ)."""
        if self.tx is not None:
            raise channel_error(reply_codes.PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        if self.confirms is None:
            self.confirms = confirms.PublisherConfirms(self)

    def _on_flow(self, method: commands.Channel.Flow) -> None:
        if not method.active:  # as RabbitMQ 3.x: consumers use basic.qos instead
            raise AMQPError(reply_codes.NOT_IMPLEMENTED, "active=false", connection_level=True)
        self.flow_active = bool(method.active)
        self.send(commands.Channel.FlowOk(active=self.flow_active))
        if self.flow_active:
            for consumer in self.consumers.values():
                consumer.queue.schedule_drain()
