"""Unit tests of the cold part of a transient queue (broker/queue.py,
broker/message.py ``to_cold``) and of its rebuild without expired items
(broker/cold_compaction.py), on real Queue objects and a real event loop."""

from __future__ import annotations

import asyncio
import gc

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker import cold_compaction
from broker.message import Message, from_cold, to_cold
from broker.queue import HOT_LIMIT, Queue
from broker.vhost import VHost

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


async def _until(predicate) -> None:
    """Let the loop run, a pass at a time, until ``predicate()`` holds."""
    for _ in range(100_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


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
        await _until(lambda: expired.cold_compaction is None)  # a second rebuild for late expiries
        return live, partway, expired, queue
    live, partway, expired, queue = asyncio.run(scenario())
    live_in_cold = sum(1 for body in live if int(body) >= HOT_LIMIT)
    assert live_in_cold < partway < 20_000
    assert expired.cold_compaction is None and not expired.in_cold
    assert len(queue.cold) == live_in_cold + 1  # and the late one
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
