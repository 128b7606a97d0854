"""Exchange class: declare, delete, bind/unbind, exchange types and routing.

AMQP 0-9-1 spec section 1.6 / 3.1.3 ("Exchanges"); RabbitMQ docs: "Exchanges",
"Exchange to Exchange Bindings", "Alternate Exchanges", "Spec differences"
(idempotent deletes). Expectations were checked against RabbitMQ 3.10.
"""

from __future__ import annotations

import pika
import pytest
from pamqp import commands as spec

from tests.interop.pika_helpers import Bystander, get_bodies
from tests.interop.raw_client import (
    ACCESS_REFUSED, COMMAND_INVALID, NOT_FOUND, PRECONDITION_FAILED, assert_close, connected,
    raw_channel_error,
)


def _queue(ch, unique, exchange=None, routing_key="", arguments=None) -> str:
    name = ch.queue_declare(unique("q"), exclusive=True).method.queue
    if exchange is not None:
        ch.queue_bind(name, exchange, routing_key, arguments=arguments)
    return name


def _declare(name, kind="direct", **kwargs):
    return spec.Exchange.Declare(exchange=name, exchange_type=kind, **kwargs)


# ------------------------------------------------------------------ declare

@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_declare_each_type(broker, ch, unique, kind):
    """Spec exchange.declare: the four standard types can be declared,
    redeclared identically, checked passively and deleted."""
    name = unique(kind)
    ch.exchange_declare(name, kind)
    ch.exchange_declare(name, kind)
    ch.exchange_declare(name, passive=True)
    ch.exchange_delete(name)
    assert_close(raw_channel_error(broker, _declare(name, kind, passive=True)), NOT_FOUND, 40, 10)


@pytest.mark.parametrize("kind", ["x-no-such-type", "nonsense", ""])
def test_declare_unknown_type(broker, unique, kind):
    """Spec exchange.declare type: an unknown type is a connection error
    503 COMMAND_INVALID (class 40, method 10); RabbitMQ's text is
    "unknown exchange type '<type>'" (or "invalid ..." for some names)."""
    with Bystander(broker) as bystander, connected(broker) as client:
        client.send_method(1, _declare(unique("x"), kind))
        info = client.wait_connection_close()
        assert_close(info, COMMAND_INVALID, 40, 10)
        assert f"exchange type '{kind}'" in info.reply_text
        assert client.wait_socket_closed(5.0)
        bystander.check()


def test_passive_declare_missing(broker, unique):
    """Spec exchange.declare passive: a missing exchange -> channel.close
    404 NOT_FOUND, class 40 method 10."""
    name = unique("missing")
    info = raw_channel_error(broker, _declare(name, passive=True))
    assert_close(info, NOT_FOUND, 40, 10)
    assert info.reply_text == f"NOT_FOUND - no exchange '{name}' in vhost '/'"


def test_passive_declare_ignores_other_fields(ch, unique):
    """Spec: with passive set, all other fields except no-wait are ignored."""
    name = unique("x")
    ch.exchange_declare(name, "direct")
    ch.exchange_declare(name, "fanout", passive=True, durable=True, auto_delete=True)
    ch.exchange_delete(name)


@pytest.mark.parametrize("field,changes", [
    ("type", dict(kind="fanout")),
    ("durable", dict(durable=True)),
    ("auto_delete", dict(auto_delete=True)),
    ("internal", dict(internal=True)),
    ("alternate-exchange", dict(arguments={"alternate-exchange": "some-ae"})),
])
def test_redeclare_inequivalent(broker, ch, unique, field, changes):
    """Spec exchange.declare: redeclaring with different type, durable,
    auto-delete, internal or alternate-exchange -> 406 PRECONDITION_FAILED."""
    name = unique("x")
    ch.exchange_declare(name, "direct")
    kind = changes.pop("kind", "direct")
    info = raw_channel_error(broker, _declare(name, kind, **changes))
    assert_close(info, PRECONDITION_FAILED, 40, 10)
    assert info.reply_text.startswith(
        f"PRECONDITION_FAILED - inequivalent arg '{field}' for exchange '{name}' in vhost '/'")
    ch.exchange_delete(name)


