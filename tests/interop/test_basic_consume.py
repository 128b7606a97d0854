"""basic.consume / cancel / qos against a real broker, with pika (blocking and
SelectConnection), aio-pika and the raw client.

Expectations are RabbitMQ 3.10's: AMQP 0-9-1 section 1.8 plus
https://www.rabbitmq.com/consumers.html, https://www.rabbitmq.com/consumer-prefetch.html,
https://www.rabbitmq.com/consumer-cancel.html.
"""

from __future__ import annotations

import asyncio

import aio_pika
import pika
import pika.exceptions as pe
import pytest
from pamqp import commands as spec

from tests.interop.clients import (
    ACCESS_REFUSED, NOT_ALLOWED, NOT_FOUND, NOT_IMPLEMENTED, PRECONDITION_FAILED, aio_connect,
    blocking, channel_close_of, message_count, pika_params, raw, wait_for,
    wait_message_count,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def queue(broker, unique):
    name = unique("cq")
    with blocking(broker) as c:
        c.channel().queue_declare(name)
    yield name
    with blocking(broker) as c:
        c.channel().queue_delete(name)


def publish(broker, queue, bodies):
    with blocking(broker) as c:
        ch = c.channel()
        for body in bodies:
            ch.basic_publish("", queue, body)


def collector():
    got = []
    return got, lambda _ch, method, props, body: got.append((method, props, body))


def pump(conn, seconds=0.4):
    conn.process_data_events(time_limit=seconds)


# -------------------------------------------------------------- consumer tags

def test_server_generated_consumer_tag(broker, queue):
    """An empty consumer-tag makes the server generate one: 'amq.ctag-' + 22
    url-safe base64 characters, unique per consumer (1.8.3.3)."""
    with raw(broker) as c:
        c.channel(1)
        tags = [c.call(1, spec.Basic.Consume(queue=queue), spec.Basic.ConsumeOk).method.consumer_tag
                for _ in range(2)]
    assert all(t.startswith("amq.ctag-") and len(t) == len("amq.ctag-") + 22 for t in tags), tags
    assert tags[0] != tags[1]
    # (pika and aio-pika always send their own tags, so only a raw client asks.)


def test_explicit_consumer_tag_echoed_in_deliveries(broker, queue):
    """consume-ok echoes the client's tag and each basic.deliver carries it."""
    with blocking(broker) as conn:
        ch = conn.channel()
        got, cb = collector()
        assert ch.basic_consume(queue, cb, auto_ack=True, consumer_tag="my-tag") == "my-tag"
        publish(broker, queue, [b"a", b"b"])
        wait_for(lambda: pump(conn, 0.05) or len(got) == 2, what="2 deliveries")
        assert [(m.consumer_tag, m.delivery_tag, m.redelivered, m.exchange, m.routing_key, b)
                for m, _p, b in got] == [("my-tag", 1, False, "", queue, b"a"),
                                         ("my-tag", 2, False, "", queue, b"b")]


def test_duplicate_consumer_tag_is_connection_error_530(broker, queue):
    """Reusing a consumer tag on one channel is connection error 530
    "NOT_ALLOWED - attempt to reuse consumer tag 'T'" (60, 20); the same tag on
    another channel is fine."""
    with raw(broker) as c:
        c.channel(1)
        c.channel(2)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="dup"), spec.Basic.ConsumeOk)
        c.call(2, spec.Basic.Consume(queue=queue, consumer_tag="dup"), spec.Basic.ConsumeOk)
        c.send(1, spec.Basic.Consume(queue=queue, consumer_tag="dup"))
        assert channel_close_of(c.connection_close()) == (
            NOT_ALLOWED, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'", 60, 20)


def test_consume_from_missing_queue_404(broker, unique):
    """basic.consume on a missing queue: channel error 404 (60, 20)."""
    missing = unique("q")
    with blocking(broker) as conn:
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            conn.channel().basic_consume(missing, lambda *a: None)
        assert (info.value.reply_code, info.value.reply_text) == (
            NOT_FOUND, f"NOT_FOUND - no queue '{missing}' in vhost '/'")
    with raw(broker) as c:
        c.channel(1)
        c.send(1, spec.Basic.Consume(queue=missing))
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            NOT_FOUND, f"NOT_FOUND - no queue '{missing}' in vhost '/'", 60, 20)


