"""Durable topology across restarts (docs/architecture.md, "Durability contract":
durable exchanges, queues and bindings survive a restart; transient ones
and exclusive queues do not). tests/interop/test_durability.py covers a
durable topic exchange and queue with arguments and one queue binding,
and that transient/exclusive/auto-delete queues and transient exchanges go
away after SIGKILL. These tests add what it leaves out: exchange-to-
exchange and headers bindings, the internal flag, bindings with a transient
end, and removals (unbind, queue.delete, exchange.delete) staying removed,
after SIGKILL and after SIGTERM. Routes are checked by publishing."""

from __future__ import annotations

import pika
import pytest

from tests.interop.test_durability import _connect


def _restart(proc, stop: str) -> None:
    if stop == "sigkill":
        proc.kill()
        proc.start()
    else:
        proc.restart()


def routes(channel, exchange: str, key: str, queue: str, headers: dict | None = None) -> bool:
    """Publish to ``exchange``; True when ``queue`` got the message (once).
    Leaves ``queue`` empty."""
    channel.basic_publish(exchange, key, b"probe", pika.BasicProperties(headers=headers))
    count = 0
    while channel.basic_get(queue, auto_ack=True)[0] is not None:
        count += 1
    assert count <= 1, f"{queue} got the probe {count} times"
    return count == 1


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_exchange_and_headers_bindings_survive(fresh_broker, unique, stop):
    """Durable exchange-to-exchange bindings, headers bindings with their
    x-match arguments and the internal flag are restored and route as
    before."""
    proc = fresh_broker()
    entry, inner, hdrs, q = unique("entry"), unique("inner"), unique("hdrs"), unique("q")
    with _connect(proc) as connection:
        ch = connection.channel()
        ch.exchange_declare(entry, "direct", durable=True)
        ch.exchange_declare(inner, "fanout", durable=True, internal=True)
        ch.exchange_declare(hdrs, "headers", durable=True)
        ch.queue_declare(q, durable=True)
        ch.exchange_bind(inner, entry, "to-inner")
        ch.queue_bind(q, inner)
        ch.queue_bind(q, hdrs, arguments={"x-match": "all", "kind": "a", "n": 1})
    _restart(proc, stop)
    with _connect(proc) as connection:
        ch = connection.channel()
        assert routes(ch, entry, "to-inner", q)
        assert not routes(ch, entry, "elsewhere", q)
        assert routes(ch, hdrs, "", q, {"kind": "a", "n": 1, "extra": True})
        assert not routes(ch, hdrs, "", q, {"kind": "a"})
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.basic_publish(inner, "", b"direct to an internal exchange")
            ch.basic_get(q)
        assert info.value.reply_code == 403


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_removed_and_transient_topology_stays_gone(fresh_broker, unique, stop):
    """Unbound bindings, deleted durable queues and exchanges, and bindings
    whose source or destination was transient do not come back (not even
    when an entity of the same name is declared again), and recovery finds
    no stale binding to skip."""
    proc = fresh_broker()
    x, q, gone_q, gone_x = unique("x"), unique("q"), unique("gone-q"), unique("gone-x")
    tx, tq = unique("tx"), unique("tq")
    with _connect(proc) as connection:
        ch = connection.channel()
        ch.exchange_declare(x, "direct", durable=True)
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x, "kept")
        ch.queue_bind(q, x, "unbound")
        ch.queue_unbind(q, x, "unbound")
        ch.queue_declare(gone_q, durable=True)
        ch.queue_bind(gone_q, x, "kept")
        ch.queue_delete(gone_q)
        ch.exchange_declare(gone_x, "fanout", durable=True)
        ch.queue_bind(q, gone_x)
        ch.exchange_delete(gone_x)
        ch.exchange_declare(tx, "fanout")            # transient source, durable destination
        ch.queue_bind(q, tx)
        ch.queue_declare(tq)                         # durable source, transient destination
        ch.queue_bind(tq, x, "kept")
    _restart(proc, stop)
    with _connect(proc) as connection:
        ch = connection.channel()
        assert routes(ch, x, "kept", q)
        assert not routes(ch, x, "unbound", q)
        for name, declare in ((gone_q, "queue_declare"), (gone_x, "exchange_declare"),
                              (tx, "exchange_declare"), (tq, "queue_declare")):
            ch = connection.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
                getattr(ch, declare)(name, passive=True)
            assert info.value.reply_code == 404, name
        ch = connection.channel()
        ch.exchange_declare(gone_x, "fanout", durable=True)
        ch.exchange_declare(tx, "fanout")
        ch.queue_declare(gone_q, durable=True)
        ch.queue_declare(tq)
        assert not routes(ch, gone_x, "", q) and not routes(ch, tx, "", q)
        assert not routes(ch, x, "kept", tq) and not routes(ch, x, "kept", gone_q)
    assert "skipped" not in proc.log_text()
