"""Exchange-to-exchange bindings with cycles and alternate exchanges
(https://www.rabbitmq.com/e2e.html, https://www.rabbitmq.com/ae.html):
routing visits each exchange at most once per message, so it ends, and a
queue reached by several paths gets one copy. Checked against RabbitMQ 3.10."""

from __future__ import annotations

import pika
import pytest

from tests.interop.pika_helpers import get_bodies, pika_connection


def _queue(ch, unique):
    return ch.queue_declare(unique("q"), exclusive=True).method.queue


def test_three_exchange_cycle_with_queues_on_every_node(ch, unique):
    """a -> b -> c -> a (topic, direct, fanout): each queue gets exactly one
    copy, whichever exchange the message enters at."""
    a, b, c = unique("a"), unique("b"), unique("c")
    ch.exchange_declare(a, "topic")
    ch.exchange_declare(b, "direct")
    ch.exchange_declare(c, "fanout")
    ch.exchange_bind(b, a, "k.#")
    ch.exchange_bind(c, b, "k.1")
    ch.exchange_bind(a, c, "")
    queues = [_queue(ch, unique) for _ in range(3)]
    ch.queue_bind(queues[0], a, "#")
    ch.queue_bind(queues[1], b, "k.1")
    ch.queue_bind(queues[2], c)
    for entry in (a, b, c):
        ch.basic_publish(entry, "k.1", entry.encode())
        for q in queues:
            assert get_bodies(ch, q) == [entry.encode()], (entry, q)
    for x in (a, b, c):
        ch.exchange_delete(x)


def test_self_binding_and_diamond(ch, unique):
    """An exchange bound to itself, and two paths to one queue (a diamond):
    one copy, routing ends."""
    a, b, c = unique("a"), unique("b"), unique("c")
    for x in (a, b, c):
        ch.exchange_declare(x, "fanout")
    ch.exchange_bind(a, a)
    ch.exchange_bind(b, a)
    ch.exchange_bind(c, a)
    ch.exchange_bind(c, b)
    q = _queue(ch, unique)
    ch.queue_bind(q, b)
    ch.queue_bind(q, c)
    ch.basic_publish(a, "", b"one")
    assert get_bodies(ch, q) == [b"one"]
    for x in (a, b, c):
        ch.exchange_delete(x)


def test_alternate_exchange_cycle_ends(ch, unique):
    """Two exchanges that are each other's alternate exchange and match
    nothing: the message is unroutable (returned when mandatory), routing
    ends; a queue bound later behind the AE gets it."""
    a, b = unique("a"), unique("b")
    ch.exchange_declare(a, "direct", arguments={"alternate-exchange": b})
    ch.exchange_declare(b, "direct", arguments={"alternate-exchange": a})
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(a, "k", b"lost", mandatory=True)
    q = _queue(ch, unique)
    ch.queue_bind(q, b, "k")
    ch.basic_publish(a, "k", b"via ae", mandatory=True)
    assert get_bodies(ch, q) == [b"via ae"]
    ch.exchange_delete(a)
    ch.exchange_delete(b)


def test_cycle_survives_restart(fresh_broker, unique):
    """Durable exchanges bound in a cycle are restored with their bindings;
    routing through the cycle still ends with one copy per queue."""
    proc = fresh_broker()
    a, b, q = unique("a"), unique("b"), unique("q")
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.exchange_declare(a, "fanout", durable=True)
        ch.exchange_declare(b, "fanout", durable=True)
        ch.exchange_bind(b, a)
        ch.exchange_bind(a, b)
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, a)
        ch.queue_bind(q, b)
    proc.kill()
    proc.start()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(b, "", b"after restart", mandatory=True)
        assert get_bodies(ch, q) == [b"after restart"]
