"""Queue class: declare, exclusive/auto-delete, bind/unbind, purge, delete.

AMQP 0-9-1 spec section 1.7 / 2.1.5 ("Queues"); RabbitMQ docs: "Queues"
(properties, exclusive, auto-delete, optional arguments), "Spec differences"
(idempotent deletes, empty queue name shortcut). Checked against RabbitMQ 3.10.
"""

from __future__ import annotations

import time

import pytest
from pamqp import commands as spec

from tests.interop.pika_helpers import get_bodies, pika_connection
from tests.interop.raw_client import (
    ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED, assert_close, connected,
    raw_channel_error,
)


@pytest.fixture
def conn(broker):
    with pika_connection(broker) as connection:
        yield connection


@pytest.fixture
def ch(conn):
    """A pika channel in confirm mode: confirmed messages are enqueued."""
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


def _declare(name, **kwargs):
    return spec.Queue.Declare(queue=name, **kwargs)


def _fill(ch, queue, n):
    for i in range(n):
        ch.basic_publish("", queue, f"m{i}".encode())


def _assert_gone(broker, queue, timeout=3.0):
    """Passive declare until the queue is gone (404, class 50 method 10)."""
    deadline = time.monotonic() + timeout
    while True:
        with connected(broker) as client:
            client.send_method(1, _declare(queue, passive=True))
            frame = client.next_frame()
            if isinstance(frame.method, spec.Channel.Close) or time.monotonic() > deadline:
                m = frame.method
                assert (m.name, m.reply_code, m.class_id, m.method_id) == (
                    "Channel.Close", NOT_FOUND, 50, 10), f"queue {queue} still exists"
                return
        time.sleep(0.05)


def _passive_counts(ch, queue):
    ok = ch.queue_declare(queue, passive=True).method
    return ok.message_count, ok.consumer_count


# ------------------------------------------------------------------ declare

def test_server_named_queue(broker, ch):
    """Spec queue.declare: an empty name makes the server pick one;
    RabbitMQ names start with "amq.gen-"; the name is usable at once."""
    with connected(broker) as client:
        first = client.rpc(1, _declare("", exclusive=True), spec.Queue.DeclareOk)
        second = client.rpc(1, _declare("", exclusive=True), spec.Queue.DeclareOk)
        assert first.queue.startswith("amq.gen-") and second.queue.startswith("amq.gen-")
        assert first.queue != second.queue
        assert (first.message_count, first.consumer_count) == (0, 0)
    name = ch.queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-")
    ch.basic_publish("", name, b"to generated name")
    assert get_bodies(ch, name) == [b"to generated name"]


def test_declare_ok_counts(ch, unique):
    """Spec queue.declare-ok: message-count (ready messages) and
    consumer-count, for a normal and a passive declare."""
    full, watched = unique("q"), unique("q")
    ch.queue_declare(full, exclusive=True)
    _fill(ch, full, 3)
    assert _passive_counts(ch, full) == (3, 0)
    ok = ch.queue_declare(full, exclusive=True).method
    assert (ok.message_count, ok.consumer_count) == (3, 0)
    ch.queue_declare(watched, exclusive=True)
    tags = [ch.basic_consume(watched, lambda *a: None) for _ in range(2)]
    assert _passive_counts(ch, watched) == (0, 2)
    ch.basic_cancel(tags[0])
    assert _passive_counts(ch, watched) == (0, 1)


def test_passive_declare_missing(broker, unique):
    """Spec queue.declare passive: missing queue -> 404, class 50 method 10."""
    name = unique("missing")
    info = raw_channel_error(broker, _declare(name, passive=True))
    assert_close(info, NOT_FOUND, 50, 10)
    assert info.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '/'"


def test_passive_declare_ignores_other_fields(ch, unique):
    """Spec: with passive set, durable/auto-delete/arguments are not compared."""
    name = unique("q")
    ch.queue_declare(name, exclusive=True)
    ch.queue_declare(name, passive=True, durable=True, auto_delete=True,
                     arguments={"x-max-length": 5})


