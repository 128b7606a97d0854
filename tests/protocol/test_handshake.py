"""protocol.handshake.Handshake: protocol header -> start/start-ok ->
tune/tune-ok -> open/open-ok (AMQP 0-9-1 spec §2.2.4 "Connection
Negotiation", §4.2.2 protocol header, §1.4.2 class connection). Client
methods are marshalled by pamqp and decoded through protocol.methods, server
frames are parsed back with pamqp."""

from __future__ import annotations

import struct

import pytest
from pamqp import commands
from pamqp import encode
from pamqp import frame as pframe
from pamqp.header import ProtocolHeader

from protocol import handshake as hsmod
from protocol import reply_codes
from protocol.constants import PROTOCOL_HEADER
from protocol.errors import AMQPError, connection_error
from protocol.handshake import BadProtocolHeader, Handshake
from protocol.methods import decode_method

SERVER_PROPERTIES = {
    "product": "Leveret",
    "version": "0.1.0",
    "platform": "Python 3.11",
    "capabilities": {"publisher_confirms": True, "exchange_exchange_bindings": True, "basic.nack": True,
                     "consumer_cancel_notify": True, "connection.blocked": True,
                     "authentication_failure_close": True, "per_consumer_qos": True},
}
USERS = {"guest": "guest", "us\u00e9r": "p\u00e4ss"}
VHOSTS = {"/", "prod"}


class Auth:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def __call__(self, username: str, password: str) -> bool:
        self.calls.append((username, password))
        return USERS.get(username) == password


def open_vhost(name: str) -> None:
    """The broker's check of connection.open, for the vhosts in VHOSTS."""
    if name not in VHOSTS:
        raise connection_error(reply_codes.NOT_ALLOWED, f"vhost {name} not found")


def make(channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60) -> tuple[Handshake, Auth]:
    auth = Auth()
    hs = Handshake(SERVER_PROPERTIES, channel_max, frame_max, heartbeat, auth, open_vhost)
    return hs, auth


def send(hs: Handshake, method) -> bytes:
    """Marshal a client method with pamqp, decode it as the broker would, feed it."""
    payload = pframe.marshal(method, 0)[7:-1]
    return hs.on_method(decode_method(payload))


def parse_one(data: bytes):
    used, channel, obj = pframe.unmarshal(data)
    assert used == len(data), "expected exactly one frame"
    assert channel == 0
    return obj


def start_ok(mechanism: str = "PLAIN", response: str = "\x00guest\x00guest", props: dict | None = None):
    default = {"product": "pytest", "capabilities": {"authentication_failure_close": True}}
    return commands.Connection.StartOk(client_properties=props if props is not None else default,
                                       mechanism=mechanism, response=response, locale="en_US")


def tune_ok(channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60):
    return commands.Connection.TuneOk(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat)


def to_tuning(**kw) -> Handshake:
    hs, _ = make(**kw)
    hs.on_protocol_header(PROTOCOL_HEADER)
    send(hs, start_ok())
    return hs


def to_opening(**kw) -> Handshake:
    hs = to_tuning(**kw)
    assert send(hs, tune_ok()) == b""
    return hs


def assert_error(excinfo, code: int, ids: tuple[int, int]) -> None:
    err = excinfo.value
    assert err.reply_code == code
    assert err.connection_level is True
    assert (err.class_id, err.method_id) == ids


# --- happy path -----------------------------------------------------------------------

def test_full_happy_path():
    """Spec §2.2.4: header -> start -> start-ok -> tune -> tune-ok -> open -> open-ok."""
    hs, auth = make()
    assert hs.state == hsmod.AWAIT_PROTOCOL_HEADER

    start = parse_one(hs.on_protocol_header(PROTOCOL_HEADER))
    assert isinstance(start, commands.Connection.Start)
    assert hs.state == hsmod.AWAIT_START_OK

    tune = parse_one(send(hs, start_ok(props={"product": "pytest", "capabilities": {"basic.nack": True}})))
    assert isinstance(tune, commands.Connection.Tune)
    assert auth.calls == [("guest", "guest")]
    assert hs.username == "guest"
    assert hs.mechanism == "PLAIN"
    assert hs.client_properties == {"product": "pytest", "capabilities": {"basic.nack": True}}
    assert hs.state == hsmod.AWAIT_TUNE_OK

    assert send(hs, tune_ok(2047, 131072, 60)) == b""
    assert hs.state == hsmod.AWAIT_OPEN

    open_ok = parse_one(send(hs, commands.Connection.Open(virtual_host="prod")))
    assert isinstance(open_ok, commands.Connection.OpenOk)
    assert hs.vhost == "prod"
    assert hs.state == hsmod.OPEN


