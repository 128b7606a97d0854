"""x-delivery-limit (rabbitmq.com/quorum-queues.html#poison-message-handling):
a message returned more times than the limit is dead-lettered with reason
delivery_limit (or dropped without a DLX); redeliveries carry
x-delivery-count. A crash while a message is delivered counts as a return.
Leveret applies it to classic queues too, so these tests run on Leveret
only (RabbitMQ 3.10 honours the argument on quorum queues only)."""

from __future__ import annotations

import pika
import pytest

from tests.interop.lifecycle_helpers import EXTERNAL, PERSISTENT, connect, count, dead_letter_setup, get_all, \
    wait_until

pytestmark = pytest.mark.skipif(EXTERNAL, reason="x-delivery-limit on classic queues is a Leveret extension")


def test_dead_lettered_after_limit_with_delivery_count(broker, unique):
    source, dlq = unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dead_letter_setup(ch, source, dlq, **{"x-delivery-limit": 2})
        ch.basic_publish("", source, b"poison", pika.BasicProperties(headers={"k": "v"}))
        seen = []
        for _ in range(3):
            method, props, _body = wait_until(lambda: (lambda r: r if r[0] else None)(ch.basic_get(source)))
            seen.append((method.redelivered, (props.headers or {}).get("x-delivery-count")))
            ch.basic_nack(method.delivery_tag, requeue=True)
        assert seen == [(False, None), (True, 1), (True, 2)]
        wait_until(lambda: count(ch, dlq) == 1)
        assert count(ch, source) == 0
        [(body, props, _m)] = get_all(ch, dlq)
        assert body == b"poison" and props.headers["k"] == "v"
        assert props.headers["x-death"][0]["reason"] == "delivery_limit"


def test_dropped_without_dlx_and_channel_close_counts(broker, unique):
    queue = unique("dl")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(queue, arguments={"x-delivery-limit": 0})
        ch.basic_publish("", queue, b"once")
        wait_until(lambda: count(ch, queue) == 1)
        other = conn.channel()
        assert other.basic_get(queue)[0] is not None
        other.close()  # unacked: returned once, limit 0 -> dropped
        wait_until(lambda: count(ch, queue) == 0)
        assert ch.basic_get(queue)[0] is None


def test_a_crash_counts_as_a_return(fresh_broker, unique):
    proc = fresh_broker()
    source, dlq = unique("src"), unique("dlq")
    with connect(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        dead_letter_setup(ch, source, dlq, durable=True, **{"x-delivery-limit": 1})
        ch.basic_publish("", source, b"p", pika.BasicProperties(delivery_mode=PERSISTENT))
        assert ch.basic_get(source)[0] is not None  # delivered, never acked
    proc.kill()
    proc.start()
    with connect(proc) as conn:
        ch = conn.channel()
        method = ch.basic_get(source)[0]
        assert method.redelivered
        ch.basic_nack(method.delivery_tag, requeue=True)  # second return > limit 1
        wait_until(lambda: count(ch, dlq) == 1)
        assert count(ch, source) == 0


def _deliveries_then_kill(proc, source: str, dlq: str, limit: int, returns: int) -> list:
    """A persistent message in a durable queue with ``x-delivery-limit``
    ``limit``, nacked back ``returns`` times, then delivered once more and
    left unacknowledged when the broker is SIGKILLed; returns the
    x-delivery-count headers seen."""
    seen = []
    conn = connect(proc)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        dead_letter_setup(ch, source, dlq, durable=True, **{"x-delivery-limit": limit})
        ch.basic_publish("", source, b"p", pika.BasicProperties(delivery_mode=PERSISTENT))
        for i in range(returns + 1):
            method, props, _body = wait_until(lambda: (lambda r: r if r[0] else None)(ch.basic_get(source)))
            seen.append((props.headers or {}).get("x-delivery-count"))
            if i < returns:
                ch.basic_nack(method.delivery_tag, requeue=True)
        proc.kill()  # with the connection open: closing it would return the message first
    finally:
        try:
            conn.close()
        except pika.exceptions.AMQPError:
            pass
    proc.start()
    return seen


def test_the_delivery_count_survives_a_restart(fresh_broker, unique):
    proc = fresh_broker()
    source, dlq = unique("src"), unique("dlq")
    assert _deliveries_then_kill(proc, source, dlq, limit=3, returns=2) == [None, 1, 2]
    with connect(proc) as conn:
        ch = conn.channel()
        method, props, _body = ch.basic_get(source)
        assert method.redelivered and props.headers["x-delivery-count"] == 3  # the crash was a return
        ch.basic_nack(method.delivery_tag, requeue=True)  # fourth return > limit 3
        wait_until(lambda: count(ch, dlq) == 1)
        assert count(ch, source) == 0


def test_past_the_limit_at_restart_it_is_dead_lettered(fresh_broker, unique):
    proc = fresh_broker()
    source, dlq = unique("src"), unique("dlq")
    assert _deliveries_then_kill(proc, source, dlq, limit=1, returns=1) == [None, 1]
    with connect(proc) as conn:
        ch = conn.channel()
        assert ch.basic_get(source)[0] is None  # second return (the crash) > limit 1
        wait_until(lambda: count(ch, dlq) == 1)
        [(body, props, _m)] = get_all(ch, dlq)
        assert body == b"p" and props.headers["x-death"][0]["reason"] == "delivery_limit"
