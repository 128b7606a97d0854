"""The deliveries and acknowledgements half of a channel (AMQP 0-9-1 spec
§1.8.3.9 basic.deliver, §1.8.3.13 basic.ack, basic.nack and basic.reject;
rabbitmq.com/confirms.html), a base class of ``broker.session.channel.Channel``."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

from protocol import reply_codes
from protocol.constants import BASIC_ACK
from protocol.errors import AMQPError
from broker.model.reasons import REASON_ACKED, REASON_REJECTED

if TYPE_CHECKING:
    from broker.session.consumer import Consumer
    from broker.queues.queue import Queue

OPEN = "open"


class ChannelDeliveries:
    """Record deliveries, take and settle acknowledged ones. Expects
    the attributes ``Channel`` sets: ``connection``, ``unacked`` (delivery
    tag -> ``(QueuedMessage, Queue, Consumer | None)``, in tag order),
    ``delivery_tag``, ``consumers``, ``flow_active``, ``state``, ``tx``,
    ``global_prefetch``, ``ack_timer``."""

    @staticmethod
    def requeue_entries(entries) -> None:
        """Requeue ``(entry, queue, consumer)`` triples, grouped per queue."""
        by_queue: dict = {}
        for entry, queue, _consumer in entries:
            by_queue.setdefault(queue, []).append(entry)
        for queue, queued in by_queue.items():
            queue.requeue(queued)

    def deliverable(self) -> bool:
        """Deliveries may be sent now (flow on, socket writable, open)."""
        return self.flow_active and self.state == OPEN and self.connection.can_deliver()

    def record_deliveries(self, queue: "Queue", consumer: "Consumer | None", entries, no_ack: bool
                          ) -> tuple[int, bool]:
        """The bookkeeping of handing ``entries`` (a non-empty sequence of
        QueuedMessage just taken off ``queue``) out on this channel, to
        ``consumer`` (basic.deliver, spec §1.8.3.9) or to basic.get
        (``consumer`` None, spec §1.8.3.11), in one pass over them: they get
        the channel's next delivery tags, ``delivery_tag + 1`` on, in order
        (one sequence for basic.deliver and basic.get-ok). Without
        ``no_ack`` each waits in ``unacked`` for its ack, counted against the
        consumer's prefetch, and the acknowledgement timeout tracks the batch
        from now (one clock reading per batch, broker.session.consumer_timeout).
        Each delivery is counted, and a stored message's DELIVERED record (and
        REMOVED under ``no_ack``) is appended to the WAL (``Queue.delivered``).

        Returns ``(first delivery tag, held)``: the caller encodes the
        deliveries under tags ``first, first + 1...`` in order, and when
        ``held`` is True calls ``connection.hold_for_sync()`` before sending
        them (the DELIVERED records must be durable first, docs/architecture.md
        "Durability contract"). The only writer of ``delivery_tag``."""
        first = tag = self.delivery_tag + 1
        held = False
        redelivered = 0
        if queue.stored or queue.lifecycle is not None:
            delivered = queue.delivered
            consumer_tag = consumer.tag if consumer is not None else ""
        else:
            delivered = None  # nothing to record: the count is kept inline
        if no_ack:
            for entry in entries:
                redelivered += entry.redelivered
                if delivered is None:
                    entry.deliveries += 1
                else:
                    held = delivered(entry, consumer_tag, True) or held
            tag += len(entries)
        else:
            unacked = self.unacked
            self.ack_timer.track(entries[0])
            delivered_at = entries[0].delivered_at
            for entry in entries:
                redelivered += entry.redelivered
                unacked[tag] = (entry, queue, consumer)
                entry.delivered_at = delivered_at
                tag += 1
                if delivered is None:
                    entry.deliveries += 1
                else:
                    held = delivered(entry, consumer_tag, False) or held
            if consumer is not None:
                consumer.unacked += len(entries)
        self.delivery_tag = tag - 1
        _count_deliveries(self.stats, queue.stats, consumer is None, no_ack, len(entries), redelivered)
        return first, held

    def take_all_unacked(self) -> dict:
        """Remove and return every outstanding delivery (delivery tag ->
        ``(entry, queue, consumer)``, in tag order): basic.recover and
        channel close requeue them."""
        unacked, self.unacked = self.unacked, {}
        return unacked

    def restore_unacked(self, pairs: list) -> None:
        """Make ``(delivery_tag, (entry, queue, consumer))`` pairs taken by
        ``take_unacked`` outstanding again, in tag order among the others
        (tx.rollback of acks and rejects, spec §1.9.2.5)."""
        if pairs:
            merged = list(self.unacked.items()) + pairs
            merged.sort(key=lambda pair: pair[0])
            self.unacked = dict(merged)

    def take_unacked(self, tag: int, multiple: bool, ids: tuple[int, int]) -> list:
        """Remove and return ``(delivery_tag, (entry, queue, consumer))`` for
        every delivery an ack/nack/reject with ``tag``/``multiple`` covers
        (tag 0 with multiple = all outstanding). Raises a channel error 406
        PRECONDITION_FAILED "unknown delivery tag" when ``tag`` is not
        outstanding (spec §1.8.3.13)."""
        unacked = self.unacked
        if multiple:
            if tag == 0:
                taken = list(unacked.items())
                unacked.clear()
                return taken
            if tag not in unacked:
                raise AMQPError(reply_codes.PRECONDITION_FAILED, f"unknown delivery tag {tag}", *ids)
            keys = list(islice(unacked, _count_upto(unacked, tag)))
            return list(zip(keys, map(unacked.pop, keys)))
        triple = unacked.pop(tag, None)
        if triple is None:
            raise AMQPError(reply_codes.PRECONDITION_FAILED, f"unknown delivery tag {tag}", *ids)
        return [(tag, triple)]

    def ack(self, tag: int, multiple: bool) -> None:
        """basic.ack from the client (spec §1.8.3.13)."""
        taken = self.take_unacked(tag, multiple, BASIC_ACK)
        if self.tx is not None:
            self.tx.add_acks(taken)
            return
        self.settle(taken)

    def reject(self, tag: int, multiple: bool, requeue: bool, ids: tuple[int, int]) -> None:
        """basic.nack / basic.reject: requeue, or drop the messages."""
        taken = self.take_unacked(tag, multiple, ids)
        if self.tx is not None:
            self.tx.add_rejects(taken, requeue)
            return
        self.settle(taken, requeue, ack=False)

    def settle(self, taken: list, requeue: bool = False, ack: bool = True) -> None:
        """Finish deliveries taken by ``take_unacked``: return prefetch
        credit; requeue when asked, else the messages are gone (acked, or
        rejected when ``ack`` is False)."""
        drained = set()
        if ack and not requeue:
            # basic.ack: the common case, kept to what each entry needs
            self.stats.ack += len(taken)
            last = None
            for _tag, (entry, queue, consumer) in taken:
                if consumer is not None:
                    consumer.unacked -= 1
                queue.stats.ack += 1
                if queue is not last:
                    drained.add(queue)
                    last = queue
                if entry.message.stored is not None:
                    queue.removed(entry, REASON_ACKED)
            taken = ()
        reason = REASON_ACKED if ack else REASON_REJECTED
        for _tag, (entry, queue, consumer) in taken:
            if consumer is not None:
                consumer.unacked -= 1
            drained.add(queue)
            if not requeue and not ack and queue.lifecycle is not None and queue.lifecycle.rejected(entry):
                continue  # dead-lettered (broker/queues/lifecycle.py)
            if not requeue and entry.message.stored is not None:
                queue.removed(entry, reason)
        if requeue:
            self.requeue_entries(triple for _tag, triple in taken)
        if self.global_prefetch:
            drained.update(c.queue for c in self.consumers.values())
        for queue in drained:
            queue.schedule_drain()


def _count_deliveries(channel_stats, queue_stats, get: bool, no_ack: bool, count: int, redelivered: int
                      ) -> None:
    """Count ``count`` deliveries (``redelivered`` of them with the flag)
    on the channel's and the queue's MessageStats (broker/model/stats.py)."""
    for stats in (channel_stats, queue_stats):
        if get:
            if no_ack:
                stats.get_no_ack += count
            else:
                stats.get += count
        elif no_ack:
            stats.deliver_no_ack += count
        else:
            stats.deliver += count
        stats.redeliver += redelivered


def _count_upto(unacked: dict, tag: int) -> int:
    """How many delivery tags in ``unacked`` (increasing, ``tag`` among
    them) are at most ``tag``: without gaps (no single acks in between)
    that is ``tag - first + 1``, checked with one C-level skip."""
    count = tag - next(iter(unacked)) + 1
    if count <= len(unacked) and next(islice(unacked, count - 1, None)) == tag:
        return count
    count = 0
    for key in unacked:
        if key > tag:
            break
        count += 1
    return count
