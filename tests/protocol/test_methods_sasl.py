"""protocol.methods (pamqp-backed method codec) and protocol.sasl (PLAIN and
AMQPLAIN responses of connection.start-ok). AMQP 0-9-1 spec §4.2.4 (method
payload), §1.4.2.2 (start-ok), RFC 4616 (PLAIN), RabbitMQ AMQPLAIN."""

from __future__ import annotations

import struct

import pytest
from pamqp import commands
from pamqp import encode
from pamqp import frame as pframe

from protocol import reply_codes
from protocol.errors import AMQPError
from protocol.methods import Method, decode_method, encode_method, method_ids
from protocol.sasl import MECHANISMS, parse_response

SAMPLES = [
    commands.Connection.StartOk(client_properties={"product": "pika", "capabilities": {"basic.nack": True}},
                                mechanism="PLAIN", response="\x00guest\x00guest", locale="en_US"),
    commands.Connection.TuneOk(channel_max=2047, frame_max=131072, heartbeat=60),
    commands.Connection.Open(virtual_host="/"),
    commands.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0),
    commands.Connection.CloseOk(),
    commands.Channel.Open(),
    commands.Channel.Close(reply_code=406, reply_text="PRECONDITION_FAILED - x", class_id=50, method_id=10),
    commands.Channel.Flow(active=False),
    commands.Exchange.Declare(exchange="logs", exchange_type="topic", durable=True,
                              arguments={"alternate-exchange": "ae"}),
    commands.Exchange.Bind(destination="d", source="s", routing_key="a.*", arguments={}),
    commands.Queue.Declare(queue="q1", durable=True, exclusive=False, auto_delete=True,
                           arguments={"x-max-length": 10, "x-message-ttl": 60000, "x-queue-type": "classic"}),
    commands.Queue.Bind(queue="q1", exchange="logs", routing_key="#", arguments={"x-match": "all"}),
    commands.Queue.Purge(queue="q1"),
    commands.Queue.Delete(queue="q1", if_unused=True, if_empty=True),
    commands.Basic.Qos(prefetch_count=100, global_=True),
    commands.Basic.Consume(queue="q1", consumer_tag="ct", no_ack=True, exclusive=True,
                           arguments={"x-priority": 5}),
    commands.Basic.Cancel(consumer_tag="ct", nowait=True),
    commands.Basic.Get(queue="q1", no_ack=True),
    commands.Basic.Recover(requeue=True),
    commands.Basic.Nack(delivery_tag=99, multiple=True, requeue=False),
    commands.Confirm.Select(nowait=False),
    commands.Tx.Select(),
    commands.Tx.Commit(),
]


def sample_id(m) -> str:
    return m.name


def payload_of(method) -> bytes:
    return pframe.marshal(method, 1)[7:-1]


def ids_of(method) -> tuple[int, int]:
    return method.index >> 16, method.index & 0xFFFF


# --- decode_method --------------------------------------------------------------------

@pytest.mark.parametrize("method", SAMPLES, ids=sample_id)
def test_decode_method_round_trip(method):
    """Spec §4.2.4: class id, method id and arguments decode to the same method."""
    decoded = decode_method(payload_of(method))
    assert isinstance(decoded, Method)
    assert type(decoded) is type(method)
    assert dict(decoded) == dict(method)


@pytest.mark.parametrize("method", SAMPLES, ids=sample_id)
def test_method_ids(method):
    """Spec §4.2.4: the payload starts with class-id and method-id shorts."""
    assert method_ids(payload_of(method)) == ids_of(method)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x3c", b"\x00\x3c\x00"])
def test_method_payload_shorter_than_ids(payload):
    """Spec §4.2.4: a method payload without both ids is 502 SYNTAX_ERROR."""
    for fn in (method_ids, decode_method):
        with pytest.raises(AMQPError) as info:
            fn(payload)
        assert info.value.reply_code == reply_codes.SYNTAX_ERROR
        assert info.value.connection_level is True


@pytest.mark.parametrize("class_id, method_id", [(60, 999), (99, 10), (10, 12), (85, 1), (65535, 65535)])
def test_unknown_method(class_id, method_id):
    """Spec §1.2: an unknown class or method is 540 NOT_IMPLEMENTED naming those ids."""
    with pytest.raises(AMQPError) as info:
        decode_method(struct.pack(">HH", class_id, method_id) + b"\x00" * 8)
    err = info.value
    assert err.reply_code == reply_codes.NOT_IMPLEMENTED
    assert err.connection_level is True
    assert (err.class_id, err.method_id) == (class_id, method_id)


# Truncating the last field of these methods is always detected by pamqp's decoders:
# the final field is a fixed-size number, a bit or a table.
STRICT_SAMPLES = [m for m in SAMPLES if m.name not in ("Connection.StartOk", "Channel.Open")]


