"""protocol.hot_methods (struct fast paths), checked against pamqp marshalling
and unmarshalling (AMQP 0-9-1 spec §1.8.3 class basic, §4.2.6 content header,
§2.3.5.2 content framing)."""

from __future__ import annotations

import itertools
import math

import pytest
from pamqp import body as pbody
from pamqp import commands
from pamqp import encode
from pamqp import frame as pframe
from pamqp import header as pheader

from protocol import reply_codes
from protocol.errors import AMQPError
from protocol.hot_methods import (content_frames, decode_content_header, decode_publish, decode_tag_bits,
                                  deliver_frames, deliver_prefix, get_ok_frames, return_frames, shortstr)


# pamqp validates exchange names against the 0-9-1 grammar (<=127 chars, ASCII);
# RabbitMQ accepts any UTF-8 shortstr, so the reference encoders skip validation.
class Publish(commands.Basic.Publish):
    def validate(self) -> None:
        pass


class Deliver(commands.Basic.Deliver):
    def validate(self) -> None:
        pass


class GetOk(commands.Basic.GetOk):
    def validate(self) -> None:
        pass


class Return(commands.Basic.Return):
    def validate(self) -> None:
        pass


def payload_of(method, channel: int = 1) -> bytes:
    return pframe.marshal(method, channel)[7:-1]


def unmarshal_all(data: bytes) -> list[tuple[int, object, int]]:
    """Every frame in ``data`` parsed by pamqp: (channel, object, frame length)."""
    out = []
    while data:
        used, channel, obj = pframe.unmarshal(data)
        out.append((channel, obj, used))
        data = data[used:]
    return out


def assert_syntax_error(excinfo) -> None:
    assert excinfo.value.reply_code == reply_codes.FRAME_ERROR
    assert excinfo.value.connection_level is True


NAMES = ["", "amq.direct", "x" * 127, "x" * 255, "交换机", "ключ.🐇.#", "é" * 127]


def props() -> commands.Basic.Properties:
    return commands.Basic.Properties(content_type="application/json", delivery_mode=2, priority=5,
                                     correlation_id="c-1", message_id="m-42", headers={"k": "v", "n": 3},
                                     expiration="60000", app_id="leveret-tests")


def header_payload(body_size: int, properties: commands.Basic.Properties | None = None) -> bytes:
    return pheader.ContentHeader(body_size=body_size, properties=properties or props()).marshal()


# --- basic.publish --------------------------------------------------------------------

@pytest.mark.parametrize("exchange", NAMES)
@pytest.mark.parametrize("routing_key", NAMES)
def test_decode_publish_names(exchange, routing_key):
    """Spec §1.8.3.7 basic.publish: ticket, exchange shortstr, routing-key shortstr, bits."""
    payload = payload_of(Publish(exchange=exchange, routing_key=routing_key))
    assert decode_publish(payload) == (exchange, routing_key, False, False)


@pytest.mark.parametrize("mandatory, immediate", list(itertools.product([False, True], repeat=2)))
def test_decode_publish_bits(mandatory, immediate):
    """Spec §1.8.3.7 basic.publish: mandatory is bit 0, immediate bit 1 of one octet."""
    payload = payload_of(Publish(exchange="ex", routing_key="rk", mandatory=mandatory, immediate=immediate))
    assert decode_publish(payload) == ("ex", "rk", mandatory, immediate)


def test_decode_publish_ignores_nonzero_ticket_and_reserved_bits():
    """Spec §1.8.3.7: the ticket field is reserved; unused bits of the octet are ignored."""
    payload = (b"\x00\x3c\x00\x28" + b"\x12\x34" + encode.short_string("e") + encode.short_string("r")
               + bytes([0b11111101]))
    assert decode_publish(payload) == ("e", "r", True, False)


def test_decode_publish_accepts_bytearray():
    """docs/architecture.md, "One publish" step 1: the decoder works on a bytearray as well as bytes."""
    payload = payload_of(Publish(exchange="e", routing_key="r", mandatory=True))
    assert decode_publish(bytearray(payload)) == ("e", "r", True, False)


