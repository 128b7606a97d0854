"""basic.publish / basic.get / ack / nack / reject / recover against a real broker.

Expectations are those of RabbitMQ 3.10 (checked against the reference
broker); see AMQP 0-9-1 section 1.8 ("Basic") and
https://www.rabbitmq.com/confirms.html, https://www.rabbitmq.com/specification.html.
"""

from __future__ import annotations

import decimal
import math
import struct
import time

import pika
import pika.exceptions as pe
import pytest
from pamqp import body as pbody
from pamqp import commands as spec
from pamqp import header as pheader

from tests.interop.clients import (
    NO_ROUTE, NOT_FOUND, NOT_IMPLEMENTED, PRECONDITION_FAILED, blocking, channel_close_of,
    get_all, message_count, raw, wait_for, wait_message_count,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def conn(broker):
    with blocking(broker) as connection:
        yield connection


@pytest.fixture
def queue(broker, unique):
    """A fresh non-durable queue, deleted afterwards."""
    name = unique("pg")
    with blocking(broker) as c:
        c.channel().queue_declare(name)
    yield name
    with blocking(broker) as c:
        c.channel().queue_delete(name)


def publish_all(ch, queue, bodies):
    for body in bodies:
        ch.basic_publish("", queue, body)


# ----------------------------------------------------------------------- get-ok

def test_get_ok_fields_and_message_count(conn, queue):
    """basic.get-ok carries delivery-tag (per channel, from 1), redelivered=false,
    exchange, routing-key and message-count = messages left after this one (1.8.3.11)."""
    ch = conn.channel()
    publish_all(ch, queue, [b"m0", b"m1", b"m2"])
    got = []
    for _ in range(3):
        method, _props, body = ch.basic_get(queue)
        got.append((method.delivery_tag, method.redelivered, method.exchange,
                    method.routing_key, method.message_count, body))
    assert got == [(1, False, "", queue, 2, b"m0"), (2, False, "", queue, 1, b"m1"),
                   (3, False, "", queue, 0, b"m2")]
    assert ch.basic_get(queue) == (None, None, None)


def test_get_empty(broker, unique):
    """basic.get on an empty queue answers basic.get-empty and leaves the channel open (1.8.3.12)."""
    with raw(broker) as c:
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).method.queue
        c.call(1, spec.Basic.Get(queue=name), spec.Basic.GetEmpty)
        c.publish(1, "", name, b"after-empty")
        got = c.call(1, spec.Basic.Get(queue=name, no_ack=True), spec.Basic.GetOk)
        assert (got.method.delivery_tag, got.body) == (1, b"after-empty")


def test_properties_round_trip_pika(conn, queue):
    """All 13 basic properties (minus cluster-id) come back unchanged, headers
    with nested tables/arrays/ints/bools/bytes/strings (AMQP 4.2.5.5 field tables).
    (pika cannot encode floats, so they are covered by the raw-bytes test.)"""
    headers = {
        "int": 7, "neg": -42, "big": 2 ** 40, "bool_t": True, "bool_f": False,
        "str": "text", "bytes": b"\x00\x01\xfe\xff",
        "dec": decimal.Decimal("3.14"), "none": None,
        "nested": {"list": [1, "two", True, b"raw", {"deep": [False, -1]}], "empty": {}},
        "empty_list": [],
    }
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="gzip", headers=headers,
        delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="reply.q",
        expiration="600000", message_id="msg-1", timestamp=1700000000, type="order.created",
        user_id="guest", app_id="leveret-tests")
    ch = conn.channel()
    ch.basic_publish("", queue, b"{}", properties=props)
    method, got, body = ch.basic_get(queue, auto_ack=True)
    assert body == b"{}"
    for name in ("content_type", "content_encoding", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                 "type", "user_id", "app_id", "cluster_id"):
        assert getattr(got, name) == getattr(props, name), name
    assert got.headers == headers


def _short(s: bytes) -> bytes:
    return bytes([len(s)]) + s