@pytest.mark.parametrize("method", [m for m in STRICT_SAMPLES if len(payload_of(m)) > 4], ids=sample_id)
def test_truncated_arguments(method):
    """Spec §1.2: arguments that do not decode are 501 FRAME_ERROR (as RabbitMQ) naming the method."""
    payload = payload_of(method)
    for cut in range(4, len(payload)):
        with pytest.raises(AMQPError) as info:
            decode_method(payload[:cut])
        err = info.value
        assert err.reply_code == reply_codes.FRAME_ERROR, f"cut at {cut}"
        assert err.connection_level is True
        assert (err.class_id, err.method_id) == ids_of(method)


def test_truncated_start_ok_inside_response():
    """Spec §1.2: a start-ok cut inside its fields is 501 FRAME_ERROR (as RabbitMQ) naming connection.start-ok."""
    payload = payload_of(SAMPLES[0])
    for cut in range(4, len(payload) - len("en_US")):
        with pytest.raises(AMQPError) as info:
            decode_method(payload[:cut])
        assert info.value.reply_code == reply_codes.FRAME_ERROR, f"cut at {cut}"
        assert (info.value.class_id, info.value.method_id) == (10, 11)


def test_truncated_final_shortstr():
    """Spec §4.2.5.3: a shortstr shorter than its length octet is a malformed
    method: 501 FRAME_ERROR, as for any argument that does not decode (the
    lengths are checked by protocol/wire_check.py before pamqp decodes)."""
    payload = payload_of(SAMPLES[0])
    with pytest.raises(AMQPError) as info:
        decode_method(payload[:-1])
    assert info.value.reply_code == reply_codes.FRAME_ERROR


@pytest.mark.parametrize("field", ["queue", "routing_key"])
def test_invalid_utf8_shortstr(field):
    """Spec §4.2.5.3: shortstr fields that are not UTF-8 are 501 FRAME_ERROR (as RabbitMQ)."""
    q = b"\x02\xff\xfe" if field == "queue" else encode.short_string("q")
    rk = b"\x02\xff\xfe" if field == "routing_key" else encode.short_string("rk")
    payload = (b"\x00\x32\x00\x14" + b"\x00\x00" + q + encode.short_string("ex") + rk + b"\x00"
               + encode.field_table({}))
    with pytest.raises(AMQPError) as info:
        decode_method(payload)
    assert info.value.reply_code == reply_codes.FRAME_ERROR
    assert (info.value.class_id, info.value.method_id) == (50, 20)


def test_bad_field_table_type():
    """Spec §4.2.5.5 / RabbitMQ errata: an unknown field-table value type is 501 FRAME_ERROR (as RabbitMQ)."""
    table = b"\x01k" + b"Z" + b"\x00"             # key 'k', unknown type 'Z'
    payload = (b"\x00\x32\x00\x0a" + b"\x00\x00" + encode.short_string("q") + b"\x00"
               + struct.pack(">I", len(table)) + table)
    with pytest.raises(AMQPError) as info:
        decode_method(payload)
    assert info.value.reply_code == reply_codes.FRAME_ERROR
    assert (info.value.class_id, info.value.method_id) == (50, 10)


# --- encode_method --------------------------------------------------------------------

@pytest.mark.parametrize("method", SAMPLES, ids=sample_id)
@pytest.mark.parametrize("channel", [0, 1, 65535])
def test_encode_method_matches_pamqp(method, channel):
    """Spec §4.2.4: a method frame is type 1, channel, size, class/method ids, arguments, 0xCE."""
    assert encode_method(channel, method) == pframe.marshal(method, channel)


def test_encode_decode_round_trip_server_methods():
    """Spec §4.2.4: server-sent methods survive encode -> decode."""
    for method in [commands.Queue.DeclareOk(queue="amq.gen-1", message_count=3, consumer_count=1),
                   commands.Basic.ConsumeOk(consumer_tag="amq.ctag-1"),
                   commands.Connection.Blocked(reason="low on memory"), commands.Connection.Unblocked(),
                   commands.Basic.Cancel(consumer_tag="c")]:
        data = encode_method(3, method)
        decoded = decode_method(data[7:-1])
        assert type(decoded) is type(method) and dict(decoded) == dict(method)


# --- SASL PLAIN -----------------------------------------------------------------------

def test_mechanisms():
    """RabbitMQ access-control: the broker offers PLAIN and AMQPLAIN, in that order."""
    assert MECHANISMS == ("PLAIN", "AMQPLAIN")


