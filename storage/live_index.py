"""The in-memory index of persistent messages the WAL still holds for some
durable queue: one small entry per message, never its body (issue 3, "Deep
queues must not hold every body in RAM").

An entry is a plain tuple ``(where, vhost, queues, delivered)``:

- ``where``: the MESSAGE record's Position packed in one int (it moves when
  compaction copies the record);
- ``vhost``: the vhost name;
- ``queues``: the durable queues the message is still in, in routing order:
  a str when there is one (the common case), else a tuple of str;
- ``delivered``: None, or a frozenset of those queues where it was handed
  to a consumer and not settled (it comes back redelivered after a crash).

Why tuples and not objects: a tuple holding only ints and strings is
untracked by the garbage collector, so a million queued messages add
nothing to the cost of a full collection, and cost about 150 bytes each
with their dict slot. Entries are replaced, never mutated.
"""

from __future__ import annotations

from storage.wal import Position

_MASK32 = 0xFFFFFFFF
WHERE, VHOST, QUEUES, DELIVERED = range(4)


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


def new_entry(where: int, vhost: str, names) -> tuple:
    """The entry of a message just appended or replayed; ``names``: a
    sequence of queue names."""
    return (where, vhost, names[0] if len(names) == 1 else tuple(names), None)


def queue_names(entry: tuple) -> tuple:
    """The queues an entry is still in, as a tuple of names."""
    queues = entry[QUEUES]
    return (queues,) if type(queues) is str else queues


def without_queue(entry: tuple, queue: str) -> tuple | None:
    """The entry once the message left ``queue``: None when no queue is
    left (its record is dead), ``entry`` itself when ``queue`` was not in it."""
    names = queue_names(entry)
    if queue not in names:
        return entry
    left = tuple(q for q in names if q != queue)
    if not left:
        return None
    delivered = entry[DELIVERED]
    if delivered is not None:
        delivered = (delivered - {queue}) or None
    return (entry[WHERE], entry[VHOST], left[0] if len(left) == 1 else left, delivered)


_only: dict[str, frozenset] = {}


def with_delivered(entry: tuple, queue: str) -> tuple:
    """The entry once the message was handed out from ``queue``."""
    delivered = entry[DELIVERED]
    if delivered is None:
        # one shared frozenset per queue name: a drain marks every message
        only = _only.get(queue)
        if only is None:
            if len(_only) >= 4096:
                _only.clear()
            only = _only[queue] = frozenset((queue,))
        return (entry[WHERE], entry[VHOST], entry[QUEUES], only)
    if queue in delivered:
        return entry
    return (entry[WHERE], entry[VHOST], entry[QUEUES], delivered | {queue})


def moved(entry: tuple, where: int, names) -> tuple:
    """The entry of a compaction copy at ``where`` holding ``names``."""
    return (where, entry[VHOST], names[0] if len(names) == 1 else tuple(names), entry[DELIVERED])