def test_content_header_bytes_returned_verbatim(broker):
    """The content header a publisher sends comes back byte-for-byte in get-ok,
    including every field-table value type RabbitMQ knows (b s u I i l d f D T V x t A F)."""
    table = b"".join([
        _short(b"b") + b"b" + struct.pack(">b", -3),
        _short(b"s") + b"s" + struct.pack(">h", -300),
        _short(b"u") + b"u" + struct.pack(">H", 60000),
        _short(b"I") + b"I" + struct.pack(">i", -7),
        _short(b"i") + b"i" + struct.pack(">I", 7),
        _short(b"l") + b"l" + struct.pack(">q", 5),
        _short(b"d") + b"d" + struct.pack(">d", 2.5),
        _short(b"f") + b"f" + struct.pack(">f", 1.25),
        _short(b"D") + b"D" + bytes([2]) + struct.pack(">i", 12345),
        _short(b"T") + b"T" + struct.pack(">Q", 1700000000),
        _short(b"V") + b"V",
        _short(b"x") + b"x" + struct.pack(">I", 3) + b"abc",
        _short(b"t") + b"t" + b"\x01",
        _short(b"S") + b"S" + struct.pack(">I", 4) + b"\xc3\xa9t\xc3",  # not valid UTF-8
        _short(b"A") + b"A" + struct.pack(">I", 7) + b"I" + struct.pack(">i", 1) + b"t\x00",
        _short(b"F") + b"F" + struct.pack(">I", 4) + _short(b"k") + b"b\x01",
    ])
    # flags: content-type, headers, delivery-mode, timestamp, app-id
    flags = 0x8000 | 0x2000 | 0x1000 | 0x0040 | 0x0008
    props = (_short(b"text/plain") + struct.pack(">I", len(table)) + table + b"\x02"
             + struct.pack(">Q", 1) + _short(b"app"))
    body = b"payload"
    header = struct.pack(">HHQH", 60, 0, len(body), flags) + props
    with raw(broker) as c:
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).method.queue
        c.send(1, spec.Basic.Publish(exchange="", routing_key=name))
        c.send_bytes(struct.pack(">BHI", 2, 1, len(header)) + header + b"\xce")
        c.send(1, pbody.ContentBody(body))
        sent = c.publish(1, "", name, b"second", spec.Basic.Properties(
            headers={"n": {"arr": [1, "x", True, bytearray(b"raw")]}, "neg": -5}, priority=9,
            user_id="guest", expiration="1000000", message_type="t", correlation_id="c"))
        got = c.call(1, spec.Basic.Get(queue=name), spec.Basic.GetOk)
        assert got.header_payload == header
        assert got.body == body
        got2 = c.call(1, spec.Basic.Get(queue=name), spec.Basic.GetOk)
        assert got2.header_payload == sent


def test_zero_length_body(broker, conn, queue):
    """A message with body-size 0 is delivered with a content header and no body frame (4.2.6.2)."""
    conn.channel().basic_publish("", queue, b"", properties=pika.BasicProperties(message_id="empty"))
    method, props, body = conn.channel().basic_get(queue, auto_ack=True)
    assert (body, props.message_id, method.message_count) == (b"", "empty", 0)
    with raw(broker) as c:
        c.channel(1)
        c.publish(1, "", queue, b"")
        got = c.call(1, spec.Basic.Get(queue=queue, no_ack=True), spec.Basic.GetOk)
        assert (got.body, got.body_frames) == (b"", 0)


@pytest.mark.parametrize("frame_max", [None, 4096])
def test_one_mebibyte_body(broker, unique, frame_max):
    """A 1 MiB body split over many body frames (frame-max negotiated in
    connection.tune, 4.2.3) is reassembled intact by the broker and by pika."""
    body = bytes(range(256)) * 4096
    kwargs = {} if frame_max is None else {"frame_max": frame_max}
    with blocking(broker, **kwargs) as connection:
        ch = connection.channel()
        name = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_publish("", name, body)
        ch.basic_publish("", name, body[::-1])
        _m, _p, got1 = ch.basic_get(name, auto_ack=True)
        _m, _p, got2 = ch.basic_get(name, auto_ack=True)
        assert got1 == body and got2 == body[::-1]


