"""Holding and timing for the ``x-delayed-message`` exchange
(broker/exchanges/delayed.py; the plugin
https://github.com/rabbitmq/rabbitmq-delayed-message-exchange).

Publish (``hold``, the publish pipeline's first step): a message with
``x-delay`` > 0 ms on such an exchange is held, not routed: its ``x-delay``
header is negated (as the plugin's swap_delay_header does, so consumers see
it came through the delay and it is never delayed twice), the publisher
confirm is sent once it is stored (for a
persistent message on a durable exchange: after the WAL fsync), and a
mandatory publish gets basic.return 312 NO_ROUTE at once, because the
plugin's ``route`` returns no queues for a delayed message (the plugin does
not support mandatory; the message is still routed when due). A message
that meets such an exchange on its way (e2e binding, alternate or
dead-letter exchange) is held as a copy: broker/vhost/delayed_copies.py.

Storage: a persistent message on a durable exchange is appended to the WAL
as an ordinary MESSAGE record whose queue list is the one reserved holder
name ``amq.x-delayed:<exchange>`` (HOLDER_PREFIX: clients cannot declare
queues named ``amq.*``, so it never collides with a queue; recovery hands
every record naming a holder to ``restore``; an exchange whose name is too
long for the prefix (over 241 bytes) holds its messages in memory only). In
memory only one int per waiting message stays: ``due_ms << 40 | message
id`` in a heap (plus the storage live-index entry). The body is read back
from the WAL when due. Everything else (transient messages, non-durable
exchanges) is held in memory as the Message object.

Due: ``due_ms`` is wall-clock ms: publish time (the record's ``at_ms``)
plus the delay, so the delay keeps counting across a restart and a message
whose time passed while the broker was down routes right after recovery.
One ``loop.call_at`` timer per exchange, armed for the heap's head; no
scanning. When due, the message goes through the vhost's publish pipeline
(broker/vhost/publish.py; so queue length limits, deduplication and
dead-lettering apply as to any publish) from the exchange, with its
underlying type's rules *then* (bindings made meanwhile count), as a new
message (new id, a new MESSAGE record for the durable queues it reaches);
the holder's record is then closed with an ACK record (REASON_ACKED) naming
the holder, so the message database shows it waiting in
``amq.x-delayed:<exchange>`` and then leaving it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from typing import TYPE_CHECKING

from broker.exchanges.delayed import MAX_DELAY_MS, delay_of
from broker.model.message import Message, cold_message, to_cold
from broker.model.message_headers import headers_or_none, set_headers, signed_int_field, with_int_at
from protocol.hot_methods import delivery_mode
from broker.model.clock import now_ms
from broker.model.reasons import REASON_ACKED, REASON_DELETED

if TYPE_CHECKING:
    from broker.exchanges.delayed import DelayedMessageExchange

log = logging.getLogger(__name__)

#: queue-list name of the WAL records of messages a delayed exchange holds
HOLDER_PREFIX = "amq.x-delayed:"
#: heap keys are ``due_ms << SHIFT | message_id``
SHIFT = 40
MASK = (1 << SHIFT) - 1
#: most messages routed per timer callback, so sockets get a turn
BATCH = 1000
#: messages read back from the WAL per read during recovery
RESTORE_CHUNK = 4096


class DelayScheduler:
    """The messages one delayed exchange holds, by due time.

    ``heap``: ints ``due_ms << SHIFT | message_id``, smallest first (ties
    in publish order). ``transient``: message id -> the held messages that
    are not in the WAL, as broker.model.message.to_cold tuples (which the garbage
    collector does not walk) or Messages (with BCC keys). One timer
    (``loop.call_at``) is armed for the head; when a full batch was due it
    reports how late it is to the vhost's broker.transport.flow_control.PublishFlow.
    """

    def __init__(self, vhost, exchange: "DelayedMessageExchange"):
        self.vhost = vhost
        self.exchange = exchange
        self.holder = HOLDER_PREFIX + exchange.name
        storage = vhost.storage
        #: persistent messages are stored: the exchange survives restarts
        self.storage = storage if storage is not None and exchange.durable and not exchange.auto_delete else None
        if len(self.holder.encode()) > 255:
            self.storage = None
        self.heap: list[int] = []
        self.transient: dict[int, tuple | Message] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0

    def __len__(self) -> int:
        return len(self.heap)

    # ---- in --------------------------------------------------------------

    def add(self, message: Message, delay_ms: int, swap_at: tuple[int, str] | None = None) -> bool:
        """Hold ``message`` for ``delay_ms``; True when it was written to
        the WAL (its confirm must wait for the fsync). ``swap_at``: the
        offset and struct format of the integer x-delay in its header
        (message_headers.signed_int_field), negated in place; None: the
        headers are re-encoded with pamqp."""
        if swap_at is None:
            set_headers(message, {**message.headers(), "x-delay": -delay_ms})
        else:
            message.header = with_int_at(message.header, *swap_at, -delay_ms)
            message._properties = None
        stored = False
        if self.storage is not None and delivery_mode(message.header) == 2:
            self.storage.persist_message(message.id, self.vhost.name, message.exchange, message.routing_key,
                                         [self.holder], message.header, message.body)
            stored = True
        else:
            self.transient[message.id] = to_cold(message)
        self.push(now_ms() + delay_ms, message.id)
        return stored

    def push(self, due_ms: int, message_id: int) -> None:
        """Schedule ``message_id`` (stored in the WAL unless it is in
        ``transient``) for ``due_ms`` (wall-clock ms since the epoch)."""
        heapq.heappush(self.heap, (max(due_ms, 0) << SHIFT) | message_id)
        self._arm()

    # ---- timer -----------------------------------------------------------

    def _arm(self) -> None:
        if not self.heap:
            return
        due = self.heap[0] >> SHIFT
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_due = due
        self._timer = loop.call_at(loop.time() + (due - now_ms()) / 1000.0, self._fire)

    def _fire(self) -> None:
        """Route what is due (at most BATCH, then yield to the loop) and arm
        the timer for the next."""
        self._timer = None
        heap = self.heap
        limit = (now_ms() + 1) << SHIFT  # every key due by now is below it
        pop = heapq.heappop
        due = []
        first = heap[0] >> SHIFT if heap else 0
        while heap and heap[0] < limit and len(due) < BATCH:
            due.append(pop(heap) & MASK)
        flow = self.vhost.flow
        if flow is not None:
            flow.report(self, (limit >> SHIFT) - first if len(due) >= BATCH else 0)
        if due:
            self._route_batch(due)
        self._arm()

    def _route_batch(self, due: list[int]) -> None:
        """Route the messages ``due`` (ids, in due order); a stored one is
        read back from the WAL (one pread each: due order is not WAL order,
        so ``read_messages`` finds no runs to merge and costs more) and its
        holder record closed."""
        transient = self.transient
        vhost, exchange = self.vhost, self.exchange
        storage = vhost.storage
        for message_id in due:
            message = transient.pop(message_id, None)
            try:
                if message is not None:
                    vhost.publish(exchange, cold_message(message))
                    continue
                try:
                    record = storage.read_message(message_id)
                except KeyError:
                    continue  # removed meanwhile
                try:
                    vhost.publish(exchange, Message(record.exchange, record.routing_key, record.header,
                                                    record.body))
                finally:
                    storage.record_removed(message_id, self.holder, REASON_ACKED)
            except Exception:  # one bad record must not stop the others
                log.exception("vhost '%s' exchange '%s': delayed message %d could not be routed",
                              vhost.name, exchange.name, message_id)

    # ---- out -------------------------------------------------------------

    def close(self) -> None:
        """The exchange is deleted: held messages are dropped (stored ones
        recorded as deleted), the timer stops."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.vhost.flow is not None:
            self.vhost.flow.forget(self)
        storage = self.vhost.storage
        for key in self.heap:
            message_id = key & MASK
            if message_id not in self.transient and storage is not None:
                storage.record_removed(message_id, self.holder, REASON_DELETED)
        if self.heap:
            log.info("vhost '%s' exchange '%s': deleted with %d delayed messages", self.vhost.name,
                     self.exchange.name, len(self.heap))
        self.heap = []
        self.transient.clear()


