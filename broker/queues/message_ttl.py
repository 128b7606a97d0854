"""Message TTL (rabbitmq.com/ttl.html): the ``x-message-ttl`` queue
argument and the per-message ``expiration`` property, the lower of the two
wins.

Unlike RabbitMQ, which only expires messages once they reach the head of
the queue, a message expires wherever it sits, shortly after its deadline:
``ExpiryIndex`` keeps a min-heap of ``(deadline_ms, message_id)`` with lazy
deletion (an entry whose message was delivered, dropped or given a new
deadline is skipped when popped) and one event-loop timer for the earliest
deadline; no tick ever scans the queue. Deadlines are wall-clock
milliseconds since the Unix epoch, so that after a restart they are computed
from the WAL's publish time (``at_ms``) and keep counting.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from typing import Callable

from broker.model.clock import now_ms
from broker.model.message_headers import expiration_of, has_expiration
from protocol import reply_codes
from protocol.errors import channel_error

#: expired messages handled per timer callback before yielding to the loop
BATCH = 512
#: heap keys are ``deadline_ms << SHIFT | message_id`` (one int, no tuple)
SHIFT = 40
MASK = (1 << SHIFT) - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_expiration(text) -> int:
    """The expiration property as ms; raises ValueError with RabbitMQ's
    reason text (rabbit_basic:parse_expiration, via Erlang's
    string:to_integer): ``no_integer``, ``{leftover_string,"..."}``,
    ``{value_negative,N}`` (RabbitMQ 3.10 accepts any larger value at publish)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", "replace")
    match = _INTEGER.match(text)
    if match is None:
        raise ValueError("no_integer")
    value = int(match.group())
    rest = text[match.end():]
    if rest:
        raise ValueError('{leftover_string,"%s"}' % rest)
    if value < 0:
        raise ValueError(f"{{value_negative,{value}}}")
    return value


def check_expiration(message) -> None:
    """At publish: 406 PRECONDITION_FAILED ``invalid expiration '<e>':
    <reason>`` (a channel error, rabbit_channel:check_expiration_header)
    when the expiration property is not a valid TTL. Reads the property
    from the header bytes (no pamqp decoding)."""
    expiration = expiration_of(message.header)
    if expiration is None:
        return
    try:
        parse_expiration(expiration)
    except ValueError as exc:
        text = expiration.decode("utf-8", "replace")
        raise channel_error(reply_codes.PRECONDITION_FAILED, f"invalid expiration '{text}': {exc}") from None


def message_expiration(header: bytes) -> int | None:
    """The message's own TTL in ms from its content header payload (None
    without, or when invalid: such a message was refused at publish)."""
    if not has_expiration(header):
        return None
    expiration = expiration_of(header)
    if expiration is None:
        return None
    try:
        return parse_expiration(expiration)
    except ValueError:
        return None


def effective_ttl(queue_ttl: int | None, message_ttl: int | None) -> int | None:
    """The lower of the queue's and the message's TTL (ttl.html, "the
    lower of the two is chosen"), or None when neither is set."""
    if queue_ttl is None:
        return message_ttl
    if message_ttl is None:
        return queue_ttl
    return min(queue_ttl, message_ttl)


class ExpiryIndex:
    """The deadlines of one queue's ready messages.

    ``deadlines``: message id -> deadline_ms; ``refs``: message id -> the
    queue's QueuedMessage, ``to_cold`` tuple or Message when it holds the
    message in memory (absent for a stored id: the body stays in the WAL); ``heap``: ints
    ``deadline_ms << SHIFT | message_id``, smallest first. Only ints and
    references: no object per message that a full garbage collection would
    have to walk. ``on_expire(batch)`` is called with a
    list of ``(message_id, ref)`` whose deadlines passed, in deadline
    order (then message id order), at most BATCH per loop pass. Memory: one
    or two dict slots and one heap int per message with a deadline;
    nothing for messages without.
    """

    def __init__(self, on_expire: Callable[[list], None], flow=None):
        self.on_expire = on_expire
        #: broker.transport.flow_control.PublishFlow told how late this index is (None: nobody)
        self.flow = flow
        self.heap: list[int] = []
        self.deadlines: dict[int, int] = {}
        self.refs: dict[int, object] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self.deadlines)

    def add(self, message_id: int, deadline: int, ref) -> None:
        """Track ``message_id`` (replacing an earlier deadline of it)."""
        self.deadlines[message_id] = deadline
        if ref is not None:
            self.refs[message_id] = ref
        elif self.refs:
            self.refs.pop(message_id, None)
        heap = self.heap
        heapq.heappush(heap, deadline << SHIFT | message_id)
        if len(heap) > 2 * len(self.deadlines) + 4096:
            # stale entries (delivered messages) outnumber live ones: rebuild
            self.heap = [d << SHIFT | m for m, d in self.deadlines.items()]
            heapq.heapify(self.heap)
        if self._timer is None or deadline < self._timer_at:
            self._schedule(deadline)

    def moved(self, message_id: int, ref) -> None:
        """Tracked ``message_id`` now sits at ``ref`` (a refill moved it
        from ``cold`` to its QueuedMessage in ``ready``)."""
        if message_id in self.deadlines:
            self.refs[message_id] = ref

    def discard(self, message_id: int) -> int | None:
        """Stop tracking ``message_id`` (delivered, dropped); returns its
        deadline or None."""
        self.refs.pop(message_id, None)
        return self.deadlines.pop(message_id, None)

    def clear(self) -> None:
        """Forget everything and stop the timer (purge, delete)."""
        if self.flow is not None:
            self.flow.forget(self)
        self.heap.clear()
        self.deadlines.clear()
        self.refs.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, deadline: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, (deadline - now_ms()) / 1000.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.closed:
            return
        heap, deadlines, refs = self.heap, self.deadlines, self.refs
        limit = (now_ms() + 1) << SHIFT  # every key with deadline <= now is below it
        pop = heapq.heappop
        batch = []
        first = 0
        while heap and heap[0] < limit:
            key = pop(heap)
            message_id = key & MASK
            if deadlines.get(message_id) != key >> SHIFT:
                continue  # stale: delivered, dropped or re-added since
            del deadlines[message_id]
            if not batch:
                first = key >> SHIFT
            batch.append((message_id, refs.pop(message_id, None)))
            if len(batch) >= BATCH:
                break
        if self.flow is not None:
            # a full batch: more may be due; how late the oldest was
            self.flow.report(self, (limit >> SHIFT) - first if len(batch) >= BATCH else 0)
        if batch:
            self.on_expire(batch)
        heap = self.heap  # add() may have rebuilt it
        if heap and (self._timer is None or heap[0] >> SHIFT < self._timer_at):
            self._schedule(heap[0] >> SHIFT)