def test_redeclare_with_other_arguments_is_ok(ch, unique):
    """RabbitMQ compares only the alternate-exchange argument of exchanges."""
    name = unique("x")
    ch.exchange_declare(name, "direct", arguments={"foo": "bar"})
    ch.exchange_declare(name, "direct", arguments={"foo": "baz", "other": 1})
    ch.exchange_declare(name, "direct")
    ch.exchange_delete(name)


def test_reserved_amq_prefix(broker, ch, unique):
    """Spec exchange.declare: creating an "amq." exchange -> 403
    ACCESS_REFUSED; redeclaring an existing one equivalently is fine."""
    name = "amq." + unique("x")
    info = raw_channel_error(broker, _declare(name))
    assert_close(info, ACCESS_REFUSED, 40, 10)
    assert info.reply_text == f"ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'"
    assert_close(raw_channel_error(broker, _declare(name, passive=True)), NOT_FOUND, 40, 10)
    ch.exchange_declare("amq.direct", "direct", durable=True)
    info = raw_channel_error(broker, _declare("amq.direct", "direct", durable=False))
    assert_close(info, PRECONDITION_FAILED, 40, 10)


@pytest.mark.parametrize("method,ids", [
    (_declare(""), (40, 10)),
    (_declare("", passive=True), (40, 10)),
    (spec.Exchange.Delete(exchange=""), (40, 20)),
    (spec.Exchange.Bind(destination="amq.fanout", source="", routing_key="k"), (40, 30)),
    (spec.Exchange.Bind(destination="", source="amq.fanout", routing_key="k"), (40, 30)),
    (spec.Queue.Bind(queue="leveret-no-such-queue", exchange="", routing_key="k"), (50, 20)),
    (spec.Queue.Unbind(queue="leveret-no-such-queue", exchange="", routing_key="k"), (50, 50)),
], ids=["declare", "declare-passive", "delete", "bind-as-source", "bind-as-destination",
        "queue.bind", "queue.unbind"])
def test_default_exchange_is_off_limits(broker, method, ids):
    """RabbitMQ: declare/delete/bind on the default exchange -> 403
    ACCESS_REFUSED "operation not permitted on the default exchange"."""
    info = raw_channel_error(broker, method)
    assert_close(info, ACCESS_REFUSED, *ids)
    assert info.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_default_exchange_routes_by_queue_name(ch, unique):
    """Spec 3.1.3.1: every queue is bound to the default exchange by its name."""
    queue = _queue(ch, unique)
    ch.basic_publish("", queue, b"direct to queue")
    ch.basic_publish("", unique("nobody"), b"dropped")
    assert get_bodies(ch, queue) == [b"direct to queue"]


# ------------------------------------------------------------------ delete

def test_delete_system_exchange(broker):
    """RabbitMQ: amq.* exchanges cannot be deleted -> 403, class 40 method 20."""
    info = raw_channel_error(broker, spec.Exchange.Delete(exchange="amq.direct"))
    assert_close(info, ACCESS_REFUSED, 40, 20)
    assert info.reply_text == "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"


def test_delete_if_unused(broker, ch, unique):
    """Spec exchange.delete if-unused: an exchange that is the source of a
    queue or exchange binding -> 406; being only a destination is not use."""
    name, dest = unique("x"), unique("d")
    ch.exchange_declare(name, "direct")
    ch.exchange_declare(dest, "fanout")
    queue = _queue(ch, unique, name, "k")
    info = raw_channel_error(broker, spec.Exchange.Delete(exchange=name, if_unused=True))
    assert_close(info, PRECONDITION_FAILED, 40, 20)
    assert info.reply_text == f"PRECONDITION_FAILED - exchange '{name}' in vhost '/' in use"
    ch.queue_unbind(queue, name, "k")
    ch.exchange_bind(dest, name, "k")
    assert_close(raw_channel_error(broker, spec.Exchange.Delete(exchange=name, if_unused=True)),
                 PRECONDITION_FAILED, 40, 20)
    ch.exchange_delete(dest, if_unused=True)      # only a destination: not in use
    ch.exchange_delete(name, if_unused=True)      # its only binding went with dest
    assert_close(raw_channel_error(broker, _declare(name, passive=True)), NOT_FOUND, 40, 10)


