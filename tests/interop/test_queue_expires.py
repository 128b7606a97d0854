"""Queue expiry (rabbitmq.com/ttl.html#queue-ttl): x-expires deletes a
queue unused (no consumers, no basic.get, no re-declaration) for that many
ms; a consumer keeps it alive; for a durable queue a restart starts the
lease again, as RabbitMQ does.

The leases are the feature, so the tests use time, with margins a loaded
machine keeps: a queue that must stay is touched at a tenth of its lease or
checked well inside it; one that must go is polled until gone (a hang guard,
not a bound)."""

from __future__ import annotations

import time

import pika.exceptions
import pytest

from tests.interop.lifecycle_helpers import connect, wait_until


def _exists(conn, queue: str) -> bool:
    ch = conn.channel()
    try:
        ch.queue_declare(queue, passive=True)  # renews the lease: poll slower than it
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    ch.close()
    return True


def _gone_within(conn, queue: str, lease_s: float, timeout: float = 15.0) -> None:
    def check():
        time.sleep(lease_s * 1.5)
        return not _exists(conn, queue)
    wait_until(check, timeout=timeout, interval=0)


def test_unused_queue_is_deleted(broker, unique):
    queue = unique("exp")
    with connect(broker) as conn:
        conn.channel().queue_declare(queue, arguments={"x-expires": 500})
        _gone_within(conn, queue, 0.5)


def test_consumer_and_basic_get_keep_it_alive(broker, unique):
    queue = unique("exp")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(queue, arguments={"x-expires": 2000})
        tag = ch.basic_consume(queue, lambda *a: None)
        conn.sleep(3.0)     # 1.5 leases with a consumer
        assert _exists(conn, queue)
        ch.basic_cancel(tag)
        for _ in range(15):  # basic.get every 0.2 s (a tenth of the lease), for 1.5 leases
            ch.basic_get(queue)
            time.sleep(0.2)
        ch.basic_get(queue)
        _gone_within(conn, queue, 2.0, timeout=30)


def test_lease_restarts_after_restart(fresh_broker, unique):
    proc = fresh_broker()
    queue = unique("exp")
    with connect(proc) as conn:
        conn.channel().queue_declare(queue, durable=True, arguments={"x-expires": 5000})
    proc.kill()
    time.sleep(5.5)  # the feature: longer than the lease while down
    proc.start()
    with connect(proc) as conn:
        assert _exists(conn, queue)     # within 5 s of the start: the lease started again
        _gone_within(conn, queue, 5.0, timeout=40)
    proc.restart()
    with connect(proc) as conn:
        assert not _exists(conn, queue)
    assert "x-expires" in proc.log_text()


@pytest.mark.parametrize("value,reason", [(0, "{value_zero,0}"), (-1, "{value_negative,-1}")])
def test_invalid_x_expires(broker, unique, value, reason):
    queue = unique("exp")
    with connect(broker) as conn:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            conn.channel().queue_declare(queue, arguments={"x-expires": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (f"PRECONDITION_FAILED - invalid arg 'x-expires' for queue '{queue}' "
                                     f"in vhost '/': {reason}")
