"""SASL EXTERNAL in the handshake (RFC 4422 appendix A; rabbitmq.com/docs/ssl,
"Using Client Certificates for Authentication"): offered only with a
verified client certificate, the user is its CN, which must be a known
user; no password is asked for. Also protocol.handshake.looks_like_tls
(a TLS ClientHello on the plain port)."""

from __future__ import annotations

import pytest
from pamqp import commands
from pamqp import frame as pframe

from protocol import reply_codes
from protocol.errors import AMQPError
from protocol.handshake import AWAIT_TUNE_OK, Handshake, HandshakeRefused, looks_like_tls
from protocol.methods import decode_method
from protocol.sasl import certificate_user, offered_mechanisms

PEERCERT = {"subject": ((("organizationName", "Leveret tests"),), (("commonName", "alice"),)),
            "issuer": ((("commonName", "ca"),),)}


def started(cn: str | None, users=("alice",)) -> Handshake:
    """A handshake past connection.start for a connection whose verified
    certificate has CN ``cn`` (None: no certificate); ``users`` exist."""
    hs = Handshake({"product": "Leveret"}, 2047, 131072, 60, lambda user, password: (user, password) == (
        "guest", "guest"), {"/"}.__contains__, cn, lambda name: name in users)
    start = pframe.unmarshal(hs.on_protocol_header(b"AMQP\x00\x00\x09\x01"))[2]
    assert start.mechanisms.split()[-1:] == (["EXTERNAL"] if cn else ["AMQPLAIN"])
    return hs


#: a client that asks for connection.close on a failed login, as pika and aio-pika do
CLIENT_PROPERTIES = {"product": "pytest", "capabilities": {"authentication_failure_close": True}}


def send_start_ok(hs: Handshake, mechanism: str, response: str = "") -> bytes:
    start_ok = commands.Connection.StartOk(client_properties=CLIENT_PROPERTIES, mechanism=mechanism,
                                           response=response, locale="en_US")
    payload = pframe.marshal(start_ok, 0)[7:-1]
    return hs.on_method(decode_method(payload))


def test_certificate_user_is_the_subject_cn():
    assert certificate_user(PEERCERT) == "alice"
    assert certificate_user({"subject": ((("organizationName", "no cn"),),)}) is None
    assert certificate_user({}) is None  # CERT_NONE: no verified certificate
    assert certificate_user(None) is None


def test_external_offered_only_with_a_certificate_user():
    assert offered_mechanisms(None) == ("PLAIN", "AMQPLAIN")
    assert offered_mechanisms("alice") == ("PLAIN", "AMQPLAIN", "EXTERNAL")


def test_external_logs_in_as_the_certificate_user():
    hs = started("alice")
    tune = pframe.unmarshal(send_start_ok(hs, "EXTERNAL"))[2]
    assert isinstance(tune, commands.Connection.Tune)
    assert (hs.state, hs.username, hs.mechanism) == (AWAIT_TUNE_OK, "alice", "EXTERNAL")


def test_external_with_an_unknown_user_is_403():
    hs = started("mallory")
    with pytest.raises(AMQPError) as caught:
        send_start_ok(hs, "EXTERNAL")
    assert caught.value.reply_code == reply_codes.ACCESS_REFUSED
    assert "Login was refused using authentication mechanism EXTERNAL" in caught.value.reply_text


def test_external_without_a_certificate_is_not_a_mechanism():
    """RabbitMQ does not offer EXTERNAL then; a client that picks it anyway
    is refused like any unknown mechanism (socket closed, no frame)."""
    with pytest.raises(HandshakeRefused):
        send_start_ok(started(None), "EXTERNAL")


def test_plain_still_works_with_a_certificate():
    hs = started("alice")
    send_start_ok(hs, "PLAIN", "\x00guest\x00guest")
    assert hs.username == "guest"


@pytest.mark.parametrize("head, tls", [
    (b"\x16\x03\x01\x02\x00\x01\x00\x01", True),  # TLS 1.0-1.3 ClientHello record
    (b"\x16", True),
    (b"AMQP\x00\x00\x09\x01", False),
    (b"\x16\x01", False),
    (b"GET / HT", False),
])
def test_looks_like_tls(head, tls):
    assert looks_like_tls(head) is tls