def test_delete_missing_exchange_is_ok(broker, unique):
    """RabbitMQ 3.10 ("Spec differences"): deleting a missing exchange
    succeeds with delete-ok (also with if-unused)."""
    with connected(broker) as client:
        client.rpc(1, spec.Exchange.Delete(exchange=unique("missing")), spec.Exchange.DeleteOk)
        client.rpc(1, spec.Exchange.Delete(exchange=unique("missing"), if_unused=True),
                   spec.Exchange.DeleteOk)


def test_delete_removes_bindings(ch, unique):
    """Spec exchange.delete: deleting an exchange deletes its bindings."""
    name = unique("x")
    ch.exchange_declare(name, "fanout")
    queue = _queue(ch, unique, name)
    ch.exchange_delete(name)
    ch.exchange_declare(name, "fanout")
    ch.basic_publish(name, "", b"after recreate")
    assert get_bodies(ch, queue) == []
    ch.exchange_delete(name)


def test_auto_delete_exchange(broker, ch, unique):
    """Spec exchange.declare auto-delete: deleted when its last binding (as
    source) is removed; never-bound or destination-only ones stay."""
    name, dest_only = unique("ad"), unique("ad")
    ch.exchange_declare(name, "fanout", auto_delete=True)
    ch.exchange_declare(dest_only, "fanout", auto_delete=True)
    ch.exchange_declare(name, passive=True)
    queue = _queue(ch, unique, name)
    ch.exchange_bind(dest_only, "amq.fanout")
    ch.exchange_unbind(dest_only, "amq.fanout")
    ch.queue_unbind(queue, name, "")
    assert_close(raw_channel_error(broker, _declare(name, passive=True)), NOT_FOUND, 40, 10)
    ch.exchange_declare(dest_only, passive=True)
    ch.exchange_delete(dest_only)


# ------------------------------------------------------------------ exchange.bind

def test_exchange_bind_routes_end_to_end(ch, unique):
    """RabbitMQ "Exchange to Exchange Bindings": messages flow source ->
    destination -> queue; after exchange.unbind they stop."""
    source, dest = unique("src"), unique("dst")
    ch.exchange_declare(source, "direct")
    ch.exchange_declare(dest, "fanout")
    queue = _queue(ch, unique, dest)
    ch.exchange_bind(dest, source, "green")
    ch.basic_publish(source, "green", b"via binding")
    ch.basic_publish(source, "red", b"not bound")
    assert get_bodies(ch, queue) == [b"via binding"]
    ch.exchange_unbind(dest, source, "green")
    ch.basic_publish(source, "green", b"after unbind")
    assert get_bodies(ch, queue) == []
    ch.exchange_delete(source)
    ch.exchange_delete(dest)


def test_exchange_binding_cycle_delivers_once(ch, unique):
    """RabbitMQ: routing through exchange bindings visits each exchange once
    and a queue gets one copy per publish even if reached by several paths."""
    a, b = unique("a"), unique("b")
    ch.exchange_declare(a, "fanout")
    ch.exchange_declare(b, "fanout")
    ch.exchange_bind(b, a)
    ch.exchange_bind(a, b)
    queue = _queue(ch, unique, a)
    ch.queue_bind(queue, b)
    ch.basic_publish(a, "", b"once")
    assert get_bodies(ch, queue) == [b"once"]
    ch.exchange_delete(a)
    ch.exchange_delete(b)


@pytest.mark.parametrize("missing", ["source", "destination"])
def test_exchange_bind_missing_exchange(broker, unique, missing):
    """Spec exchange.bind: a missing source or destination -> 404, 40/30."""
    names = {"source": "amq.direct", "destination": "amq.fanout", missing: unique("missing")}
    info = raw_channel_error(broker, spec.Exchange.Bind(routing_key="k", **names))
    assert_close(info, NOT_FOUND, 40, 30)
    assert info.reply_text == f"NOT_FOUND - no exchange '{names[missing]}' in vhost '/'"


