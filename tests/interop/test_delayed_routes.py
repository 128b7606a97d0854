"""A delayed-message exchange reached other than by a direct publish: through
an exchange-to-exchange binding, as an alternate exchange, as a queue's
dead-letter exchange (broker/vhost/delayed_copies.py). The plugin
(rabbitmq-delayed-message-exchange) delays in its exchange type's route/2,
which RabbitMQ runs for every exchange on the path, so the message is held
there and routed from that exchange's bindings when due, x-delay negated.

Only lower bounds on time are asserted (never early); arrival is waited
for with a generous timeout.
"""

from __future__ import annotations

import time

import pika
import pytest

from tests.interop.delayed_helpers import declare_delayed as _delayed
from tests.interop.delayed_helpers import delay_props as _props
from tests.interop.delayed_helpers import wait_for as _wait
from tests.interop.pika_helpers import drain, pika_connection


def _queue(ch, unique, **kwargs):
    return ch.queue_declare(unique("q"), exclusive=True, **kwargs).method.queue


def test_e2e_binding_holds_at_the_delayed_exchange(ch, unique):
    """source -> delayed -> queue: the queue bound to the source directly
    gets the message at once (x-delay untouched); the one behind the delayed
    exchange only after x-delay, negated, with the source as exchange; a
    binding made while it waits counts (routing happens when due)."""
    source, delayed = unique("src"), unique("dx")
    ch.exchange_declare(source, "direct")
    _delayed(ch, delayed, "fanout")
    ch.exchange_bind(delayed, source, "k")
    direct_q, held_q, later_q = _queue(ch, unique), _queue(ch, unique), _queue(ch, unique)
    ch.queue_bind(direct_q, source, "k")
    ch.queue_bind(held_q, delayed)
    started = time.monotonic()
    ch.basic_publish(source, "k", b"m", _props(1500, delivery_mode=2))
    now = drain(ch, direct_q)
    assert [(x[2], x[1].headers) for x in now] == [(b"m", {"x-delay": 1500})]
    assert drain(ch, held_q) == []
    ch.queue_bind(later_q, delayed)
    got = _wait(ch, held_q, 1)
    assert time.monotonic() - started >= 1.45, "routed before its delay"
    assert [(x[2], x[1].headers) for x in got] == [(b"m", {"x-delay": -1500})]
    assert got[0][0].exchange == source and got[0][0].routing_key == "k"
    assert [x[2] for x in _wait(ch, later_q, 1)] == [b"m"]
    ch.exchange_delete(source)
    ch.exchange_delete(delayed)


def _fanout_chain(ch, unique):
    """fanout source -> delayed exchange (fanout) -> exclusive queue."""
    source, delayed = unique("src"), unique("dx")
    ch.exchange_declare(source, "fanout")
    _delayed(ch, delayed, "fanout")
    ch.exchange_bind(delayed, source)
    queue = _queue(ch, unique)
    ch.queue_bind(queue, delayed)
    return source, delayed, queue


def test_e2e_without_delay_routes_through_at_once(ch, unique):
    """No x-delay (or 0): the delayed exchange routes through at once."""
    source, delayed, queue = _fanout_chain(ch, unique)
    ch.basic_publish(source, "", b"plain")
    ch.basic_publish(source, "", b"zero", _props(0))
    assert [x[2] for x in drain(ch, queue)] == [b"plain", b"zero"]
    ch.exchange_delete(source)
    ch.exchange_delete(delayed)


def test_mandatory_message_held_on_the_way_is_returned_and_still_routed(ch, unique):
    """As in the plugin (its route/2 gives no queues for a held message): a
    mandatory message that only a delayed exchange took is returned 312
    NO_ROUTE, and still routed when due."""
    source, delayed, queue = _fanout_chain(ch, unique)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(source, "", b"m", _props(300), mandatory=True)
    assert [x[2] for x in _wait(ch, queue, 1)] == [b"m"]
    ch.exchange_delete(source)
    ch.exchange_delete(delayed)


def test_alternate_exchange_that_delays(ch, unique):
    """An exchange whose alternate exchange is a delayed exchange: an
    unroutable message is held there and routed when due; the delayed
    exchange's own alternate exchange does not get it at once (the
    plugin's bug #36 is not copied)."""
    main, delayed, spill = unique("main"), unique("dx"), unique("spill")
    ch.exchange_declare(spill, "fanout")
    ch.exchange_declare(delayed, "x-delayed-message",
                        arguments={"x-delayed-type": "direct", "alternate-exchange": spill})
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": delayed})
    target, spilled = _queue(ch, unique), _queue(ch, unique)
    ch.queue_bind(target, delayed, "lost")
    ch.queue_bind(spilled, spill)
    started = time.monotonic()
    ch.basic_publish(main, "lost", b"m", _props(1200))
    assert drain(ch, target) == [] and drain(ch, spilled) == []
    got = _wait(ch, target, 1)
    assert time.monotonic() - started >= 1.15, "routed before its delay"
    assert [(x[2], x[1].headers, x[0].exchange) for x in got] == [(b"m", {"x-delay": -1200}, main)]
    assert drain(ch, spilled) == []
    for name in (main, delayed, spill):
        ch.exchange_delete(name)


