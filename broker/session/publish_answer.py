"""Answering a publisher: the publish pipeline's outcome
(broker/vhost/publish.py flags) turned into basic.return and the publisher
confirm on the channel the message came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.vhost.publish import REFUSED, STORED, UNROUTABLE
from protocol import reply_codes
from protocol.hot_methods import return_frames

if TYPE_CHECKING:
    from broker.model.message import Message


def answer(channel, message: "Message", outcome: int, mandatory: bool) -> None:
    """For the publish of ``message`` just handled with ``outcome``: a
    mandatory message that is UNROUTABLE goes back as basic.return 312
    NO_ROUTE (AMQP 0-9-1 spec §1.8.3.8), before the publisher confirm; in
    confirm mode (rabbitmq.com/confirms.html) the confirm is basic.nack
    when a queue REFUSED it (x-overflow reject-publish,
    rabbitmq.com/maxlength.html), else basic.ack, sent after the WAL fsync
    when it was STORED, at once otherwise. Counts the publish on the
    channel's ``stats`` (broker/model/stats.py)."""
    stats = channel.stats
    stats.publish += 1
    if outcome & UNROUTABLE:
        if mandatory:
            stats.return_unroutable += 1
        else:
            stats.drop_unroutable += 1
    if outcome & UNROUTABLE and mandatory:
        connection = channel.connection
        connection.send(return_frames(channel.number, reply_codes.NO_ROUTE, "NO_ROUTE",
                                      message.exchange_routing_key, message.header, message.body,
                                      connection.frame_max))
    confirms = channel.confirms
    if confirms is None:
        return
    seq = confirms.publish()
    if outcome & REFUSED:
        confirms.nack(seq)
    elif outcome & STORED:
        confirms.settle_when_durable(seq, channel.vhost.storage)
    else:
        confirms.settle(seq)
