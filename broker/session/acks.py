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
    from broker.model.message import QueuedMessage

OPEN = "open"


class ChannelDeliveries:
    """``deliver`` one message, take and settle acknowledged ones. Expects
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

    def deliver(self, consumer: "Consumer", entry: "QueuedMessage") -> None:
        """basic.deliver ``entry`` to ``consumer`` under the next delivery tag."""
        self.delivery_tag += 1
        tag = self.delivery_tag
        message = entry.message
        queue = consumer.queue
        if not consumer.no_ack:
            self.unacked[tag] = (entry, queue, consumer)
            consumer.unacked += 1
            self.ack_timer.track(entry)
        connection = self.connection
        if queue.delivered(entry, consumer.tag, consumer.no_ack):
            connection.hold_for_sync()
        connection.send(b"".join(consumer.encoder.frames(tag, entry.redelivered, message.exchange_routing_key,
                                                         message.header, message.body, connection.frame_max)))

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
            last = None
            for _tag, (entry, queue, consumer) in taken:
                if consumer is not None:
                    consumer.unacked -= 1
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
