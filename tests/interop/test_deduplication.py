"""Message deduplication as the rabbitmq-message-deduplication plugin does
it (https://github.com/noxdafox/rabbitmq-message-deduplication): the
exchange type ``x-message-deduplication`` and the queue argument
``x-message-deduplication``, keyed on the ``x-deduplication-header``
header; duplicates are dropped, confirmed, and recorded in the message
database as ``deduplicated``."""

from __future__ import annotations

import time

import pika
import pytest

from tests.interop.mirror_scenario import sql, wait_until
from tests.interop.pika_helpers import channel_error, drain, pika_connection


def _h(value, **extra):
    return pika.BasicProperties(headers={"x-deduplication-header": value, **extra})


def _bodies(ch, queue):
    return [body for _m, _p, body in drain(ch, queue)]


@pytest.mark.parametrize("arguments, text", [
    ({}, "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"),
    ({"x-cache-size": 0}, "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"),
    ({"x-cache-size": 5, "x-cache-ttl": -1}, "Invalid argument, 'x-cache-ttl' must be an integer greater than 0"),
    ({"x-cache-size": 5, "x-cache-persistence": "tape"},
     "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"),
])
def test_exchange_argument_validation(broker, unique, arguments, text):
    """The plugin's 406 texts for bad cache arguments."""
    with pika_connection(broker) as conn:
        code, reply = channel_error(lambda: conn.channel().exchange_declare(
            unique("x"), "x-message-deduplication", arguments=arguments))
    assert (code, reply) == (406, "PRECONDITION_FAILED - " + text)


def test_exchange_drops_duplicates_and_routes_as_fanout(ch, unique):
    """Fanout routing whatever the key; a seen header value is dropped but
    confirmed (pika raises nothing); no header = never a duplicate; a
    mandatory duplicate is returned (the plugin routes it nowhere)."""
    exchange = unique("dd")
    ch.exchange_declare(exchange, "x-message-deduplication", arguments={"x-cache-size": 10})
    q1 = ch.queue_declare(unique("q"), exclusive=True).method.queue
    q2 = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(q1, exchange, "a")
    ch.queue_bind(q2, exchange, "b")
    ch.basic_publish(exchange, "zzz", b"1", _h("one"))
    ch.basic_publish(exchange, "zzz", b"1-dup", _h("one"))
    ch.basic_publish(exchange, "zzz", b"2", _h(b"two"))
    ch.basic_publish(exchange, "zzz", b"2-dup", _h("two"))  # str and bytes are the same long string
    ch.basic_publish(exchange, "zzz", b"plain")
    ch.basic_publish(exchange, "zzz", b"plain")
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(exchange, "zzz", b"1-dup-mandatory", _h("one"), mandatory=True)
    for q in (q1, q2):
        assert _bodies(ch, q) == [b"1", b"2", b"plain", b"plain"]
    ch.exchange_delete(exchange)


def test_exchange_cache_size_and_ttl(ch, unique):
    """x-cache-size bounds the cache (the oldest value goes); x-cache-ttl
    (ms) and the per-message x-cache-ttl header end the duplicate window."""
    exchange = unique("dd")
    ch.exchange_declare(exchange, "x-message-deduplication",
                        arguments={"x-cache-size": 2, "x-cache-ttl": 400})
    q = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(q, exchange)
    for value in ("a", "b", "c", "a"):  # "a" was evicted by "c"
        ch.basic_publish(exchange, "", value.encode(), _h(value))
    ch.basic_publish(exchange, "", b"c-dup", _h("c"))
    assert _bodies(ch, q) == [b"a", b"b", b"c", b"a"]
    ch.basic_publish(exchange, "", b"long", _h("long", **{"x-cache-ttl": 60000}))
    time.sleep(0.6)   # the feature: the 400 ms TTL runs out (a lower bound: load only lengthens it)
    ch.basic_publish(exchange, "", b"c-again", _h("c"))  # 400 ms TTL over
    ch.basic_publish(exchange, "", b"long-dup", _h("long"))  # its own TTL holds
    assert _bodies(ch, q) == [b"long", b"c-again"]
    ch.exchange_delete(exchange)


