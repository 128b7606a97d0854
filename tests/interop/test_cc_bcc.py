"""Sender-selected distribution: ``CC`` and ``BCC`` headers
(https://www.rabbitmq.com/sender-selected.html). Expectations match
RabbitMQ 3.10 (run with LEVERET_TEST_URL against the reference to check)."""

from __future__ import annotations

import pika
import pytest

from tests.interop.pika_helpers import channel_error, drain, pika_connection


def _queues(ch, unique, exchange, keys):
    names = {}
    for key in keys:
        name = ch.queue_declare(unique(key), exclusive=True).method.queue
        if exchange:
            ch.queue_bind(name, exchange, key)
        names[key] = name
    return names


def test_cc_and_bcc_add_routing_keys_and_bcc_is_removed(ch, unique):
    """CC and BCC keys route through the same exchange; each queue gets one
    copy; CC stays in the delivered headers, BCC does not."""
    exchange = unique("x")
    ch.exchange_declare(exchange, "direct")
    q = _queues(ch, unique, exchange, ["main", "cc1", "cc2", "bcc", "other"])
    headers = {"CC": ["cc1", "cc2", "main"], "BCC": ["bcc"], "keep": 1}
    ch.basic_publish(exchange, "main", b"hello", pika.BasicProperties(headers=headers))
    for key in ("main", "cc1", "cc2", "bcc"):
        got = drain(ch, q[key])
        assert [body for _m, _p, body in got] == [b"hello"], key
        props = got[0][1]
        assert props.headers == {"CC": ["cc1", "cc2", "main"], "keep": 1}, key
        assert got[0][0].routing_key == "main"
    assert drain(ch, q["other"]) == []
    ch.exchange_delete(exchange)


def test_cc_on_default_and_topic_exchanges(ch, unique):
    """The default exchange takes CC keys as queue names; a topic exchange
    matches each CC key against its patterns."""
    a, b = (ch.queue_declare(unique(n), exclusive=True).method.queue for n in "ab")
    ch.basic_publish("", a, b"direct", pika.BasicProperties(headers={"CC": [b], "BCC": []}))
    assert [x[2] for x in drain(ch, a)] == [b"direct"]
    assert [x[2] for x in drain(ch, b)] == [b"direct"]
    topic = unique("t")
    ch.exchange_declare(topic, "topic")
    ch.queue_bind(a, topic, "orders.*")
    ch.queue_bind(b, topic, "#.audit")
    ch.basic_publish(topic, "orders.new", b"t", pika.BasicProperties(headers={"BCC": ["x.y.audit"]}))
    got_b = drain(ch, b)
    assert [x[2] for x in drain(ch, a)] == [b"t"]
    assert [x[2] for x in got_b] == [b"t"]
    assert got_b[0][1].headers in (None, {})
    ch.exchange_delete(topic)


@pytest.mark.parametrize("headers, text", [
    ({"CC": "cc"}, '{unacceptable_type_in_header,"CC",longstr}'),
    ({"BCC": "cc"}, '{unacceptable_type_in_header,"BCC",longstr}'),
    ({"CC": 5}, '{unacceptable_type_in_header,"CC",signedint}'),
    ({"CC": {"a": 1}}, '{unacceptable_type_in_header,"CC",table}'),
])
def test_cc_that_is_not_an_array_is_refused(broker, unique, headers, text):
    """RabbitMQ 3.10 closes the channel with 406 when CC or BCC is not an
    array; the queue gets nothing."""
    with pika_connection(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        queue = ch.queue_declare(unique("q"), exclusive=True).method.queue
        code, reply = channel_error(lambda: ch.basic_publish("", queue, b"m", pika.BasicProperties(headers=headers)))
        assert (code, reply) == (406, "PRECONDITION_FAILED - invalid message: " + text)
        assert conn.channel().queue_declare(queue, passive=True).method.message_count == 0


def test_non_string_array_elements_are_skipped(ch, unique):
    """Array elements that are not strings route nowhere; the string ones
    do; the message keeps its CC header as sent."""
    exchange = unique("x")
    ch.exchange_declare(exchange, "direct")
    q = _queues(ch, unique, exchange, ["main", "cc"])
    ch.basic_publish(exchange, "main", b"m", pika.BasicProperties(headers={"CC": [1, "cc"]}))
    assert [(x[2], x[1].headers) for x in drain(ch, q["main"])] == [(b"m", {"CC": [1, "cc"]})]
    assert [x[2] for x in drain(ch, q["cc"])] == [b"m"]
    ch.exchange_delete(exchange)


def test_unroutable_main_key_routed_by_cc_is_not_returned(ch, unique):
    """A mandatory message whose routing key matches nothing but whose CC
    key does is routed, not returned."""
    exchange = unique("x")
    ch.exchange_declare(exchange, "direct")
    q = _queues(ch, unique, exchange, ["cc"])
    ch.basic_publish(exchange, "nowhere", b"m", pika.BasicProperties(headers={"CC": ["cc"]}), mandatory=True)
    assert [x[2] for x in drain(ch, q["cc"])] == [b"m"]
    ch.exchange_delete(exchange)


def test_bcc_removed_from_stored_message_after_restart(fresh_broker, unique):
    """The stored (persistent, durable queue) copy is the one without BCC:
    after a restart the headers still lack it."""
    proc = fresh_broker()
    queue = unique("q")
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, durable=True)
        ch.basic_publish("", "nowhere", b"p", pika.BasicProperties(delivery_mode=2,
                                                                   headers={"BCC": [queue], "a": "b"}))
    proc.kill()
    proc.start()
    with pika_connection(proc) as conn:
        got = drain(conn.channel(), queue)
    assert [(x[2], x[1].headers) for x in got] == [(b"p", {"a": "b"})]
