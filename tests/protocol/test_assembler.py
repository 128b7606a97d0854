"""protocol.assembler.ContentAssembler: method -> content header -> body frames
(AMQP 0-9-1 spec §2.3.5.2 "Content Framing", §4.2.6 content header, §1.2
reply codes 505/501/406), with payloads built by pamqp."""

from __future__ import annotations

import pytest
from pamqp import commands
from pamqp import frame as pframe
from pamqp import header as pheader

from protocol import assembler as asm
from protocol import reply_codes
from protocol.assembler import ContentAssembler
from protocol.errors import AMQPError

MAX = 1024 * 1024


def publish_payload(exchange: str = "ex", routing_key: str = "rk") -> bytes:
    return pframe.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), 1)[7:-1]


def header_payload(body_size: int, class_id: int | None = None) -> bytes:
    payload = pheader.ContentHeader(
        body_size=body_size,
        properties=commands.Basic.Properties(content_type="text/plain", delivery_mode=2)).marshal()
    if class_id is not None:
        payload = class_id.to_bytes(2, "big") + payload[2:]
    return payload


def assert_unexpected_frame(excinfo) -> None:
    assert excinfo.value.reply_code == reply_codes.UNEXPECTED_FRAME
    assert excinfo.value.connection_level is True


# --- happy paths ------------------------------------------------------------------------

def test_method_header_body():
    """Spec §2.3.5.2: method, then one content header, then body frames make one command."""
    a = ContentAssembler(MAX)
    method, header = publish_payload(), header_payload(5)
    a.start(method)
    assert a.state == asm.AWAIT_HEADER
    assert a.on_header(header) is None
    assert a.state == asm.AWAIT_BODY
    assert a.on_body(b"hello") == (method, header, b"hello")
    assert a.state == asm.IDLE


@pytest.mark.parametrize("pieces", [[b"a", b"b", b"c"], [b"x" * 4088, b"y" * 4088, b"z"], [b"", b"ab", b"", b"c"]],
                         ids=["three", "frame-sized", "with-empty-frames"])
def test_several_body_frames(pieces):
    """Spec §4.2.6.2: the body may span several body frames, joined in order."""
    a = ContentAssembler(MAX)
    body = b"".join(pieces)
    method, header = publish_payload(), header_payload(len(body))
    a.start(method)
    assert a.on_header(header) is None
    results = [a.on_body(p) for p in pieces]
    assert results[:-1] == [None] * (len(pieces) - 1)
    assert results[-1] == (method, header, body)
    assert a.state == asm.IDLE


def test_zero_length_body_completes_on_header():
    """Spec §4.2.6.2: a body size of 0 means no body frames; the command completes on the header."""
    a = ContentAssembler(MAX)
    method, header = publish_payload(), header_payload(0)
    a.start(method)
    assert a.on_header(header) == (method, header, b"")
    assert a.state == asm.IDLE


def test_consecutive_messages_are_independent():
    """Spec §2.3.5.2: one message's frames never leak into the next."""
    a = ContentAssembler(MAX)
    m1, m2 = publish_payload("e1", "k1"), publish_payload("e2", "k2")
    h1, h2 = header_payload(6), header_payload(4)
    a.start(m1)
    a.on_header(h1)
    assert a.on_body(b"abc") is None
    assert a.on_body(b"def") == (m1, h1, b"abcdef")
    a.start(m2)
    a.on_header(h2)
    assert a.on_body(b"gh") is None
    assert a.on_body(b"ij") == (m2, h2, b"ghij")
    a.start(m1)
    assert a.on_header(header_payload(0)) == (m1, header_payload(0), b"")
    a.start(m2)
    a.on_header(h2)
    assert a.on_body(b"wxyz") == (m2, h2, b"wxyz")


def test_body_size_equal_to_max_size_accepted():
    """RabbitMQ max_message_size: a body of exactly the limit is accepted."""
    a = ContentAssembler(10)
    method, header = publish_payload(), header_payload(10)
    a.start(method)
    assert a.on_header(header) is None
    assert a.on_body(b"0123456789") == (method, header, b"0123456789")


# --- out-of-order frames: 505 -----------------------------------------------------------

def test_header_without_method():
    """Spec §2.3.5.2: a content header with no content method before it is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    with pytest.raises(AMQPError) as info:
        a.on_header(header_payload(5))
    assert_unexpected_frame(info)


def test_body_without_header_idle():
    """Spec §2.3.5.2: a body frame outside a message is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    with pytest.raises(AMQPError) as info:
        a.on_body(b"hello")
    assert_unexpected_frame(info)


def test_body_while_awaiting_header():
    """Spec §2.3.5.2: a body frame straight after the method (no header) is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    with pytest.raises(AMQPError) as info:
        a.on_body(b"hello")
    assert_unexpected_frame(info)


def test_method_while_awaiting_header():
    """Spec §2.3.5.2: a method frame where the content header is due is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    with pytest.raises(AMQPError) as info:
        a.start(publish_payload())
    assert_unexpected_frame(info)