def scheduler_for(vhost, exchange: "DelayedMessageExchange") -> DelayScheduler:
    """The exchange's scheduler, created on first use."""
    held = exchange.held
    if held is None:
        held = exchange.held = DelayScheduler(vhost, exchange)
    return held


def hold(vhost, exchange: "DelayedMessageExchange", message: Message) -> bool | None:
    """Publish step (broker/vhost/publish.py): hold ``message``, published
    to ``exchange``, when its ``x-delay`` asks for a delay of 1 to
    MAX_DELAY_MS ms. None when it is to be routed at once (no, negated or
    out-of-range ``x-delay``: a message falling due is never held again);
    else True when it was written to the WAL (its confirm waits for the
    fsync). The caller answers mandatory and the confirm from that."""
    swap_at = None
    try:
        found = signed_int_field(message.header, b"x-delay")
    except LookupError:  # a string, float... x-delay, or a header pamqp must judge
        found = False
    if found is None:
        return None
    if found:
        delay = found[0] if 0 < found[0] <= MAX_DELAY_MS else None
        swap_at = found[1:]
    else:
        delay = delay_of(headers_or_none(message))
    if delay is None:
        return None
    return scheduler_for(vhost, exchange).add(message, delay, swap_at)


def restore(vhosts: dict, storage, held: list[tuple[str, str, int]]) -> int:
    """Recovery hook (broker/persistence/recovery.py): ``held`` lists ``(vhost, holder
    name, message id)`` of WAL records naming a holder. Each goes back into
    its exchange's heap, due at its publish time plus its delay; a record
    whose exchange is gone is dropped from the WAL (as deleted). Returns how
    many were restored."""
    restored = 0
    for start in range(0, len(held), RESTORE_CHUNK):
        chunk = held[start:start + RESTORE_CHUNK]
        records = storage.read_messages([message_id for _v, _h, message_id in chunk])
        for (vhost_name, holder, message_id), record in zip(chunk, records):
            vhost = vhosts.get(vhost_name)
            exchange = vhost.exchanges.get(holder[len(HOLDER_PREFIX):]) if vhost is not None else None
            if exchange is None or getattr(exchange, "held", False) is False:
                storage.forget_queue(message_id, holder)
                continue
            scheduler = scheduler_for(vhost, exchange)
            if scheduler.storage is None:
                storage.forget_queue(message_id, holder)
                continue
            try:
                delay = -Message("", "", record.header, None).headers()["x-delay"]
            except (ValueError, KeyError, TypeError):
                delay = 0
            scheduler.push(record.at_ms + max(delay, 0), message_id)
            restored += 1
    if held:
        log.info("recovery: %d delayed messages waiting in x-delayed-message exchanges", restored)
    return restored
