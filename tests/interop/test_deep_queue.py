"""Deep queues keep bodies on disk (issue 3): past ``HOT_LIMIT`` ready
messages, a durable queue holds persistent messages as ids and reads them
back from the WAL. Order, bodies and properties must be exactly as if
everything were in memory, across restarts, purges and multi-queue routing."""

from __future__ import annotations

import pika

from broker.queues.queue import HOT_LIMIT
from tests.interop.pika_helpers import pika_connection

DEPTH = 2 * HOT_LIMIT + 300


def _props(i: int) -> pika.BasicProperties:
    """Persistent except every 7th message (which stays in memory)."""
    return pika.BasicProperties(delivery_mode=1 if i % 7 == 0 else 2, message_id=f"m{i}",
                                correlation_id=f"c{i}", headers={"i": i}, content_type="text/plain")


def _body(i: int) -> bytes:
    return b"%d:" % i + bytes([i % 251]) * (i % 300)


def _publish(channel, exchange: str, routing_key: str, indexes) -> None:
    for i in indexes:
        channel.basic_publish(exchange, routing_key, _body(i), properties=_props(i))


def _get_all(channel, queue: str, auto_ack: bool = True) -> list:
    out = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return out
        out.append((body, props.message_id, props.correlation_id, props.headers, method.redelivered))


def _sync_wal(connection, queue: str) -> None:
    """A confirmed persistent publish on a channel of its own: everything
    the WAL took before it (publishes and acks sent earlier on this
    connection) is fsynced when the confirm arrives. Faster than confirming
    every publish."""
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    channel.basic_publish("", queue, b"sync", properties=pika.BasicProperties(delivery_mode=2))
    channel.close()


def _expected(indexes, redelivered=False) -> list:
    return [(_body(i), f"m{i}", f"c{i}", {"i": i}, redelivered) for i in indexes]


def test_deep_queue_consumed_in_order_with_mixed_transient(fresh_broker, unique):
    """A consumer (prefetch 500) drains a queue far deeper than HOT_LIMIT
    holding persistent and transient messages: every message arrives once,
    in publish order, with body and properties intact."""
    proc = fresh_broker()
    queue = unique("deep")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, durable=True)
        _publish(ch, "", queue, range(DEPTH))
        assert ch.queue_declare(queue, passive=True).method.message_count == DEPTH
        ch.basic_qos(prefetch_count=500)
        got = []

        def on_message(channel, method, props, body):
            got.append((body, props.message_id, props.correlation_id, props.headers, method.redelivered))
            channel.basic_ack(method.delivery_tag)
            if len(got) == DEPTH:
                channel.stop_consuming()

        ch.basic_consume(queue, on_message)
        connection.call_later(30, ch.stop_consuming)
        ch.start_consuming()
        assert got == _expected(range(DEPTH))
        assert ch.queue_declare(queue, passive=True).method.message_count == 0


def test_deep_queue_survives_sigkill_with_unacked_head(fresh_broker, unique):
    """After SIGKILL, a deep queue comes back whole: the unacked head first,
    then the rest in order; persistent only. Acks are not fsynced on their
    own: a confirmed publish after them syncs them before each kill."""
    proc = fresh_broker()
    queue = unique("deep-crash")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, durable=True)
        _publish(ch, "", queue, range(DEPTH))
        _sync_wal(connection, unique("sync"))
        for _ in range(10):  # acked: gone for good
            assert ch.basic_get(queue, auto_ack=True)[0] is not None
        for _ in range(5):  # unacked at the crash
            assert ch.basic_get(queue, auto_ack=False)[0] is not None
        _sync_wal(connection, unique("sync"))
        proc.kill()
    proc.start()
    unacked = [i for i in range(10, 15) if i % 7]
    rest = [i for i in range(15, DEPTH) if i % 7]
    with pika_connection(proc) as connection:
        ch = connection.channel()
        assert ch.queue_declare(queue, durable=True).method.message_count == len(unacked) + len(rest)
        got = _get_all(ch, queue)
        assert got == _expected(unacked, redelivered=True) + _expected(rest)
        _sync_wal(connection, unique("sync"))
    proc.kill()
    proc.start()
    with pika_connection(proc) as connection:
        assert _get_all(connection.channel(), queue) == []


def test_deep_queue_purge_and_shared_messages(fresh_broker, unique):
    """A message routed to two deep durable queues: purging one leaves the
    other's copy intact across a restart; purge-ok counts cold messages."""
    proc = fresh_broker()
    exchange, first, second = unique("fan"), unique("first"), unique("second")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.exchange_declare(exchange, "fanout", durable=True)
        for name in (first, second):
            ch.queue_declare(name, durable=True)
            ch.queue_bind(name, exchange)
        _publish(ch, exchange, "", range(DEPTH))
        _sync_wal(connection, unique("sync"))
        assert ch.queue_purge(first).method.message_count == DEPTH
    proc.kill()
    proc.start()
    persistent = [i for i in range(DEPTH) if i % 7]
    with pika_connection(proc) as connection:
        ch = connection.channel()
        assert _get_all(ch, first) == []
        assert _get_all(ch, second) == _expected(persistent)