def test_exclusive_consume_refused_when_queue_has_consumer(broker, queue):
    """exclusive consume on a queue that already has a consumer: 403
    "ACCESS_REFUSED - queue 'Q' in vhost '/' in exclusive use" (60, 20)."""
    text = f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    with blocking(broker) as conn, blocking(broker) as other:
        conn.channel().basic_consume(queue, lambda *a: None)
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            other.channel().basic_consume(queue, lambda *a: None, exclusive=True)
        assert (info.value.reply_code, info.value.reply_text) == (ACCESS_REFUSED, text)
        with raw(broker) as c:
            c.channel(1)
            c.send(1, spec.Basic.Consume(queue=queue, exclusive=True))
            assert channel_close_of(c.channel_closed_by_server(1)) == (ACCESS_REFUSED, text, 60, 20)


def test_consume_refused_when_queue_has_exclusive_consumer(broker, queue):
    """While a queue has an exclusive consumer, every other consume (other
    connection, other channel, same channel) gets 403 in exclusive use."""
    text = f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Basic.Consume(queue=queue, exclusive=True, consumer_tag="ex"), spec.Basic.ConsumeOk)
        with blocking(broker) as other:
            with pytest.raises(pe.ChannelClosedByBroker) as info:
                other.channel().basic_consume(queue, lambda *a: None)
            assert (info.value.reply_code, info.value.reply_text) == (ACCESS_REFUSED, text)
        c.channel(2)
        c.send(2, spec.Basic.Consume(queue=queue, exclusive=True))
        assert channel_close_of(c.channel_closed_by_server(2)) == (ACCESS_REFUSED, text, 60, 20)
        c.send(1, spec.Basic.Consume(queue=queue, consumer_tag="second"))
        assert channel_close_of(c.channel_closed_by_server(1)) == (ACCESS_REFUSED, text, 60, 20)
        # the exclusive consumer died with channel 1: consuming works again
        c.channel(3)
        c.call(3, spec.Basic.Consume(queue=queue), spec.Basic.ConsumeOk)


# ----------------------------------------------------------- delivery & cancel

def test_no_ack_consumer(broker, queue):
    """no-ack consumers: messages count as acked on delivery; closing the
    channel requeues nothing; acking such a tag is 406 unknown delivery tag."""
    publish(broker, queue, [b"m%d" % i for i in range(5)])
    with blocking(broker) as conn:
        ch = conn.channel()
        got, cb = collector()
        ch.basic_consume(queue, cb, auto_ack=True)
        wait_for(lambda: pump(conn, 0.05) or len(got) == 5, what="5 deliveries")
        assert [b for _m, _p, b in got] == [b"m%d" % i for i in range(5)]
        ch.basic_ack(1)
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            ch.queue_declare(queue, passive=True)
        assert (info.value.reply_code, info.value.reply_text) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 1")
        assert message_count(conn.channel(), queue) == 0


def test_cancel_stops_deliveries_and_keeps_unacked(broker, queue):
    """basic.cancel -> cancel-ok with the tag; no further deliveries; messages
    already delivered stay unacked and can still be acked (1.8.3.4)."""
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="c1"), spec.Basic.ConsumeOk)
        c.publish(1, "", queue, b"first")
        d = c.expect(spec.Basic.Deliver, 1)
        assert (d.method.consumer_tag, d.method.delivery_tag, d.body) == ("c1", 1, b"first")
        ok = c.call(1, spec.Basic.Cancel(consumer_tag="c1"), spec.Basic.CancelOk)
        assert ok.method.consumer_tag == "c1"
        c.publish(1, "", queue, b"second")
        c.no_command(0.4)
        c.send(1, spec.Basic.Ack(delivery_tag=1))
        assert c.call(1, spec.Queue.Declare(queue=queue, passive=True),
                      spec.Queue.DeclareOk).method.message_count == 1
        # cancelling an unknown tag is not an error in RabbitMQ
        assert c.call(1, spec.Basic.Cancel(consumer_tag="nope"),
                      spec.Basic.CancelOk).method.consumer_tag == "nope"
        assert c.close_channel(1) == []     # its unacked were requeued before close-ok
    with blocking(broker) as conn:       # an ignored ack would show up as a requeue here
        assert message_count(conn.channel(), queue) == 1


