"""Differential: priority queues (``x-max-priority``, message ``priority``).

Rules from https://www.rabbitmq.com/priority.html: higher priority first,
FIFO within a priority; no priority counts as 0; a priority above the
maximum counts as the maximum.
"""

from __future__ import annotations

import pytest

from tests.differential.scenario_tools import Collector, scope

# (body, priority) in publish order; max priority 5
PUBLISHED = [("p1-a", 1), ("none-a", None), ("p5-a", 5), ("p3-a", 3), ("p9-a", 9), ("p1-b", 1),
             ("p0-a", 0), ("p5-b", 5), ("none-b", None), ("p3-b", 3), ("p200", 200)]
EXPECTED_ORDER = ["p5-a", "p9-a", "p5-b", "p200", "p3-a", "p3-b", "p1-a", "p1-b", "none-a", "p0-a", "none-b"]


def publish_all(s, q):
    for body, priority in PUBLISHED:
        s.publish("", q, body, priority=priority)


def priority_order_get(url: str):
    """basic.get after publishing: priority order, FIFO within a priority;
    the priority property itself is delivered unchanged."""
    with scope(url) as s:
        q = s.queue("main", **{"x-max-priority": 5})
        publish_all(s, q)
        return {"count": s.count(q), "got": [(m["body"], m["priority"]) for m in s.drain(q)]}


def test_priority_order_with_basic_get(differential):
    priorities = dict(PUBLISHED)
    differential(priority_order_get, {"count": len(PUBLISHED),
                                      "got": [(b, priorities[b]) for b in EXPECTED_ORDER]})


def priority_order_consume(url: str):
    """A consumer with prefetch 1 attached after publishing sees the same order."""
    with scope(url) as s:
        q = s.queue("main", **{"x-max-priority": 5})
        publish_all(s, q)
        collector = Collector(s)
        ch = s.channel()
        ch.basic_qos(prefetch_count=1)
        collector.consume(ch, q, "c")
        for n in range(len(PUBLISHED)):
            collector.wait(n + 1, settle=0)
            collector.ack_all("c")
        return [body for _, body, _ in collector.wait(len(PUBLISHED))]


def test_priority_order_with_consumer(differential):
    differential(priority_order_consume, EXPECTED_ORDER)


def requeue_keeps_priority_position(url: str):
    """A requeued message goes back to the front of its own priority, marked
    redelivered; higher priorities still come before it."""
    with scope(url) as s:
        q = s.queue("main", **{"x-max-priority": 5})
        for body, priority in (("low-1", 1), ("mid-1", 3), ("mid-2", 3), ("low-2", 1)):
            s.publish("", q, body, priority=priority)
        first = s.ch.basic_get(q)[0]
        second = s.ch.basic_get(q)[0]
        s.publish("", q, "high", priority=5)
        s.ch.basic_nack(second.delivery_tag, requeue=True)
        s.ch.basic_nack(first.delivery_tag, requeue=True)
        return s.drain(q, "body", "redelivered")


def test_requeue_in_priority_queue(differential):
    differential(requeue_keeps_priority_position, [
        {"body": "high", "redelivered": False},
        {"body": "mid-1", "redelivered": True}, {"body": "mid-2", "redelivered": True},
        {"body": "low-1", "redelivered": False}, {"body": "low-2", "redelivered": False},
    ])


def priority_with_max_length(url: str):
    """drop-head in a priority queue drops the message that would be
    delivered next (the head of the highest priority)."""
    with scope(url) as s:
        q = s.queue("main", **{"x-max-priority": 5, "x-max-length": 2})
        for body, priority in (("low", 1), ("high", 5), ("low-2", 1)):
            s.publish("", q, body, priority=priority)
        return s.drain(q, "body")


def test_priority_queue_with_length_limit(differential):
    differential(priority_with_max_length, ["low", "low-2"])


def priority_queue_without_max(url: str):
    """Without x-max-priority the priority property is ignored: FIFO."""
    with scope(url) as s:
        q = s.queue("main")
        publish_all(s, q)
        return s.drain(q, "body")


def test_plain_queue_ignores_priority(differential):
    differential(priority_queue_without_max, [body for body, _ in PUBLISHED])


@pytest.mark.parametrize("value, reason", [
    (256, "{max_value_exceeded,256}"),
    (-1, "{value_negative,-1}"),
    ("5", '"expected integer, got longstr"'),
])
def test_max_priority_validation(differential, value, reason):
    def declare(url: str):
        with scope(url) as s:
            return s.error(lambda: s.queue("main", **{"x-max-priority": value}))

    differential(declare, (406, f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '<main>' "
                                f"in vhost '/': {reason}"))