def test_queue_deduplication_while_message_is_in_queue(ch, unique):
    """A queue with x-message-deduplication=true refuses a value while a
    message carrying it is in the queue (ready or unacked), and takes it
    again once that message was acked."""
    q = ch.queue_declare(unique("q"), exclusive=True, arguments={"x-message-deduplication": True}).method.queue
    ch.basic_publish("", q, b"1", _h("k"))
    ch.basic_publish("", q, b"dup", _h("k"))
    ch.basic_publish("", q, b"other", _h("j"))
    method, _p, body = ch.basic_get(q)
    assert body == b"1"
    ch.basic_publish("", q, b"dup-unacked", _h("k"))  # still unacked: a duplicate
    ch.basic_ack(method.delivery_tag)
    ch.basic_publish("", q, b"2", _h("k"))
    assert _bodies(ch, q) == [b"other", b"2"]


def test_queue_deduplication_only_drops_for_that_queue(ch, unique):
    """Fanout to a deduplicating and a plain queue: the plain one gets
    every copy."""
    exchange = unique("f")
    ch.exchange_declare(exchange, "fanout")
    dq = ch.queue_declare(unique("q"), exclusive=True, arguments={"x-message-deduplication": True}).method.queue
    pq = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(dq, exchange)
    ch.queue_bind(pq, exchange)
    for body in (b"a", b"b"):
        ch.basic_publish(exchange, "", body, _h("same"))
    assert _bodies(ch, dq) == [b"a"]
    assert _bodies(ch, pq) == [b"a", b"b"]
    ch.exchange_delete(exchange)


def test_dead_lettered_copies_are_deduplicated(ch, unique):
    """Dead-lettered copies go through deduplication like any publish, as
    with the plugin (its exchange ``route`` and queue decorator see them):
    expired messages sharing a header value reach a deduplicating queue and
    a deduplicating DLX's queue once."""
    dq = ch.queue_declare(unique("q"), exclusive=True, arguments={"x-message-deduplication": True}).method.queue
    src = ch.queue_declare(unique("src"), exclusive=True, arguments={
        "x-message-ttl": 0, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dq}).method.queue
    dlx = unique("dd")
    ch.exchange_declare(dlx, "x-message-deduplication", arguments={"x-cache-size": 10})
    eq = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(eq, dlx)
    src2 = ch.queue_declare(unique("src"), exclusive=True, arguments={
        "x-message-ttl": 0, "x-dead-letter-exchange": dlx}).method.queue
    for body in (b"a", b"a-dup"):
        ch.basic_publish("", src, body, _h("same"))
        ch.basic_publish("", src2, body, _h("same"))
    ch.basic_publish("", src, b"b", _h("other"))
    assert _bodies(ch, dq) == [b"a", b"b"]
    assert _bodies(ch, eq) == [b"a"]
    ch.exchange_delete(dlx)


def test_durable_queue_deduplication_survives_restart_and_is_recorded(fresh_broker, unique):
    """After SIGKILL the stored message still blocks its duplicate, and
    the dropped duplicates are 'deduplicated' events in the message
    database."""
    proc = fresh_broker()
    q, exchange = unique("q"), unique("dd")
    persistent = dict(delivery_mode=2)
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True, arguments={"x-message-deduplication": True})
        ch.exchange_declare(exchange, "x-message-deduplication", durable=True, arguments={"x-cache-size": 100})
        ch.basic_publish(exchange, "", b"x1", pika.BasicProperties(headers={"x-deduplication-header": "e"},
                                                                   **persistent))
        ch.basic_publish(exchange, "", b"x-dup", pika.BasicProperties(headers={"x-deduplication-header": "e"},
                                                                      **persistent))
        ch.basic_publish("", q, b"1", pika.BasicProperties(headers={"x-deduplication-header": "k"}, **persistent))
        ch.basic_publish("", q, b"dup", pika.BasicProperties(headers={"x-deduplication-header": "k"}, **persistent))
        # a duplicate's confirm does not wait for the fsync; this one does, and covers them
        ch.queue_declare(q + "-sync", durable=True)
        ch.basic_publish("", q + "-sync", b"sync", pika.BasicProperties(**persistent))
    proc.kill()
    proc.start()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", q, b"dup-after-restart",
                         pika.BasicProperties(headers={"x-deduplication-header": "k"}, **persistent))
        assert _bodies(ch, q) == [b"1"]
        ch.basic_publish("", q, b"2", pika.BasicProperties(headers={"x-deduplication-header": "k"}, **persistent))
        assert _bodies(ch, q) == [b"2"]
    wait_until(lambda: sql(proc, "SELECT e.queue, m.state FROM message_events e JOIN messages m ON m.id = e.message "
                                 "WHERE e.event = 'deduplicated' ORDER BY e.id"),
               [(f"amq.x-deduplication:{exchange}", "deduplicated"), (q, "deduplicated"), (q, "deduplicated")],
               timeout=20)