def test_consume_and_cancel_nowait(broker, queue):
    """consume nowait=true: no consume-ok, deliveries start at once;
    cancel nowait=true: no cancel-ok, deliveries stop."""
    with raw(broker) as c:
        c.channel(1)
        c.publish(1, "", queue, b"a")
        c.send(1, spec.Basic.Consume(queue=queue, consumer_tag="nw", nowait=True, no_ack=True))
        d = c.read_command()
        assert isinstance(d.method, spec.Basic.Deliver), d
        assert (d.method.consumer_tag, d.body) == ("nw", b"a")
        c.send(1, spec.Basic.Cancel(consumer_tag="nw", nowait=True))
        c.no_command(0.3)
        c.publish(1, "", queue, b"b")
        c.no_command(0.3)
        assert c.call(1, spec.Queue.Declare(queue=queue, passive=True),
                      spec.Queue.DeclareOk).method.message_count == 1


def test_queue_delete_sends_basic_cancel(broker, unique):
    """Deleting a queue with consumers sends basic.cancel (nowait=true) to
    clients announcing consumer_cancel_notify (pika's add_on_cancel_callback);
    clients without the capability get nothing."""
    name = unique("del")
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(name)
        cancelled = []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method))
        tag = ch.basic_consume(name, lambda *a: None, consumer_tag="watch")
        conn.channel().queue_delete(name)
        wait_for(lambda: pump(conn, 0.05) or cancelled, what="basic.cancel")
        assert [(m.consumer_tag, m.nowait) for m in cancelled] == [(tag, True)]
        assert ch.is_open and ch.consumer_tags == []
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Queue.Declare(queue=name), spec.Queue.DeclareOk)
        c.call(1, spec.Basic.Consume(queue=name, consumer_tag="r"), spec.Basic.ConsumeOk)
        c.channel(2)
        c.send(2, spec.Queue.Delete(queue=name))
        # basic.cancel (channel 1) and queue.delete-ok (channel 2) may come in either order
        cancel, delete_ok = sorted((c.read_command(), c.read_command()), key=lambda cmd: cmd.channel)
        assert isinstance(cancel.method, spec.Basic.Cancel) and isinstance(delete_ok.method, spec.Queue.DeleteOk)
        assert (cancel.method.consumer_tag, cancel.method.nowait) == ("r", True)
        # answering is optional; cancelling it again yields cancel-ok
        c.call(1, spec.Basic.Cancel(consumer_tag="r"), spec.Basic.CancelOk)
    with raw(broker, capabilities={}) as c:
        c.channel(1)
        c.call(1, spec.Queue.Declare(queue=name), spec.Queue.DeclareOk)
        c.call(1, spec.Basic.Consume(queue=name, consumer_tag="r"), spec.Basic.ConsumeOk)
        c.channel(2)
        c.call(2, spec.Queue.Delete(queue=name), spec.Queue.DeleteOk)
        c.no_command(0.4)


def test_consume_ok_precedes_deliveries_and_tags_are_shared_with_get(broker, queue):
    """consume-ok is sent before the first basic.deliver even when messages are
    waiting; basic.get and basic.deliver share the channel's tag sequence (1.8.3.3, 1.8.3.9)."""
    with raw(broker) as c:
        c.channel(1)
        for i in range(3):
            c.publish(1, "", queue, b"m%d" % i)
        got = c.call(1, spec.Basic.Get(queue=queue), spec.Basic.GetOk)
        assert got.method.delivery_tag == 1
        c.send(1, spec.Basic.Consume(queue=queue, consumer_tag="x"))
        c.expect(spec.Basic.ConsumeOk, 1)
        ds = [c.expect(spec.Basic.Deliver, 1) for _ in range(2)]
        assert [(d.method.delivery_tag, d.body) for d in ds] == [(2, b"m1"), (3, b"m2")]


