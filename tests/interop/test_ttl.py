"""Message TTL (rabbitmq.com/ttl.html): x-message-ttl, the expiration
property (the lower wins), invalid expirations (406 with RabbitMQ's texts),
TTL 0, requeued messages keeping their deadline, and Leveret's extension:
messages expire wherever they sit in the queue. Deadlines count from the
publish and keep counting across a SIGKILL and restart."""

from __future__ import annotations

import time

import pika
import pika.exceptions
import pytest

from tests.interop.lifecycle_helpers import EXTERNAL, PERSISTENT, connect, count, dead_letter_setup, get_all, \
    wait_until

leveret_only = pytest.mark.skipif(EXTERNAL, reason="Leveret extension (RabbitMQ expires at the head only)")


def test_queue_ttl_expires_messages(broker, unique):
    queue = unique("ttl")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, arguments={"x-message-ttl": 1500})
        for i in range(3):
            ch.basic_publish("", queue, b"m%d" % i)
        assert count(ch, queue) == 3
        wait_until(lambda: count(ch, queue) == 0)
        assert ch.basic_get(queue, auto_ack=True)[0] is None


def test_lower_of_queue_and_message_ttl_wins(broker, unique):
    short_queue, long_queue = unique("short"), unique("long")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(short_queue, arguments={"x-message-ttl": 200})
        ch.queue_declare(long_queue, arguments={"x-message-ttl": 600_000})
        ch.basic_publish("", short_queue, b"a", pika.BasicProperties(expiration="600000"))
        ch.basic_publish("", long_queue, b"b", pika.BasicProperties(expiration="200"))
        ch.basic_publish("", long_queue, b"c")
        wait_until(lambda: count(ch, short_queue) == 0 and count(ch, long_queue) == 1)
        assert [body for body, _p, _m in get_all(ch, long_queue)] == [b"c"]


@leveret_only
def test_message_expires_in_the_middle_of_the_queue(broker, unique):
    """A short-lived message behind long-lived ones expires and is
    dead-lettered, while the head stays. No clock bound: without expiry in
    the middle it would never reach the DLQ (the wait is a hang guard)."""
    source, dlq = unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dead_letter_setup(ch, source, dlq)
        ch.basic_publish("", source, b"head")
        ch.basic_publish("", source, b"middle", pika.BasicProperties(expiration="300"))
        ch.basic_publish("", source, b"tail")
        wait_until(lambda: count(ch, dlq) == 1, timeout=30)
        assert count(ch, source) == 2
        [(body, props, _m)] = get_all(ch, dlq)
        assert body == b"middle" and props.headers["x-death"][0]["reason"] == "expired"
        assert [body for body, _p, _m in get_all(ch, source)] == [b"head", b"tail"]


