"""What every publish path does once a message is routed (basic.publish,
a delayed message held or falling due, a dead-lettered copy): persist it
once for the durable queues it reached, give a mandatory message nobody
took back with basic.return, answer the publisher confirm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import reply_codes
from protocol.hot_methods import delivery_mode, return_frames

if TYPE_CHECKING:
    from broker.session.channel import Channel
    from broker.model.message import Message


def persist(vhost, message: "Message", queues) -> bool:
    """Append a persistent message (delivery-mode 2) to the WAL once, naming
    the durable queues among ``queues`` (design.md, "One publish", step 5);
    True when it was written (its confirm must then wait for the fsync)."""
    if delivery_mode(message.header) != 2 or vhost.storage is None:
        return False
    names = [queue.name for queue in queues if queue.stored]
    if not names:
        return False
    vhost.storage.persist_message(message.id, vhost.name, message.exchange, message.routing_key,
                                  names, message.header, message.body)
    message.stored = True
    return True


def return_unroutable(channel: "Channel", message: "Message") -> None:
    """basic.return 312 NO_ROUTE for a mandatory message no queue took
    (AMQP 0-9-1 spec §1.8.3.8), sent before its publisher confirm."""
    connection = channel.connection
    connection.send(return_frames(channel.number, reply_codes.NO_ROUTE, "NO_ROUTE",
                                  message.exchange_routing_key, message.header, message.body,
                                  connection.frame_max))


def answer_confirm(channel: "Channel", durable: bool, refused: bool = False) -> None:
    """In confirm mode, the basic.ack for the publish just handled: at once,
    or after the WAL fsync when ``durable``; basic.nack when ``refused``
    (x-overflow reject-publish, rabbitmq.com/maxlength.html)."""
    confirms = channel.confirms
    if confirms is None:
        return
    seq = confirms.publish()
    if refused:
        confirms.nack(seq)
    elif durable:
        confirms.settle_when_durable(seq, channel.vhost.storage)
    else:
        confirms.settle(seq)
