"""Batched queue-event records across a SIGKILL (issue 5): a consumer with
prefetch 1,000 gets its deliveries recorded as DELIVERED_MANY records and
its ``multiple=true`` ack as one ACK_MANY record, over several WAL
segments. After the kill the acked messages stay gone, every delivered
but unacked one comes back redelivered, the rest come back in order not
redelivered, and the message database shows one event per message, as it
did with a record per message."""

from __future__ import annotations

import contextlib
import time

import pika

from storage.mirror.wal_reader import read_wal
from storage.wal.record import ACK_MANY, DELIVERED_MANY
from tests.crash.conftest import SMALL_SEGMENTS
from tests.interop.mirror_scenario import sql, wait_until
from tests.interop.pika_helpers import pika_connection

COUNT = 3000
PREFETCH = 1000
ACKED = 500          # acked with one multiple=true ack after the first PREFETCH deliveries
HANG_GUARD = 60.0    # seconds: fail instead of hanging when deliveries stop coming


def _publish(connection, queue: str) -> None:
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    for i in range(COUNT):
        channel.basic_publish("", queue, b"%d:" % i + b"p" * 80,
                              pika.BasicProperties(delivery_mode=2, message_id=f"m{i}"))
    channel.close()


def _sync_wal(connection, queue: str) -> None:
    """A confirmed persistent publish: what the WAL took before it (acks
    sent earlier on this connection) is fsynced when its confirm arrives."""
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    channel.basic_publish("", queue, b"sync", pika.BasicProperties(delivery_mode=2))
    channel.close()


def _consume(connection, channel, queue: str, tag: str, until: int, got: list) -> None:
    """Collect ``(delivery tag, index, redelivered)`` into ``got`` until it
    holds ``until`` deliveries."""
    if tag not in channel.consumer_tags:
        channel.basic_consume(queue, lambda _ch, method, _props, body: got.append(
            (method.delivery_tag, int(body.split(b":")[0]), method.redelivered)), consumer_tag=tag)
    deadline = time.monotonic() + HANG_GUARD
    while len(got) < until:
        assert time.monotonic() < deadline, f"deliveries stopped at {len(got)} of {until}"
        connection.process_data_events(time_limit=0.2)


def _timeline(proc, index: int) -> list:
    return sql(proc, "SELECT e.queue, e.event, e.consumer_tag, e.delivery_count FROM message_events e "
                     "JOIN messages m ON e.message = m.id WHERE m.message_id = ? ORDER BY e.id", (f"m{index}",))


def test_multiple_ack_and_batched_deliveries_survive_sigkill(fresh_broker, unique):
    proc = fresh_broker(*SMALL_SEGMENTS)
    queue = unique("batched")
    connection = pika.BlockingConnection(pika.URLParameters(proc.url))
    _publish(connection, queue)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    got: list = []
    _consume(connection, channel, queue, "before", PREFETCH, got)
    channel.basic_ack(got[ACKED - 1][0], multiple=True)
    _consume(connection, channel, queue, "before", PREFETCH + ACKED, got)   # the credit the ack gave back
    _sync_wal(connection, unique("sync"))
    proc.kill()
    with contextlib.suppress(pika.exceptions.AMQPError):
        connection.close()
    assert [index for _tag, index, _r in got] == list(range(PREFETCH + ACKED))
    assert not any(redelivered for _tag, _index, redelivered in got)
    stats = dict(segments=0, records=0, truncated=None)
    types = [record.type for record in read_wal(proc.data_dir / "wal", stats)]
    assert stats["segments"] > 2 and ACK_MANY in types and DELIVERED_MANY in types

    proc.start()
    with pika_connection(proc) as connection:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=PREFETCH)
        after: list = []
        rest = COUNT - ACKED
        while len(after) < rest:
            _consume(connection, channel, queue, "after", min(len(after) + PREFETCH, rest), after)
            channel.basic_ack(after[-1][0], multiple=True)
        _sync_wal(connection, unique("sync"))
        assert [index for _tag, index, _r in after] == list(range(ACKED, COUNT))
        assert [r for _tag, index, r in after] == [index < PREFETCH + ACKED for index in range(ACKED, COUNT)]
    routed = ("q", "routed", None, None)
    acked = ("q", "acked", None, None)
    expected = {
        0: [routed, ("q", "delivered", "before", 1), acked],
        700: [routed, ("q", "delivered", "before", 1), ("q", "delivered", "after", 2), acked],
        2000: [routed, ("q", "delivered", "after", 1), acked],
    }
    expected = {i: [(queue, *event[1:]) for event in events] for i, events in expected.items()}
    wait_until(lambda: {i: _timeline(proc, i) for i in expected}, expected, timeout=30)