@pytest.mark.parametrize("frame_max", [4096, 131072])
def test_large_body_frames_filled_to_frame_max(broker, frame_max):
    """The broker cuts outgoing bodies into frames of exactly frame-max - 8
    payload bytes (only the last one shorter), as RabbitMQ does."""
    body = bytes(range(256)) * 4096
    with raw(broker, frame_max=frame_max) as c:
        assert c.frame_max == frame_max
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).method.queue
        c.publish(1, "", name, body)
        got = c.call(1, spec.Basic.Get(queue=name, no_ack=True), spec.Basic.GetOk)
        assert got.body == body
        assert got.body_frames == math.ceil(len(body) / (frame_max - 8))


# ------------------------------------------------------------- routing failures

def test_mandatory_unroutable_is_returned_312(broker, unique):
    """mandatory + no queue bound -> basic.return 312 NO_ROUTE with the message (1.8.3.9);
    without mandatory the message is silently dropped and the channel stays open."""
    missing = unique("noroute")
    with blocking(broker) as connection:
        ch = connection.channel()
        returned = []
        ch.add_on_return_callback(lambda _ch, m, p, b: returned.append((m, p, b)))
        ch.basic_publish("", missing, b"dropped")
        ch.basic_publish("", missing, b"back", mandatory=True,
                         properties=pika.BasicProperties(message_id="r1", headers={"h": 1}))
        ch.basic_publish("amq.direct", missing, b"back2", mandatory=True)
        deadline = time.monotonic() + 10  # a loaded machine may take a while
        while len(returned) < 2 and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)
        assert [(m.reply_code, m.reply_text, m.exchange, m.routing_key, p.message_id, p.headers, b)
                for m, p, b in returned] == [
            (NO_ROUTE, "NO_ROUTE", "", missing, "r1", {"h": 1}, b"back"),
            (NO_ROUTE, "NO_ROUTE", "amq.direct", missing, None, None, b"back2")]
        assert ch.is_open


def test_routing_key_empty_is_not_last_declared_queue(broker):
    """The 'last declared queue' shortcut applies to queue fields, not to a
    publish's routing key: '' on the default exchange routes nowhere."""
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk)
        c.publish(1, "", "", b"m", mandatory=True)
        ret = c.expect(spec.Basic.Return, 1)
        assert (ret.method.reply_code, ret.method.routing_key, ret.body) == (312, "", b"m")


def test_get_with_empty_queue_name_uses_last_declared(broker):
    """basic.get with queue '' means the channel's last declared queue (RabbitMQ);
    with none declared it is 404 'no previously declared queue'."""
    with raw(broker) as c:
        c.channel(1)
        c.send(1, spec.Basic.Get(queue=""))
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            NOT_FOUND, "NOT_FOUND - no previously declared queue", 60, 70)
        c.channel(2)
        name = c.call(2, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).method.queue
        c.publish(2, "", name, b"via-default")
        got = c.call(2, spec.Basic.Get(queue="", no_ack=True), spec.Basic.GetOk)
        assert (got.method.routing_key, got.body) == (name, b"via-default")


def test_publish_to_missing_exchange_closes_channel_404(broker, unique):
    """Publishing to an exchange that does not exist is a channel error 404
    "NOT_FOUND - no exchange 'X' in vhost '/'" for basic.publish (60, 40)."""
    missing = unique("ex")
    with blocking(broker) as connection:
        ch = connection.channel()
        ch.basic_publish(missing, "rk", b"x")
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            ch.queue_declare("", exclusive=True)
        assert (info.value.reply_code, info.value.reply_text) == (
            NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '/'")
        assert connection.is_open
        assert connection.channel().is_open
    with raw(broker) as c:
        c.channel(1)
        c.publish(1, missing, "rk", b"x")
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '/'", 60, 40)


def test_user_id_must_match_authenticated_user(broker, unique):
    """RabbitMQ validates user-id: a different value is 406 on basic.publish
    (https://www.rabbitmq.com/validated-user-id.html)."""
    with raw(broker) as c:
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).method.queue
        c.publish(1, "", name, b"x", spec.Basic.Properties(user_id="mallory"))
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            PRECONDITION_FAILED,
            "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'",
            60, 40)


