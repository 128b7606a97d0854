"""broker/exchanges/delayed.py and broker/vhost/delayed_scheduler.py without a
server: x-delayed-type validation, x-delay parsing, and the heap + single
timer scheduler routing held messages in due order, never early."""

from __future__ import annotations

import asyncio
import random

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.vhost.delayed_scheduler import SHIFT, scheduler_for
from broker.exchanges.delayed import DelayedMessageExchange, delay_of
from broker.model.message import Message
from broker.queues.queue import Queue
from broker.vhost.namespace import VHost
from protocol.errors import AMQPError
from storage.wal import now_ms


def _message(exchange: str, key: str, body: bytes, headers: dict | None = None) -> Message:
    header = ContentHeader(0, len(body), Basic.Properties(headers=headers)).marshal()
    return Message(exchange, key, header, body)


@pytest.mark.parametrize("arguments, code", [({}, 406), ({"x-delayed-type": 5}, 406),
                                             ({"x-delayed-type": "nosuch"}, 503),
                                             ({"x-delayed-type": "x-delayed-message"}, 406)])
def test_bad_delayed_type(arguments, code):
    with pytest.raises(AMQPError) as info:
        DelayedMessageExchange("x", arguments=arguments)
    assert info.value.reply_code == code


@pytest.mark.parametrize("headers, expected", [
    (None, None), ({}, None), ({"x-delay": 0}, None), ({"x-delay": -5}, None), ({"x-delay": 1500}, 1500),
    ({"x-delay": "250"}, 250), ({"x-delay": 2.9}, 2), ({"x-delay": True}, None), ({"x-delay": "soon"}, None),
    ({"x-delay": 4294967296}, None)])
def test_delay_of(headers, expected):
    assert delay_of(headers) == expected


def test_routes_like_its_underlying_type():
    x = DelayedMessageExchange("x", arguments={"x-delayed-type": "topic"})
    q = object()
    x.bind(q, "a.*")
    assert list(x.route("a.b", None)) == [q] and list(x.route("b.a", None)) == []


class TimedQueue(Queue):
    """A real queue that notes when (wall-clock ms) each message arrived."""

    def __init__(self, *args):
        super().__init__(*args)
        self.arrivals: dict = {}

    def enqueue(self, message):
        self.arrivals[message] = now_ms()
        super().enqueue(message)


async def test_scheduler_routes_in_due_order_never_early_with_one_timer():
    vhost = VHost("/")
    exchange = DelayedMessageExchange("dx", arguments={"x-delayed-type": "fanout"})
    vhost.add_exchange(exchange)
    queue = TimedQueue(vhost, "q")
    vhost.add_queue(queue)
    vhost.bind(exchange, queue, "", {})
    scheduler = scheduler_for(vhost, exchange)
    rng = random.Random(1)
    delays = [rng.randint(20, 400) for _ in range(300)]
    for i, delay in enumerate(delays):
        scheduler.add(_message("dx", "", b"m%d" % i, {"x-delay": delay}), delay)
        assert scheduler._timer is not None
    assert len(scheduler) == 300 and not queue.ready
    keys = list(scheduler.heap)
    deadline = asyncio.get_running_loop().time() + 10
    while len(queue.ready) < 300 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert len(queue.ready) == 300 and len(scheduler) == 0 and scheduler._timer is None
    assert [m.id for m in queue.arrivals] == [key & ((1 << SHIFT) - 1) for key in sorted(keys)]
    due = {key & ((1 << SHIFT) - 1): key >> SHIFT for key in keys}
    assert all(queue.arrivals[m] >= due[m.id] for m in queue.arrivals)
    assert queue.ready[0].message.headers()["x-delay"] < 0
    assert not scheduler.transient


async def test_heap_keys_order_by_due_then_publish_order():
    vhost = VHost("/")
    exchange = DelayedMessageExchange("dx", arguments={"x-delayed-type": "direct"})
    vhost.add_exchange(exchange)
    scheduler = scheduler_for(vhost, exchange)
    due = now_ms() + 60_000          # one due time: a clock tick between pushes must not split it
    scheduler.push(due, 7)
    scheduler.push(due, 3)
    scheduler.push(due - 59_000, 9)
    assert [key & ((1 << SHIFT) - 1) for key in sorted(scheduler.heap)] == [9, 3, 7]
    timer = scheduler._timer
    scheduler.push(now_ms() + 90_000, 11)  # later than the head: the timer stays
    assert scheduler._timer is timer
    vhost.delete_exchange(exchange)
    assert scheduler._timer is None and not scheduler.heap