def test_method_while_awaiting_body():
    """Spec §2.3.5.2: a method frame before the body is complete is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    a.on_header(header_payload(10))
    a.on_body(b"12345")
    with pytest.raises(AMQPError) as info:
        a.start(publish_payload())
    assert_unexpected_frame(info)


def test_second_header_while_awaiting_body():
    """Spec §2.3.5.2: a second content header inside one message is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    a.on_header(header_payload(10))
    with pytest.raises(AMQPError) as info:
        a.on_header(header_payload(10))
    assert_unexpected_frame(info)


def test_body_after_zero_length_message():
    """Spec §4.2.6.2: after a zero-size message completes, a body frame is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    a.on_header(header_payload(0))
    with pytest.raises(AMQPError) as info:
        a.on_body(b"")
    assert_unexpected_frame(info)


@pytest.mark.parametrize("stage", ["awaiting-header", "awaiting-body"])
def test_unexpected_frame_mid_message_names_publish(stage):
    """docs/architecture.md "Errors" + RabbitMQ: 505 inside a message carries the pending method's ids (60, 40)."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    if stage == "awaiting-body":
        a.on_header(header_payload(10))
    with pytest.raises(AMQPError) as info:
        a.start(publish_payload())
    assert (info.value.class_id, info.value.method_id) == (60, 40)


def test_header_for_wrong_class():
    """RabbitMQ rabbit_command_assembler: a content header for another class is 505 UNEXPECTED_FRAME."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    with pytest.raises(AMQPError) as info:
        a.on_header(header_payload(5, class_id=50))
    assert_unexpected_frame(info)


def test_header_for_wrong_class_is_connection_error():
    """Spec §4.2.6: a content header for a class other than basic closes the connection."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    with pytest.raises(AMQPError) as info:
        a.on_header(header_payload(5, class_id=50))
    assert info.value.connection_level is True
    assert info.value.reply_code in (reply_codes.FRAME_ERROR, reply_codes.UNEXPECTED_FRAME)


def test_truncated_header_is_frame_error():
    """Spec §4.2.6: a content header shorter than 14 bytes is 501 FRAME_ERROR."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    with pytest.raises(AMQPError) as info:
        a.on_header(header_payload(5)[:13])
    assert info.value.reply_code == reply_codes.FRAME_ERROR


# --- body size checks -----------------------------------------------------------------

def test_single_body_frame_longer_than_declared():
    """Spec §4.2.6.2: body frames beyond the declared size are 501 FRAME_ERROR."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    a.on_header(header_payload(5))
    with pytest.raises(AMQPError) as info:
        a.on_body(b"hello!")
    assert info.value.reply_code == reply_codes.FRAME_ERROR
    assert info.value.connection_level is True


def test_later_body_frame_overflows_declared():
    """Spec §4.2.6.2: the running total of body frames may not exceed body-size (501)."""
    a = ContentAssembler(MAX)
    a.start(publish_payload())
    a.on_header(header_payload(5))
    assert a.on_body(b"hel") is None
    with pytest.raises(AMQPError) as info:
        a.on_body(b"lo!")
    assert info.value.reply_code == reply_codes.FRAME_ERROR


def test_declared_size_above_max_size():
    """RabbitMQ max_message_size: a larger declared body is channel-level 406 naming basic.publish (60, 40)."""
    a = ContentAssembler(100)
    a.start(publish_payload())
    with pytest.raises(AMQPError) as info:
        a.on_header(header_payload(101))
    err = info.value
    assert err.reply_code == reply_codes.PRECONDITION_FAILED
    assert err.connection_level is False
    assert (err.class_id, err.method_id) == (60, 40)
    assert "101" in err.text and "100" in err.text
    assert err.reply_text.startswith("PRECONDITION_FAILED - ")


def test_max_size_error_resets_state():
    """RabbitMQ max_message_size: after the 406 the assembler accepts a fresh message."""
    a = ContentAssembler(100)
    a.start(publish_payload())
    with pytest.raises(AMQPError):
        a.on_header(header_payload(2 ** 40))
    assert a.state == asm.IDLE
    method, header = publish_payload("e", "k"), header_payload(3)
    a.start(method)
    a.on_header(header)
    assert a.on_body(b"abc") == (method, header, b"abc")


# --- reset ----------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["idle", "awaiting-header", "awaiting-body", "mid-body"])
def test_reset_drops_partial_message(stage):
    """Spec §4.2.6 / channel.close: a partial message is dropped when the channel resets."""
    a = ContentAssembler(MAX)
    if stage != "idle":
        a.start(publish_payload("old", "old"))
    if stage in ("awaiting-body", "mid-body"):
        a.on_header(header_payload(10))
    if stage == "mid-body":
        a.on_body(b"OLDOLD")
    a.reset()
    assert a.state == asm.IDLE
    method, header = publish_payload("new", "new"), header_payload(4)
    a.start(method)
    assert a.on_header(header) is None
    assert a.on_body(b"ne") is None
    assert a.on_body(b"w!") == (method, header, b"new!")