@pytest.mark.parametrize("exchange, routing_key", [("", ""), ("ex", "rk"), ("x" * 255, "y" * 255), ("交换", "键")])
def test_decode_publish_truncated_everywhere(exchange, routing_key):
    """Spec §4.2.3/§1.2: a truncated basic.publish is 501 FRAME_ERROR (RabbitMQ's 'cannot decode') at every cut point."""
    payload = payload_of(Publish(exchange=exchange, routing_key=routing_key, mandatory=True))
    for cut in range(len(payload)):
        with pytest.raises(AMQPError) as info:
            decode_publish(payload[:cut])
        assert_syntax_error(info)


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"ab\x80"])
def test_decode_publish_invalid_utf8(bad):
    """Spec §4.2.5.3: shortstr names are UTF-8; invalid bytes are 501 FRAME_ERROR (RabbitMQ's 'cannot decode')."""
    ok = encode.short_string("ok")
    bad_str = bytes([len(bad)]) + bad
    for exchange, routing_key in [(bad_str, ok), (ok, bad_str)]:
        with pytest.raises(AMQPError) as info:
            decode_publish(b"\x00\x3c\x00\x28\x00\x00" + exchange + routing_key + b"\x00")
        assert_syntax_error(info)


# --- content header -------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 5, 131072, 2 ** 32 + 5, 2 ** 63, 2 ** 64 - 1])
def test_decode_content_header(size):
    """Spec §4.2.6: class-id (short), weight (short), body-size (longlong), property flags."""
    assert decode_content_header(header_payload(size)) == (60, size)


def test_decode_content_header_no_properties():
    """Spec §4.2.6: a header with no property flags set is exactly 14 bytes."""
    payload = pheader.ContentHeader(body_size=7, properties=commands.Basic.Properties()).marshal()
    assert len(payload) == 14
    assert decode_content_header(payload) == (60, 7)


def test_decode_content_header_reports_class():
    """Spec §4.2.6: the class-id field is returned as sent, for the assembler to check."""
    payload = b"\x00\x32\x00\x00" + (9).to_bytes(8, "big") + b"\x00\x00"
    assert decode_content_header(payload) == (50, 9)


def test_decode_content_header_truncated():
    """Spec §4.2.6: a header shorter than its 14 fixed bytes is 501 FRAME_ERROR (RabbitMQ's 'cannot decode')."""
    payload = header_payload(10)
    for cut in range(14):
        with pytest.raises(AMQPError) as info:
            decode_content_header(payload[:cut])
        assert_syntax_error(info)


# --- ack / nack / reject --------------------------------------------------------------

# pamqp encodes longlong as signed, so the pamqp-built cases stop at 2**63 - 1;
# the full unsigned range is checked with hand-built payloads below.
TAGS = [0, 1, 255, 2 ** 32, 2 ** 63 - 1]


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("multiple", [False, True])
def test_decode_ack(tag, multiple):
    """Spec §1.8.3.13 basic.ack: delivery-tag longlong, multiple = bit 0."""
    payload = payload_of(commands.Basic.Ack(delivery_tag=tag, multiple=multiple))
    assert decode_tag_bits(payload, "basic.ack") == (tag, int(multiple))


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("multiple, requeue", list(itertools.product([False, True], repeat=2)))
def test_decode_nack(tag, multiple, requeue):
    """RabbitMQ basic.nack extension: delivery-tag, multiple = bit 0, requeue = bit 1."""
    payload = payload_of(commands.Basic.Nack(delivery_tag=tag, multiple=multiple, requeue=requeue))
    tag_out, bits = decode_tag_bits(payload, "basic.nack")
    assert tag_out == tag
    assert (bool(bits & 1), bool(bits & 2)) == (multiple, requeue)


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize("requeue", [False, True])
def test_decode_reject(tag, requeue):
    """Spec §1.8.3.14 basic.reject: delivery-tag longlong, requeue = bit 0."""
    payload = payload_of(commands.Basic.Reject(delivery_tag=tag, requeue=requeue))
    assert decode_tag_bits(payload, "basic.reject") == (tag, int(requeue))


@pytest.mark.parametrize("method_id, what", [(80, "basic.ack"), (120, "basic.nack"), (90, "basic.reject")])
def test_decode_tag_bits_full_unsigned_range(method_id, what):
    """Spec §4.2.5.1 / §1.8.3.13: delivery-tag is an unsigned 64-bit integer."""
    payload = b"\x00\x3c" + method_id.to_bytes(2, "big") + b"\xff" * 8 + b"\x03"
    assert decode_tag_bits(payload, what) == (2 ** 64 - 1, 3)


@pytest.mark.parametrize("method, what", [(commands.Basic.Ack(delivery_tag=7, multiple=True), "basic.ack"),
                                          (commands.Basic.Nack(delivery_tag=7), "basic.nack"),
                                          (commands.Basic.Reject(delivery_tag=7), "basic.reject")],
                         ids=["ack", "nack", "reject"])
def test_decode_tag_bits_truncated(method, what):
    """Spec §1.8.3.13/14: a truncated ack/nack/reject is 501 FRAME_ERROR (RabbitMQ's 'cannot decode') naming the method."""
    payload = payload_of(method)
    assert len(payload) == 13
    for cut in range(13):
        with pytest.raises(AMQPError) as info:
            decode_tag_bits(payload[:cut], what)
        assert_syntax_error(info)
        assert what in info.value.text


