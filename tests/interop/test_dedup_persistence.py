"""``x-cache-persistence`` of the deduplication exchange
(rabbitmq-message-deduplication): ``disk`` keeps a durable exchange's cache
across a restart and a crash (broker/persistence/dedup_journal.py), within its
``x-cache-size`` and TTLs; ``memory`` starts empty; a deleted exchange's
values are gone."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pika

from tests.interop.lifecycle_helpers import wait_until
from tests.interop.pika_helpers import drain, pika_connection


def _declare(ch, exchange: str, queue: str, persistence: str, **arguments) -> None:
    ch.exchange_declare(exchange, "x-message-deduplication", durable=True,
                        arguments={"x-cache-size": 3, "x-cache-persistence": persistence, **arguments})
    ch.queue_declare(queue, durable=True)
    ch.queue_bind(queue, exchange)


def _publish(ch, exchange: str, *values, **headers) -> None:
    for value in values:
        ch.basic_publish(exchange, "", value.encode(),
                         pika.BasicProperties(headers={"x-deduplication-header": value, **headers}))


def _arrived(ch, queue: str) -> list[bytes]:
    return [body for _m, _p, body in drain(ch, queue)]


def _saved(proc, exchange: str) -> list[str]:
    """The values of ``exchange``'s cache in dedup-cache.db now, oldest
    first (as their Python repr), read-only beside the running broker."""
    path = proc.data_dir / "dedup-cache.db"
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return [key for (key,) in db.execute("SELECT key FROM dedup_cache WHERE exchange = ? ORDER BY seq",
                                             (exchange,))]


def test_disk_cache_survives_a_restart_and_a_crash_within_its_size(fresh_broker, unique):
    proc = fresh_broker()
    exchange, queue, memory_x, memory_q = unique("dd"), unique("q"), unique("dm"), unique("qm")
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        _declare(ch, exchange, queue, "disk")
        _declare(ch, memory_x, memory_q, "memory")
        _publish(ch, exchange, "a", "b", "c", "d")  # size 3: "a" is evicted
        _publish(ch, memory_x, "a")
    proc.restart()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        _arrived(ch, queue)
        _publish(ch, exchange, "a", "d", "e")  # cache b, c, d -> c, d, a -> (d a duplicate) -> d, a, e
        assert _arrived(ch, queue) == [b"a", b"e"]
        _publish(ch, memory_x, "a")
        assert _arrived(ch, memory_q) == [b"a"]  # memory: not a duplicate after the restart
        # the values are saved in the background: wait for the rows, then crash
        wait_until(lambda: _saved(proc, exchange)[-3:] == ["'d'", "'a'", "'e'"], timeout=30)
    proc.kill()
    proc.start()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        _publish(ch, exchange, "a", "e", "d", "z")  # cache d, a, e: only z is new
        assert _arrived(ch, queue) == [b"z"]


def test_expired_values_and_a_deleted_exchange_are_not_restored(fresh_broker, unique):
    proc = fresh_broker()
    exchange, queue, gone_x, gone_q = unique("dd"), unique("q"), unique("dg"), unique("qg")
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        _declare(ch, exchange, queue, "disk", **{"x-cache-ttl": 60_000})
        _publish(ch, exchange, "short", **{"x-cache-ttl": 200})
        _publish(ch, exchange, "long")
        _declare(ch, gone_x, gone_q, "disk")
        _publish(ch, gone_x, "g")
        ch.exchange_delete(gone_x)
        _declare(ch, gone_x, gone_q, "disk")
    time.sleep(0.4)   # the feature: "short" (x-cache-ttl 200 ms) expires before the restart
    proc.restart()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        drain(ch, queue), drain(ch, gone_q)
        _publish(ch, exchange, "short", "long")
        _publish(ch, gone_x, "g")
        assert _arrived(ch, queue) == [b"short"]
        assert _arrived(ch, gone_q) == [b"g"]