def test_exchange_unbind_missing_is_ok(broker, unique):
    """RabbitMQ 3.10: exchange.unbind of a missing exchange or binding ->
    unbind-ok."""
    with connected(broker) as client:
        client.rpc(1, spec.Exchange.Unbind(destination="amq.fanout", source=unique("missing"),
                                           routing_key="k"), spec.Exchange.UnbindOk)
        client.rpc(1, spec.Exchange.Unbind(destination="amq.fanout", source="amq.direct",
                                           routing_key=unique("k")), spec.Exchange.UnbindOk)


# ------------------------------------------------------------------ internal / AE

def test_internal_exchange(broker, ch, unique):
    """Spec exchange.declare internal: clients cannot publish to it
    (403, class 60 method 40) but it routes messages from other exchanges."""
    internal, front = unique("int"), unique("front")
    ch.exchange_declare(internal, "fanout", internal=True)
    ch.exchange_declare(front, "fanout")
    ch.exchange_bind(internal, front)
    queue = _queue(ch, unique, internal)
    ch.basic_publish(front, "", b"through internal")
    assert get_bodies(ch, queue) == [b"through internal"]
    with connected(broker) as client:
        client.publish(1, internal, "", b"direct")
        info = client.wait_channel_close(1)
        assert_close(info, ACCESS_REFUSED, 60, 40)
        assert info.reply_text == f"ACCESS_REFUSED - cannot publish to internal exchange '{internal}' in vhost '/'"
    ch.exchange_delete(front)
    ch.exchange_delete(internal)


def test_publish_to_missing_exchange(broker, unique):
    """Spec basic.publish: a missing exchange -> 404, class 60 method 40."""
    name = unique("missing")
    with Bystander(broker) as bystander, connected(broker) as client:
        client.publish(1, name, "k", b"x")
        info = client.wait_channel_close(1)
        assert_close(info, NOT_FOUND, 60, 40)
        assert info.reply_text == f"NOT_FOUND - no exchange '{name}' in vhost '/'"
        client.open_channel(2)
        bystander.check()


def test_alternate_exchange(ch, unique):
    """RabbitMQ "Alternate Exchanges": unroutable messages go to the AE;
    routable ones do not; a mandatory message taken by the AE is not returned."""
    ae, main = unique("ae"), unique("main")
    ch.exchange_declare(ae, "fanout")
    ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
    normal = _queue(ch, unique, main, "known")
    spill = _queue(ch, unique, ae)
    returned = []
    ch.add_on_return_callback(lambda *args: returned.append(args))
    ch.basic_publish(main, "known", b"routed")
    ch.basic_publish(main, "unknown", b"unroutable", mandatory=True)
    ch.connection.process_data_events(time_limit=0.1)
    assert get_bodies(ch, normal) == [b"routed"]
    assert get_bodies(ch, spill) == [b"unroutable"]
    assert returned == []
    ch.exchange_delete(main)
    ch.exchange_delete(ae)


# ------------------------------------------------------------------ types and routing

@pytest.mark.parametrize("name,kind", [
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers"),
])
def test_builtin_exchanges_exist(ch, name, kind):
    """Spec 3.1.3: the server pre-declares amq.direct, amq.fanout, amq.topic,
    amq.headers and amq.match, durable."""
    ch.exchange_declare(name, kind, durable=True)


def test_direct_and_fanout_routing(ch, unique):
    """Spec 3.1.3.1/3.1.3.2: direct routes on exact key; fanout to all."""
    red, green = _queue(ch, unique, "amq.direct", "red"), _queue(ch, unique, "amq.direct", "green")
    f1, f2 = _queue(ch, unique, "amq.fanout", "ignored"), _queue(ch, unique, "amq.fanout")
    ch.basic_publish("amq.direct", "red", b"r")
    ch.basic_publish("amq.direct", "green", b"g")
    ch.basic_publish("amq.direct", "Red", b"case matters")
    ch.basic_publish("amq.fanout", "anything", b"f")
    assert (get_bodies(ch, red), get_bodies(ch, green)) == ([b"r"], [b"g"])
    assert (get_bodies(ch, f1), get_bodies(ch, f2)) == ([b"f"], [b"f"])