# --- shortstr / deliver prefix --------------------------------------------------------

@pytest.mark.parametrize("value", NAMES)
def test_shortstr_matches_pamqp(value):
    """Spec §4.2.5.3: shortstr is a length octet then UTF-8 bytes."""
    assert shortstr(value) == encode.short_string(value)


def test_deliver_prefix():
    """Spec §1.8.3.9 basic.deliver: class 60, method 60, consumer-tag first."""
    assert deliver_prefix("ctag-1") == b"\x00\x3c\x00\x3c" + encode.short_string("ctag-1")


# --- basic.deliver --------------------------------------------------------------------

def erk(exchange: str, routing_key: str) -> bytes:
    return shortstr(exchange) + shortstr(routing_key)


@pytest.mark.parametrize("consumer_tag, tag, redelivered, exchange, routing_key", [
    ("amq.ctag-abc", 1, False, "amq.direct", "rk"),
    ("", 2 ** 63 - 1, True, "", ""),
    ("c" * 255, 42, True, "x" * 255, "y" * 255),
    ("消费者", 7, False, "交换", "ключ"),
])
def test_deliver_method_frame_matches_pamqp(consumer_tag, tag, redelivered, exchange, routing_key):
    """Spec §1.8.3.9 basic.deliver: the prebuilt-prefix encoding is byte-identical to pamqp's."""
    header = header_payload(3)
    out = deliver_frames(5, deliver_prefix(consumer_tag), tag, redelivered, erk(exchange, routing_key),
                         header, b"abc", 131072)
    ref = pframe.marshal(Deliver(consumer_tag=consumer_tag, delivery_tag=tag, redelivered=redelivered,
                                 exchange=exchange, routing_key=routing_key), 5)
    assert out.startswith(ref)
    frames = unmarshal_all(out)
    assert [type(o) for _, o, _ in frames] == [commands.Basic.Deliver, pheader.ContentHeader, pbody.ContentBody]
    ch, deliver, _ = frames[0]
    assert ch == 5
    assert (deliver.consumer_tag, deliver.delivery_tag, deliver.redelivered, deliver.exchange,
            deliver.routing_key) == (consumer_tag, tag, redelivered, exchange, routing_key)
    ch, hdr, _ = frames[1]
    assert ch == 5 and hdr.body_size == 3 and hdr.properties == props()
    ch, body, _ = frames[2]
    assert ch == 5 and body.value == b"abc"


def test_deliver_header_is_publishers_bytes_verbatim():
    """docs/architecture.md "Performance principles": the publisher's content-header bytes are sent back unchanged."""
    header = header_payload(4, commands.Basic.Properties(headers={"z": 1, "a": [1, 2, "x"]}, priority=9))
    out = deliver_frames(1, deliver_prefix("t"), 1, False, erk("e", "r"), header, b"body", 131072)
    frames = unmarshal_all(out)
    method_len = frames[0][2]
    assert out[method_len:method_len + 7 + len(header) + 1] == pframe._marshal(2, 1, header)


# --- basic.get-ok / basic.return ------------------------------------------------------

@pytest.mark.parametrize("tag, redelivered, exchange, routing_key, count", [
    (1, False, "amq.direct", "rk", 0),
    (2 ** 63 - 1, True, "", "q", 2 ** 32 - 1),
    (9, False, "交换", "键" * 80, 17),
])
def test_get_ok_frames(tag, redelivered, exchange, routing_key, count):
    """Spec §1.8.3.11 basic.get-ok: tag, redelivered, exchange, routing-key, message-count."""
    header = header_payload(5)
    out = get_ok_frames(3, tag, redelivered, erk(exchange, routing_key), count, header, b"hello", 131072)
    ref = pframe.marshal(GetOk(delivery_tag=tag, redelivered=redelivered, exchange=exchange,
                               routing_key=routing_key, message_count=count), 3)
    assert out.startswith(ref)
    frames = unmarshal_all(out)
    ch, get_ok, _ = frames[0]
    assert ch == 3 and isinstance(get_ok, commands.Basic.GetOk)
    assert (get_ok.delivery_tag, get_ok.redelivered, get_ok.exchange, get_ok.routing_key,
            get_ok.message_count) == (tag, redelivered, exchange, routing_key, count)
    assert frames[1][1].body_size == 5 and frames[1][1].properties == props()
    assert b"".join(o.value for _, o, _ in frames[2:]) == b"hello"


