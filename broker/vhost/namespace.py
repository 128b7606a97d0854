"""Virtual hosts: the exchanges and queues of one namespace, and routing
through them (AMQP 0-9-1 spec §3.1.1; rabbitmq.com/vhosts.html)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from broker.vhost import publish as publish_pipeline
from broker.vhost import sender_selected
from broker.exchanges import DirectExchange, Exchange, FanoutExchange, HeadersExchange, TopicExchange, route_message
from protocol import reply_codes
from protocol.errors import channel_error
from broker.model.events import Event
from broker.model.stats import ChurnStats, MessageStats

if TYPE_CHECKING:
    from broker.model.message_store import MessageStore
    from broker.model.message import Message
    from broker.queues.queue import Queue

log = logging.getLogger(__name__)

#: exchanges every vhost has (spec §3.1.3.1 and RabbitMQ's amq.match)
STANDARD_EXCHANGES = (
    ("", DirectExchange), ("amq.direct", DirectExchange), ("amq.fanout", FanoutExchange),
    ("amq.topic", TopicExchange), ("amq.headers", HeadersExchange), ("amq.match", HeadersExchange),
)


class VHost:
    """``exchanges`` and ``queues`` by name. The default exchange ("") is
    an exchange object for lookups, but routes by queue name itself (every
    queue is implicitly bound to it with its name as binding key)."""

    def __init__(self, name: str, storage: "MessageStore | None" = None, flow=None, dedup_journal=None):
        """``storage``: the server's broker.persistence.store.Store (None:
        nothing is stored); ``flow``: its broker.transport.flow_control.PublishFlow;
        ``dedup_journal``: its broker.persistence.dedup_journal.DedupJournal
        (None outside a server)."""
        self.name = name
        self.storage = storage
        #: message counters of this vhost's closed channels plus its
        #: dead-lettering (broker/model/stats.py); the vhost's totals add
        #: those of its open channels
        self.stats = MessageStats()
        #: queues declared, created and deleted in this vhost
        self.churn = ChurnStats()
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        #: basic.publish payload -> broker.session.route_cache.Route; cleared on
        #: every change of exchanges, queues or bindings
        self.routes: dict = {}
        self.flow = flow
        self.dedup_journal = dedup_journal
        #: emitted with the queue by ``delete_queue`` once it is gone (broker/model/events.py)
        self.queue_deleted = Event("queue_deleted")
        for exchange_name, cls in STANDARD_EXCHANGES:
            self.exchanges[exchange_name] = cls(exchange_name, durable=True)

    #: the publish pipeline as a method (``vhost.publish(exchange, message,
    #: ...)``), for the lower layers that hold the vhost object (a queue
    #: dead-lettering, a delayed exchange's scheduler): broker/vhost/publish.py
    publish = publish_pipeline.publish

    def route(self, exchange: Exchange, message: "Message", held: list | None = None):
        """The queues ``message`` goes to (a collection, each queue once).
        ``held``: a list to collect ``(delayed exchange, delay_ms)`` where
        the message is to be held instead (broker/exchanges/routing.py);
        None routes through delayed exchanges at once."""
        keys = sender_selected.extra_keys(message)  # CC/BCC headers: rabbitmq.com/sender-selected.html
        if keys is not None:
            return sender_selected.route(self, exchange, message, keys, held)
        if exchange.name == "":
            queue = self.queues.get(message.routing_key)
            return (queue,) if queue is not None else ()
        return route_message(exchange, message.routing_key, message.headers, self.exchanges.get, held)

    # ---- exchanges -------------------------------------------------------

    def find_exchange(self, name: str) -> Exchange:
        """The exchange ``name``; 404 NOT_FOUND (channel error) when absent."""
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise channel_error(reply_codes.NOT_FOUND, f"no exchange '{name}' in vhost '{self.name}'")
        return exchange

    def exchange_for_binding(self, name: str) -> Exchange:
        """Like ``find_exchange``, but the default exchange is 403
        ACCESS_REFUSED: it cannot be bound to or from."""
        if name == "":
            raise channel_error(reply_codes.ACCESS_REFUSED, "operation not permitted on the default exchange")
        return self.find_exchange(name)

    def add_exchange(self, exchange: Exchange, store: bool = True) -> None:
        """Register ``exchange``; a durable one is stored (unless ``store``
        is False, as when it is being restored)."""
        self.exchanges[exchange.name] = exchange
        self.routes.clear()
        if store and self.storage is not None and _stored(exchange):
            self.storage.save_exchange(self.name, exchange)

    def delete_exchange(self, exchange: Exchange) -> None:
        """Remove ``exchange`` and every binding from or to it."""
        if self.exchanges.get(exchange.name) is not exchange:
            return
        del self.exchanges[exchange.name]
        self.routes.clear()
        if getattr(exchange, "held", None) is not None:  # x-delayed-message (broker/vhost/delayed_scheduler.py)
            exchange.held.close()
        if getattr(exchange, "cache_persistence", None) == "disk" and self.dedup_journal is not None:
            self.dedup_journal.forget(self.name, exchange.name)  # broker/persistence/dedup_journal.py
        if self.storage is not None and _stored(exchange):
            self.storage.delete_exchange(self.name, exchange.name)
        for other in list(self.exchanges.values()):
            if other.unbind_destination(exchange):
                self.delete_exchange_if_unused(other)

    def delete_exchange_if_unused(self, exchange: Exchange) -> None:
        """Auto-delete: an auto-delete exchange goes when its last binding
        does (rabbitmq.com/exchanges.html)."""
        if exchange.auto_delete and not exchange.has_bindings():
            log.info("vhost '%s': exchange '%s' auto-deleted", self.name, exchange.name)
            self.delete_exchange(exchange)

    # ---- bindings --------------------------------------------------------

    def bind(self, source: Exchange, destination, binding_key: str, arguments: dict, store: bool = True) -> None:
        """Add a binding; stored when both ends are durable. Invalid
        arguments (headers x-match) are 406 PRECONDITION_FAILED."""
        self.routes.clear()
        try:
            added = source.bind(destination, binding_key, arguments)
        except ValueError as exc:
            raise channel_error(reply_codes.PRECONDITION_FAILED, str(exc)) from None
        if added and store and self._binding_stored(source, destination):
            self.storage.save_binding(self.name, source, destination, binding_key, arguments)

    def unbind(self, source: Exchange, destination, binding_key: str, arguments: dict) -> None:
        """Remove a binding if present; an auto-delete source left without
        bindings goes."""
        self.routes.clear()
        if source.unbind(destination, binding_key, arguments) and self._binding_stored(source, destination):
            self.storage.delete_binding(self.name, source, destination, binding_key, arguments)
        self.delete_exchange_if_unused(source)

    def _binding_stored(self, source: Exchange, destination) -> bool:
        if self.storage is None or not source.durable:
            return False
        return _stored(destination) if isinstance(destination, Exchange) else destination.stored

    # ---- queues ----------------------------------------------------------

    def add_queue(self, queue: "Queue", store: bool = True) -> None:
        """Register ``queue``; a durable, non-exclusive, non-auto-delete one
        is stored (it survives a restart, and so do its persistent
        messages)."""
        self.queues[queue.name] = queue
        self.churn.queue_created += 1
        self.routes.clear()
        if store and queue.stored:
            self.storage.save_queue(self.name, queue)

    def delete_queue(self, queue: "Queue") -> int:
        """Remove ``queue``: its bindings go, each of its consumers is told
        (``QueueConsumer.queue_deleted``: cancelled at once, and a
        server-sent basic.cancel, when its client asked for it, follows the
        reply to the method that deleted the queue, as in RabbitMQ,
        rabbitmq.com/consumer-cancel.html), its ready messages are dropped,
        then ``queue_deleted`` is emitted with it (its exclusive owner
        forgets it). Returns how many messages were dropped."""
        if self.queues.get(queue.name) is not queue:
            return 0
        del self.queues[queue.name]
        self.churn.queue_deleted += 1
        self.routes.clear()
        if queue.stored:
            self.storage.delete_queue(self.name, queue.name)
        for exchange in list(self.exchanges.values()):
            if exchange.unbind_destination(queue):
                self.delete_exchange_if_unused(exchange)
        count = queue.close()
        self.queue_deleted.emit(queue)
        return count


def _stored(exchange: Exchange) -> bool:
    """Durable, user-declared exchanges survive restarts; the standard ones
    are recreated at every start."""
    return exchange.durable and not exchange.auto_delete and exchange.name not in _STANDARD_NAMES


_STANDARD_NAMES = frozenset(name for name, _cls in STANDARD_EXCHANGES)
