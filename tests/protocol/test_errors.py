"""protocol.errors, protocol.reply_codes and protocol.constants, checked
against pamqp's independent tables (AMQP 0-9-1 spec §1.2 constants, §4.2.3
frame format)."""

from __future__ import annotations

import re

import pytest
from pamqp import constants as pconst
from pamqp import exceptions as pexc
from pamqp import commands, frame as pframe
from pamqp.header import ProtocolHeader
from pamqp.heartbeat import Heartbeat

from protocol import constants, reply_codes
from protocol.errors import AMQPError, channel_error, connection_error


def _pamqp_reply_classes():
    """Every pamqp exception class that carries an AMQP reply code."""
    out = []
    for name in dir(pexc):
        cls = getattr(pexc, name)
        if isinstance(cls, type) and issubclass(cls, pexc.AMQPError) and isinstance(getattr(cls, "value", None), int):
            out.append(cls)
    return out


PAMQP_REPLY_CLASSES = _pamqp_reply_classes()


def _upper_snake(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name.removeprefix("AMQP")).upper()


# --- reply codes --------------------------------------------------------------------

def test_pamqp_reference_table_is_not_empty():
    """Spec §1.2: the reference table of error codes is available (sanity check of the oracle)."""
    assert len(PAMQP_REPLY_CLASSES) >= 18


@pytest.mark.parametrize("cls", PAMQP_REPLY_CLASSES, ids=lambda c: c.__name__)
def test_reply_code_values_and_names_match_spec(cls):
    """Spec §1.2: each reply code has the spec's numeric value and name."""
    name = _upper_snake(cls.__name__)
    assert getattr(reply_codes, name) == cls.value
    assert reply_codes.NAMES[cls.value] == name


@pytest.mark.parametrize("cls", PAMQP_REPLY_CLASSES, ids=lambda c: c.__name__)
def test_reply_code_level_matches_spec(cls):
    """Spec §1.2: soft errors (channel) vs hard errors (connection)."""
    soft = issubclass(cls, pexc.AMQPSoftError)
    assert (cls.value in reply_codes.CHANNEL_LEVEL) is soft


def test_reply_success_name():
    """Spec §1.2: reply-success is 200."""
    assert reply_codes.REPLY_SUCCESS == 200 == pconst.REPLY_SUCCESS
    assert reply_codes.NAMES[200] == "REPLY_SUCCESS"


# --- constants ------------------------------------------------------------------------

def test_protocol_header_constant():
    """Spec §4.2.2: the protocol header is 'AMQP' 0 0 9 1."""
    assert constants.PROTOCOL_HEADER == ProtocolHeader().marshal() == b"AMQP\x00\x00\x09\x01"


def test_heartbeat_frame_constant():
    """Spec §4.2.7: a heartbeat is an empty type-8 frame on channel 0."""
    assert constants.HEARTBEAT_FRAME == Heartbeat.marshal() == pframe.marshal(Heartbeat(), 0)


def test_frame_constants_match_spec():
    """Spec §4.2.3: frame types, frame-end octet, header size and minimum frame size."""
    assert constants.FRAME_METHOD == pconst.FRAME_METHOD
    assert constants.FRAME_HEADER == pconst.FRAME_HEADER
    assert constants.FRAME_BODY == pconst.FRAME_BODY
    assert constants.FRAME_HEARTBEAT == pconst.FRAME_HEARTBEAT
    assert constants.FRAME_END == pconst.FRAME_END == 0xCE
    assert constants.FRAME_END_BYTE == pconst.FRAME_END_CHAR
    assert constants.FRAME_HEADER_SIZE == pconst.FRAME_HEADER_SIZE == 7
    assert constants.FRAME_OVERHEAD == 8
    assert constants.FRAME_MIN_SIZE == pconst.FRAME_MIN_SIZE == 4096


def test_class_ids_match_spec():
    """Spec §1.4-§1.9: class ids of connection, channel, exchange, queue, basic, confirm, tx."""
    assert constants.CLASS_CONNECTION == commands.Connection.frame_id
    assert constants.CLASS_CHANNEL == commands.Channel.frame_id
    assert constants.CLASS_EXCHANGE == commands.Exchange.frame_id
    assert constants.CLASS_QUEUE == commands.Queue.frame_id
    assert constants.CLASS_BASIC == commands.Basic.frame_id
    assert constants.CLASS_CONFIRM == commands.Confirm.frame_id
    assert constants.CLASS_TX == commands.Tx.frame_id


