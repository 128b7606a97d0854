"""Fuzzing the method, property and field-table decoders of protocol/
with Hypothesis (issue 15): valid payloads decode to what was encoded;
arbitrary and mutated payloads raise only AMQPError (501 FRAME_ERROR for
arguments, 540 for unknown methods, 541 for content header properties);
and a content header that passes the door check always decodes later
(pamqp's ContentHeader.unmarshal, which the broker runs when it needs a
property)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pamqp import commands
from pamqp import frame as pframe
from pamqp.header import ContentHeader

from protocol import reply_codes
from protocol.errors import AMQPError
from protocol.hot_methods import (decode_content_header, decode_publish, decode_tag_bits, delivery_mode,
                                  header_priority)
from protocol.methods import decode_method
from protocol.sasl import parse_response
from protocol.wire_check import check_content_header
from tests.protocol.fuzz_strategies import FUZZ, client_methods, field_tables, mutated, properties

method_payloads = client_methods.map(lambda method: pframe.marshal(method, 1)[7:-1])
header_payloads = st.builds(lambda size, props: ContentHeader(0, size, props).marshal(), st.integers(0, 2**40),
                            properties)


def arguments(method) -> dict:
    return {name: getattr(method, name) for name in method.__slots__}


@FUZZ
@given(client_methods)
def test_valid_methods_decode_to_what_was_encoded(method):
    decoded = decode_method(pframe.marshal(method, 1)[7:-1])
    assert type(decoded) is type(method)
    again = decode_method(pframe.marshal(decoded, 1)[7:-1])
    assert arguments(again) == arguments(decoded)


@FUZZ
@given(st.one_of(mutated(method_payloads, keep=4), mutated(method_payloads), st.binary(max_size=64)))
def test_mutated_methods_raise_only_amqp_errors(payload):
    try:
        decode_method(payload)
    except AMQPError as error:
        assert error.reply_code in (reply_codes.FRAME_ERROR, reply_codes.SYNTAX_ERROR,
                                    reply_codes.NOT_IMPLEMENTED)


@FUZZ
@given(header_payloads)
def test_valid_content_headers_pass_the_check(header):
    check_content_header(header)
    assert decode_content_header(header)[0] == 60
    decoded = ContentHeader()
    decoded.unmarshal(header)
    assert delivery_mode(header) == (decoded.properties.delivery_mode or 0)
    assert header_priority(header) == (decoded.properties.priority or 0)


@FUZZ
@given(st.one_of(mutated(header_payloads, keep=12), st.binary(min_size=14, max_size=80).map(
    lambda data: b"\x00\x3c" + data[2:])))
def test_a_header_that_passes_the_check_decodes(header):
    try:
        check_content_header(header)
    except AMQPError as error:
        assert (error.reply_code, error.connection_level) == (reply_codes.INTERNAL_ERROR, True)
        return
    decoded = ContentHeader()
    decoded.unmarshal(header)  # must not raise
    assert decoded.properties is not None
    delivery_mode(header)
    header_priority(header)


@FUZZ
@given(st.one_of(mutated(method_payloads), st.binary(max_size=40)))
def test_hot_decoders_raise_only_amqp_errors(payload):
    for decode in (decode_publish, decode_content_header, lambda p: decode_tag_bits(p, "basic.ack")):
        try:
            decode(payload)
        except AMQPError as error:
            assert error.reply_code == reply_codes.FRAME_ERROR


@FUZZ
@given(st.one_of(field_tables.map(lambda table: pframe.marshal(commands.Connection.StartOk(
    client_properties={}, mechanism="AMQPLAIN", response=""), 0)[:0] + _amqplain(table)),
    st.binary(max_size=60)), st.sampled_from(["PLAIN", "AMQPLAIN", "EXTERNAL"]))
def test_sasl_responses_never_raise(response, mechanism):
    result = parse_response(mechanism, response)
    assert result is None or all(isinstance(part, str) for part in result)


def _amqplain(table: dict) -> bytes:
    """AMQPLAIN's response: a field table without its size prefix."""
    from pamqp import encode
    return encode.field_table(table)[4:]
