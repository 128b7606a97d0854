"""Worker roles (see ``bench.workers``): each connects and sets up when
called, and returns the function the worker runs once released.

Hosts and ports are the broker's; sizes are body bytes; times are seconds
(``time.monotonic()``, comparable across processes); rates are msg/s.
"""

from __future__ import annotations

import time

from bench.amqp_client import Connection
from bench.amqp_load import publish_confirmed
from bench.consumer import Checker, consume_all, summarize
from bench.publisher import confirm_latency, stream


def wait_landed(conn: Connection, channel: int, queue: str, target: int, settle: float = 2.0,
                timeout: float = 60.0) -> tuple[int, float]:
    """Poll queue.declare (passive) on ``channel`` until ``queue`` holds
    ``target`` messages, or its count has not changed for ``settle`` seconds
    (or ``timeout``). Returns (message count, monotonic time it was seen)."""
    last, changed = -1, time.monotonic()
    deadline = changed + timeout
    while True:
        count = conn.queue_declare(channel, queue, passive=True)
        now = time.monotonic()
        if count >= target:
            return count, now
        if count != last:
            last, changed = count, now
        elif now - changed > settle or now > deadline:
            return count, now
        time.sleep(0.005)


def producer(host: str, port: int, routing_key: str, size: int, seconds: float, exchange: str = "",
             count: int | None = None, rate: float | None = None, persistent: bool = False,
             first_seq: int = 0, landed_queue: str | None = None, channel: int = 1):
    """Unconfirmed publisher (``bench.publisher.stream``). With
    ``landed_queue`` it then waits until that queue holds what was sent
    (adds ``landed`` and ``t_landed``)."""
    conn = Connection(host, port)

    def run() -> dict:
        r = stream(conn, exchange, routing_key, size, seconds, count, rate, persistent, first_seq,
                   channel=channel)
        if landed_queue is not None:
            r["landed"], r["t_landed"] = wait_landed(conn, channel, landed_queue, r["sent"])
        conn.close()
        return r
    return run


def confirmed_producer(host: str, port: int, queue: str, size: int, count: int, window: int = 1000,
                       batch: int = 500, first_seq: int = 0, persistent: bool = True):
    """Publisher with confirms, ``window`` unconfirmed at most
    (``bench.amqp_load.publish_confirmed``). Result: ``sent``, ``t0``, ``t_end``."""
    conn = Connection(host, port)

    def run() -> dict:
        t0 = time.monotonic()
        r = publish_confirmed(conn, queue, count, size, first_seq, window, min(batch, window),
                              persistent=persistent)
        t_end = t0 + r.seconds
        conn.close()
        return {"sent": r.count, "t0": t0, "t_end": t_end}
    return run


def latency_producer(host: str, port: int, queue: str, size: int, seconds: float,
                     max_count: int | None = None):
    """Window-1 confirmed publisher (``bench.publisher.confirm_latency``)."""
    conn = Connection(host, port)

    def run() -> dict:
        r = confirm_latency(conn, queue, size, seconds, max_count=max_count)
        conn.close()
        return r
    return run


def consumer(host: str, port: int, queues: list[str], size: int, expected=None, prefetch: int = 1000,
             ack_every: int = 250, latency: bool = False, subscribe_at_go: bool = False,
             idle_timeout: float = 5.0, max_seconds: float = 120.0, grace: float = 0.2):
    """One connection and ``bench.consumer.Checker`` per queue, all driven
    by one loop. ``expected``: messages per queue, an int or a shared value
    (``bench.workers.shared_count``) set once the producers are done.
    ``subscribe_at_go``: basic.consume only when released (drain), else
    during set-up (so nothing published later is missed).
    Result: ``bench.consumer.summarize`` plus ``t_subscribed``."""
    fixed = expected if isinstance(expected, int) else None
    checkers = [Checker(Connection(host, port), q, size, prefetch, ack_every, latency=latency, expected=fixed)
                for q in queues]
    for c in checkers:
        c.open(subscribe=not subscribe_at_go)

    def run() -> dict:
        t_sub = time.monotonic()
        if subscribe_at_go:
            for c in checkers:
                c.subscribe()
        consume_all(checkers, idle_timeout, max_seconds, None if fixed is not None else expected,
                    grace=grace)
        result = summarize(checkers)
        result["t_subscribed"] = t_sub
        for c in checkers:
            c.conn.close()
        return result
    return run
