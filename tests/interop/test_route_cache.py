"""The publish route cache (broker/session/route_cache.py) never serves a stale
route: every exchange, queue and binding change reaches the very next
publish, as RabbitMQ routes each publish against the bindings of the moment
(AMQP 0-9-1 spec §3.1.3; rabbitmq.com/tutorials/amqp-concepts.html). pika
writes a publish's three frames in one write, so these publishes take the
whole-publish path."""

from __future__ import annotations

import pika
import pika.exceptions as pe
import pytest

from tests.interop.lifecycle_helpers import get_all
from tests.interop.pika_helpers import channel_error, pika_connection


def bodies(ch, queue: str) -> list[bytes]:
    """Every ready message body of ``queue``, taken with basic.get."""
    return [body for body, _props, _method in get_all(ch, queue)]


def test_bind_and_unbind_reach_the_next_publish(ch, unique):
    """direct: a new binding gets the next publish, a removed one does not."""
    exchange, first, second = unique("x"), unique("a"), unique("b")
    ch.exchange_declare(exchange, "direct", auto_delete=True)
    for queue in (first, second):
        ch.queue_declare(queue, auto_delete=True)
    ch.queue_bind(first, exchange, "k")
    ch.basic_publish(exchange, "k", b"1")
    ch.queue_bind(second, exchange, "k")
    ch.basic_publish(exchange, "k", b"2")
    ch.queue_unbind(first, exchange, "k")
    ch.basic_publish(exchange, "k", b"3")
    assert bodies(ch, first) == [b"1", b"2"]
    assert bodies(ch, second) == [b"2", b"3"]


@pytest.mark.parametrize("kind, key", [("fanout", ""), ("topic", "a.*")])
def test_queue_bound_later_gets_later_publishes(ch, unique, kind, key):
    """fanout and topic: routes follow bindings made between publishes."""
    exchange, queue = unique("x"), unique("q")
    ch.exchange_declare(exchange, kind)
    ch.queue_declare(queue, auto_delete=True)
    ch.basic_publish(exchange, "a.b", b"before")
    ch.queue_bind(queue, exchange, key)
    ch.basic_publish(exchange, "a.b", b"after")
    assert bodies(ch, queue) == [b"after"]
    ch.exchange_delete(exchange)


def test_default_exchange_follows_queue_declare_and_delete(ch, unique):
    """The default exchange routes by queue name: a mandatory publish to a
    queue not declared yet is returned (312), then lands once it exists,
    and is returned again after the queue is deleted."""
    queue = unique("q")
    with pytest.raises(pe.UnroutableError):
        ch.basic_publish("", queue, b"0", mandatory=True)
    ch.queue_declare(queue)
    ch.basic_publish("", queue, b"1", mandatory=True)
    assert bodies(ch, queue) == [b"1"]
    ch.queue_delete(queue)
    with pytest.raises(pe.UnroutableError):
        ch.basic_publish("", queue, b"2", mandatory=True)


def test_deleted_exchange_is_not_found(broker, unique):
    """A publish to an exchange deleted after earlier publishes is 404."""
    exchange = unique("x")
    with pika_connection(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare(exchange, "fanout")
        ch.basic_publish(exchange, "", b"1")
        ch.exchange_delete(exchange)
        code, _text = channel_error(lambda: ch.basic_publish(exchange, "", b"2"))
        assert code == 404


def test_properties_reach_the_consumer_verbatim(ch, unique):
    """A cached route does not change what is delivered: properties and
    body come back as published, expiration and user-id still checked."""
    queue = unique("q")
    ch.queue_declare(queue, auto_delete=True)
    props = pika.BasicProperties(content_type="text/plain", headers={"h": 1}, priority=3, delivery_mode=1)
    ch.basic_publish("", queue, b"x" * 300, properties=props)
    _method, got, body = ch.basic_get(queue, auto_ack=True)
    assert body == b"x" * 300
    assert (got.content_type, got.headers, got.priority, got.delivery_mode) == ("text/plain", {"h": 1}, 3, 1)
