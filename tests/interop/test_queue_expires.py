"""Queue expiry (rabbitmq.com/ttl.html#queue-ttl): x-expires deletes a
queue unused (no consumers, no basic.get, no re-declaration) for that many
ms; a consumer keeps it alive; for a durable queue a restart starts the
lease again, as RabbitMQ does."""

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
        ch.queue_declare(queue, arguments={"x-expires": 800})
        tag = ch.basic_consume(queue, lambda *a: None)
        conn.sleep(1.6)
        assert _exists(conn, queue)
        ch.basic_cancel(tag)
        for _ in range(6):  # basic.get every 0.3 s, for 1.8 s in all
            ch.basic_get(queue)
            time.sleep(0.3)
        ch.basic_get(queue)
        _gone_within(conn, queue, 0.8)


def test_lease_restarts_after_restart(fresh_broker, unique):
    proc = fresh_broker()
    queue = unique("exp")
    with connect(proc) as conn:
        conn.channel().queue_declare(queue, durable=True, arguments={"x-expires": 2000})
    proc.kill()
    time.sleep(2.5)  # longer than the lease while down
    proc.start()
    with connect(proc) as conn:
        assert _exists(conn, queue)
        _gone_within(conn, queue, 2.0, timeout=20)
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
