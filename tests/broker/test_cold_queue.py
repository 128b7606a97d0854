"""Unit tests of the cold part of a transient queue (broker/queues/queue.py,
broker/model/message.py ``to_cold``) and of its rebuild without expired items
(broker/queues/cold_compaction.py), on real Queue objects and a real event loop."""

from __future__ import annotations

import asyncio
import gc

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.queues import cold_compaction
from broker.queues.expired_in_place import COMPACT_AFTER
from broker.model.message import Message, from_cold, to_cold
from broker.queues.queue import HOT_LIMIT, Queue
from broker.vhost.namespace import VHost
from broker.persistence.store import Store
from storage import Storage

PLAIN = ContentHeader(0, 1, Basic.Properties()).marshal()
SHORT = ContentHeader(0, 1, Basic.Properties(expiration="20")).marshal()


def _message(body: bytes, header: bytes = PLAIN) -> Message:
    return Message("ex", "rk", header, body)


def _bodies(queue: Queue) -> list[bytes]:
    bodies = []
    while (entry := queue.get()) is not None:
        bodies.append(entry.message.body)
    return bodies


async def _passes(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def _until(predicate, guard_s: float = 30.0) -> None:
    """Let the loop run, a pass at a time, until ``predicate()`` holds;
    AssertionError after ``guard_s`` seconds (a hang guard, not a bound)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + guard_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("never happened")
        await asyncio.sleep(0.001)


def test_to_cold_round_trip_and_the_tuple_is_not_tracked_by_the_gc():
    message = _message(b"body")
    item = to_cold(message)
    gc.collect()
    assert not gc.is_tracked(item)  # a full collection never walks it
    back = from_cold(item)
    assert (back.id, back.exchange, back.routing_key, back.header, back.body) == (
        message.id, "ex", "rk", PLAIN, b"body")
    assert back.exchange_routing_key == message.exchange_routing_key
    message.bcc = ["other"]
    assert to_cold(message) is message  # BCC keys (a list) keep the Message


def test_a_deep_transient_queue_keeps_tuples_behind_the_hot_part_in_order():
    async def scenario():
        queue = Queue(VHost("/"), "deep")
        for i in range(3 * HOT_LIMIT):
            queue.enqueue(_message(b"%d" % i))
        shape = len(queue.ready), len(queue.cold), {type(item) for item in queue.cold}
        return shape, queue.message_count, _bodies(queue)
    (ready, cold, kinds), count, bodies = asyncio.run(scenario())
    assert (ready, cold, kinds) == (HOT_LIMIT, 2 * HOT_LIMIT, {tuple})
    assert count == 3 * HOT_LIMIT
    assert bodies == [b"%d" % i for i in range(3 * HOT_LIMIT)]


def _fill(queue: Queue, count: int) -> list[bytes]:
    """``count`` messages, two in three expiring in 20 ms; returns the
    bodies that live."""
    live = []
    for i in range(count):
        short = i % 3 != 0
        queue.enqueue(_message(b"%d" % i, SHORT if short else PLAIN))
        if not short:
            live.append(b"%d" % i)
    return live


def test_cold_is_rebuilt_without_expired_items_a_slice_at_a_time(monkeypatch):
    monkeypatch.setattr(cold_compaction, "SLICE", 1000)

    async def scenario():
        queue = Queue(VHost("/"), "ttl")
        live = _fill(queue, HOT_LIMIT + 20_000)
        expired = queue.lifecycle.expired
        await _until(lambda: expired.cold_compaction is not None)
        await _passes(2)
        partway = len(queue.cold)
        queue.enqueue(_message(b"late"))  # arrives during the rebuild
        await _until(lambda: expired.cold_compaction is None and len(queue.lifecycle.index) == 0)
        return live, partway, expired, queue
    live, partway, expired, queue = asyncio.run(scenario())
    live_in_cold = sum(1 for body in live if int(body) >= HOT_LIMIT)
    assert live_in_cold < partway < 20_000
    # on a loaded machine some deadlines fall after the rebuild passed their
    # items (filling the queue took longer than the TTL): those wait, marked,
    # for the next rebuild, which starts only past COMPACT_AFTER of them
    left = len(expired.in_cold)
    assert expired.cold_compaction is None and left <= COMPACT_AFTER
    assert len(queue.cold) == live_in_cold + 1 + left  # and the late one
    assert queue.message_count == len(live) + 1
    assert _bodies(queue) == live + [b"late"]


def test_a_rebuild_stops_when_the_head_is_taken():
    async def scenario():
        queue = Queue(VHost("/"), "ttl")
        live = _fill(queue, HOT_LIMIT + 60_000)
        expired = queue.lifecycle.expired
        await _until(lambda: expired.cold_compaction is not None)
        first = expired.cold_compaction
        await _passes(1)
        taken = [queue.get().message.body for _ in range(HOT_LIMIT // 2 + 1)]  # refills from cold
        await _passes(1)
        stopped = expired.cold_compaction is not first  # gone, or a new one started since
        await _until(lambda: expired.cold_compaction is None and len(queue.lifecycle.index) == 0)
        return live, taken, stopped, queue
    live, taken, stopped, queue = asyncio.run(scenario())
    assert stopped
    assert queue.message_count == len(live) - len(taken)
    assert taken + _bodies(queue) == live


def test_expired_stored_ids_leave_cold_of_a_durable_queue_nobody_consumes(tmp_path):
    """A durable queue with a TTL and no consumer: its persistent messages
    wait in ``cold`` as ids; once expired they are dropped by the rebuild,
    ids and marks, and their WAL records are closed."""
    async def scenario():
        storage = Storage(tmp_path / "data")
        storage.open()
        queue = Queue(VHost("/", Store(storage)), "durable", durable=True, arguments={"x-message-ttl": 20})
        persistent = ContentHeader(0, 1, Basic.Properties(delivery_mode=2)).marshal()
        for i in range(HOT_LIMIT + 10_000):
            message = _message(b"%d" % i, persistent)
            storage.persist_message(message.id, "/", "ex", "rk", ["durable"], message.header, message.body)
            message.stored = True
            queue.enqueue(message)
        cold_before = len(queue.cold)
        expired = queue.lifecycle.expired
        await _until(lambda: len(queue.lifecycle.index) == 0 and expired.cold_compaction is None
                     and len(queue.cold) < cold_before)
        await storage.sync()
        shape = cold_before, len(queue.cold), len(expired.ids) - expired.tombstones, queue.message_count
        live = len(storage.live)
        storage.close()
        return shape, live
    (cold_before, cold_after, marks, count), live = asyncio.run(scenario())
    # what expired after the rebuild passed it waits for the next one (at
    # most COMPACT_AFTER items, each still counted out of message_count)
    assert cold_before == 10_000 and cold_after <= COMPACT_AFTER and marks == cold_after
    assert count == 0 and live == 0


def test_messages_refilled_into_ready_expire_there_as_tombstones():
    """A message that moved from cold to ready and expires there is buried
    in ready (its body freed at once), not marked as if still in cold."""
    async def scenario():
        queue = Queue(VHost("/"), "q")
        # the 100 in cold must not expire before the gets below refill them,
        # however slow the machine: a TTL of 1 s
        second = ContentHeader(0, 1, Basic.Properties(expiration="1000")).marshal()
        for i in range(HOT_LIMIT + 100):
            queue.enqueue(_message(b"%d" % i, PLAIN if i < HOT_LIMIT else second))
        for _ in range(HOT_LIMIT + 1):  # the last get refills the 100 from cold
            queue.delivered(queue.get(), "", True)  # as basic.get with no-ack
        expired = queue.lifecycle.expired
        await _until(lambda: len(queue.lifecycle.index) == 0)   # the 99 left expire after their 1 s
        state = len(expired.in_cold), expired.tombstones, queue.message_count
        left = queue.get()
        return state, left, len(expired.ids)
    (in_cold, tombstones, count), left, ids = asyncio.run(scenario())
    assert (in_cold, tombstones, count) == (0, 99, 0)
    assert left is None and ids == 0
