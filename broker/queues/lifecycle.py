"""The message lifecycle of one queue: what happens to messages besides
being delivered and acknowledged. Message TTL (broker/queues/message_ttl.py),
length limits (broker/queues/limits.py), dead-lettering
(broker/queues/dead_letter.py), delivery limit (broker/queues/delivery_limit.py) and
queue expiry (broker/queues/expiry.py) meet here, behind the small hooks
``Queue`` calls (``Queue.lifecycle`` is None for a queue that needs none of
them, so plain queues pay one attribute test).

Expired messages stay where they sit until the head reaches them
(broker/queues/expired_in_place.py).
"""

from __future__ import annotations

import logging

from broker.queues import dead_letter
from broker.queues.delivery_limit import over_limit, with_delivery_count
from broker.queues.expired_in_place import ExpiredInPlace
from broker.model.message import Message, QueuedMessage, from_cold
from broker.model.clock import now_ms
from broker.model.field_values import integer, text
from broker.model.message_headers import has_expiration
from broker.queues.message_ttl import ExpiryIndex, effective_ttl, message_expiration, parse_expiration
from broker.queues.expiry import QueueExpiry
from broker.queues.limits import DROP_HEAD, Limits
from broker.model.interfaces import Publisher
from broker.model.reasons import REASON_DEAD_LETTERED, REASON_DROPPED, REASON_EXPIRED

log = logging.getLogger(__name__)

#: queue arguments that give a queue a lifecycle object
ARGUMENTS = ("x-message-ttl", "x-expires", "x-max-length", "x-max-length-bytes", "x-dead-letter-exchange",
             "x-delivery-limit")


def lifecycle_for(queue) -> "QueueLifecycle | None":
    """The lifecycle of a new queue, or None when its arguments need none
    (one is added later if a message with an expiration property comes)."""
    if any(key in queue.arguments for key in ARGUMENTS):
        return QueueLifecycle(queue)
    return None


