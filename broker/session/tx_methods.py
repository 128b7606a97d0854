"""Class tx: publishes and acknowledgements held until tx.commit
(AMQP 0-9-1 spec §1.9; rabbitmq.com/specification.html#tx)."""

from __future__ import annotations

from pamqp import commands

from broker.session.publish_answer import answer
from broker.vhost.publish import REFUSED, publish
from protocol import reply_codes
from protocol.errors import channel_error


class Transaction:
    """The work of one channel since its last commit or rollback:
    ``publishes`` as ``(exchange, message, mandatory)``; acks and rejects as
    the ``(delivery_tag, triple)`` pairs taken out of the channel's unacked
    map, so that rollback can put them back."""

    def __init__(self):
        self.publishes: list = []
        self.settlements: list[tuple[list, bool, bool]] = []  # (taken, is_ack, requeue)

    def add_publish(self, exchange, message, mandatory: bool) -> None:
        self.publishes.append((exchange, message, mandatory))

    def add_acks(self, taken: list) -> None:
        self.settlements.append((taken, True, False))

    def add_rejects(self, taken: list, requeue: bool) -> None:
        self.settlements.append((taken, False, requeue))

    def commit(self, channel) -> None:
        """Apply everything in order (each publish through the publish
        pipeline, broker/vhost/publish.py), then start a new transaction. A
        publish a queue refused (x-overflow reject-publish) makes it a
        channel error 406 "partial tx completion" once the rest is applied,
        as in RabbitMQ."""
        publishes, settlements = self.publishes, self.settlements
        self.publishes, self.settlements = [], []
        refused = 0
        vhost = channel.vhost
        for exchange, message, mandatory in publishes:
            outcome = publish(vhost, exchange, message)
            answer(channel, message, outcome, mandatory)
            refused |= outcome & REFUSED
        for taken, is_ack, requeue in settlements:
            channel.settle(taken, requeue, ack=is_ack)
        if refused:
            raise channel_error(reply_codes.PRECONDITION_FAILED, "partial tx completion")

    def rollback(self, channel) -> None:
        """Discard publishes; acked or rejected deliveries become unacked again."""
        restored = [pair for taken, _is_ack, _requeue in self.settlements for pair in taken]
        self.publishes, self.settlements = [], []
        channel.restore_unacked(restored)


def select(channel, method: commands.Tx.Select) -> None:
    """tx.select; 406 on a channel in confirm mode (as RabbitMQ)."""
    channel.select_tx()
    channel.send(commands.Tx.SelectOk())


def commit(channel, method: commands.Tx.Commit) -> None:
    """tx.commit; 406 when the channel is not transactional."""
    _require_tx(channel).commit(channel)
    channel.send(commands.Tx.CommitOk())


def rollback(channel, method: commands.Tx.Rollback) -> None:
    """tx.rollback; 406 when the channel is not transactional."""
    _require_tx(channel).rollback(channel)
    channel.send(commands.Tx.RollbackOk())


def _require_tx(channel) -> Transaction:
    if channel.tx is None:
        raise channel_error(reply_codes.PRECONDITION_FAILED, "channel is not transactional")
    return channel.tx


HANDLERS = {
    commands.Tx.Select: select,
    commands.Tx.Commit: commit,
    commands.Tx.Rollback: rollback,
}
