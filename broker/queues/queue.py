"""Queues: ready messages in order, consumers served round-robin
(AMQP 0-9-1 spec §3.1.3 "Message Queues"; rabbitmq.com/queues.html)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from broker.queues import consumer_selection
from broker.queues import priority_ready
from broker.model.message import Message, QueuedMessage, from_cold, to_cold
from broker.model.message_headers import has_expiration
from broker.queues.lifecycle import QueueLifecycle, lifecycle_for
from broker.model.reasons import REASON_ACKED, REASON_DELETED, REASON_PURGED
from broker.model.stats import MessageStats

if TYPE_CHECKING:
    from broker.model.interfaces import QueueConsumer as Consumer

log = logging.getLogger(__name__)

#: Ready messages a queue keeps as QueuedMessage objects. Behind them,
#: persistent messages of a stored queue wait in ``Queue.cold`` as bare
#: message ids and are read back from the WAL when the head gets there
#: (issue 3: a deep queue must not hold every body in RAM); transient ones
#: wait as tuples the garbage collector does not walk (broker.model.message.to_cold).
HOT_LIMIT = 2048


class Queue:
    """One queue in one vhost.

    ``exclusive_owner`` is the owning connection of an exclusive queue (None
    otherwise). Ready messages sit in ``ready`` in delivery order, then (in a
    queue deeper than HOT_LIMIT, not a priority queue) in ``cold``: message ids of
    persisted messages whose bodies stay in the WAL, ``to_cold`` tuples of
    transient messages, or Message objects (a transient message with BCC keys);
    a negative id is a recovered message that comes back redelivered. Messages delivered but unacknowledged live in
    their channel, not here, and come back through ``requeue``. Deliveries
    happen in ``drain``, which gives each message to the next consumer
    (round-robin) that has prefetch credit and a writable socket.
    """

    def __init__(self, vhost, name: str, durable: bool = False, exclusive_owner=None,
                 auto_delete: bool = False, arguments: dict | None = None):
        self.vhost = vhost
        self.name = name
        #: message counters (broker/model/stats.py): publish counts enqueued messages
        self.stats = MessageStats()
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments = dict(arguments or {})
        self.ready: deque[QueuedMessage] = deque()
        self.cold: deque = deque()
        self.consumers: list[Consumer] = []
        self.deleted = False
        #: survives restarts (with its persistent messages): durable, not
        #: exclusive, not auto-delete, and the vhost has storage
        self.stored = (durable and exclusive_owner is None and not auto_delete
                       and vhost.storage is not None)
        self._next_seq = 0
        self._rr = 0
        self._drain_scheduled = False
        #: x-max-priority (0: not a priority queue); ``ready`` is then a
        #: PriorityReady, kept all in memory (see broker.queues.priority_ready)
        self.priorities = priority_ready.max_priority(self.arguments)
        if self.priorities:
            self.ready = priority_ready.PriorityReady(self.priorities)
        #: picks consumers when single-active-consumer or consumer
        #: priorities apply (broker.queues.consumer_selection); None: round-robin
        self.selector = (consumer_selection.ConsumerSelector(self)
                         if consumer_selection.needs_selector(self) else None)
        #: TTL, limits, dead-lettering, x-expires (broker/queues/lifecycle.py); None when unused
        self.lifecycle = lifecycle_for(self)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} vhost={self.vhost.name!r}>"

    @property
    def message_count(self) -> int:
        """Ready messages (not counting unacknowledged ones), as in declare-ok."""
        count = len(self.ready) + len(self.cold)
        return count if self.lifecycle is None else count - len(self.lifecycle.hidden)

    @property
    def consumer_count(self) -> int:
        return len(self.consumers)

    def enqueue(self, message: Message) -> None:
        """Append a routed message; hand it straight to a consumer when the
        queue has nothing else waiting. In a deep queue a persisted
        message is kept as its id only (its body is in the WAL), a transient
        one as a ``to_cold`` tuple."""
        self.stats.publish += 1
        ready = self.ready
        lifecycle = self.lifecycle
        if lifecycle is None and has_expiration(message.header):
            lifecycle = self.lifecycle = QueueLifecycle(self)
        if self.cold or (len(ready) >= HOT_LIMIT and not self.priorities):
            item = message.id if message.stored is not None else to_cold(message)
            self.cold.append(item)
            if lifecycle is not None:
                lifecycle.enqueued(message, None if message.stored is not None else item)
            return
        self._next_seq += 1
        entry = QueuedMessage(message, self._next_seq)
        if lifecycle is None and self.selector is None and not self.priorities:
            # delivered at the end of this pass, with the others that came
            # in the same read (broker/session/delivery.py: one write per pass)
            ready.append(entry)
            if not self._drain_scheduled and self.consumers:
                self._drain_scheduled = True
                asyncio.get_running_loop().call_soon(self.drain)
            return
        if not ready and self.consumers:
            consumer = self._next_consumer()
            if consumer is not None:
                if lifecycle is not None:
                    lifecycle.stamp(entry)
                consumer.deliver(entry)
                return
        ready.append(entry)
        if lifecycle is not None:
            lifecycle.enqueued(message, entry)

    def restore(self, message_id: int, redelivered: bool, info: tuple | None = None) -> None:
        """Append a message recovered from the WAL at start-up (before any
        consumer); it waits in ``cold`` as its id, negated when it comes
        back redelivered (an int costs less than an object per message).
        ``info``: ``(at_ms, expiration, body_length)`` kept at replay
        (broker/persistence/replay_keeper.py) for a message with a TTL or
        in a queue with a byte limit: its deadline keeps counting from its
        publish time and its size counts (``QueueLifecycle.restored``)."""
        self.cold.append(-message_id if redelivered else message_id)
        if info is not None:
            if self.lifecycle is None:
                self.lifecycle = QueueLifecycle(self)
            self.lifecycle.restored(message_id, info)

    def get(self) -> QueuedMessage | None:
        """Take the head message for basic.get, or None when empty."""
        while True:
            if not self.ready:
                if not self.cold:
                    return None
                self._refill()
                continue
            entry = self.ready.popleft()
            if self.lifecycle is None or not self.lifecycle.skip(entry):
                return entry

    def _refill(self) -> None:
        """Move up to HOT_LIMIT messages from ``cold`` to ``ready``, reading
        persisted ones back from the WAL (storage.read_for_delivery: one
        pread per run of neighbouring records, only the fields a delivery
        needs)."""
        cold = self.cold
        items = [cold.popleft() for _ in range(len(cold) if self.priorities else min(HOT_LIMIT, len(cold)))]
        if self.lifecycle is not None:
            items = self.lifecycle.filter_cold(items)
        ids = [abs(item) for item in items if type(item) is int]
        stored = iter(self.vhost.storage.read_for_delivery(ids) if ids else ())
        ready = self.ready
        lifecycle = self.lifecycle
        # a message expiring in ready is buried there, not read back
        moved = lifecycle.index.moved if lifecycle is not None and lifecycle.index.deadlines else None
        seq = self._next_seq
        for item in items:
            if type(item) is int:
                exchange, routing_key, exchange_routing_key, header, body = next(stored)
                message = Message(exchange, routing_key, header, body, abs(item), exchange_routing_key)
                message.stored = True
                entry = QueuedMessage(message, 0, item < 0)
                if item < 0 and lifecycle is not None and not lifecycle.recovered_delivery(entry):
                    continue
            elif type(item) is tuple:
                entry = QueuedMessage(from_cold(item), 0)
            elif type(item) is QueuedMessage:
                entry = item
            else:
                entry = QueuedMessage(item, 0)
            seq += 1
            entry.seq = seq
            ready.append(entry)
            if moved is not None:
                moved(entry.message.id, entry)
        self._next_seq = seq

    def requeue(self, entries: list[QueuedMessage]) -> None:
        """Put delivered messages back in their original order, flagged
        redelivered (spec §1.8.3.14 basic.recover; RabbitMQ requeues to the
        original position)."""
        if self.deleted:
            for entry in entries:
                self.removed(entry, REASON_DELETED)
            return
        if self.lifecycle is not None:
            entries = self.lifecycle.requeue(entries)
        ready = self.ready
        storage = self.vhost.storage if self.stored else None
        for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
            entry.redelivered = True
            if storage is not None and entry.message.stored is not None:
                storage.record_requeued(entry.message.id, self.name)
            if self.priorities:
                ready.insert_in_order(entry)
                continue
            if not ready or entry.seq < ready[0].seq:
                ready.appendleft(entry)
                continue
            index = 0
            for index, other in enumerate(ready):  # rare: a gap left by a later requeue
                if other.seq > entry.seq:
                    break
            else:
                index = len(ready)
            ready.insert(index, entry)
        self.schedule_drain()

    def close(self) -> int:
        """The queue is being deleted (``VHost.delete_queue``, which has
        already taken it out of the namespace): from now on it takes
        nothing back (a requeue drops the message), each consumer is told
        (``QueueConsumer.queue_deleted``: cancelled, with basic.cancel when
        its client asked for it, rabbitmq.com/consumer-cancel.html) and the
        ready messages are dropped (reason deleted). Returns how many."""
        self.deleted = True
        consumers = list(self.consumers)
        self.consumers.clear()
        for consumer in consumers:
            consumer.queue_deleted()
        return self.purge(REASON_DELETED)

    def purge(self, reason: int = REASON_PURGED) -> int:
        """Drop every ready message; returns how many (queue.purge-ok).
        ``reason``: the broker.model.reasons REASON_* recorded (REASON_DELETED when
        the queue itself goes)."""
        if self.lifecycle is not None:
            self.lifecycle.purging()
        count = self.message_count
        if self.stored:
            for entry in self.ready:
                self.removed(entry, reason)
            storage = self.vhost.storage
            for item in self.cold:
                if type(item) is int:
                    storage.record_removed(abs(item), self.name, reason)
                elif type(item) is QueuedMessage:
                    self.removed(item, reason)
        self.ready.clear()
        self.cold.clear()
        return count

    def removed(self, entry: QueuedMessage, reason: int) -> None:
        """``entry`` left this queue for good (acked, rejected, purged...:
        a broker.model.reasons REASON_*); a persisted message's WAL record learns it."""
        if self.stored and entry.message.stored is not None:
            self.vhost.storage.record_removed(entry.message.id, self.name, reason)

    def delivered(self, entry: QueuedMessage, consumer_tag: str, no_ack: bool) -> bool:
        """``entry`` is being handed out to ``consumer_tag`` ("" for
        basic.get): count the delivery; a stored message is recorded as
        delivered (after a crash it comes back redelivered), and as gone
        when ``no_ack``. True when WAL records were appended: the caller
        must not send the delivery before they are fsynced."""
        entry.deliveries += 1
        if self.lifecycle is not None:
            self.lifecycle.delivered(entry)
        if self.stored and entry.message.stored is not None:
            storage = self.vhost.storage
            storage.record_delivered(entry.message.id, self.name, consumer_tag, entry.deliveries)
            if no_ack:
                storage.record_removed(entry.message.id, self.name, REASON_ACKED)
            return True
        return False

    def add_consumer(self, consumer: "Consumer") -> None:
        """Attach a consumer (basic.consume); it takes its share of the
        ready messages from the next drain on."""
        self.consumers.append(consumer)
        if self.selector is None and consumer_selection.needs_selector(self, consumer):
            self.selector = consumer_selection.ConsumerSelector(self)
        if self.selector is not None:
            self.selector.changed()
        if self.lifecycle is not None:
            self.lifecycle.used()
        self.schedule_drain()

    def remove_consumer(self, consumer: "Consumer") -> None:
        """Detach a consumer; an auto-delete queue goes once its last one has
        (rabbitmq.com/queues.html, "auto-delete")."""
        try:
            self.consumers.remove(consumer)
        except ValueError:
            return
        if self.selector is not None:
            self.selector.changed()
        if self.lifecycle is not None:
            self.lifecycle.used()
        if self.auto_delete and not self.consumers and not self.deleted:
            log.info("vhost '%s' queue '%s': auto-deleted after its last consumer", self.vhost.name, self.name)
            self.vhost.delete_queue(self)

    def schedule_drain(self) -> None:
        """Deliver what can be delivered at the end of this loop pass."""
        if not self._drain_scheduled and self.consumers and (self.ready or self.cold):
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self.drain)

    def drain(self) -> None:
        """Give ready messages to consumers with credit until either runs out."""
        self._drain_scheduled = False
        ready = self.ready
        lifecycle = self.lifecycle
        while True:
            if not ready:
                if not self.cold:
                    return
                self._refill()
                continue
            if lifecycle is not None:
                if lifecycle.skip(ready[0]):
                    ready.popleft()
                    continue
            elif self.selector is None and len(self.consumers) == 1 and not self.priorities:
                if not self.consumers[0].deliver_batch(ready):
                    return
                continue
            consumer = self._next_consumer()
            if consumer is None:
                return
            consumer.deliver(ready.popleft())

    def _next_consumer(self) -> "Consumer | None":
        if self.selector is not None:
            return self.selector.next_consumer()
        consumers = self.consumers
        count = len(consumers)
        for step in range(count):
            index = (self._rr + step) % count
            consumer = consumers[index]
            if consumer.can_take():
                self._rr = index + 1
                return consumer
        return None
