"""Durability across restarts (docs/architecture.md "Durability contract"; issue 3):
persistent messages on durable queues, confirmed before a SIGKILL, come back
in order; durable topology survives; transient, exclusive and auto-delete
ones do not; delivered-but-unacked messages come back redelivered."""

from __future__ import annotations

import pika
import pytest

PERSISTENT = pika.BasicProperties(delivery_mode=2, message_id="m")


def _connect(proc) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(proc.url))


def _drain(channel, queue: str) -> list[tuple[bytes, bool]]:
    out = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.redelivered))


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_confirmed_persistent_messages_survive(fresh_broker, unique, stop):
    """A confirm for a persistent message on a durable queue means fsynced:
    after SIGKILL every confirmed message is back, in publish order, with
    its properties; transient messages and transient queues are gone."""
    proc = fresh_broker()
    durable, transient_q = unique("durable"), unique("transient")
    with _connect(proc) as connection:
        ch = connection.channel()
        ch.confirm_delivery()
        ch.queue_declare(durable, durable=True)
        ch.queue_declare(transient_q)
        for i in range(200):
            ch.basic_publish("", durable, b"p%d" % i, properties=pika.BasicProperties(
                delivery_mode=2, message_id=f"id-{i}", headers={"n": i}))
        ch.basic_publish("", durable, b"transient-message")  # delivery_mode 1: not kept
        ch.basic_publish("", transient_q, b"t", properties=PERSISTENT)
    if stop == "sigkill":
        proc.kill()
        proc.start()
    else:
        assert proc.restart() is proc
    with _connect(proc) as connection:
        ch = connection.channel()
        got = []
        for _ in range(200):
            method, props, body = ch.basic_get(durable, auto_ack=True)
            assert method is not None, f"lost messages after {len(got)}"
            got.append((body, props.message_id, props.headers, props.delivery_mode))
        assert got == [(b"p%d" % i, f"id-{i}", {"n": i}, 2) for i in range(200)]
        assert ch.basic_get(durable, auto_ack=True)[0] is None
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare(transient_q, passive=True)
        assert info.value.reply_code == 404
    assert "recovery: 200 messages" in proc.log_text()


def test_unacked_come_back_redelivered_and_acked_stay_gone(fresh_broker, unique):
    """At-least-once: delivered-but-unacked messages return with
    redelivered=true after a crash; acked ones never return."""
    proc = fresh_broker()
    queue = unique("q")
    connection = _connect(proc)
    ch = connection.channel()
    ch.confirm_delivery()
    ch.queue_declare(queue, durable=True)
    for i in range(6):
        ch.basic_publish("", queue, b"m%d" % i, properties=PERSISTENT)
    acked = ch.basic_get(queue)[0]
    ch.basic_ack(acked.delivery_tag)
    ch.basic_get(queue)  # m1 delivered, never acked
    ch.basic_publish("", queue, b"m6", properties=PERSISTENT)  # confirmed: the ack before it is on disk too
    proc.kill()
    proc.start()
    with _connect(proc) as connection:
        assert _drain(connection.channel(), queue) == [
            (b"m1", True), (b"m2", False), (b"m3", False), (b"m4", False), (b"m5", False), (b"m6", False)]


def test_durable_topology_survives_restart(fresh_broker, unique):
    """Durable exchanges, queues and bindings (with arguments) survive;
    auto-delete and exclusive queues, and transient exchanges, do not."""
    proc = fresh_broker()
    x, q, ad, tx = unique("x"), unique("q"), unique("ad"), unique("tx")
    with _connect(proc) as connection:
        ch = connection.channel()
        ch.exchange_declare(x, "topic", durable=True, arguments={"alternate-exchange": "amq.fanout"})
        ch.exchange_declare(tx, "fanout")
        ch.queue_declare(q, durable=True, arguments={"x-max-priority": 5})
        ch.queue_bind(q, x, "a.*")
        ch.queue_declare(ad, durable=True, auto_delete=True)
        exclusive = ch.queue_declare("", durable=True, exclusive=True).method.queue
    proc.kill()
    proc.start()
    with _connect(proc) as connection:
        ch = connection.channel()
        ch.exchange_declare(x, "topic", durable=True, passive=True)
        ch.queue_declare(q, durable=True, arguments={"x-max-priority": 5})  # equivalent: no 406
        ch.basic_publish(x, "a.b", b"routed", properties=PERSISTENT)
        assert ch.basic_get(q, auto_ack=True)[2] == b"routed"
        for name, declare in ((ad, "queue_declare"), (exclusive, "queue_declare"), (tx, "exchange_declare")):
            ch = connection.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                getattr(ch, declare)(name, passive=True)
            assert info.value.reply_code == 404


def test_deleted_queue_messages_do_not_return(fresh_broker, unique):
    """Purged and deleted queues leave nothing behind in the WAL's live set."""
    proc = fresh_broker()
    purged, deleted = unique("p"), unique("d")
    with _connect(proc) as connection:
        ch = connection.channel()
        ch.confirm_delivery()
        for name in (purged, deleted):
            ch.queue_declare(name, durable=True)
            for i in range(3):
                ch.basic_publish("", name, b"x", properties=PERSISTENT)
        assert ch.queue_purge(purged).method.message_count == 3
        ch.queue_delete(deleted)
        ch.queue_declare(deleted, durable=True)
    proc.kill()
    proc.start()
    with _connect(proc) as connection:
        ch = connection.channel()
        assert ch.queue_declare(purged, passive=True).method.message_count == 0
        assert ch.queue_declare(deleted, passive=True).method.message_count == 0