def test_publish_immediate_not_implemented(broker):
    """immediate=true is unsupported in RabbitMQ: connection error 540
    'NOT_IMPLEMENTED - immediate=true' (60, 40)."""
    with raw(broker) as c:
        c.channel(1)
        c.send(1, spec.Basic.Publish(exchange="", routing_key="x", immediate=True))
        c.send(1, pheader.ContentHeader(0, 1, spec.Basic.Properties()))
        c.send(1, pbody.ContentBody(b"x"))
        assert channel_close_of(c.connection_close()) == (
            NOT_IMPLEMENTED, "NOT_IMPLEMENTED - immediate=true", 60, 40)


def test_get_from_missing_queue_404(broker, unique):
    """basic.get on a missing queue: channel error 404 (60, 70)."""
    missing = unique("q")
    with raw(broker) as c:
        c.channel(1)
        c.send(1, spec.Basic.Get(queue=missing))
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            NOT_FOUND, f"NOT_FOUND - no queue '{missing}' in vhost '/'", 60, 70)


# -------------------------------------------------------------- acknowledgements

def test_ack_nack_reject_settle_messages(conn, queue):
    """ack, nack(requeue=false) and reject(requeue=false) each remove the message for good (1.8.3.13-14)."""
    ch = conn.channel()
    publish_all(ch, queue, [b"a", b"n", b"r", b"keep"])
    tags = [ch.basic_get(queue)[0].delivery_tag for _ in range(3)]
    assert tags == [1, 2, 3]
    ch.basic_ack(1)
    ch.basic_nack(2, requeue=False)
    ch.basic_reject(3, requeue=False)
    assert message_count(ch, queue) == 1
    ch.close()
    ch2 = conn.channel()
    assert get_all(ch2, queue) == [b"keep"]