@pytest.mark.parametrize("field,kwargs", [
    ("durable", dict(durable=True)),
    ("auto_delete", dict(auto_delete=True)),
    ("x-max-length", dict(arguments={"x-max-length": 10})),
    ("x-max-length-bytes", dict(arguments={"x-max-length-bytes": 1000})),
    ("x-message-ttl", dict(arguments={"x-message-ttl": 1000})),
    ("x-expires", dict(arguments={"x-expires": 100000})),
    ("x-dead-letter-exchange", dict(arguments={"x-dead-letter-exchange": "dlx"})),
    ("x-max-priority", dict(arguments={"x-max-priority": 5})),
    ("x-overflow", dict(arguments={"x-overflow": "reject-publish"})),
    ("x-queue-mode", dict(arguments={"x-queue-mode": "lazy"})),
    ("x-single-active-consumer", dict(arguments={"x-single-active-consumer": True})),
    ("x-queue-type", dict(arguments={"x-queue-type": "quorum"})),
])
def test_redeclare_inequivalent(broker, ch, unique, field, kwargs):
    """Spec queue.declare: redeclaring with a different durable/auto-delete
    or a different RabbitMQ-checked x-argument -> 406, class 50 method 10."""
    name = unique("q")
    ch.queue_declare(name)
    try:
        info = raw_channel_error(broker, _declare(name, **kwargs))
        assert_close(info, PRECONDITION_FAILED, 50, 10)
        assert info.reply_text.startswith(
            f"PRECONDITION_FAILED - inequivalent arg '{field}' for queue '{name}' in vhost '/'")
    finally:
        ch.queue_delete(name)


def test_redeclare_argument_changes(broker, ch, unique):
    """RabbitMQ compares checked arguments by value: removing or changing one
    -> 406; the integer width does not matter (pika's signed 32-bit vs
    pamqp's 16-bit 1000); unknown arguments and x-queue-type=classic are
    not compared."""
    name = unique("q")
    ch.queue_declare(name, arguments={"x-message-ttl": 1000, "x-max-length": 5})
    try:
        with connected(broker) as client:
            client.rpc(1, _declare(name, arguments={"x-message-ttl": 1000, "x-max-length": 5,
                                                    "unknown-arg": "x", "x-queue-type": "classic"}),
                       spec.Queue.DeclareOk)
        for args in ({"x-message-ttl": 1000}, {"x-message-ttl": 2000, "x-max-length": 5},
                     {"x-message-ttl": "1000", "x-max-length": 5}):
            assert_close(raw_channel_error(broker, _declare(name, arguments=args)),
                         PRECONDITION_FAILED, 50, 10)
    finally:
        ch.queue_delete(name)


@pytest.mark.parametrize("args", [
    {"x-message-ttl": -1}, {"x-message-ttl": "abc"}, {"x-expires": 0},
    {"x-max-length": -1}, {"x-max-priority": 300}, {"x-overflow": "bogus"},
    {"x-dead-letter-routing-key": "k"},
], ids=lambda args: ",".join(f"{k}={v}" for k, v in args.items()))
def test_invalid_queue_argument(broker, unique, args):
    """RabbitMQ "Queues"/optional arguments: an invalid value -> 406
    PRECONDITION_FAILED "invalid arg '<name>' for queue ...", 50/10."""
    name = unique("q")
    info = raw_channel_error(broker, _declare(name, arguments=args))
    assert_close(info, PRECONDITION_FAILED, 50, 10)
    assert info.reply_text.startswith(
        f"PRECONDITION_FAILED - invalid arg '{next(iter(args))}' for queue '{name}' in vhost '/'")


def test_reserved_amq_prefix(broker, unique):
    """Spec queue.declare: creating an "amq." queue -> 403 ACCESS_REFUSED;
    passive declare of a missing one is a plain 404."""
    name = "amq." + unique("q")
    info = raw_channel_error(broker, _declare(name))
    assert_close(info, ACCESS_REFUSED, 50, 10)
    assert info.reply_text == f"ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'"
    assert_close(raw_channel_error(broker, _declare(name, passive=True)), NOT_FOUND, 50, 10)