def test_connection_start_contents():
    """Spec §1.4.2.1 connection.start: version 0-9, server-properties, mechanisms, locales."""
    hs, _ = make()
    start = parse_one(hs.on_protocol_header(PROTOCOL_HEADER))
    assert (start.version_major, start.version_minor) == (0, 9)
    assert start.server_properties == SERVER_PROPERTIES
    assert start.mechanisms == "PLAIN AMQPLAIN"
    assert "en_US" in start.locales.split()


def test_connection_start_is_method_frame_on_channel_zero():
    """Spec §4.2.4: connection.start is a type-1 frame on channel 0 ending in 0xCE."""
    hs, _ = make()
    data = hs.on_protocol_header(PROTOCOL_HEADER)
    ftype, channel, size = struct.unpack(">BHI", data[:7])
    assert (ftype, channel, size + 8, data[-1]) == (1, 0, len(data), 0xCE)
    assert data[7:11] == b"\x00\x0a\x00\x0a"


@pytest.mark.parametrize("channel_max, frame_max, heartbeat", [(2047, 131072, 60), (0, 4096, 0), (65535, 1 << 20, 580)])
def test_tune_carries_proposal(channel_max, frame_max, heartbeat):
    """Spec §1.4.2.5 connection.tune: the server proposes channel-max, frame-max, heartbeat."""
    hs, _ = make(channel_max, frame_max, heartbeat)
    hs.on_protocol_header(PROTOCOL_HEADER)
    tune = parse_one(send(hs, start_ok()))
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (channel_max, frame_max, heartbeat)


def test_amqplain_login():
    """RabbitMQ AMQPLAIN: start-ok with a LOGIN/PASSWORD table (no length prefix) logs in."""
    hs, auth = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    response = encode.field_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:].decode("ascii")
    tune = parse_one(send(hs, start_ok("AMQPLAIN", response)))
    assert isinstance(tune, commands.Connection.Tune)
    assert auth.calls == [("guest", "guest")] and hs.mechanism == "AMQPLAIN"


def test_plain_login_with_authzid_and_utf8():
    """RFC 4616 PLAIN: authzid is ignored; UTF-8 user names and passwords work."""
    hs, auth = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    send(hs, start_ok(response="admin\x00us\u00e9r\x00p\u00e4ss"))
    assert auth.calls == [("us\u00e9r", "p\u00e4ss")]
    assert hs.username == "us\u00e9r"


def test_start_ok_with_raw_bytes_response():
    """Spec §1.4.2.2: a start-ok response longstr that is not UTF-8 (pamqp gives bytes) is handled."""
    hs, auth = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    response = b"\xff\x00guest\x00guest"           # authzid with an invalid UTF-8 byte
    payload = (b"\x00\x0a\x00\x0b" + encode.field_table({}) + encode.short_string("PLAIN")
               + struct.pack(">I", len(response)) + response + encode.short_string("en_US"))
    method = decode_method(payload)
    assert isinstance(method.response, bytes)
    assert isinstance(parse_one(hs.on_method(method)), commands.Connection.Tune)
    assert auth.calls == [("guest", "guest")]


# --- tune-ok negotiation --------------------------------------------------------------

def test_tune_ok_channel_max_zero_means_server_value():
    """Spec §1.4.2.6 (brief rule): channel-max 0 from the client takes the server's value."""
    hs = to_tuning(channel_max=2047)
    send(hs, tune_ok(channel_max=0))
    assert hs.channel_max == 2047


@pytest.mark.parametrize("client", [1, 100, 2047])
def test_tune_ok_lower_channel_max_honoured(client):
    """Spec §1.4.2.6: a channel-max at or below the proposal is the negotiated value."""
    hs = to_tuning(channel_max=2047)
    send(hs, tune_ok(channel_max=client))
    assert hs.channel_max == client


