"""Rebuilding ``Queue.cold`` without its expired items, a slice per
event-loop pass (broker/queues/expired_in_place.py decides when).

A queue nobody consumes from never reaches its expired items at the head,
so their bodies would stay in memory; rebuilding a cold part of 500k items
in one go took 0.1-0.2 s on the bench machine (each item is touched, and
each expired one freed), and every message due meanwhile was that late
(issue 4: expire within 100 ms). So the rebuild walks SLICE items per loop
pass, in place: the part already rebuilt is rotated out of the way
(``deque.rotate`` moves pointers only), the next SLICE items are filtered,
and the survivors are rotated back behind the rebuilt part. New messages
appended meanwhile are simply left for later; if anything is taken from
the head (a consumer, basic.get, a purge) the rebuild stops, since the
head then passes the expired items itself.
"""

from __future__ import annotations

import asyncio

#: items of ``cold`` looked at per loop pass (about 2 ms)
SLICE = 8192


class ColdCompaction:
    """One rebuild of ``expired.queue.cold`` (``expired``: the queue's
    broker.queues.expired_in_place.ExpiredInPlace, whose ``filter_cold`` drops the
    expired items and forgets their marks). Starts at once; sets
    ``expired.cold_compaction`` back to None when done or stopped."""

    def __init__(self, expired):
        self.expired = expired
        self.cold = expired.queue.cold
        #: items at the left of ``cold`` already rebuilt
        self.done = 0
        #: items still to look at (those present when the rebuild began)
        self.remaining = len(self.cold)
        self.head = None
        asyncio.get_running_loop().call_soon(self.step)

    def step(self) -> None:
        """Rebuild the next slice; schedule the one after."""
        cold = self.cold
        if (cold is not self.expired.queue.cold or not cold
                or (self.done and cold[0] is not self.head)):
            self.expired.cold_compaction = None  # replaced, emptied, or its head was taken
            return
        done = self.done
        take = min(SLICE, self.remaining, len(cold) - done)
        if done:
            cold.rotate(-done)
        popleft = cold.popleft
        kept = self.expired.filter_cold([popleft() for _ in range(take)])
        cold.extend(kept)
        done += len(kept)
        cold.rotate(done)
        self.done = done
        self.remaining -= take
        self.head = cold[0] if cold else None
        if self.remaining > 0 and len(cold) > done:
            asyncio.get_running_loop().call_soon(self.step)
        else:
            self.expired.cold_compaction = None
