"""Totals over the broker's message counters and the sampler that turns
them into rates (docs/architecture.md, "Counters and rates").

The hot paths count on channels, queues and vhosts (broker/model/stats.py);
everything here runs at read time or every ``SAMPLE_INTERVAL`` seconds, on
the event loop, and only reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from broker.model.stats import CHURN_FIELDS, SAMPLE_INTERVAL, ChurnStats, MessageStats

log = logging.getLogger(__name__)

OPEN = "open"


def open_channels(server):
    """Every open channel of every connection of ``server`` (a list)."""
    return [channel for connection in list(server.connections) for channel in connection.channels.values()
            if channel.state == OPEN]


def unacked_by_queue(channels) -> Counter:
    """Queue -> deliveries waiting for an ack on ``channels`` (walks every
    outstanding delivery: read time only)."""
    counts: Counter = Counter()
    for channel in channels:
        for _entry, queue, _consumer in channel.unacked.values():
            counts[queue] += 1
    return counts


def churn_totals(server) -> ChurnStats:
    """The server's connection and channel churn plus every vhost's queue churn."""
    total = ChurnStats()
    parts = [server.churn] + [vhost.churn for vhost in server.vhosts.values()]
    for name in CHURN_FIELDS:
        setattr(total, name, sum(getattr(part, name) for part in parts))
    return total


class StatsSampler:
    """Message totals per vhost and for the broker, with rates.

    ``vhosts``: vhost name -> MessageStats, the vhost's closed channels and
    dead-lettering (``VHost.stats``) plus its open channels; ``overall``:
    their sum. ``refresh()`` recomputes the counts; ``sample()`` also takes
    a rate reading of them, of every queue's and of every open channel's
    stats (``MessageStats.rates``, per second over the last interval).
    ``start()`` samples every ``interval`` seconds (RabbitMQ's
    collect_statistics_interval, 5 s) until ``stop()``."""

    def __init__(self, server, interval: float = SAMPLE_INTERVAL):
        self.server = server
        self.interval = interval
        self.overall = MessageStats()
        self.vhosts: dict[str, MessageStats] = {}
        self._task: asyncio.Task | None = None

    def refresh(self) -> list:
        """Recompute the totals now; returns the open channels it summed."""
        channels = open_channels(self.server)
        by_vhost: dict[str, list] = {}
        for channel in channels:
            by_vhost.setdefault(channel.vhost.name, []).append(channel.stats)
        for name, vhost in self.server.vhosts.items():
            totals = self.vhosts.get(name)
            if totals is None:
                totals = self.vhosts[name] = MessageStats()
            totals.set_sum([vhost.stats, *by_vhost.get(name, ())])
        for name in [name for name in self.vhosts if name not in self.server.vhosts]:
            del self.vhosts[name]
        self.overall.set_sum(self.vhosts.values())
        return channels

    def sample(self, now: float) -> None:
        """Refresh, then a rate reading at ``now`` (monotonic seconds) of the
        totals, each queue and each open channel."""
        channels = self.refresh()
        self.overall.sample(now)
        for totals in self.vhosts.values():
            totals.sample(now)
        for vhost in self.server.vhosts.values():
            for queue in vhost.queues.values():
                queue.stats.sample(now)
        for channel in channels:
            channel.stats.sample(now)

    def start(self) -> None:
        """Sample every ``interval`` seconds on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="leveret-stats-sampler")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.sample(loop.time())
            except Exception:
                log.exception("message rate sampling failed")
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        """Stop sampling (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