def test_nack_requeue_redelivers_to_live_consumer(broker, queue):
    """A message nacked with requeue=true while a consumer is attached is
    delivered again at once with a new tag and redelivered=true."""
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="x"), spec.Basic.ConsumeOk)
        for i in range(2):
            c.publish(1, "", queue, b"m%d" % i)
        first = [c.expect(spec.Basic.Deliver, 1) for _ in range(2)]
        assert [(d.method.delivery_tag, d.body) for d in first] == [(1, b"m0"), (2, b"m1")]
        c.send(1, spec.Basic.Nack(delivery_tag=1, requeue=True))
        again = c.expect(spec.Basic.Deliver, 1)
        assert (again.method.delivery_tag, again.method.redelivered, again.body) == (3, True, b"m0")
        c.no_command(0.3)


def test_basic_get_allowed_beside_exclusive_consumer(broker, queue):
    """An exclusive consumer blocks other consumers, not basic.get from another connection."""
    with raw(broker) as c, raw(broker) as other:
        c.channel(1)
        c.call(1, spec.Basic.Qos(prefetch_count=1), spec.Basic.QosOk)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="ex", exclusive=True), spec.Basic.ConsumeOk)
        for i in range(3):
            c.publish(1, "", queue, b"m%d" % i)
        assert c.expect(spec.Basic.Deliver, 1).body == b"m0"
        other.channel(1)
        got = other.call(1, spec.Basic.Get(queue=queue, no_ack=True), spec.Basic.GetOk)
        assert (got.body, got.method.message_count) == (b"m1", 1)


def test_round_robin_between_consumers(broker, queue):
    """Consumers on one queue get messages in strict rotation, in the order
    they subscribed (https://www.rabbitmq.com/consumers.html)."""
    with raw(broker) as c:
        for n, tag in ((1, "a"), (2, "b"), (3, "c")):
            c.channel(n)
            c.call(n, spec.Basic.Consume(queue=queue, consumer_tag=tag, no_ack=True), spec.Basic.ConsumeOk)
        for i in range(12):
            c.publish(1, "", queue, b"%d" % i)
        seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
        for _ in range(12):
            d = c.expect(spec.Basic.Deliver)
            seen[d.method.consumer_tag].append(int(d.body))
    assert seen == {"a": [0, 3, 6, 9], "b": [1, 4, 7, 10], "c": [2, 5, 8, 11]}


# ------------------------------------------------------------------------ qos

def test_prefetch_one_per_consumer(broker, queue):
    """basic.qos prefetch_count=1 (global=false: per consumer): one unacked
    message in flight; the next arrives only after the ack."""
    publish(broker, queue, [b"m0", b"m1", b"m2"])
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1)
        got, cb = collector()
        ch.basic_consume(queue, cb)
        pump(conn, 0.5)
        assert [b for _m, _p, b in got] == [b"m0"]
        for expected in ([b"m0", b"m1"], [b"m0", b"m1", b"m2"]):
            ch.basic_ack(got[-1][0].delivery_tag)
            wait_for(lambda: pump(conn, 0.05) or len(got) == len(expected), what="next delivery")
            pump(conn, 0.3)
            assert [b for _m, _p, b in got] == expected


def test_prefetch_per_consumer_each_gets_own_window(broker, queue):
    """global=false applies to each consumer created afterwards separately:
    two consumers with prefetch 1 have one unacked message each."""
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Basic.Qos(prefetch_count=1), spec.Basic.QosOk)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="a"), spec.Basic.ConsumeOk)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="b"), spec.Basic.ConsumeOk)
        for i in range(6):
            c.publish(1, "", queue, b"m%d" % i)
        got = [c.expect(spec.Basic.Deliver, 1) for _ in range(2)]
        c.no_command(0.4)
        assert [(d.method.consumer_tag, d.method.delivery_tag, d.body) for d in got] == [
            ("a", 1, b"m0"), ("b", 2, b"m1")]
        c.send(1, spec.Basic.Ack(delivery_tag=2))
        d = c.expect(spec.Basic.Deliver, 1)
        assert (d.method.consumer_tag, d.method.delivery_tag, d.body) == ("b", 3, b"m2")
        c.no_command(0.3)


