"""Delayed-message exchanges reached on the way: through an
exchange-to-exchange binding, as an alternate exchange, or as a queue's
dead-letter exchange (a direct publish to one is broker/vhost/delayed_scheduler.hold).

The plugin (rabbitmq-delayed-message-exchange) delays in its exchange type's
``route/2`` (rabbit_exchange_type_delayed_message.erl), which
``rabbit_exchange:route`` calls for every exchange on the routing path, so a
message with ``x-delay`` > 0 is held wherever it meets the exchange, and
routed from that exchange's own bindings when due
(rabbit_delayed_message.erl, ``route/2``: ``rabbit_exchange:route(Ex, ...)``
with the header negated). The rest of the path is routed now as usual.

Mandatory and confirms follow from the plugin's ``route`` returning no
queues for a held message: a mandatory message that reached no queue now
is returned 312 NO_ROUTE even when an exchange holds it (it is still routed
when due), and its publisher confirm is a basic.ack, sent after the WAL
fsync when the held copy was stored. Unlike the plugin, the delayed
exchange's alternate exchange does not get the message at once (its open
bug #36).
"""

from __future__ import annotations

import logging

from broker.vhost.delayed_scheduler import scheduler_for
from broker.model.message import Message
from broker.model.message_headers import headers_or_none, set_headers

log = logging.getLogger(__name__)


def hold_copies(vhost, message: Message, held: list) -> bool:
    """Hold one copy of ``message`` (new id, ``x-delay`` negated) at each
    delayed exchange in ``held`` (``(exchange, delay_ms)`` pairs collected
    by ``VHost.route``), durably when it is persistent and the exchange
    durable, as a direct publish is held. The copy keeps the message's
    exchange and routing key, so basic.deliver names the exchange it was
    published (or dead-lettered) to, as in the plugin. Returns True when a
    copy was written to the WAL (a publisher confirm must wait for the
    fsync). The BCC keys, taken out of the headers at publish
    (broker/vhost/sender_selected.py), are put back in the copy's: it is routed
    with them when due (and they are taken out again then), across a
    restart too, as the plugin keeps a held message's routing keys."""
    stored = False
    header = message.header
    if message.bcc:
        with_bcc = Message(message.exchange, message.routing_key, header, message.body)
        set_headers(with_bcc, {**(headers_or_none(message) or {}), "BCC": message.bcc})
        header = with_bcc.header
    for exchange, delay in held:
        copy = Message(message.exchange, message.routing_key, header, message.body)
        if scheduler_for(vhost, exchange).add(copy, delay):
            stored = True
        log.debug("vhost '%s' exchange '%s': message from exchange '%s' held for %d ms", vhost.name,
                  exchange.name, message.exchange, delay)
    return stored