# ------------------------------------------------------------------ exclusive / auto-delete

EXCLUSIVE_METHODS = {
    "declare": (lambda q: _declare(q), (50, 10)),
    "declare-passive": (lambda q: _declare(q, passive=True), (50, 10)),
    "declare-exclusive": (lambda q: _declare(q, exclusive=True), (50, 10)),
    "bind": (lambda q: spec.Queue.Bind(queue=q, exchange="amq.direct", routing_key="other"), (50, 20)),
    "unbind": (lambda q: spec.Queue.Unbind(queue=q, exchange="amq.direct", routing_key="bound"), (50, 50)),
    "purge": (lambda q: spec.Queue.Purge(queue=q), (50, 30)),
    "delete": (lambda q: spec.Queue.Delete(queue=q), (50, 40)),
    "consume": (lambda q: spec.Basic.Consume(queue=q), (60, 20)),
    "get": (lambda q: spec.Basic.Get(queue=q), (60, 70)),
}


@pytest.mark.parametrize("make,ids", list(EXCLUSIVE_METHODS.values()), ids=list(EXCLUSIVE_METHODS))
def test_exclusive_queue_locked_for_other_connections(broker, ch, unique, make, ids):
    """Spec queue.declare exclusive: other connections get 405
    RESOURCE_LOCKED for any use of the queue; publishing to it is allowed."""
    name = unique("excl")
    ch.queue_declare(name, exclusive=True)
    ch.queue_bind(name, "amq.direct", "bound")
    info = raw_channel_error(broker, make(name))
    assert_close(info, RESOURCE_LOCKED, *ids)
    assert info.reply_text.startswith(
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '/'")
    with pika_connection(broker) as other:
        other_ch = other.channel()
        other_ch.confirm_delivery()
        other_ch.basic_publish("", name, b"from elsewhere")
    assert get_bodies(ch, name) == [b"from elsewhere"]


def test_exclusive_flag_mismatch_is_resource_locked(broker, ch, unique):
    """RabbitMQ: a different exclusive flag on redeclare -> 405 (not 406),
    even on the owning connection."""
    with connected(broker) as client:
        excl, shared = unique("excl"), unique("shared")
        client.rpc(1, _declare(excl, exclusive=True), spec.Queue.DeclareOk)
        client.rpc(1, _declare(shared), spec.Queue.DeclareOk)
        client.send_method(1, _declare(excl, exclusive=False))
        assert_close(client.wait_channel_close(1), RESOURCE_LOCKED, 50, 10)
        client.open_channel(2)
        client.send_method(2, _declare(shared, exclusive=True))
        assert_close(client.wait_channel_close(2), RESOURCE_LOCKED, 50, 10)
        client.open_channel(3)
        client.rpc(3, spec.Queue.Delete(queue=shared), spec.Queue.DeleteOk)


def test_exclusive_queue_deleted_with_connection(broker, ch, unique):
    """Spec queue.declare exclusive: the queue is deleted when the declaring
    connection closes."""
    name = unique("excl")
    with pika_connection(broker) as owner:
        owner.channel().queue_declare(name, exclusive=True)
        ch.basic_publish("", name, b"x")
    _assert_gone(broker, name)


def test_auto_delete_after_last_consumer(broker, ch, unique):
    """Spec queue.declare auto-delete: deleted when the last consumer is
    cancelled, not before it ever had one, nor while one remains."""
    name = unique("ad")
    ch.queue_declare(name, auto_delete=True)
    assert _passive_counts(ch, name) == (0, 0)
    with connected(broker) as client:
        for tag in ("c1", "c2"):
            client.rpc(1, spec.Basic.Consume(queue=name, consumer_tag=tag), spec.Basic.ConsumeOk)
        client.rpc(1, spec.Basic.Cancel(consumer_tag="c1"), spec.Basic.CancelOk)
        assert _passive_counts(ch, name) == (0, 1)
        client.rpc(1, spec.Basic.Cancel(consumer_tag="c2"), spec.Basic.CancelOk)
        _assert_gone(broker, name)


def test_auto_delete_when_consumer_channel_closes(broker, ch, unique):
    """Closing the channel of the last consumer cancels it: the auto-delete
    queue goes away."""
    name = unique("ad")
    ch.queue_declare(name, auto_delete=True)
    with connected(broker) as client:
        client.rpc(1, spec.Basic.Consume(queue=name, consumer_tag="c1"), spec.Basic.ConsumeOk)
        client.rpc(1, spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0),
                   spec.Channel.CloseOk)
        _assert_gone(broker, name)


