"""Differential: single active consumer (``x-single-active-consumer``) and
consumer priorities (``x-priority`` consume argument).

Rules from https://www.rabbitmq.com/consumers.html#single-active-consumer and
https://www.rabbitmq.com/consumer-priority.html.
"""

from __future__ import annotations

import pytest

from tests.differential.scenario_tools import Collector, per_consumer, scope


def single_active_consumer_failover(url: str):
    """Only the first consumer gets messages; when its connection goes, its
    unacked messages are requeued (in order, redelivered) and everything
    goes to the next consumer, which registered second."""
    with scope(url) as s:
        q = s.queue("main", **{"x-single-active-consumer": True})
        collector = Collector(s)
        first_conn = s.connect()
        channels = {}
        for label, conn in (("first", first_conn), ("second", s.connect()), ("third", s.connect())):
            channels[label] = ch = conn.channel()
            ch.basic_qos(prefetch_count=2)
            collector.consume(ch, q, label)
        counts = {"consumers": s.ch.queue_declare(q, passive=True).method.consumer_count}
        for n in range(1, 5):
            s.publish("", q, str(n))
        before = collector.wait(2)
        first_conn.close()
        after = collector.wait(4)[len(before):]
        collector.ack_all("second")
        after += collector.wait(6)[len(before) + len(after):]
        return {"counts": counts, "before": before, "after": after}


def test_single_active_consumer_failover(differential):
    differential(single_active_consumer_failover, {
        "counts": {"consumers": 3},
        "before": [("first", "1", False), ("first", "2", False)],
        "after": [("second", "1", True), ("second", "2", True), ("second", "3", False), ("second", "4", False)],
    })


def single_active_consumer_cancel(url: str):
    """basic.cancel by the active consumer hands over to the next one for new
    deliveries; a queue without the argument round-robins (control)."""
    with scope(url) as s:
        sac = s.queue("sac", **{"x-single-active-consumer": True})
        plain = s.queue("plain")
        collector = Collector(s)
        ch = s.channel()
        tags = {}
        for label in ("a", "b"):
            for q in (sac, plain):
                tags[(label, q)] = collector.consume(ch, q, f"{label}@{s.norm(q)}", auto_ack=True)
        for n in range(1, 5):
            s.publish("", sac, f"sac-{n}")
            s.publish("", plain, f"plain-{n}")
        collector.wait(8)
        ch.basic_cancel(tags[("a", sac)])
        s.publish("", sac, "sac-5")
        return per_consumer(collector.wait(9))


def test_single_active_consumer_cancel_hands_over(differential):
    differential(single_active_consumer_cancel, {
        "a@<sac>": [(f"sac-{n}", False) for n in range(1, 5)], "b@<sac>": [("sac-5", False)],
        "a@<plain>": [("plain-1", False), ("plain-3", False)],
        "b@<plain>": [("plain-2", False), ("plain-4", False)]})


def consumer_priorities(url: str):
    """Higher x-priority consumers get messages while they have prefetch
    credit; lower ones (negative allowed, default 0) only when all higher
    ones are blocked."""
    with scope(url) as s:
        q = s.queue("main")
        collector = Collector(s)
        specs = (("low", -5, 0), ("default", None, 1), ("high", 10, 2))
        for label, priority, prefetch in specs:
            ch = s.connect().channel()
            if prefetch:
                ch.basic_qos(prefetch_count=prefetch)
            collector.consume(ch, q, label, arguments={"x-priority": priority} if priority is not None else None)
        for n in range(1, 6):
            s.publish("", q, str(n))
        first = collector.wait(5)
        collector.ack_all("high")
        collector.pump(0.2)
        for n in range(6, 8):
            s.publish("", q, str(n))
        second = collector.wait(7)[len(first):]
        return {"first": per_consumer(first), "second": per_consumer(second)}


def test_consumer_priorities(differential):
    differential(consumer_priorities, {
        "first": {"high": [("1", False), ("2", False)], "default": [("3", False)],
                  "low": [("4", False), ("5", False)]},
        "second": {"high": [("6", False), ("7", False)]},
    })


@pytest.mark.parametrize("kind, value", [("x-priority", "high"), ("x-single-active-consumer", "yes")])
def test_consumer_argument_validation(differential, kind, value):
    def scenario(url: str):
        with scope(url) as s:
            if kind == "x-priority":
                q = s.queue("main")
                return s.error(lambda: s.ch.basic_consume(q, lambda *a: None, arguments={kind: value}))
            return s.error(lambda: s.queue("main", **{kind: value}))

    reason = '"expected integer, got longstr"' if kind == "x-priority" else "{unacceptable_type,longstr}"
    differential(scenario, (406, f"PRECONDITION_FAILED - invalid arg '{kind}' for queue '<main>' "
                                 f"in vhost '/': {reason}"))