def test_ack_unknown_delivery_tag_406(broker, conn, queue):
    """basic.ack of a tag never delivered is channel error 406
    'PRECONDITION_FAILED - unknown delivery tag N' (60, 80)."""
    ch = conn.channel()
    ch.basic_ack(99)
    with pytest.raises(pe.ChannelClosedByBroker) as info:
        ch.queue_declare(queue, passive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 99")
    with raw(broker) as c:
        c.channel(1)
        for method, mid in ((spec.Basic.Ack(delivery_tag=5), 80),
                            (spec.Basic.Nack(delivery_tag=5), 120),
                            (spec.Basic.Reject(delivery_tag=5), 90)):
            c.send(1, method)
            assert channel_close_of(c.channel_closed_by_server(1)) == (
                PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 5", 60, mid)
            c.channel(1)


def test_double_ack_406(broker, conn, queue):
    """Acking the same tag twice: the second ack is 'unknown delivery tag' 406,
    and the first ack stays effective."""
    ch = conn.channel()
    publish_all(ch, queue, [b"once", b"other"])
    method, _p, _b = ch.basic_get(queue)
    ch.basic_ack(method.delivery_tag)
    ch.basic_ack(method.delivery_tag)
    with pytest.raises(pe.ChannelClosedByBroker) as info:
        ch.queue_declare(queue, passive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        PRECONDITION_FAILED, f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}")
    assert get_all(conn.channel(), queue) == [b"other"]


def test_ack_multiple(conn, queue):
    """ack multiple=true settles every unacked tag up to and including delivery-tag (1.8.3.13)."""
    ch = conn.channel()
    publish_all(ch, queue, [b"m%d" % i for i in range(5)])
    for _ in range(5):
        ch.basic_get(queue)
    ch.basic_ack(3, multiple=True)
    ch.close()
    wait_message_count(conn.channel, queue, 2)
    ch2 = conn.channel()
    got = [ch2.basic_get(queue, auto_ack=True) for _ in range(2)]
    assert [(m.redelivered, b) for m, _p, b in got] == [(True, b"m3"), (True, b"m4")]


def test_ack_multiple_tag_zero_acks_everything(broker, unique):
    """RabbitMQ: ack with delivery-tag 0 and multiple=true acks all outstanding messages."""
    with raw(broker) as c:
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).method.queue
        for i in range(3):
            c.publish(1, "", name, b"%d" % i)
        for i in range(3):
            c.call(1, spec.Basic.Get(queue=name), spec.Basic.GetOk)
        c.send(1, spec.Basic.Ack(delivery_tag=0, multiple=True))
        assert c.close_channel(1) == []
        c.channel(2)
        assert c.call(2, spec.Queue.Declare(queue=name, passive=True),
                      spec.Queue.DeclareOk).method.message_count == 0


def test_ack_tag_edge_cases(broker):
    """ack multiple=true with a tag above every outstanding one is 406 unknown
    delivery tag N; ack 0 multiple=true with nothing outstanding is accepted;
    a single ack of tag 0 is 406 'unknown delivery tag 0'."""
    with raw(broker) as c:
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).method.queue
        for i in range(3):
            c.publish(1, "", name, b"%d" % i)
            c.call(1, spec.Basic.Get(queue=name), spec.Basic.GetOk)
        c.send(1, spec.Basic.Ack(delivery_tag=99, multiple=True))
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 99", 60, 80)
        c.channel(2)
        c.send(2, spec.Basic.Ack(delivery_tag=0, multiple=True))
        c.no_command(0.3)
        c.send(2, spec.Basic.Ack(delivery_tag=0))
        assert channel_close_of(c.channel_closed_by_server(2)) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 0", 60, 80)
        # the failed multiple ack settled nothing: channel 1's three messages came back
        c.channel(3)
        wait_for(lambda: c.call(3, spec.Queue.Declare(queue=name, passive=True),
                                spec.Queue.DeclareOk).method.message_count == 3, what="3 requeued")


def test_nack_multiple_requeue_keeps_order(conn, queue):
    """nack multiple=true requeue=true puts back every tag <= N; they come back
    redelivered=true at the head of the queue, in their original order."""
    ch = conn.channel()
    publish_all(ch, queue, [b"m0", b"m1", b"m2", b"m3"])
    for _ in range(4):
        ch.basic_get(queue)
    ch.basic_publish("", queue, b"later")
    ch.basic_nack(3, multiple=True, requeue=True)
    got = [ch.basic_get(queue, auto_ack=True) for _ in range(4)]
    assert [(m.redelivered, b) for m, _p, b in got] == [
        (True, b"m0"), (True, b"m1"), (True, b"m2"), (False, b"later")]
    assert ch.basic_get(queue) == (None, None, None)


def test_reject_requeue_restores_original_position(conn, queue):
    """reject requeue=true: redelivered=true on the next get, and requeued messages
    take their original place (RabbitMQ requeues in publish order, not reject order)."""
    ch = conn.channel()
    publish_all(ch, queue, [b"a", b"b", b"c"])
    tag_a = ch.basic_get(queue)[0].delivery_tag
    tag_b = ch.basic_get(queue)[0].delivery_tag
    ch.basic_reject(tag_b, requeue=True)
    ch.basic_reject(tag_a, requeue=True)
    got = [ch.basic_get(queue) for _ in range(3)]
    assert [(m.delivery_tag, m.redelivered, m.message_count, b) for m, _p, b in got] == [
        (3, True, 2, b"a"), (4, True, 1, b"b"), (5, False, 0, b"c")]


