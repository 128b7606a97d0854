"""Ready messages of a priority queue: one FIFO per priority level
(rabbitmq.com/priority.html).

Rules, from the RabbitMQ page and checked against RabbitMQ 3.10:

* ``x-max-priority`` (queue argument, integer 0-255; validated in
  broker.queues.arguments with RabbitMQ's texts) gives the levels 0..max.
  0 declares a queue with one level, which orders exactly as a plain queue,
  so Leveret keeps a plain deque for it.
* a message's ``priority`` property picks its level; no property means 0,
  a priority above the maximum is treated as the maximum.
* higher levels are delivered first; within a level, publish order (FIFO),
  and a requeued message goes back to its original place within its level.

Deep durable queues: a plain stored queue keeps ready messages past
``broker.queues.queue.HOT_LIMIT`` as bare ids in ``Queue.cold``. A priority queue
keeps everything hot instead: a message's place depends on its priority,
which is in its content header, and a cold id would have to be read back
from the WAL to be placed. After a restart the recovered ids do wait in
``Queue.cold`` (the priority is in the stored content header), and the first
``Queue._refill`` moves all of them at once into this structure, reading
each header back from the WAL, so the order after recovery is the priority
order. The cost: a priority queue holds every ready body in RAM (like the
in-memory part of a plain queue). Cold storage per level would lift that
limit; it is not done here.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

from broker.model.field_values import integer
from broker.model.message import QueuedMessage
from protocol.hot_methods import header_priority

#: highest ``x-max-priority`` RabbitMQ accepts (rabbit_priority_queue.erl)
MAX_SUPPORTED_PRIORITY = 255


def max_priority(arguments: dict) -> int:
    """The queue's ``x-max-priority`` (validated when declared), or 0 when
    absent or not an integer (RabbitMQ treats a non-integer as no priority)."""
    value = integer(arguments.get("x-max-priority"))
    return min(value, MAX_SUPPORTED_PRIORITY) if value is not None and value > 0 else 0


class PriorityReady:
    """The ``Queue.ready`` of a priority queue: what Queue uses of a deque
    (append, appendleft, popleft, ``[0]``, len, bool, iteration in delivery
    order, clear) plus ``insert_in_order`` for requeues.

    One deque per level and a pointer to the highest level that may be
    non-empty: append/appendleft are O(1), popleft is O(1) amortised over
    the at most 256 levels it may step down; ``insert_in_order`` is O(1)
    when the message goes back to the head of its level (the usual case).
    """

    __slots__ = ("levels", "maximum", "_count", "_top")

    def __init__(self, maximum: int):
        self.maximum = maximum
        self.levels: list[deque[QueuedMessage]] = [deque() for _ in range(maximum + 1)]
        self._count = 0
        self._top = 0

    def level_of(self, entry: QueuedMessage) -> int:
        """The level of ``entry``: its priority property, capped at the maximum."""
        priority = header_priority(entry.message.header)
        return priority if priority < self.maximum else self.maximum

    def append(self, entry: QueuedMessage) -> None:
        """Add at the tail of its level (a newly published message)."""
        level = self.level_of(entry)
        self.levels[level].append(entry)
        self._count += 1
        if level > self._top:
            self._top = level

    def appendleft(self, entry: QueuedMessage) -> None:
        """Add at the head of its level."""
        level = self.level_of(entry)
        self.levels[level].appendleft(entry)
        self._count += 1
        if level > self._top:
            self._top = level

    def insert_in_order(self, entry: QueuedMessage) -> None:
        """Put a requeued message back at its original place within its
        level: before the first message of that level with a higher
        ``seq`` (publish order)."""
        level_index = self.level_of(entry)
        level = self.levels[level_index]
        if not level or entry.seq < level[0].seq:
            level.appendleft(entry)
        else:
            index = len(level)
            for position, other in enumerate(level):  # rare: a gap left by a later requeue
                if other.seq > entry.seq:
                    index = position
                    break
            level.insert(index, entry)
        self._count += 1
        if level_index > self._top:
            self._top = level_index

    def _head_level(self) -> deque:
        levels = self.levels
        top = self._top
        while not levels[top]:
            top -= 1
        self._top = top
        return levels[top]

    def popleft(self) -> QueuedMessage:
        """Take the next message to deliver: the oldest of the highest
        non-empty level. Raises IndexError when empty, as deque does."""
        if not self._count:
            raise IndexError("pop from an empty PriorityReady")
        self._count -= 1
        return self._head_level().popleft()

    def __getitem__(self, index: int) -> QueuedMessage:
        """Only ``[0]``, the next message to deliver, is supported."""
        if index != 0:
            raise IndexError("PriorityReady supports only [0]")
        if not self._count:
            raise IndexError("PriorityReady is empty")
        return self._head_level()[0]

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[QueuedMessage]:
        """Every message, in delivery order (highest level first)."""
        for level in reversed(self.levels):
            yield from level

    def clear(self) -> None:
        for level in self.levels:
            level.clear()
        self._count = 0
        self._top = 0