def test_prefetch_global_is_per_channel(broker, queue):
    """global=true limits the whole channel: two consumers share 2 unacked
    deliveries (RabbitMQ reinterprets global, see consumer-prefetch.html)."""
    publish(broker, queue, [b"m%d" % i for i in range(6)])
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=2, global_qos=True)
        got, cb = collector()
        ch.basic_consume(queue, cb, consumer_tag="a")
        ch.basic_consume(queue, cb, consumer_tag="b")
        pump(conn, 0.5)
        assert len(got) == 2
        ch.basic_ack(got[0][0].delivery_tag)
        wait_for(lambda: pump(conn, 0.05) or len(got) == 3, what="third delivery")
        pump(conn, 0.3)
        assert len(got) == 3
        assert sorted(b for _m, _p, b in got) == [b"m0", b"m1", b"m2"]


def test_prefetch_global_and_per_consumer_combined(broker, queue):
    """Both limits apply at once: per-consumer 2 and per-channel 3 with two
    consumers -> 3 in flight in total, at most 2 for one consumer."""
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Basic.Qos(prefetch_count=2), spec.Basic.QosOk)
        c.call(1, spec.Basic.Qos(prefetch_count=3, global_=True), spec.Basic.QosOk)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="a"), spec.Basic.ConsumeOk)
        for i in range(6):
            c.publish(1, "", queue, b"m%d" % i)
        got = [c.expect(spec.Basic.Deliver, 1) for _ in range(2)]
        c.no_command(0.4)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="b"), spec.Basic.ConsumeOk)
        got.append(c.expect(spec.Basic.Deliver, 1))
        c.no_command(0.4)
        assert [(d.method.consumer_tag, d.body) for d in got] == [("a", b"m0"), ("a", b"m1"), ("b", b"m2")]


def test_qos_change_after_consume(broker, queue):
    """A later per-consumer qos does not change existing consumers' limits; a
    later global (per-channel) qos applies to them at once."""
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Basic.Qos(prefetch_count=1), spec.Basic.QosOk)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="x"), spec.Basic.ConsumeOk)
        c.call(1, spec.Basic.Qos(prefetch_count=5), spec.Basic.QosOk)
        for i in range(4):
            c.publish(1, "", queue, b"m%d" % i)
        assert c.expect(spec.Basic.Deliver, 1).body == b"m0"
        c.no_command(0.4)
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="y"), spec.Basic.ConsumeOk)
        got = [c.expect(spec.Basic.Deliver, 1) for _ in range(4)]     # requeued m0..m3
        assert [d.body for d in got] == [b"m0", b"m1", b"m2", b"m3"]
        c.call(1, spec.Basic.Qos(prefetch_count=1, global_=True), spec.Basic.QosOk)
        c.send(1, spec.Basic.Ack(delivery_tag=1))
        c.publish(1, "", queue, b"after")
        c.no_command(0.4)                      # 3 unacked > channel limit 1
        c.send(1, spec.Basic.Ack(delivery_tag=4, multiple=True))
        d = c.expect(spec.Basic.Deliver, 1)
        assert (d.method.delivery_tag, d.body) == (5, b"after")


def test_prefetch_zero_is_unlimited(broker, queue):
    """prefetch_count=0 means no limit: all messages are delivered without acks."""
    publish(broker, queue, [b"m%d" % i for i in range(50)])
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=0)
        got, cb = collector()
        ch.basic_consume(queue, cb)
        wait_for(lambda: pump(conn, 0.05) or len(got) == 50, what="50 deliveries")
        assert [b for _m, _p, b in got] == [b"m%d" % i for i in range(50)]
        assert [m.delivery_tag for m, _p, _b in got] == list(range(1, 51))


def test_qos_prefetch_size_not_implemented(broker):
    """prefetch_size != 0 is connection error 540 'NOT_IMPLEMENTED - prefetch_size!=0 (N)' (60, 10)."""
    with raw(broker) as c:
        c.channel(1)
        c.send(1, spec.Basic.Qos(prefetch_size=10))
        assert channel_close_of(c.connection_close()) == (
            NOT_IMPLEMENTED, "NOT_IMPLEMENTED - prefetch_size!=0 (10)", 60, 10)