class QueueLifecycle:
    """TTL deadlines, limits, dead-letter target and x-expires of ``queue``.

    ``bytes``: body bytes of the ready messages (kept only with
    x-max-length-bytes, in ``sizes``: message id -> body size).
    """

    def __init__(self, queue):
        args = queue.arguments
        self.queue = queue
        self.ttl = integer(args.get("x-message-ttl"))
        self.dlx = text(args.get("x-dead-letter-exchange"))
        self.dlrk = text(args.get("x-dead-letter-routing-key"))
        self.delivery_limit = integer(args.get("x-delivery-limit"))
        self.limits = Limits(args)
        self.index = ExpiryIndex(self._expired, queue.vhost.flow)
        self.expired = ExpiredInPlace(queue)
        #: ids of expired messages still in the queue (Queue.message_count)
        self.hidden = self.expired.ids
        self.sizes: dict[int, int] | None = {} if self.limits.max_bytes is not None else None
        self.bytes = 0
        expires = integer(args.get("x-expires"))
        self.expiry = QueueExpiry(queue, expires) if expires else None

    # ---- hooks called by Queue ----------------------------------------------

    def stamp(self, entry: QueuedMessage) -> None:
        """``entry`` goes straight to a consumer: remember its deadline for
        a requeue (a TTL 0 message delivered at once does not expire)."""
        ttl = self._ttl_of(entry.message)
        if ttl:
            entry.deadline = now_ms() + ttl

    def enqueued(self, message: Message, entry) -> None:
        """``message`` was appended to the ready messages: ``entry`` is its
        QueuedMessage in ``ready``, its item in ``cold`` (a
        ``broker.model.message.to_cold`` tuple or the Message), or None for a
        stored id in ``cold``."""
        mid = message.id
        if self.sizes is not None:
            size = self.sizes[mid] = len(message.body)
            self.bytes += size
        ttl = self._ttl_of(message)
        if ttl is not None:
            if ttl == 0:  # ttl.html: expires unless it can be delivered at once
                self.hide(mid)
                self._dead(mid, message, dead_letter.EXPIRED, REASON_EXPIRED)
                return
            self.index.add(mid, now_ms() + ttl, entry)
        if self.limits.overflow == DROP_HEAD and self.limits.active:
            self._drop_heads()
        if self.queue.consumers:
            self.queue.schedule_drain()

    def skip(self, entry: QueuedMessage) -> bool:
        """True when the head ``entry`` is not to be delivered: it expired
        (already handled, or found past its deadline now and handled here).
        The caller pops it."""
        if self.expired.skip(entry):
            return True
        mid = entry.message.id
        if self.index.deadlines:
            deadline = self.index.deadlines.get(mid)
            if deadline is not None and deadline <= now_ms():
                self._leave(mid, entry.message, dead_letter.EXPIRED, REASON_EXPIRED)
                return True
        return False

    def filter_cold(self, items: list) -> list:
        """Leave expired messages out of a batch moving from ``cold`` to
        ``ready`` (their bodies are never read back)."""
        return self.expired.filter_cold(items)

    def delivered(self, entry: QueuedMessage) -> None:
        """``entry`` left the ready messages for a consumer or basic.get."""
        mid = entry.message.id
        deadline = self.index.discard(mid)
        if deadline is not None:
            entry.deadline = deadline
        self._forget_size(mid)

    def requeue(self, entries: list) -> list:
        """Of the delivered ``entries`` coming back, return those to put
        back: a message past its delivery limit is dead-lettered (or
        dropped), one past its deadline expires now; the rest get
        ``x-delivery-count`` (with a delivery limit) and their deadlines back."""
        kept = []
        now = now_ms()
        limit = self.delivery_limit
        for entry in entries:
            mid = entry.message.id
            if over_limit(entry.deliveries, limit):
                self._dead(mid, entry.message, dead_letter.DELIVERY_LIMIT, REASON_DROPPED)
                continue
            if entry.deadline and entry.deadline <= now:
                self._dead(mid, entry.message, dead_letter.EXPIRED, REASON_EXPIRED)
                continue
            if limit is not None:
                entry.message = with_delivery_count(entry.message, entry.deliveries)
            if self.sizes is not None:
                size = self.sizes[mid] = len(entry.message.body)
                self.bytes += size
            if entry.deadline:
                self.index.add(mid, entry.deadline, entry)
            kept.append(entry)
        return kept

    def recovered_delivery(self, entry: QueuedMessage) -> bool:
        """``entry`` (just read back from the WAL) was out for delivery when
        the broker stopped, so it comes back redelivered; the stop counts as
        a return, as a closed channel does. With a delivery limit it resumes
        the count it had (storage ``delivery_count``): past the limit it is
        dead-lettered (or dropped) now and False is returned; else it
        carries ``x-delivery-count``."""
        limit = self.delivery_limit
        if limit is None:
            return True
        mid = entry.message.id
        count = entry.deliveries = self.queue.vhost.storage.delivery_count(mid, self.queue.name)
        if over_limit(count, limit):
            self._leave(mid, entry.message, dead_letter.DELIVERY_LIMIT, REASON_DROPPED)
            return False
        entry.message = with_delivery_count(entry.message, count)
        return True

    def rejected(self, entry: QueuedMessage) -> bool:
        """basic.reject / basic.nack without requeue: dead-letter with
        reason ``rejected`` when the queue has a DLX (True), else False
        (the caller records a plain rejection)."""
        if self.dlx is None:
            return False
        self._dead(entry.message.id, entry.message, dead_letter.REJECTED, REASON_DROPPED)
        return True

    def refused(self, message: Message) -> None:
        """The queue refused ``message`` (x-overflow reject-publish*);
        reject-publish-dlx dead-letters it (it was never persisted for
        this queue: nothing to record)."""
        log.debug("vhost '%s' queue '%s': publish refused, queue full (x-overflow %s)",
                  self.queue.vhost.name, self.queue.name, self.limits.overflow)
        if self.limits.overflow == "reject-publish-dlx" and self.dlx is not None:
            self._dead(message.id, message, dead_letter.MAXLEN, REASON_DROPPED, record=False)

    def restored(self, message_id: int, info) -> None:
        """A message recovered from the WAL into ``cold``; ``info`` is
        ``(at_ms, expiration, body_length)`` kept at replay
        (``replay_keeper``) or None: its deadline counts from its publish."""
        if info is None:
            return
        at_ms, expiration, body_length = info
        if self.sizes is not None:
            self.sizes[message_id] = body_length
            self.bytes += body_length
        own = None
        if expiration is not None:
            try:
                own = parse_expiration(expiration)
            except ValueError:
                own = None
        ttl = effective_ttl(self.ttl, own)
        if ttl is not None:
            self.index.add(message_id, at_ms + ttl, None)

    def used(self) -> None:
        """queue.declare, basic.get, a consumer added or gone (x-expires)."""
        if self.expiry is not None:
            self.expiry.touch()

    def purging(self) -> None:
        """Before a purge or delete: physically drop expired messages still
        in place and forget all deadlines and sizes."""
        queue = self.queue
        self.expired.drop_all()
        self.index.clear()
        if self.sizes is not None:
            self.sizes.clear()
        self.bytes = 0
        if queue.deleted:
            self.index.closed = True
            if self.expiry is not None:
                self.expiry.cancel()

    # ---- internals ---------------------------------------------------------

    def hide(self, mid: int) -> None:
        self.hidden.add(mid)
        self._forget_size(mid)

    def _forget_size(self, mid: int) -> None:
        if self.sizes is not None:
            self.bytes -= self.sizes.pop(mid, 0)

    def _ttl_of(self, message: Message) -> int | None:
        header = message.header
        return effective_ttl(self.ttl, message_expiration(header) if has_expiration(header) else None)

    def _expired(self, batch: list) -> None:
        """ExpiryIndex callback: the deadlines of ``batch`` (``(message id,
        ref)`` pairs: the QueuedMessage in ``ready``, a ``to_cold`` tuple
        or Message waiting in ``cold``, or None for a stored id in ``cold``) passed while the
        messages were ready. (A stored body is read with one pread each:
        deadline order is not WAL order, so ``Storage.read_messages`` would
        find nothing to merge.)"""
        hide, dead = self.hide, self._dead
        for mid, ref in batch:
            hide(mid)
            kind = type(ref)
            if kind is QueuedMessage:
                ref = self.expired.bury(ref, mid)
            else:  # waiting in ``cold``: a to_cold tuple, a Message, or a stored id (None)
                self.expired.mark_cold(mid)
                if kind is tuple:
                    ref = from_cold(ref)
            dead(mid, ref, dead_letter.EXPIRED, REASON_EXPIRED)
        self.expired.compact()

    def _drop_heads(self) -> None:
        """drop-head overflow: drop or dead-letter the oldest ready messages
        until the queue is within its limits (maxlength.html)."""
        queue = self.queue
        while self.limits.over(queue.message_count, self.bytes):
            entry = queue.get()
            if entry is None:
                return
            mid = entry.message.id
            self._leave(mid, entry.message, dead_letter.MAXLEN, REASON_DROPPED)

    def _leave(self, mid: int, message: Message, reason: str, plain_reason: int) -> None:
        """Message ``mid``, taken out of the ready messages, leaves for
        ``reason``: its deadline and size are forgotten, then ``_dead``."""
        self.index.discard(mid)
        self._forget_size(mid)
        self._dead(mid, message, reason, plain_reason)

    def _dead(self, mid: int, message: Message | None, reason: str, plain_reason: int,
              record: bool = True) -> None:
        """Message ``mid`` leaves the queue for ``reason``: republished to
        the DLX when there is one (through the vhost's publish pipeline,
        ``queue.vhost.publish``, see broker.model.interfaces.Publisher; WAL
        reason dead-lettered), else dropped
        (``plain_reason``). ``message`` None: a stored message whose body is
        in the WAL (read only when it is dead-lettered)."""
        queue = self.queue
        stored = message is None or message.stored is not None
        code = plain_reason
        if self.dlx is not None:
            if message is None:
                rec = queue.vhost.storage.read_message(mid)
                parts = (rec.exchange, rec.routing_key, rec.header, rec.body)
            else:
                parts = (message.exchange, message.routing_key, message.header, message.body)
            copy, keys, deaths = dead_letter.copy_message(*parts, reason, queue.name, self.dlx, self.dlrk,
                                                          bcc=message.bcc if message is not None else None)
            vhost: Publisher = queue.vhost
            # exchange None: the pipeline looks the DLX up by name (copy.exchange) and drops a missing one
            outcome = vhost.publish(None, copy, keys=keys[1:], death=(reason, queue.name, deaths))
            log.debug("vhost '%s' queue '%s': message %d dead-lettered (%s) to exchange '%s', outcome %d",
                      vhost.name, queue.name, mid, reason, self.dlx, outcome)
            code = REASON_DEAD_LETTERED
            stats = queue.vhost.stats
            name = "dead_lettered_" + reason
            setattr(stats, name, getattr(stats, name) + 1)
        if record and stored and queue.stored:
            queue.vhost.storage.record_removed(mid, queue.name, code)