def test_recover_requeue_true(conn, queue):
    """basic.recover requeue=true -> recover-ok; unacked messages are requeued
    redelivered=true in order, with new tags; the old tags become unknown (1.8.3.16)."""
    ch = conn.channel()
    publish_all(ch, queue, [b"x", b"y", b"z"])
    ch.basic_get(queue)
    ch.basic_get(queue)
    ch.basic_recover(requeue=True)
    got = [ch.basic_get(queue) for _ in range(3)]
    assert [(m.delivery_tag, m.redelivered, b) for m, _p, b in got] == [
        (3, True, b"x"), (4, True, b"y"), (5, False, b"z")]
    ch.basic_ack(5, multiple=True)
    ch.basic_ack(1)
    with pytest.raises(pe.ChannelClosedByBroker) as info:
        ch.queue_declare(queue, passive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 1")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pamqp warns on basic.recover-async
def test_recover_requeue_false_not_implemented(broker, conn, queue):
    """RabbitMQ 3.10 rejects basic.recover requeue=false with connection error 540
    'NOT_IMPLEMENTED - requeue=false' (60, 110; 60, 100 for recover-async);
    the unacked message is then requeued by the connection closing."""
    ch = conn.channel()
    publish_all(ch, queue, [b"unacked"])
    ch.basic_get(queue)
    with pytest.raises(pe.ConnectionClosedByBroker) as info:
        ch.basic_recover(requeue=False)
    assert (info.value.reply_code, info.value.reply_text) == (
        NOT_IMPLEMENTED, "NOT_IMPLEMENTED - requeue=false")
    assert not conn.is_open
    with blocking(broker) as other:
        wait_message_count(other.channel, queue, 1)
        method, _p, body = other.channel().basic_get(queue, auto_ack=True)
        assert (method.redelivered, body) == (True, b"unacked")
    for method, mid in ((spec.Basic.Recover(requeue=False), 110),
                        (spec.Basic.RecoverAsync(requeue=False), 100)):
        with raw(broker) as c:
            c.channel(1)
            c.send(1, method)
            assert channel_close_of(c.connection_close()) == (
                NOT_IMPLEMENTED, "NOT_IMPLEMENTED - requeue=false", 60, mid)


def test_unacked_requeued_in_order_on_channel_close(conn, queue):
    """Closing a channel requeues its unacked messages at their original
    positions, redelivered=true, ahead of later messages (1.8.3.16 / 4.7)."""
    ch = conn.channel()
    publish_all(ch, queue, [b"m%d" % i for i in range(5)])
    for _ in range(5):
        ch.basic_get(queue)
    ch.basic_ack(2)
    ch.basic_ack(4)
    ch.basic_publish("", queue, b"new")
    ch.close()
    wait_message_count(conn.channel, queue, 4)
    ch2 = conn.channel()
    got = [ch2.basic_get(queue, auto_ack=True) for _ in range(4)]
    assert [(m.redelivered, m.message_count, b) for m, _p, b in got] == [
        (True, 3, b"m0"), (True, 2, b"m2"), (True, 1, b"m4"), (False, 0, b"new")]


def test_unacked_requeued_in_order_on_connection_close(broker, queue):
    """Closing the connection requeues the unacked messages of all its channels, in order."""
    with blocking(broker) as connection:
        ch1, ch2 = connection.channel(), connection.channel()
        publish_all(ch1, queue, [b"m%d" % i for i in range(4)])
        ch1.basic_get(queue)          # m0 on ch1
        ch2.basic_get(queue)          # m1 on ch2
        ch1.basic_get(queue)          # m2 on ch1
    with blocking(broker) as other:
        wait_message_count(other.channel, queue, 4)
        ch = other.channel()
        got = [ch.basic_get(queue, auto_ack=True) for _ in range(4)]
        assert [(m.redelivered, b) for m, _p, b in got] == [
            (True, b"m0"), (True, b"m1"), (True, b"m2"), (False, b"m3")]