# ---------------------------------------------------------------- redelivery

def test_redelivered_after_consumer_channel_closes(broker, queue):
    """Unacked deliveries of a closed channel go back to the queue head in
    order and are redelivered=true to the next consumer."""
    publish(broker, queue, [b"m%d" % i for i in range(5)])
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=3)
        got, cb = collector()
        ch.basic_consume(queue, cb)
        wait_for(lambda: pump(conn, 0.05) or len(got) == 3, what="3 deliveries")
        ch.close()
        wait_message_count(conn.channel, queue, 5)
        ch2 = conn.channel()
        got2, cb2 = collector()
        ch2.basic_consume(queue, cb2)
        wait_for(lambda: pump(conn, 0.05) or len(got2) == 5, what="5 redeliveries")
        assert [(m.redelivered, b) for m, _p, b in got2] == [
            (True, b"m0"), (True, b"m1"), (True, b"m2"), (False, b"m3"), (False, b"m4")]


def test_nack_requeue_false_drops(broker, queue):
    """nack requeue=false discards the message (no DLX configured): it is not redelivered."""
    publish(broker, queue, [b"bad", b"good"])
    with blocking(broker) as conn:
        ch = conn.channel()
        got, cb = collector()
        ch.basic_qos(prefetch_count=1)
        ch.basic_consume(queue, cb)
        wait_for(lambda: pump(conn, 0.05) or got, what="delivery")
        ch.basic_nack(got[0][0].delivery_tag, requeue=False)
        wait_for(lambda: pump(conn, 0.05) or len(got) == 2, what="second delivery")
        ch.basic_ack(got[1][0].delivery_tag)
        pump(conn, 0.4)
        assert [(m.redelivered, b) for m, _p, b in got] == [(False, b"bad"), (False, b"good")]
        assert message_count(conn.channel(), queue) == 0


# --------------------------------------------------------- other client styles

def test_select_connection_consumer(broker, queue):
    """pika's callback-style SelectConnection consumes and acks 10 messages;
    the test stops the IOLoop."""
    publish(broker, queue, [b"s%d" % i for i in range(10)])
    received, errors = [], []
    conn = pika.SelectConnection(pika_params(broker), on_open_error_callback=lambda c, e: (
        errors.append(e), c.ioloop.stop()), on_close_callback=lambda c, e: c.ioloop.stop())

    def on_message(ch, method, props, body):
        received.append((method.delivery_tag, method.redelivered, body))
        ch.basic_ack(method.delivery_tag)
        if len(received) == 10:
            ch.basic_cancel(method.consumer_tag, callback=lambda _f: conn.close())

    def on_channel(ch):
        ch.basic_qos(prefetch_count=3, callback=lambda _f: ch.basic_consume(queue, on_message))

    conn.add_on_open_callback(lambda c: c.channel(on_open_callback=on_channel))
    timer = conn.ioloop.call_later(15, lambda: (errors.append("timeout"), conn.ioloop.stop()))
    conn.ioloop.start()
    conn.ioloop.remove_timeout(timer)
    if conn.is_open:
        conn.close()
        conn.ioloop.start()
    assert errors == []
    assert received == [(i + 1, False, b"s%d" % i) for i in range(10)]
    with blocking(broker) as c:
        assert message_count(c.channel(), queue) == 0


async def test_aio_pika_consumer(broker, unique):
    """aio-pika: declare, publish with properties, consume with a queue
    iterator and ack; the queue ends empty."""
    connection = await aio_connect(broker)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=5)
        queue = await channel.declare_queue(unique("aio"))
        for i in range(20):
            await channel.default_exchange.publish(
                aio_pika.Message(b"a%d" % i, message_id=str(i), headers={"i": i}), routing_key=queue.name)
        got = []
        async with queue.iterator() as it:
            async for message in it:
                got.append((message.body, message.message_id, message.headers, message.redelivered))
                await message.ack()
                if len(got) == 20:
                    break
        assert got == [(b"a%d" % i, str(i), {"i": i}, False) for i in range(20)]
        declared = await channel.declare_queue(queue.name, passive=True)
        assert declared.declaration_result.message_count == 0
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await asyncio.wait_for(connection.close(), 10)
