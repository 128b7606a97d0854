"""Frame-level and method-level errors, sent with a raw socket client.

AMQP 0-9-1 spec section 4.2.3-4.2.6 (frames, frame-end, frame_max, content
framing), 1.5.2.x (method arguments) and the reply-code constants; RabbitMQ
docs: "Spec differences" (immediate, prefetch_size), "Configuration"
(max_message_size). Checked against RabbitMQ 3.10.

Every test keeps a second connection (the bystander) open across the error
and uses it afterwards: an error on one connection must not disturb another.
"""

from __future__ import annotations

import struct

import pytest
from pamqp import commands as spec

from tests.interop.pika_helpers import Bystander
from tests.interop.raw_client import (
    COMMAND_INVALID, FRAME_BODY, FRAME_ERROR, FRAME_HEADER, FRAME_METHOD, NOT_IMPLEMENTED,
    PRECONDITION_FAILED, UNEXPECTED_FRAME, ConnectionLost, assert_close, body_frame, connected,
    header_frame, method_frame, method_payload, raw_frame,
)

PUBLISH = method_frame(1, spec.Basic.Publish(exchange="", routing_key="leveret-framing-void"))
QOS = method_frame(1, spec.Basic.Qos(prefetch_count=1))
OPEN_2 = method_frame(2, spec.Channel.Open())


def _named(cases):
    """pytest.param each case with its first element (a description) as id."""
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.fixture
def bystander(broker):
    with Bystander(broker) as witness:
        yield witness


def _connection_error(broker, data: bytes, check_socket: bool = True, **handshake):
    """Send ``data`` on a fresh connection with channel 1 open; return the
    connection.close the server answers with (after replying close-ok)."""
    with connected(broker, **handshake) as client:
        client.send(data)
        info = client.wait_connection_close()
        if check_socket:
            assert client.wait_socket_closed(5.0), "server kept the socket open after the close"
        return info


# ------------------------------------------------------------------ frame errors (501)

@pytest.mark.parametrize("kind", ["body", "method"])
def test_frame_larger_than_frame_max(broker, bystander, kind):
    """Spec 4.2.3 / connection.tune frame-max: a frame larger than the
    negotiated frame_max -> 501 FRAME_ERROR (class 0, method 0); the server
    closes the socket."""
    if kind == "body":
        data = PUBLISH + header_frame(1, 5000) + body_frame(1, b"x" * 5000)
    else:
        data = method_frame(1, spec.Queue.Declare(queue="q", arguments={"pad": "y" * 5000}))
    info = _connection_error(broker, data, check_socket=(kind == "body"), frame_max=4096)
    assert_close(info, FRAME_ERROR, 0, 0)
    bystander.check()


def test_frame_of_exactly_frame_max_is_accepted(broker, bystander, unique):
    """Spec 4.2.3: frame_max counts the whole frame (7-byte header, payload,
    frame-end); a frame of exactly frame_max bytes is fine."""
    queue = unique("q")
    body = b"z" * (4096 - 8)
    with connected(broker, frame_max=4096) as client:
        client.rpc(1, spec.Queue.Declare(queue=queue, exclusive=True), spec.Queue.DeclareOk)
        client.confirm_select(1)
        client.send(method_frame(1, spec.Basic.Publish(exchange="", routing_key=queue))
                    + header_frame(1, len(body)) + body_frame(1, body))
        client.wait_acks(1)
        ok = client.rpc(1, spec.Queue.Declare(queue=queue, passive=True), spec.Queue.DeclareOk)
        assert ok.message_count == 1
    bystander.check()


def test_bad_frame_end_octet(broker, bystander):
    """Spec 4.2.3: a frame-end octet other than 0xCE -> 501 FRAME_ERROR
    (class 0, method 0) and the socket is closed."""
    data = raw_frame(FRAME_METHOD, 1, method_payload(spec.Basic.Qos(prefetch_count=1)), frame_end=0x00)
    assert_close(_connection_error(broker, data), FRAME_ERROR, 0, 0)
    bystander.check()


@pytest.mark.parametrize("frame_type", [0, 4, 9, 200])
def test_unknown_frame_type(broker, bystander, frame_type):
    """Spec 4.2.3: an unknown frame type -> 501 FRAME_ERROR (class 0, method 0)."""
    info = _connection_error(broker, raw_frame(frame_type, 1, b"abc"))
    assert_close(info, FRAME_ERROR, 0, 0)
    bystander.check()


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x3c"], ids=["empty", "1-byte", "2-byte"])
def test_method_frame_too_short(broker, bystander, payload):
    """Spec 4.2.4: a method frame without a full class-id/method-id ->
    501 FRAME_ERROR (class 0, method 0)."""
    assert_close(_connection_error(broker, raw_frame(FRAME_METHOD, 1, payload)), FRAME_ERROR, 0, 0)
    bystander.check()


