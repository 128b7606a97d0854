"""Publisher confirms (rabbitmq.com/confirms.html#publisher-confirms): each
publish on a channel in confirm mode gets the next sequence number, and the
broker answers basic.ack (or basic.nack) for it once it is settled, combining
consecutive acks into one ``multiple`` ack per loop pass."""

from __future__ import annotations

from pamqp import commands


class PublisherConfirms:
    """Confirm state of one channel (a broker.session.channel.Channel, not
    imported: channel.py imports this module).

    ``publish()`` returns the sequence number (delivery tag) of a new
    publish. ``settle(seq)`` marks it acked; settlements may come out of
    order, and ``emit()`` (run by the connection before each write) sends one
    basic.ack with multiple=true over the longest answered prefix, naming
    the highest number settled now (never one answered before), and single
    acks for settled numbers beyond a gap. ``nack(seq)`` sends basic.nack
    right away (after any acks due).
    """

    __slots__ = ("channel", "last_seq", "acked_upto", "fresh", "done", "scheduled", "unsynced", "_storage")

    def __init__(self, channel):
        self.channel = channel
        self.last_seq = 0
        self.acked_upto = 0
        self.fresh: list[int] = []   # settled since the last emit
        self.done: set[int] = set()  # answered, beyond acked_upto
        self.scheduled = False
        self.unsynced: list[int] = []  # persisted, waiting for the fsync
        self._storage = None

    def publish(self) -> int:
        self.last_seq += 1
        return self.last_seq

    def settle(self, seq: int) -> None:
        """Mark ``seq`` acked; it is sent at the end of this loop pass."""
        self.fresh.append(seq)
        if not self.scheduled:
            self.scheduled = True
            self.channel.connection.before_flush(self.emit)

    def settle_when_durable(self, seq: int, storage) -> None:
        """Settle ``seq`` once the WAL fsync covering it completes: the
        request to the WAL is made just before this pass's write, so one
        fsync covers every publish of the pass (group commit)."""
        if not self.unsynced:
            self.channel.connection.before_flush(self._request_sync)
            self._storage = storage
        self.unsynced.append(seq)

    def _request_sync(self) -> None:
        batch, self.unsynced = self.unsynced, []
        if self.channel.state != "open":
            return

        def synced() -> None:
            if self.channel.state == "open":
                self.fresh += batch
                if not self.scheduled:
                    self.scheduled = True
                    self.channel.connection.before_flush(self.emit)
        self._storage.sync_soon(synced)

    def nack(self, seq: int) -> None:
        """basic.nack one publish (the broker could not take it); sent
        after the acks due, in the same pass."""
        self.emit()
        self.channel.send(commands.Basic.Nack(delivery_tag=seq, multiple=False, requeue=False))
        self.done.add(seq)
        self._advance()

    def emit(self) -> None:
        """Send the acks that are due (none once the channel is no longer
        open: its close or close-ok was the last frame on it)."""
        self.scheduled = False
        fresh = self.fresh
        if not fresh:
            return
        self.fresh = []
        if self.channel.state != "open":
            return
        start = self.acked_upto
        if not self.done and min(fresh) == start + 1 and max(fresh) - start == len(fresh):
            # the usual case, a synced window: exactly the numbers after the
            # last ack (each is settled once), so one multiple ack and no set
            upto = self.acked_upto = start + len(fresh)
            self.channel.send(commands.Basic.Ack(delivery_tag=upto, multiple=upto - start > 1))
            return
        self.done.update(fresh)
        upto = self._advance()
        covered = [seq for seq in fresh if seq <= upto]
        if covered:
            # the tag named is one confirmed now, as RabbitMQ does
            # (rabbit_channel:coalesce_and_send): a multiple ack may cover
            # numbers answered before (clients skip those), but a client
            # drops a confirm whose own tag it already resolved (aiormq
            # ignores the whole frame), losing the others it covers
            self.channel.send(commands.Basic.Ack(delivery_tag=max(covered), multiple=len(covered) > 1))
        for seq in fresh:
            if seq > upto:
                self.channel.send(commands.Basic.Ack(delivery_tag=seq, multiple=False))

    def _advance(self) -> int:
        done = self.done
        upto = self.acked_upto
        while upto + 1 in done:
            upto += 1
            done.discard(upto)
        self.acked_upto = upto
        return upto