def test_multiple_bindings_deliver_once(ch, unique):
    """Spec 3.1.3: a queue matched by several bindings gets one copy."""
    queue = _queue(ch, unique, "amq.direct", "k")
    ch.queue_bind(queue, "amq.direct", "k")
    ch.queue_bind(queue, "amq.direct", "k", arguments={"distinct": 1})
    ch.basic_publish("amq.direct", "k", b"one")
    assert get_bodies(ch, queue) == [b"one"]


TOPIC_KEYS = ["a", "a.b", "b", "", "a.b.c", "a.x.b", "a..b", "x.a.b", "a."]
TOPIC_CASES = {
    "#": TOPIC_KEYS,
    "a.#": ["a", "a.b", "a.b.c", "a.x.b", "a..b", "a."],
    "*.b": ["a.b"],
    "#.#": TOPIC_KEYS,
    "a.*.#": ["a.b", "a.b.c", "a.x.b", "a..b", "a."],
    "*": ["a", "b"],
    "a.*": ["a.b", "a."],
    "#.b": ["a.b", "b", "a.x.b", "a..b", "x.a.b"],
    "a.#.b": ["a.b", "a.x.b", "a..b"],
    "": [""],
    "a..b": ["a..b"],
    "a.b.#.#": ["a.b", "a.b.c"],
}


@pytest.mark.parametrize("exchange", ["amq.topic", "topic"])
def test_topic_routing(ch, unique, exchange):
    """Spec 3.1.3.3 topic exchange: "*" is exactly one word, "#" zero or more
    words; empty words count (RabbitMQ's matcher, checked case by case)."""
    if exchange == "topic":
        exchange = unique("topic")
        ch.exchange_declare(exchange, "topic", auto_delete=True)
    queues = {pattern: _queue(ch, unique, exchange, pattern) for pattern in TOPIC_CASES}
    for key in TOPIC_KEYS:
        ch.basic_publish(exchange, key, key.encode() or b"<empty>")
    for pattern, expected in TOPIC_CASES.items():
        got = [body.decode() for body in get_bodies(ch, queues[pattern])]
        assert got == [key or "<empty>" for key in expected], f"pattern {pattern!r}"


HEADER_BINDINGS = {
    "all": {"x-match": "all", "a": 1, "b": "2"},
    "any": {"x-match": "any", "a": 1, "b": "2"},
    "default-all": {"a": 1, "b": "2"},
    "x-keys-ignored": {"x-match": "all", "x-foo": "bar"},
    "all-with-x": {"x-match": "all-with-x", "x-foo": "bar"},
    "empty": {},
    "any-empty": {"x-match": "any"},
    "presence": {"x-match": "all", "a": None},
}
HEADER_MESSAGES = {
    "a1b2": {"a": 1, "b": "2"}, "a1": {"a": 1}, "a1b3": {"a": 1, "b": "3"},
    "a1b2c3": {"a": 1, "b": "2", "c": 3}, "xfoo": {"x-foo": "bar"}, "none": None,
    "astr": {"a": "1"}, "a2": {"a": 2},
}
HEADER_EXPECTED = {
    "all": ["a1b2", "a1b2c3"],
    "any": ["a1b2", "a1", "a1b3", "a1b2c3"],
    "default-all": ["a1b2", "a1b2c3"],
    "x-keys-ignored": list(HEADER_MESSAGES),
    "all-with-x": ["xfoo"],
    "empty": list(HEADER_MESSAGES),
    "any-empty": [],
    "presence": ["a1b2", "a1", "a1b3", "a1b2c3", "astr", "a2"],
}


@pytest.mark.parametrize("exchange", ["amq.headers", "amq.match"])
def test_headers_routing(ch, unique, exchange):
    """Spec 3.1.3.4 headers exchange (x-match all/any, default all, void =
    presence); RabbitMQ 3.10: keys starting "x-" are ignored unless x-match
    is all-with-x/any-with-x; the string "1" does not equal the integer 1."""
    queues = {name: _queue(ch, unique, exchange, "rk", args) for name, args in HEADER_BINDINGS.items()}
    for name, headers in HEADER_MESSAGES.items():
        ch.basic_publish(exchange, "rk", name.encode(), pika.BasicProperties(headers=headers))
    for name, expected in HEADER_EXPECTED.items():
        assert [b.decode() for b in get_bodies(ch, queues[name])] == expected, name
