"""The ``x-delayed-message`` exchange type
(https://github.com/rabbitmq/rabbitmq-delayed-message-exchange): argument
validation with the plugin's texts, routing by ``x-delayed-type`` when due,
``x-delay`` semantics, confirms, mandatory, and durability across SIGKILL.

Timing: a delayed message must not arrive before its delay (a lower bound,
which load cannot break). That something did *not* happen is shown by a
later message that did (a marker routed after it), not by sleeping.
"""

from __future__ import annotations

import time

import pika
import pytest

from tests.interop.delayed_helpers import declare_delayed as _delayed
from tests.interop.delayed_helpers import delay_props as _props
from tests.interop.delayed_helpers import wait_for as _wait
from tests.interop.pika_helpers import channel_error, connection_error, drain, pika_connection


def test_missing_delayed_type_is_refused(broker, unique):
    """The plugin's 406 text when x-delayed-type is missing."""
    with pika_connection(broker) as conn:
        ch = conn.channel()
        code, text = channel_error(lambda: ch.exchange_declare(unique("x"), "x-delayed-message"))
    assert (code, text) == (406, "PRECONDITION_FAILED - Invalid argument, "
                                 "'x-delayed-type' must be an existing exchange type")


def test_unknown_delayed_type_is_invalid_exchange_type(broker, unique):
    """An unknown x-delayed-type fails like an unknown exchange type: 503
    on the connection."""
    with pika_connection(broker) as conn:
        ch = conn.channel()
        code, text = connection_error(lambda: ch.exchange_declare(
            unique("x"), "x-delayed-message", arguments={"x-delayed-type": "nosuch"}))
    assert (code, text) == (503, "COMMAND_INVALID - invalid exchange type 'nosuch'")


def test_delayed_message_routes_when_due_with_negated_header(ch, unique):
    """x-delay=1500: nothing before 1.5 s, then the message, with x-delay
    negated as the plugin does; other headers kept."""
    exchange = unique("dx")
    _delayed(ch, exchange)
    queue = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(queue, exchange, "k")
    started = time.monotonic()
    ch.basic_publish(exchange, "k", b"later", pika.BasicProperties(headers={"x-delay": 1500, "a": "b"}))
    assert drain(ch, queue) == []
    got = _wait(ch, queue, 1)
    elapsed = time.monotonic() - started
    assert [x[2] for x in got] == [b"later"]
    assert elapsed >= 1.45
    assert got[0][1].headers == {"x-delay": -1500, "a": "b"}
    assert got[0][0].routing_key == "k" and got[0][0].exchange == exchange
    ch.exchange_delete(exchange)


@pytest.mark.parametrize("delay", [None, 0, -500, "abc"])
def test_no_delay_routes_at_once(ch, unique, delay):
    """No x-delay, 0, negative or non-numeric: routed at once, header kept."""
    exchange = unique("dx")
    _delayed(ch, exchange, "fanout")
    queue = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(queue, exchange)
    headers = None if delay is None else {"x-delay": delay}
    ch.basic_publish(exchange, "", b"now", pika.BasicProperties(headers=headers))
    got = drain(ch, queue)
    assert [(x[2], x[1].headers) for x in got] == [(b"now", headers)]
    ch.exchange_delete(exchange)


def test_order_by_due_time_and_routing_at_due_time(ch, unique):
    """Messages come out by due time, not publish order; a binding added
    while a message waits counts (routing happens when it is due); topic
    rules of the underlying type apply."""
    exchange = unique("dx")
    _delayed(ch, exchange, "topic")
    early = ch.queue_declare(unique("q"), exclusive=True).method.queue
    late = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(early, exchange, "a.*")
    ch.basic_publish(exchange, "a.b", b"second", _props(1200))
    ch.basic_publish(exchange, "a.b", b"first", _props(600))
    ch.basic_publish(exchange, "x.y", b"nowhere", _props(300))
    ch.queue_bind(late, exchange, "#")
    got = _wait(ch, early, 2)
    assert [x[2] for x in got] == [b"first", b"second"]
    assert [x[2] for x in _wait(ch, late, 3)] == [b"nowhere", b"first", b"second"]
    ch.exchange_delete(exchange)