@pytest.mark.parametrize("code, text, exchange, routing_key", [
    (312, "NO_ROUTE", "amq.direct", "nowhere"),
    (313, "NO_CONSUMERS", "", ""),
    (312, "NO_ROUTE - é", "交换", "ключ"),
])
def test_return_frames(code, text, exchange, routing_key):
    """Spec §1.8.3.8 basic.return: reply-code, reply-text, exchange, routing-key."""
    header = header_payload(2)
    out = return_frames(9, code, text, erk(exchange, routing_key), header, b"hi", 131072)
    ref = pframe.marshal(Return(reply_code=code, reply_text=text, exchange=exchange, routing_key=routing_key), 9)
    assert out.startswith(ref)
    frames = unmarshal_all(out)
    ch, ret, _ = frames[0]
    assert ch == 9 and isinstance(ret, commands.Basic.Return)
    assert (ret.reply_code, ret.reply_text, ret.exchange, ret.routing_key) == (code, text, exchange, routing_key)
    assert frames[1][1].body_size == 2
    assert frames[2][1].value == b"hi"


# --- content framing ------------------------------------------------------------------

CHUNK_4096 = 4096 - 8


@pytest.mark.parametrize("size", [0, 1, CHUNK_4096 - 1, CHUNK_4096, CHUNK_4096 + 1, 2 * CHUNK_4096,
                                  3 * CHUNK_4096, 3 * CHUNK_4096 + 1, 100_000])
def test_content_frames_split(size):
    """Spec §4.2.6.2: body frames <= frame_max, none for an empty body, no empty trailing frame."""
    frame_max = 4096
    body = bytes(i % 251 for i in range(size))
    header = header_payload(size)
    out = content_frames(4, header, body, frame_max)
    frames = unmarshal_all(out)
    assert isinstance(frames[0][1], pheader.ContentHeader)
    assert frames[0][1].body_size == size
    bodies = frames[1:]
    assert len(bodies) == math.ceil(size / CHUNK_4096)
    assert all(isinstance(o, pbody.ContentBody) and ch == 4 for ch, o, _ in bodies)
    assert all(used <= frame_max for _, _, used in frames)
    assert all(len(o.value) == CHUNK_4096 for _, o, _ in bodies[:-1])
    assert all(len(o.value) > 0 for _, o, _ in bodies)
    assert b"".join(o.value for _, o, _ in bodies) == body
    # byte-identical to pamqp building the same frames
    ref = pframe.marshal(pheader.ContentHeader(body_size=size, properties=props()), 4) + b"".join(
        pframe.marshal(pbody.ContentBody(body[i:i + CHUNK_4096]), 4) for i in range(0, size, CHUNK_4096))
    assert out == ref


@pytest.mark.parametrize("frame_max", [4096, 4097, 5000, 131072])
def test_content_frames_every_frame_within_frame_max(frame_max):
    """Spec §4.2.1: no frame, header or body, exceeds the negotiated frame_max."""
    body = b"q" * 300_001
    out = content_frames(1, header_payload(len(body)), body, frame_max)
    frames = unmarshal_all(out)
    assert max(used for _, _, used in frames) == frame_max
    assert sum(len(o.value) for _, o, _ in frames[1:]) == len(body)


def test_deliver_full_unsigned_delivery_tag():
    """Spec §1.8.3.9: delivery-tag is an unsigned 64-bit integer on the wire."""
    out = deliver_frames(1, deliver_prefix("t"), 2 ** 64 - 1, False, erk("", "q"), header_payload(0), b"", 4096)
    # frame header (7) + class/method (4) + shortstr "t" (2) -> delivery-tag
    assert out[13:21] == b"\xff" * 8
    assert out[21] == 0


def test_zero_length_body_deliver_has_no_body_frame():
    """Spec §4.2.6.2: a zero-size body is sent as method + header only."""
    out = deliver_frames(1, deliver_prefix("t"), 1, False, erk("", "q"), header_payload(0), b"", 4096)
    frames = unmarshal_all(out)
    assert [type(o) for _, o, _ in frames] == [commands.Basic.Deliver, pheader.ContentHeader]
    assert frames[1][1].body_size == 0


def test_small_frame_max_deliver_splits_body():
    """Spec §4.2.6.2: basic.deliver with a body larger than frame_max spans several body frames."""
    body = bytes(range(256)) * 40                      # 10240 bytes
    out = deliver_frames(2, deliver_prefix("t"), 5, True, erk("e", "r"), header_payload(len(body)), body, 4096)
    frames = unmarshal_all(out)
    assert [type(o) for _, o, _ in frames] == (
        [commands.Basic.Deliver, pheader.ContentHeader] + [pbody.ContentBody] * 3)
    assert b"".join(o.value for _, o, _ in frames[2:]) == body
    assert all(used <= 4096 for _, _, used in frames)
