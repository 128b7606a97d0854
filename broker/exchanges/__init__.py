"""Exchange types and message routing (AMQP 0-9-1 spec §3.1.3; RabbitMQ's
https://www.rabbitmq.com/tutorials/amqp-concepts.html, e2e.html, ae.html).

Pure Python: no asyncio, no I/O. ``EXCHANGE_TYPES`` maps the type name a
client sends in exchange.declare to the class implementing it.
"""

from broker.exchanges.base import Exchange
from broker.exchanges.deduplication import DeduplicationExchange
from broker.exchanges.delayed import DelayedMessageExchange
from broker.exchanges.direct import DirectExchange
from broker.exchanges.fanout import FanoutExchange
from broker.exchanges.headers import HeadersExchange
from broker.exchanges.routing import route_message
from broker.exchanges.topic import TopicExchange

EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
    "x-delayed-message": DelayedMessageExchange,
    "x-message-deduplication": DeduplicationExchange,
}

__all__ = [
    "EXCHANGE_TYPES",
    "DeduplicationExchange",
    "DelayedMessageExchange",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
    "route_message",
]
