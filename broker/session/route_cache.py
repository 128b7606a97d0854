"""The common basic.publish without per-frame work (docs/architecture.md, "Performance
principles"): a publish whose method, content header and body came in one
read (``FrameReader.frames(runs=True)``), to a direct, fanout or topic
exchange or the default exchange, routed through a per-vhost cache keyed by
the method frame's payload bytes.

``VHost.routes`` maps a basic.publish payload (ticket, exchange, routing key,
mandatory bit) to its ``Route``; the vhost clears it whenever an exchange,
queue or binding comes or goes, so a cached route is always what
``VHost.route`` would answer for a message without CC/BCC headers. Anything
the cache does not cover takes the general path (broker/session/publish_methods.py),
which also raises every error (404, 403, 406, 540, 501)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.exchanges import route_message
from broker.model.message import Message
from broker.model.message_headers import has_publish_checked_property
from broker.session.publish_answer import answer
from broker.vhost.publish import UNROUTABLE, publish
from protocol.assembler import IDLE
from protocol.constants import BASIC_PUBLISH
from protocol.errors import AMQPError

if TYPE_CHECKING:
    from broker.session.channel import Channel
    from broker.vhost.namespace import VHost

#: exchange types whose routing depends on the routing key and bindings only
_CACHEABLE_TYPES = frozenset({"direct", "fanout", "topic"})
#: cached routes per vhost; the cache starts over when it is full (a client
#: publishing to ever new routing keys must not grow it without bound)
MAX_ROUTES = 4096


class Route:
    """Where publishes with one basic.publish payload go: ``queues`` (a
    tuple, each once), the decoded ``exchange_name`` and ``routing_key``,
    ``exchange_routing_key`` (the two short strings, as basic.deliver
    carries them), ``mandatory``; the publish pipeline reads it as a
    broker.vhost.publish.CachedRoute: ``plain`` is False when a queue has
    per-publish rules (x-message-deduplication, x-overflow) and ``stored``
    is True when a queue keeps persistent messages."""

    __slots__ = ("exchange", "exchange_name", "routing_key", "exchange_routing_key", "mandatory", "queues",
                 "plain", "stored")


def lookup(vhost: "VHost", method: bytes) -> Route | None:
    """The cached route for a basic.publish ``method`` payload (class and
    method ids included), computed on first use; None when the publish must
    take the general path (immediate set, no such exchange, internal or
    headers-dependent exchange, alternate exchange or e2e bindings,
    malformed payload)."""
    route = vhost.routes.get(method)
    if route is not None:
        return route
    try:
        n = method[6]
        end = 8 + n + method[7 + n]
        if len(method) != end + 1 or method[end] & 0xFE:
            return None
        exchange_name = method[7:7 + n].decode()
        routing_key = method[8 + n:end].decode()
    except (IndexError, UnicodeDecodeError):
        return None
    exchange = vhost.exchanges.get(exchange_name)
    if exchange is None or exchange.internal:
        return None
    if exchange_name == "":
        queue = vhost.queues.get(routing_key)
        queues = (queue,) if queue is not None else ()
    elif (exchange.type_name in _CACHEABLE_TYPES and exchange._fast
          and "alternate-exchange" not in exchange.arguments):
        queues = tuple(route_message(exchange, routing_key, _no_headers, vhost.exchanges.get))
    else:
        return None
    route = Route()
    route.exchange = exchange
    route.exchange_name = exchange_name
    route.routing_key = routing_key
    route.exchange_routing_key = method[6:end]
    route.mandatory = bool(method[end])
    route.queues = queues
    route.plain = not any("x-message-deduplication" in q.arguments or "x-overflow" in q.arguments for q in queues)
    route.stored = any(q.stored for q in queues)
    if len(vhost.routes) >= MAX_ROUTES:
        vhost.routes.clear()
    vhost.routes[method] = route
    return route


def _no_headers() -> None:
    """Cached exchange types never ask for headers."""
    return None


def on_publish(channel: "Channel", method: bytes, header: bytes, body: bytes) -> None:
    """A whole basic.publish (method, content header and body payloads,
    from ``FrameReader.frames(runs=True)``) on ``channel``. When none of
    the general path's per-message rules applies (open channel with no
    content pending, no transaction, no expiration or user-id property, no
    CC/BCC headers, body within max_message_size) and the route is
    cacheable: the user's write permission on the exchange is checked (once
    per user, vhost and exchange: ``Channel.writable``), then the vhost's
    publish pipeline (broker/vhost/publish.py) takes
    it with its cached route (no routing; a plain route is only persisted
    when persistent and enqueued), then basic.return for a mandatory one
    nobody takes (312 NO_ROUTE) and the publisher confirm
    (broker/session/publish_answer.py). Anything
    else goes frame by frame (``Channel.frames_of_publish``). Errors
    close the channel as the general path does (class 60 method 40)."""
    if (channel.state == "open" and channel.assembler.state == IDLE and channel.tx is None
            and not has_publish_checked_property(header)
            and len(body) <= channel.assembler.max_size and b"CC" not in header):  # CC/BCC headers
        vhost = channel.vhost
        route = vhost.routes.get(method) or lookup(vhost, method)
        if route is not None:
            try:
                if route.exchange_name not in channel.writable:  # once per user, vhost and exchange
                    channel.grant.check_publish(route.exchange_name)
                message = Message(route.exchange_name, route.routing_key, header, body, None,
                                  route.exchange_routing_key)
                outcome = publish(vhost, route.exchange, message, route)
                # most publishes need no answer: skip the call then
                if outcome & UNROUTABLE and route.mandatory or channel.confirms is not None:
                    answer(channel, message, outcome, route.mandatory)
            except AMQPError as error:
                channel.fail(error.for_method(*BASIC_PUBLISH))
            return
    channel.frames_of_publish(method, header, body)