def test_tune_ok_channel_max_above_proposal():
    """Spec §1.4.2.6 / RabbitMQ rabbit_reader: channel-max above the proposal is 530 NOT_ALLOWED."""
    hs = to_tuning(channel_max=2047)
    with pytest.raises(AMQPError) as info:
        send(hs, tune_ok(channel_max=4000))
    assert_error(info, reply_codes.NOT_ALLOWED, (10, 31))


@pytest.mark.parametrize("client", [4096, 8192, 131071, 131072])
def test_tune_ok_frame_max_honoured(client):
    """Spec §1.4.2.6: a frame-max in [4096, proposal] is the negotiated value."""
    hs = to_tuning(frame_max=131072)
    send(hs, tune_ok(frame_max=client))
    assert hs.frame_max == client


@pytest.mark.parametrize("client", [1, 512, 4095])
def test_tune_ok_frame_max_below_minimum(client):
    """Spec §4.2.1 FRAME_MIN_SIZE: a frame-max below 4096 is 530 NOT_ALLOWED on connection.tune-ok."""
    hs = to_tuning(frame_max=131072)
    with pytest.raises(AMQPError) as info:
        send(hs, tune_ok(frame_max=client))
    assert_error(info, reply_codes.NOT_ALLOWED, (10, 31))
    assert hs.state == hsmod.AWAIT_TUNE_OK


@pytest.mark.parametrize("client", [131073, 1 << 20, 2 ** 32 - 1])
def test_tune_ok_frame_max_above_proposal(client):
    """Spec §1.4.2.6: a frame-max above the server's proposal is 530 NOT_ALLOWED."""
    hs = to_tuning(frame_max=131072)
    with pytest.raises(AMQPError) as info:
        send(hs, tune_ok(frame_max=client))
    assert_error(info, reply_codes.NOT_ALLOWED, (10, 31))


@pytest.mark.parametrize("client", [0, 5, 60, 600])
def test_tune_ok_heartbeat_from_client(client):
    """Spec §1.4.2.6 / RabbitMQ: the heartbeat in tune-ok (0 = off) is the negotiated value."""
    hs = to_tuning(heartbeat=60)
    send(hs, tune_ok(heartbeat=client))
    assert hs.heartbeat == client


def test_tune_ok_returns_nothing_to_send():
    """Spec §2.2.4: the server answers tune-ok with nothing; the client sends connection.open next."""
    hs = to_tuning()
    assert send(hs, tune_ok()) == b""


# --- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("vhost", ["nope", "", "Prod", "/prod"])
def test_unknown_vhost(vhost):
    """Spec §1.4.2.7 / RabbitMQ: connection.open to an unknown vhost is 530 NOT_ALLOWED."""
    hs = to_opening()
    with pytest.raises(AMQPError) as info:
        send(hs, commands.Connection.Open(virtual_host=vhost))
    assert_error(info, reply_codes.NOT_ALLOWED, (10, 40))
    assert info.value.text == f"vhost {vhost} not found"
    assert hs.state == hsmod.AWAIT_OPEN


@pytest.mark.parametrize("mechanism, response", [
    ("PLAIN", "\x00guest\x00wrong"),
    ("PLAIN", "\x00nobody\x00guest"),
    ("AMQPLAIN", encode.field_table({"LOGIN": "guest", "PASSWORD": "nope"})[4:].decode("ascii")),
], ids=["plain-bad-password", "plain-unknown-user", "amqplain-bad-password"])
def test_bad_login(mechanism, response):
    """Spec §1.4.2.2 / RabbitMQ: a refused login is 403 ACCESS_REFUSED closing the connection,
    with class and method ids 0/0 as RabbitMQ sends them."""
    hs, auth = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    with pytest.raises(AMQPError) as info:
        send(hs, start_ok(mechanism, response))
    assert_error(info, reply_codes.ACCESS_REFUSED, (0, 0))
    assert info.value.reply_text.startswith(
        f"ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}")
    assert len(auth.calls) == 1
    assert hs.state == hsmod.AWAIT_START_OK


def test_bad_login_without_authentication_failure_close():
    """rabbitmq.com/auth-notification.html: a client that did not announce
    authentication_failure_close gets no connection.close for a refused login:
    the socket is closed (HandshakeRefused), as RabbitMQ does."""
    hs, auth = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    with pytest.raises(hsmod.HandshakeRefused) as info:
        send(hs, start_ok("PLAIN", "\x00guest\x00wrong", props={"product": "old client"}))
    assert "PLAIN" in str(info.value)
    assert len(auth.calls) == 1