def test_dead_letter_exchange_that_delays(ch, unique):
    """A queue whose dead-letter exchange is a delayed exchange: a rejected
    message with x-delay reaches the target queue only after the delay,
    with its x-death header and x-delay negated."""
    delayed = unique("dx")
    _delayed(ch, delayed, "direct")
    target = _queue(ch, unique)
    ch.queue_bind(target, delayed, "retry")
    source = _queue(ch, unique, arguments={"x-dead-letter-exchange": delayed,
                                           "x-dead-letter-routing-key": "retry"})
    ch.basic_publish("", source, b"job", _props(1000))
    method, _props_in, _body = ch.basic_get(source)
    started = time.monotonic()
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.queue_declare(source, passive=True)  # a round trip: the reject was handled
    assert drain(ch, target) == []
    got = _wait(ch, target, 1)
    assert time.monotonic() - started >= 0.95, "routed before its delay"
    assert [x[2] for x in got] == [b"job"]
    headers = got[0][1].headers
    assert headers["x-delay"] == -1000
    assert [(d["queue"], d["reason"]) for d in headers["x-death"]] == [(source, "rejected")]
    assert got[0][0].exchange == delayed and got[0][0].routing_key == "retry"
    ch.exchange_delete(delayed)


def test_held_on_the_way_survives_restart(fresh_broker, unique):
    """A persistent message held by a durable delayed exchange it reached
    through an e2e binding is confirmed after it is stored, survives
    SIGKILL, and routes once when due, counted from publish time."""
    proc = fresh_broker()
    source, delayed, queue = unique("src"), unique("dx"), unique("q")
    with pika_connection(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare(source, "direct", durable=True)
        _delayed(ch, delayed, "direct", durable=True)
        ch.exchange_bind(delayed, source, "k")
        ch.queue_declare(queue, durable=True)
        ch.queue_bind(queue, delayed, "k")
        published = time.time()
        ch.basic_publish(source, "k", b"p", _props(3000, delivery_mode=2))
    proc.kill()
    proc.start()
    with pika_connection(proc) as conn:
        ch = conn.channel()
        got = _wait(ch, queue, 1, timeout=20)
        assert time.time() - published >= 2.95, "routed before its delay"
        assert [(x[2], x[1].headers, x[1].delivery_mode) for x in got] == [(b"p", {"x-delay": -3000}, 2)]
        ch.basic_publish(source, "k", b"marker", _props(100))    # routed after any duplicate of "p"
        assert [x[2] for x in _wait(ch, queue, 1)] == [b"marker"]
        assert drain(ch, queue) == []


def test_bcc_keys_of_a_copy_held_on_the_way_route_it_when_due(ch, unique):
    """BCC is taken out of the headers at publish, but the held copy still
    routes with it when due (the plugin keeps a held message's routing
    keys), and arrives without it."""
    source, delayed = unique("src"), unique("dx")
    ch.exchange_declare(source, "fanout")
    _delayed(ch, delayed, "direct")
    ch.exchange_bind(delayed, source)
    by_key, by_bcc = _queue(ch, unique), _queue(ch, unique)
    ch.queue_bind(by_key, delayed, "main")
    ch.queue_bind(by_bcc, delayed, "hidden")
    ch.basic_publish(source, "main", b"m", pika.BasicProperties(headers={"x-delay": 300, "BCC": ["hidden"]}))
    assert [x[2] for x in _wait(ch, by_key, 1)] == [b"m"]
    [(method, props, body)] = _wait(ch, by_bcc, 1)
    assert body == b"m" and props.headers == {"x-delay": -300}
    assert method.routing_key == "main"
    ch.exchange_delete(source)
    ch.exchange_delete(delayed)


def test_a_duplicate_dropped_by_a_deduplication_exchange_is_not_held(ch, unique):
    """The deduplication exchange drops a duplicate whole: the copy it would
    have sent on to a delayed exchange is not held either."""
    source, delayed = unique("dedup"), unique("dx")
    ch.exchange_declare(source, "x-message-deduplication", arguments={"x-cache-size": 10})
    _delayed(ch, delayed, "fanout")
    ch.exchange_bind(delayed, source)
    queue = _queue(ch, unique)
    ch.queue_bind(queue, delayed)
    for body in (b"first", b"again"):
        ch.basic_publish(source, "", body, pika.BasicProperties(
            headers={"x-delay": 200, "x-deduplication-header": "same"}))
    assert [x[2] for x in _wait(ch, queue, 1)] == [b"first"]
    ch.basic_publish(source, "", b"marker", pika.BasicProperties(   # due after "again" would be
        headers={"x-delay": 300, "x-deduplication-header": "other"}))
    assert [x[2] for x in _wait(ch, queue, 1)] == [b"marker"]
    assert drain(ch, queue) == []
    ch.exchange_delete(source)
    ch.exchange_delete(delayed)