def test_heartbeat_with_payload(broker, bystander):
    """Spec 4.2.7: a heartbeat frame has an empty payload; RabbitMQ treats a
    non-empty one as an unknown frame -> 501 FRAME_ERROR (class 0, method 0)."""
    assert_close(_connection_error(broker, raw_frame(8, 0, b"abc")), FRAME_ERROR, 0, 0)
    bystander.check()


@pytest.mark.parametrize("name,payload,ids", _named([
    ("truncated basic.publish", struct.pack(">HHH", 60, 40, 0) + b"\x05ab", (60, 40)),
    ("truncated basic.qos", struct.pack(">HH", 60, 10) + b"\x00", (60, 10)),
    ("basic.qos with trailing bytes", method_payload(spec.Basic.Qos(prefetch_count=1)) + b"zzz", (60, 10)),
    ("truncated queue.declare", struct.pack(">HHH", 50, 10, 0) + b"\x10short", (50, 10)),
]))
def test_undecodable_method_arguments(broker, bystander, name, payload, ids):
    """Spec 4.2.4 / reply codes: arguments that cannot be decoded. RabbitMQ
    answers 501 FRAME_ERROR ("FRAME_ERROR - cannot decode <<...>>"), not
    502 SYNTAX_ERROR, with the method's class and method ids."""
    info = _connection_error(broker, raw_frame(FRAME_METHOD, 1, payload))
    assert_close(info, FRAME_ERROR, *ids)
    bystander.check()


# ------------------------------------------------------------------ unexpected frames (505)

@pytest.mark.parametrize("name,data", _named([
    ("content header without a method", header_frame(1, 10)),
    ("body without a method", body_frame(1, b"abc")),
    ("body after basic.qos (no content)", QOS + body_frame(1, b"abc")),
    ("body after a complete message", PUBLISH + header_frame(1, 3) + body_frame(1, b"abc") + body_frame(1, b"d")),
    ("header after an empty message", PUBLISH + header_frame(1, 0) + header_frame(1, 0)),
    ("header on another open channel", OPEN_2 + PUBLISH + header_frame(2, 3)),
    ("header on an unopened channel", PUBLISH + header_frame(3, 3)),
]))
def test_content_frame_without_method(broker, bystander, name, data):
    """Spec 4.2.6: content frames must follow a content-bearing method ->
    505 UNEXPECTED_FRAME with class 0, method 0 (RabbitMQ: "expected method
    frame, got non method frame instead"), even on an unopened channel."""
    info = _connection_error(broker, data)
    assert_close(info, UNEXPECTED_FRAME, 0, 0)
    bystander.check()


@pytest.mark.parametrize("name,data,text", _named([
    ("method instead of content header", PUBLISH + QOS,
     "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"),
    ("body instead of content header", PUBLISH + body_frame(1, b"abc"),
     "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"),
    ("content header of another class", PUBLISH + raw_frame(FRAME_HEADER, 1, struct.pack(">HHQH", 50, 0, 3, 0)),
     "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead"),
    ("method while the body is incomplete", PUBLISH + header_frame(1, 10) + body_frame(1, b"abc") + QOS,
     "UNEXPECTED_FRAME - expected content body, got non content body frame instead"),
]))
def test_content_interrupted(broker, bystander, name, data, text):
    """Spec 4.2.6: after basic.publish the channel expects a content header,
    then bodies until body-size; anything else -> 505 UNEXPECTED_FRAME with
    the ids of the publish being assembled (class 60, method 40); RabbitMQ's
    texts are in ``text``."""
    info = _connection_error(broker, data)
    assert_close(info, UNEXPECTED_FRAME, 60, 40)
    bystander.check()


def test_heartbeat_on_a_channel(broker, bystander):
    """Spec 4.2.7: heartbeats belong to channel 0; on channel 1 RabbitMQ
    answers 505 UNEXPECTED_FRAME (class 0, method 0)."""
    assert_close(_connection_error(broker, raw_frame(8, 1, b"")), UNEXPECTED_FRAME, 0, 0)
    bystander.check()