# ------------------------------------------------------------------ bind / unbind

def test_bind_and_unbind(ch, unique):
    """Spec queue.bind / queue.unbind: routing starts and stops."""
    name = unique("q")
    ch.queue_declare(name, exclusive=True)
    ch.queue_bind(name, "amq.direct", "key-1")
    ch.basic_publish("amq.direct", "key-1", b"bound")
    ch.queue_unbind(name, "amq.direct", "key-1")
    ch.basic_publish("amq.direct", "key-1", b"unbound")
    assert get_bodies(ch, name) == [b"bound"]


@pytest.mark.parametrize("missing", ["exchange", "queue", "both"])
def test_bind_missing(broker, unique, missing):
    """Spec queue.bind: missing exchange or queue -> 404, class 50 method 20
    (RabbitMQ names the exchange when both are missing)."""
    queue = unique("q")
    exchange = unique("x") if missing in ("exchange", "both") else "amq.direct"
    with connected(broker) as client:
        if missing == "exchange":
            client.rpc(1, _declare(queue, exclusive=True), spec.Queue.DeclareOk)
        client.send_method(1, spec.Queue.Bind(queue=queue, exchange=exchange, routing_key="k"))
        info = client.wait_channel_close(1)
    assert_close(info, NOT_FOUND, 50, 20)
    kind, name = ("queue", queue) if missing == "queue" else ("exchange", exchange)
    assert info.reply_text == f"NOT_FOUND - no {kind} '{name}' in vhost '/'"


def test_unbind_missing_is_ok(broker, unique):
    """RabbitMQ 3.10: queue.unbind of a missing queue, exchange or binding
    -> unbind-ok."""
    with connected(broker) as client:
        queue = client.rpc(1, _declare("", exclusive=True), spec.Queue.DeclareOk).queue
        for q, x in ((unique("q"), "amq.direct"), (queue, unique("x")), (queue, "amq.direct")):
            client.rpc(1, spec.Queue.Unbind(queue=q, exchange=x, routing_key="nope"),
                       spec.Queue.UnbindOk)


# ------------------------------------------------------------------ purge / delete

