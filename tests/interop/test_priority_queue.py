"""Priority queues (rabbitmq.com/priority.html): ``x-max-priority`` 1-255,
the message ``priority`` property (absent = 0, above the maximum = the
maximum); higher priority first, FIFO within a priority, requeued messages
back at their place; a durable priority queue keeps its order across a
SIGKILL. The orders asserted here were checked against RabbitMQ 3.10
(LEVERET_TEST_URL=amqp://guest:guest@127.0.0.1:5682/%2F)."""

from __future__ import annotations

import pika
import pytest

from broker.queues.queue import HOT_LIMIT
from tests.interop.pika_helpers import channel_error, pika_connection

PRIORITIES = [None, 1, 5, 9, 0, 3, 5, 1, None, 9]
#: with x-max-priority 5: 9 counts as 5, None as 0
EXPECTED = [b"m2", b"m3", b"m6", b"m9", b"m5", b"m1", b"m7", b"m0", b"m4", b"m8"]


def _publish(channel, queue: str, priorities, prefix: str = "m", persistent: bool = False) -> None:
    for i, priority in enumerate(priorities):
        channel.basic_publish("", queue, f"{prefix}{i}".encode(),
                              pika.BasicProperties(priority=priority, delivery_mode=2 if persistent else 1))


def _get_all(channel, queue: str, auto_ack: bool = True) -> list:
    out = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return out
        out.append((body, method.redelivered) if auto_ack else (body, method.delivery_tag))


def _sync(channel, queue: str) -> None:
    """A declare round trip: every publish sent before it has been routed."""
    channel.queue_declare(queue, passive=True)


def test_higher_priority_first_fifo_within_a_priority(broker, unique):
    queue = unique("prio")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, auto_delete=False, arguments={"x-max-priority": 5})
        _publish(ch, queue, PRIORITIES)
        _sync(ch, queue)
        assert [body for body, _ in _get_all(ch, queue)] == EXPECTED
        ch.queue_delete(queue)


def test_requeued_messages_go_back_to_their_place_within_their_priority(broker, unique):
    queue = unique("prio-requeue")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, exclusive=True, arguments={"x-max-priority": 5})
        _publish(ch, queue, PRIORITIES)
        _sync(ch, queue)
        tags = dict(_get_all(ch, queue, auto_ack=False))
        for body in (b"m6", b"m0", b"m5", b"m2"):
            ch.basic_nack(tags[body], requeue=True)
        _publish(ch, queue, [5, None], prefix="n")
        _sync(ch, queue)
        assert _get_all(ch, queue) == [(b"m2", True), (b"m6", True), (b"n0", False), (b"m5", True),
                                       (b"m0", True), (b"n1", False)]


def test_consumer_gets_messages_in_priority_order(broker, unique):
    """Messages waiting before basic.consume reach a prefetch-1 consumer
    highest first; the consumer acks each before the next comes."""
    queue = unique("prio-consume")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, exclusive=True, arguments={"x-max-priority": 10})
        _publish(ch, queue, [i % 11 for i in range(33)])
        _sync(ch, queue)
        ch.basic_qos(prefetch_count=1)
        got = []

        def on_message(channel, method, _props, body):
            got.append(body)
            channel.basic_ack(method.delivery_tag)
            if len(got) == 33:
                channel.stop_consuming()

        ch.basic_consume(queue, on_message)
        connection.call_later(20, ch.stop_consuming)
        ch.start_consuming()
        expected = sorted(range(33), key=lambda i: (-min(i % 11, 10), i))
        assert got == [b"m%d" % i for i in expected]


@pytest.mark.parametrize("value, text", [
    (256, "{max_value_exceeded,256}"),
    (-1, "{value_negative,-1}"),
    ("a", '"expected integer, got longstr"'),
])
def test_invalid_max_priority_is_refused_with_rabbitmq_text(broker, unique, value, text):
    queue = unique("prio-bad")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        code, reply = channel_error(lambda: ch.queue_declare(queue, arguments={"x-max-priority": value}))
    assert code == 406
    assert reply == f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{queue}' in vhost '/': {text}"


def test_durable_priority_queue_keeps_its_order_across_sigkill(fresh_broker, unique):
    """A durable priority queue deeper than HOT_LIMIT, with three messages
    delivered but unacked at the kill: after SIGKILL and restart every
    message is back in priority order, FIFO within a priority, the three
    delivered ones flagged redelivered at their original places."""
    proc = fresh_broker()
    queue = unique("prio-durable")
    count = HOT_LIMIT + 500
    priorities = [(i * 7) % 13 if i % 5 else None for i in range(count)]  # 0..12, capped at 9
    priorities.append(0)  # the last one, confirmed last
    expected = sorted(range(count + 1), key=lambda i: (-min(priorities[i] or 0, 9), i))
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, durable=True, arguments={"x-max-priority": 9})
        _publish(ch, queue, priorities[:count], persistent=True)
        _sync(ch, queue)
        held = connection.channel()
        taken = [held.basic_get(queue)[2] for _ in range(3)]
        assert taken == [b"m%d" % i for i in expected[:3]]
        ch.confirm_delivery()  # a confirmed publish: everything the WAL took before it is fsynced
        ch.basic_publish("", queue, b"m%d" % count, pika.BasicProperties(priority=0, delivery_mode=2))
        proc.kill()
    proc.start()
    with pika_connection(proc) as connection:
        ch = connection.channel()
        declared = ch.queue_declare(queue, durable=True, arguments={"x-max-priority": 9})
        assert declared.method.message_count == count + 1
        got = _get_all(ch, queue)
    assert got == [(b"m%d" % i, i in expected[:3]) for i in expected]