@leveret_only
@pytest.mark.parametrize("arguments", [{}, {"x-max-priority": 3}])
def test_many_expired_in_place_then_the_rest_in_order(broker, unique, arguments):
    """Thousands of messages expire between live ones in a queue nobody
    consumes (enough for the queue to drop their tombstones,
    broker/queues/lifecycle.py): the count drops at once, the live ones come
    out in order (by priority first in a priority queue), a purge counts
    only them."""
    queue = unique("many")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(queue, arguments=arguments)
        short = pika.BasicProperties(expiration="100")
        for i in range(12_000):
            if i % 3000 == 0:
                ch.basic_publish("", queue, b"live-%d" % i, pika.BasicProperties(priority=i // 3000))
            ch.basic_publish("", queue, b"x", short)
        wait_until(lambda: count(ch, queue) == 4)
        for i in range(3):
            ch.basic_publish("", queue, b"late-%d" % i, short if i == 1 else None)
        wait_until(lambda: count(ch, queue) == 6)
        bodies = [body for body, _p, _m in get_all(ch, queue)]
        for body in (b"x", b"live", b"x"):
            ch.basic_publish("", queue, body, short if body == b"x" else None)
        wait_until(lambda: count(ch, queue) == 1)
        assert ch.queue_purge(queue).method.message_count == 1
    live = [b"live-0", b"live-3000", b"live-6000", b"live-9000"]
    assert bodies == (live[::-1] if arguments else live) + [b"late-0", b"late-2"]


@pytest.mark.parametrize("expiration,reason", [
    ("abc", "no_integer"), ("-5", "{value_negative,-5}"), ("10x", '{leftover_string,"x"}'),
    ("", "no_integer")])
def test_invalid_expiration_is_406(broker, unique, expiration, reason):
    with connect(broker) as conn:
        ch = conn.channel()
        ch.basic_publish("", unique("nowhere"), b"x", pika.BasicProperties(expiration=expiration))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("", exclusive=True)
        assert info.value.reply_code == 406
        assert info.value.reply_text == f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"


def test_ttl_zero_expires_unless_delivered_at_once(broker, unique):
    queue, dlq = unique("zero"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dead_letter_setup(ch, queue, dlq, **{"x-message-ttl": 0})
        ch.basic_publish("", queue, b"nobody-waits")
        wait_until(lambda: count(ch, dlq) == 1)
        assert count(ch, queue) == 0
        got = []
        ch.basic_consume(queue, lambda c, m, p, b: got.append(b), auto_ack=True)
        ch.basic_publish("", queue, b"consumer-waits")
        wait_until(lambda: conn.process_data_events(0.05) or got)
        assert got == [b"consumer-waits"] and count(ch, dlq) == 1


def test_requeued_message_keeps_its_deadline(broker, unique):
    queue, dlq = unique("rq"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dead_letter_setup(ch, queue, dlq, **{"x-message-ttl": 400})
        ch.basic_publish("", queue, b"x")
        method, _p, _b = ch.basic_get(queue)
        time.sleep(0.8)  # the feature: past its deadline while unacknowledged, not expired yet
        assert count(ch, dlq) == 0
        ch.basic_nack(method.delivery_tag, requeue=True)
        wait_until(lambda: count(ch, dlq) == 1)
        assert count(ch, queue) == 0


def _publish_persistent(broker, queue, bodies, **props):
    with connect(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for body in bodies:
            ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=PERSISTENT, **props))


def test_deadlines_keep_counting_across_a_restart(fresh_broker, unique):
    """Durable queue with x-message-ttl 8 s: after a SIGKILL ~4 s long, the
    messages are back, and expire ~8 s after their publish, not 8 s after
    the restart; their dead-lettered copies are in the durable DLQ. Shown
    by order, not a clock bound: a message published after the restart
    with expiration 6 s is dead-lettered after them, which it would not be
    if their 8 s started again at the restart."""
    proc = fresh_broker()
    source, dlq = unique("src"), unique("dlq")
    with connect(proc) as conn:
        dead_letter_setup(conn.channel(), source, dlq, durable=True, **{"x-message-ttl": 8000})
    published = time.monotonic()
    _publish_persistent(proc, source, [b"a", b"b", b"c"])
    proc.kill()
    time.sleep(max(0.0, 4 - (time.monotonic() - published)))   # the feature: time passes while down
    proc.start()      # (a slow start may find them expired already: their copies in the DLQ show they came back)
    _publish_persistent(proc, source, [b"after-restart"], expiration="6000")
    with connect(proc) as conn:
        ch = conn.channel()
        wait_until(lambda: count(ch, dlq) == 4, timeout=30)
        assert count(ch, source) == 0
        got = get_all(ch, dlq)
        assert [body for body, _p, _m in got] == [b"a", b"b", b"c", b"after-restart"], \
            "the restored messages expired after one published later with a shorter TTL: timer reset at restart?"
        assert {p.headers["x-death"][0]["reason"] for _b, p, _m in got} == {"expired"}


def test_deadline_passed_while_down_expires_at_start(fresh_broker, unique):
    """Per-message expiration: a message whose deadline passed while the
    broker was down is expired (and dead-lettered) right at start-up; one
    whose deadline is still ahead stays."""
    proc = fresh_broker()
    source, dlq = unique("src"), unique("dlq")
    with connect(proc) as conn:
        dead_letter_setup(conn.channel(), source, dlq, durable=True)
    _publish_persistent(proc, source, [b"short"], expiration="500")
    _publish_persistent(proc, source, [b"long"], expiration="600000")
    proc.kill()
    time.sleep(1.0)   # the feature: "short" falls due while the broker is down
    proc.start()
    with connect(proc) as conn:
        ch = conn.channel()
        wait_until(lambda: count(ch, dlq) == 1)
        [(body, props, _m)] = get_all(ch, dlq)
        assert body == b"short" and props.headers["x-death"][0]["original-expiration"] == "500"
        assert props.expiration is None and props.delivery_mode == 2
        assert [body for body, _p, _m in get_all(ch, source)] == [b"long"]