def test_interleaved_content_on_two_channels_is_fine(broker, bystander, unique):
    """Spec 4.2.6: content frames of different channels may interleave."""
    queue = unique("q")
    with connected(broker) as client:
        client.open_channel(2)
        client.rpc(1, spec.Queue.Declare(queue=queue, exclusive=True), spec.Queue.DeclareOk)
        client.confirm_select(1)
        client.confirm_select(2)
        pub = spec.Basic.Publish(exchange="", routing_key=queue)
        client.send(method_frame(1, pub) + method_frame(2, pub) + header_frame(1, 2)
                    + header_frame(2, 2) + body_frame(2, b"b") + body_frame(1, b"a")
                    + body_frame(1, b"a") + body_frame(2, b"b"))
        assert client.wait_acks(2) == {1: 1, 2: 1}
        bodies = set()
        for _ in range(2):
            client.rpc(1, spec.Basic.Get(queue=queue, no_ack=True), spec.Basic.GetOk)
            assert client.next_frame().type == FRAME_HEADER
            frame = client.next_frame()
            assert frame.type == FRAME_BODY
            bodies.add(frame.payload)
        assert bodies == {b"aa", b"bb"}
    bystander.check()


# ------------------------------------------------------------------ unknown methods

@pytest.mark.parametrize("class_id,method_id", [(60, 999), (999, 10)])
def test_unknown_class_or_method(broker, bystander, class_id, method_id):
    """Spec reply codes (540 NOT_IMPLEMENTED / 503 COMMAND_INVALID): an
    unknown class or method id ends the connection. RabbitMQ 3.10's reader
    crashes and drops the TCP connection without a close frame; a
    connection.close is also accepted if it carries 540 or 503 and the ids."""
    with connected(broker) as client:
        client.send(raw_frame(FRAME_METHOD, 1, struct.pack(">HH", class_id, method_id)))
        try:
            info = client.wait_connection_close()
        except ConnectionLost:
            pass
        else:
            assert info.reply_code in (NOT_IMPLEMENTED, COMMAND_INVALID), info
            assert (info.class_id, info.method_id) == (class_id, method_id), info
            assert client.wait_socket_closed(5.0)
    bystander.check()


# ------------------------------------------------------------------ unsupported features

def test_publish_immediate_not_implemented(broker, bystander):
    """RabbitMQ "Spec differences": basic.publish immediate=true ->
    connection.close 540 NOT_IMPLEMENTED "immediate=true", class 60 method 40."""
    data = method_frame(1, spec.Basic.Publish(exchange="", routing_key="q", immediate=True))
    data += header_frame(1, 1) + body_frame(1, b"x")
    info = _connection_error(broker, data)
    assert_close(info, NOT_IMPLEMENTED, 60, 40)
    assert info.reply_text == "NOT_IMPLEMENTED - immediate=true"
    bystander.check()


def test_qos_prefetch_size_not_implemented(broker, bystander):
    """RabbitMQ "Spec differences": basic.qos prefetch_size != 0 ->
    connection.close 540 NOT_IMPLEMENTED "prefetch_size!=0 (N)", 60/10."""
    info = _connection_error(broker, method_frame(1, spec.Basic.Qos(prefetch_size=10)))
    assert_close(info, NOT_IMPLEMENTED, 60, 10)
    assert info.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (10)"
    bystander.check()


def test_message_larger_than_max_message_size(fresh_broker):
    """RabbitMQ max_message_size: a body above the limit -> channel.close
    406 PRECONDITION_FAILED "message size 2000 is larger than configured max
    size 1000" (class 60, method 40); exactly the limit is accepted."""
    proc = fresh_broker("--max-message-size", "1000")
    with Bystander(proc) as witness, connected(proc) as client:
        client.rpc(1, spec.Queue.Declare(queue="big", exclusive=True), spec.Queue.DeclareOk)
        client.confirm_select(1)
        client.publish(1, "", "big", b"a" * 1000)
        client.wait_acks(1)
        ok = client.rpc(1, spec.Queue.Declare(queue="big", passive=True), spec.Queue.DeclareOk)
        assert ok.message_count == 1
        client.publish(1, "", "big", b"b" * 2000)
        info = client.wait_channel_close(1)
        assert_close(info, PRECONDITION_FAILED, 60, 40)
        assert info.reply_text == "PRECONDITION_FAILED - message size 2000 is larger than configured max size 1000"
        client.open_channel(2)
        ok = client.rpc(2, spec.Queue.Declare(queue="big", passive=True), spec.Queue.DeclareOk)
        assert ok.message_count == 1
        witness.check()