@pytest.mark.parametrize("response, expected", [
    (b"\x00guest\x00guest", ("guest", "guest")),
    (b"admin\x00guest\x00s3cret", ("guest", "s3cret")),
    (b"\x00\x00", ("", "")),
    (b"\x00user\x00", ("user", "")),
    ("\x00gu\u00e9st\x00p\u00e4ss \U0001F407", ("gu\u00e9st", "p\u00e4ss \U0001F407")),
    ("\x00gu\u00e9st\x00p\u00e4ss".encode(), ("gu\u00e9st", "p\u00e4ss")),
], ids=["no-authzid", "authzid", "empty", "empty-password", "utf8-str", "utf8-bytes"])
def test_plain(response, expected):
    """RFC 4616 PLAIN: [authzid] NUL authcid NUL passwd."""
    assert parse_response("PLAIN", response) == expected


@pytest.mark.parametrize("response", [b"", b"guest", b"guest\x00guest", b"\x00a\x00b\x00c", "\x00only-one"],
                         ids=["empty", "no-nul", "one-nul", "three-nul", "str-one-nul"])
def test_plain_malformed(response):
    """RFC 4616 PLAIN: a response without exactly two NULs is rejected (None)."""
    assert parse_response("PLAIN", response) is None


def test_plain_str_and_bytes_agree():
    """Spec §1.4.2.2: response is a longstr; pamqp may hand it over as str or bytes."""
    raw = "authz\x00us\u00e9r\x00pw".encode()
    assert parse_response("PLAIN", raw) == parse_response("PLAIN", raw.decode()) == ("us\u00e9r", "pw")
    assert parse_response("PLAIN", bytearray(raw)) == ("us\u00e9r", "pw")


# --- SASL AMQPLAIN --------------------------------------------------------------------

def amqplain(table: dict) -> bytes:
    """An AMQPLAIN response as clients send it: a field table without its 4-byte length."""
    return encode.field_table(table)[4:]


@pytest.mark.parametrize("table, expected", [
    ({"LOGIN": "guest", "PASSWORD": "guest"}, ("guest", "guest")),
    ({"PASSWORD": "pw", "LOGIN": "bob"}, ("bob", "pw")),
    ({"LOGIN": "us\u00e9r", "PASSWORD": "p\u00e4ss", "EXTRA": 1}, ("us\u00e9r", "p\u00e4ss")),
    ({"LOGIN": "", "PASSWORD": ""}, ("", "")),
], ids=["guest", "reordered", "utf8-extra-key", "empty"])
def test_amqplain(table, expected):
    """RabbitMQ AMQPLAIN: a field table with LOGIN and PASSWORD long strings."""
    raw = amqplain(table)
    assert parse_response("AMQPLAIN", raw) == expected
    assert parse_response("AMQPLAIN", raw.decode("utf-8")) == expected


def test_amqplain_long_password():
    """RabbitMQ AMQPLAIN: long-string values longer than 255 bytes are fine."""
    pw = "p" * 1000
    assert parse_response("AMQPLAIN", amqplain({"LOGIN": "u", "PASSWORD": pw})) == ("u", pw)


@pytest.mark.parametrize("table", [{"LOGIN": "guest"}, {"PASSWORD": "guest"}, {}, {"login": "a", "password": "b"}],
                         ids=["no-password", "no-login", "empty", "lowercase-keys"])
def test_amqplain_missing_fields(table):
    """RabbitMQ AMQPLAIN: LOGIN and PASSWORD are both required (None otherwise)."""
    assert parse_response("AMQPLAIN", amqplain(table)) is None


@pytest.mark.parametrize("raw", [b"\x05LOGINZ", b"\x05LOGINS\x00\x00", b"\xff", b"\x05LOG"],
                         ids=["bad-type", "cut-length", "cut-key-length", "cut-key"])
def test_amqplain_malformed(raw):
    """RabbitMQ AMQPLAIN: a response that is not a field table is rejected (None)."""
    assert parse_response("AMQPLAIN", raw) is None


@pytest.mark.parametrize("table", [{"LOGIN": 5, "PASSWORD": "x"}, {"LOGIN": "x", "PASSWORD": True},
                                   {"LOGIN": {"a": 1}, "PASSWORD": "x"}],
                         ids=["int-login", "bool-password", "table-login"])
def test_amqplain_non_string_values(table):
    """RabbitMQ AMQPLAIN: LOGIN/PASSWORD that are not strings make the response malformed (None)."""
    assert parse_response("AMQPLAIN", amqplain(table)) is None


def test_amqplain_truncated_value():
    """RabbitMQ AMQPLAIN: a long string shorter than its declared length is malformed (None)."""
    raw = amqplain({"LOGIN": "guest", "PASSWORD": "guest"})
    assert parse_response("AMQPLAIN", raw[:-3]) is None


@pytest.mark.parametrize("mechanism", ["EXTERNAL", "plain", "CRAM-MD5", "", "RABBIT-CR-DEMO"])
def test_unknown_mechanism(mechanism):
    """RabbitMQ access-control: mechanisms other than PLAIN/AMQPLAIN are not handled (None)."""
    assert parse_response(mechanism, b"\x00guest\x00guest") is None