@pytest.mark.parametrize("response", ["guest", "", "\x00a\x00b\x00c"])
def test_malformed_plain_response(response):
    """RFC 4616: a malformed PLAIN response is refused (403) without calling the authenticator."""
    hs, auth = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    with pytest.raises(AMQPError) as info:
        send(hs, start_ok("PLAIN", response))
    assert info.value.reply_code == reply_codes.ACCESS_REFUSED
    assert info.value.connection_level is True
    assert auth.calls == []


def test_unsupported_mechanism():
    """Spec §1.4.2.2: a mechanism not offered in connection.start is refused without
    authenticating; RabbitMQ closes the socket without a frame (HandshakeRefused)."""
    hs, auth = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    with pytest.raises(hsmod.HandshakeRefused) as info:
        send(hs, start_ok("EXTERNAL", ""))
    assert "EXTERNAL" in str(info.value)
    assert auth.calls == []


def test_amqplain_non_string_login_refused():
    """RabbitMQ AMQPLAIN: a malformed table is refused with 403, never an internal crash."""
    hs, _ = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    response = encode.field_table({"LOGIN": 5, "PASSWORD": "guest"})[4:].decode("ascii")
    with pytest.raises(AMQPError) as info:
        send(hs, start_ok("AMQPLAIN", response))
    assert info.value.reply_code == reply_codes.ACCESS_REFUSED


@pytest.mark.parametrize("stage, method, ids", [
    ("start-ok", tune_ok(), (10, 31)),
    ("start-ok", commands.Connection.Open(virtual_host="/"), (10, 40)),
    ("start-ok", commands.Channel.Open(), (20, 10)),
    ("tune-ok", start_ok(), (10, 11)),
    ("tune-ok", commands.Connection.Open(virtual_host="/"), (10, 40)),
    ("open", tune_ok(), (10, 31)),
    ("open", start_ok(), (10, 11)),
    ("open", commands.Basic.Publish(exchange="", routing_key="q"), (60, 40)),
    ("opened", commands.Connection.Open(virtual_host="/"), (10, 40)),
    ("opened", start_ok(), (10, 11)),
])
def test_wrong_method_order(stage, method, ids):
    """Spec §2.2.4: a method out of the negotiation order is 503 COMMAND_INVALID naming it."""
    hs, _ = make()
    hs.on_protocol_header(PROTOCOL_HEADER)
    if stage in ("tune-ok", "open", "opened"):
        send(hs, start_ok())
    if stage in ("open", "opened"):
        send(hs, tune_ok())
    if stage == "opened":
        send(hs, commands.Connection.Open(virtual_host="/"))
    before = hs.state
    with pytest.raises(AMQPError) as info:
        send(hs, method)
    assert_error(info, reply_codes.COMMAND_INVALID, ids)
    assert hs.state == before


def test_method_before_protocol_header():
    """Spec §4.2.2: nothing but the protocol header is valid first (503 for a method)."""
    hs, _ = make()
    with pytest.raises(AMQPError) as info:
        send(hs, start_ok())
    assert_error(info, reply_codes.COMMAND_INVALID, (10, 11))


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00",
    b"AMQP\x00\x00\x08\x00",
    b"AMQP\x00\x01\x00\x00",
    b"AMQP\x03\x01\x00\x00",
    b"GET / HT",
    b"\x16\x03\x01\x02\x00\x01\x00\x01",
    b"AMQP",
    b"",
    b"amqp\x00\x00\x09\x01",
], ids=["0-9-0", "0-8", "1-0", "amqp1-sasl", "http", "tls", "short", "empty", "lowercase"])
def test_bad_protocol_header(header):
    """Spec §4.2.2: any other header gets BadProtocolHeader (reply 'AMQP 0 0 9 1' and close)."""
    hs, _ = make()
    with pytest.raises(BadProtocolHeader):
        hs.on_protocol_header(header)
    assert hs.state == hsmod.AWAIT_PROTOCOL_HEADER


def test_bad_protocol_header_reply():
    """Spec §4.2.2: the server answers a bad header with the header it supports."""
    assert BadProtocolHeader.REPLY_HEADER == ProtocolHeader().marshal() == b"AMQP\x00\x00\x09\x01"
    assert issubclass(BadProtocolHeader, Exception)
    assert not issubclass(BadProtocolHeader, AMQPError)
