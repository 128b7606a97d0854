"""The in-memory index of persistent messages the WAL still holds for some
durable queue: one small entry per message, never its body (issue 3, "Deep
queues must not hold every body in RAM").

An entry costs about 100 bytes with its dict slot, so a million queued
messages cost about 100 MB here; the body and content header stay in the
WAL segment and are read back (one pread) when the message is delivered.
"""

from __future__ import annotations

from storage.wal import Position

_MASK32 = 0xFFFFFFFF


def pack_position(position: Position) -> int:
    """One int for a record Position: segment << 64 | offset << 32 | length
    (offsets and lengths are below 4 GiB: segments are smaller)."""
    return (position[0] << 64) | (position[1] << 32) | position[2]


def unpack_position(packed: int) -> Position:
    """The Position packed by ``pack_position``."""
    return Position(packed >> 64, (packed >> 32) & _MASK32, packed & _MASK32)


def segment_of(packed: int) -> int:
    """The segment number of a packed Position."""
    return packed >> 64


class LiveMessage:
    """One persistent message still needed by a durable queue.

    ``where``: its MESSAGE record's packed Position (moves when compaction
    copies the record). ``vhost``: vhost name. ``queues``: the durable queues
    it is still in, in routing order: a str when there is one (the common
    case, and no set to pay for), else a tuple. ``delivered``: None, or the
    set of those queues where it was handed to a consumer and not settled
    (it comes back redelivered after a crash).
    """

    __slots__ = ("where", "vhost", "queues", "delivered")

    def __init__(self, where: int, vhost: str, queues: str | tuple):
        self.where = where
        self.vhost = vhost
        self.queues = queues
        self.delivered: set | None = None

    def queue_names(self) -> tuple:
        """The remaining queues as a tuple of names."""
        queues = self.queues
        return (queues,) if type(queues) is str else queues

    def drop_queue(self, queue: str) -> bool:
        """Forget ``queue``; True when no queue is left (the record is dead)."""
        queues = self.queues
        if type(queues) is str:
            if queues != queue:
                return False
            self.queues = ()
            return True
        if queue not in queues:
            return False
        left = tuple(q for q in queues if q != queue)
        self.queues = left[0] if len(left) == 1 else left
        if self.delivered is not None:
            self.delivered.discard(queue)
        return not left

    def mark_delivered(self, queue: str) -> None:
        """Remember that it was handed out from ``queue``."""
        if self.delivered is None:
            self.delivered = {queue}
        else:
            self.delivered.add(queue)


def queues_value(names) -> str | tuple:
    """The ``LiveMessage.queues`` form of a sequence of queue names."""
    return names[0] if len(names) == 1 else tuple(names)