def test_purge_returns_count(broker, ch, unique):
    """Spec queue.purge: purge-ok carries the number of ready messages
    removed; unacknowledged deliveries are not purged."""
    name = unique("q")
    ch.queue_declare(name, exclusive=True)
    _fill(ch, name, 4)
    method, _, _ = ch.basic_get(name, auto_ack=False)
    assert method is not None
    assert ch.queue_purge(name).method.message_count == 3
    assert ch.queue_purge(name).method.message_count == 0
    ch.basic_nack(method.delivery_tag, requeue=True)   # asynchronous: poll for it
    deadline = time.monotonic() + 3
    while _passive_counts(ch, name) != (1, 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _passive_counts(ch, name) == (1, 0)
    info = raw_channel_error(broker, spec.Queue.Purge(queue=unique("missing")))
    assert_close(info, NOT_FOUND, 50, 30)


def test_delete_returns_count(ch, unique):
    """Spec queue.delete: delete-ok carries the number of ready messages
    deleted; bindings go with the queue."""
    name = unique("q")
    ch.queue_declare(name)
    ch.queue_bind(name, "amq.fanout")
    _fill(ch, name, 5)
    assert ch.queue_delete(name).method.message_count == 5
    ch.queue_declare(name, exclusive=True)
    ch.basic_publish("amq.fanout", "", b"binding gone")
    assert get_bodies(ch, name) == []


def test_delete_if_unused_with_consumer(broker, ch, unique):
    """Spec queue.delete if-unused: a queue with consumers -> 406, 50/40."""
    name = unique("q")
    ch.queue_declare(name)
    tag = ch.basic_consume(name, lambda *a: None)
    info = raw_channel_error(broker, spec.Queue.Delete(queue=name, if_unused=True))
    assert_close(info, PRECONDITION_FAILED, 50, 40)
    assert info.reply_text == f"PRECONDITION_FAILED - queue '{name}' in vhost '/' in use"
    ch.basic_cancel(tag)
    ch.queue_delete(name, if_unused=True)


def test_delete_if_empty_with_messages(broker, ch, unique):
    """Spec queue.delete if-empty: a queue with messages -> 406, 50/40."""
    name = unique("q")
    ch.queue_declare(name)
    _fill(ch, name, 1)
    info = raw_channel_error(broker, spec.Queue.Delete(queue=name, if_empty=True))
    assert_close(info, PRECONDITION_FAILED, 50, 40)
    assert info.reply_text == f"PRECONDITION_FAILED - queue '{name}' in vhost '/' not empty"
    ch.queue_purge(name)
    assert ch.queue_delete(name, if_empty=True).method.message_count == 0


def test_delete_missing_queue_is_ok(broker, unique):
    """RabbitMQ 3.10 ("Spec differences"): deleting a missing queue ->
    delete-ok with message-count 0, whatever the if-* flags."""
    with connected(broker) as client:
        ok = client.rpc(1, spec.Queue.Delete(queue=unique("missing")), spec.Queue.DeleteOk)
        assert ok.message_count == 0
        ok = client.rpc(1, spec.Queue.Delete(queue=unique("missing"), if_unused=True, if_empty=True),
                        spec.Queue.DeleteOk)
        assert ok.message_count == 0


def test_delete_cancels_consumers(broker, ch, unique):
    """RabbitMQ consumer_cancel_notify: consumers of a deleted queue get
    basic.cancel (nowait) with their consumer tag."""
    name = unique("q")
    ch.queue_declare(name)
    with connected(broker) as client:
        client.rpc(1, spec.Basic.Consume(queue=name, consumer_tag="watcher"), spec.Basic.ConsumeOk)
        ch.queue_delete(name)
        cancel = client.expect(spec.Basic.Cancel, 1)
        assert cancel.consumer_tag == "watcher"
        client.rpc(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk)


def test_empty_name_means_last_declared_queue(broker, unique):
    """RabbitMQ "Spec differences": an empty queue name in bind, purge, get
    and delete means the channel's last declared queue; with none declared
    -> 404 "no previously declared queue"."""
    for method, ids in ((spec.Queue.Purge(queue=""), (50, 30)),
                        (spec.Queue.Bind(queue="", exchange="amq.direct", routing_key="k"), (50, 20)),
                        (spec.Queue.Delete(queue=""), (50, 40))):
        info = raw_channel_error(broker, method)
        assert_close(info, NOT_FOUND, *ids)
        assert info.reply_text == "NOT_FOUND - no previously declared queue"
    with connected(broker) as client:
        name = unique("q")
        client.rpc(1, _declare(name), spec.Queue.DeclareOk)
        client.confirm_select(1)
        client.publish(1, "", name, b"one")
        client.wait_acks(1)
        assert client.rpc(1, spec.Queue.Purge(queue=""), spec.Queue.PurgeOk).message_count == 1
        client.rpc(1, spec.Queue.Bind(queue="", exchange="amq.direct", routing_key=""), spec.Queue.BindOk)
        client.publish(1, "amq.direct", name, b"routed by queue name")
        client.wait_acks(1)
        ok = client.rpc(1, spec.Queue.Delete(queue=""), spec.Queue.DeleteOk)
        assert ok.message_count == 1
        client.send_method(1, _declare(name, passive=True))
        assert_close(client.wait_channel_close(1), NOT_FOUND, 50, 10)