def test_mandatory_delayed_message_is_returned_and_still_routed(broker, unique):
    """The plugin does not support mandatory: a delayed mandatory publish is
    returned at once (312 NO_ROUTE) and still routed when due."""
    with pika_connection(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        exchange = unique("dx")
        _delayed(ch, exchange)
        queue = ch.queue_declare(unique("q"), exclusive=True).method.queue
        ch.queue_bind(queue, exchange, "k")
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish(exchange, "k", b"m", _props(300), mandatory=True)
        assert [x[2] for x in _wait(ch, queue, 1)] == [b"m"]
        ch.exchange_delete(exchange)


def test_deleting_the_exchange_drops_held_messages(ch, unique):
    """Held messages go with their exchange."""
    exchange = unique("dx")
    _delayed(ch, exchange, "fanout")
    queue = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(queue, exchange)
    ch.basic_publish(exchange, "", b"never", _props(500))
    ch.exchange_delete(exchange)
    marker = unique("dx")                  # due after "never" would have been
    _delayed(ch, marker, "fanout")
    ch.queue_bind(queue, marker)
    ch.basic_publish(marker, "", b"marker", _props(700))
    assert [x[2] for x in _wait(ch, queue, 1)] == [b"marker"]
    assert drain(ch, queue) == []
    ch.exchange_delete(marker)


def test_headers_underlying_type(ch, unique):
    """x-delayed-type=headers: the binding arguments match the headers,
    x-delay among them."""
    exchange = unique("dx")
    _delayed(ch, exchange, "headers")
    queue = ch.queue_declare(unique("q"), exclusive=True).method.queue
    ch.queue_bind(queue, exchange, arguments={"x-match": "all", "kind": "job"})
    ch.basic_publish(exchange, "", b"job", pika.BasicProperties(headers={"x-delay": 300, "kind": "job"}))
    ch.basic_publish(exchange, "", b"other", pika.BasicProperties(headers={"x-delay": 300, "kind": "x"}))
    # due after "other": once it is routed, "other" was routed (nowhere) too
    ch.basic_publish(exchange, "", b"marker", pika.BasicProperties(headers={"x-delay": 400, "kind": "job"}))
    assert [x[2] for x in _wait(ch, queue, 2)] == [b"job", b"marker"]
    assert drain(ch, queue) == []
    ch.exchange_delete(exchange)


def test_delayed_persistent_messages_survive_sigkill(fresh_broker, unique):
    """Confirmed persistent messages held by a durable delayed exchange
    survive SIGKILL; the delay keeps counting from publish time across the
    restart: one message whose time passed while the broker was down
    routes at once, the others at their time, never early; a transient
    message is lost. "At once" is shown by order, not by a clock bound: a
    message published after the restart with a delay shorter than
    p-early's (900 < 1000 ms) arrives after it, which it would not if
    p-early's delay started again at recovery."""
    proc = fresh_broker()
    exchange, queue = unique("dx"), unique("q")
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        _delayed(ch, exchange, "direct", durable=True)
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, exchange, "k")
        published = time.time()
        ch.basic_publish(exchange, "k", b"p-early", _props(1000, delivery_mode=2))
        ch.basic_publish(exchange, "k", b"p-late", _props(6000, delivery_mode=2))
        ch.basic_publish(exchange, "k", b"p-later", _props(7000, delivery_mode=2))
        ch.basic_publish(exchange, "k", b"transient", _props(1000))
    proc.kill()
    time.sleep(1.5)  # the feature: p-early falls due while the broker is down
    proc.start()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.basic_publish(exchange, "k", b"after-restart", _props(900))
        got = _wait(ch, queue, 2, timeout=30)
        assert [x[2] for x in got][:2] == [b"p-early", b"after-restart"]
        assert got[0][1].delivery_mode == 2 and got[0][1].headers == {"x-delay": -1000}
        got = got[2:] + _wait(ch, queue, 2 - len(got[2:]), timeout=30)
        arrived = time.time() - published
        assert [x[2] for x in got] == [b"p-late", b"p-later"]
        assert arrived >= 6.9, "routed before its delay"
        ch.basic_publish(exchange, "k", b"marker", _props(100))   # routed after any duplicate would be
        assert [x[2] for x in _wait(ch, queue, 1)] == [b"marker"]
        assert drain(ch, queue) == []


def test_routed_delayed_message_is_durable_in_its_queue(fresh_broker, unique):
    """Once due, a persistent delayed message is an ordinary stored message
    of its durable queue: it survives a SIGKILL after routing, and the
    holder does not route it a second time."""
    proc = fresh_broker()
    exchange, queue = unique("dx"), unique("q")
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        _delayed(ch, exchange, "fanout", durable=True)
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, exchange)
        ch.basic_publish(exchange, "", b"p", _props(300, delivery_mode=2))
        deadline = time.monotonic() + 10
        while ch.queue_declare(queue, passive=True).method.message_count < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        ch.basic_publish("", queue, b"sync", pika.BasicProperties(delivery_mode=2))  # confirmed: all before on disk
    proc.kill()
    proc.start()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        # a second routing by the holder would come at recovery, before this
        ch.basic_publish(exchange, "", b"marker", _props(300))
        assert [x[2] for x in _wait(ch, queue, 3)] == [b"p", b"sync", b"marker"]
        assert drain(ch, queue) == []