@pytest.mark.parametrize("ids, cls", [
    (constants.BASIC_PUBLISH, commands.Basic.Publish),
    (constants.BASIC_RETURN, commands.Basic.Return),
    (constants.BASIC_DELIVER, commands.Basic.Deliver),
    (constants.BASIC_GET_OK, commands.Basic.GetOk),
    (constants.BASIC_ACK, commands.Basic.Ack),
    (constants.BASIC_REJECT, commands.Basic.Reject),
    (constants.BASIC_NACK, commands.Basic.Nack),
], ids=lambda v: getattr(v, "name", None))
def test_hot_method_ids_match_spec(ids, cls):
    """Spec §1.8.3: (class-id, method-id) of the hot basic methods."""
    assert ids == (cls.index >> 16, cls.index & 0xFFFF)


def test_content_methods():
    """Spec §2.3.5.2: exactly publish, return, deliver and get-ok carry content."""
    assert constants.CONTENT_METHODS == {(60, 40), (60, 50), (60, 60), (60, 71)}


# --- AMQPError ------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(reply_codes.NAMES))
def test_connection_level_derived_from_code(code):
    """Spec §1.2: a soft-error code closes the channel, any other code the connection."""
    err = AMQPError(code, "x")
    assert err.connection_level is (code not in reply_codes.CHANNEL_LEVEL)


def test_connection_level_override():
    """docs/architecture.md "Errors": a soft code can be forced to close the connection (e.g. 403 during the handshake)."""
    assert AMQPError(403, "x", connection_level=True).connection_level is True
    assert AMQPError(541, "x", connection_level=False).connection_level is False


def test_shorthands():
    """docs/architecture.md "Errors": channel_error/connection_error fix the closing level."""
    ch = channel_error(404, "no queue")
    conn = connection_error(404, "no queue")
    assert (ch.reply_code, ch.connection_level) == (404, False)
    assert (conn.reply_code, conn.connection_level) == (404, True)
    assert isinstance(ch, AMQPError) and isinstance(ch, Exception)


def test_reply_text_prefixed_with_code_name():
    """RabbitMQ reply-text format: 'NOT_FOUND - no queue ...'."""
    err = AMQPError(404, "no queue 'q' in vhost '/'", 50, 10)
    assert err.reply_text == "NOT_FOUND - no queue 'q' in vhost '/'"
    assert str(err) == err.reply_text
    assert err.text == "no queue 'q' in vhost '/'"
    assert (err.reply_code, err.class_id, err.method_id) == (404, 50, 10)


def test_reply_text_unknown_code_uses_number():
    """Spec §1.2: an unnamed code is still rendered in reply-text."""
    assert AMQPError(999, "odd").reply_text == "999 - odd"


def test_reply_text_truncated_to_shortstr():
    """Spec §4.2.5.3: reply-text is a shortstr, at most 255 octets."""
    err = AMQPError(406, "x" * 1000)
    assert len(err.reply_text) == 255
    assert err.reply_text.startswith("PRECONDITION_FAILED - xxx")
    # the result must be encodable as a connection.close
    close = commands.Connection.Close(reply_code=406, reply_text=err.reply_text, class_id=0, method_id=0)
    pframe.marshal(close, 0)


def test_reply_text_truncated_to_255_bytes_with_non_ascii():
    """Spec §4.2.5.3: reply-text is a shortstr — at most 255 *octets* once UTF-8 encoded."""
    err = AMQPError(404, "no queue '" + "é" * 300 + "'")
    assert len(err.reply_text.encode("utf-8")) <= 255
    close = commands.Connection.Close(reply_code=404, reply_text=err.reply_text, class_id=0, method_id=0)
    pframe.marshal(close, 0)


def test_default_method_ids_are_zero():
    """Spec §1.4.2.9 connection.close: class-id/method-id 0 when no method is at fault."""
    err = AMQPError(541, "boom")
    assert (err.class_id, err.method_id) == (0, 0)


def test_for_method_fills_when_unset():
    """docs/architecture.md "Errors": the offending method's ids are filled in where the raiser did not know them."""
    err = connection_error(502, "bad")
    assert err.for_method(60, 40) is err
    assert (err.class_id, err.method_id) == (60, 40)


def test_for_method_keeps_ids_already_set():
    """docs/architecture.md "Errors": ids set by the raiser are not overwritten."""
    err = AMQPError(406, "bad", 50, 10)
    assert err.for_method(60, 40) is err
    assert (err.class_id, err.method_id) == (50, 10)


def test_for_method_twice_keeps_first():
    """docs/architecture.md "Errors": the innermost (first) method attribution wins."""
    err = connection_error(505, "x").for_method(60, 40).for_method(20, 10)
    assert (err.class_id, err.method_id) == (60, 40)


def test_error_is_raisable_and_catchable():
    """docs/architecture.md "Errors": one exception type carries the fields."""
    with pytest.raises(AMQPError) as info:
        raise channel_error(405, "locked")
    assert info.value.reply_code == 405
    assert "RESOURCE_LOCKED - locked" in str(info.value)
