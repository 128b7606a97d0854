"""Connection class: handshake, login, tuning, heartbeats, close, shutdown.

AMQP 0-9-1 spec section 2.2.4 ("The Connection Class") and 4.2.3 (protocol
header); RabbitMQ docs: "Connections", "Authentication", "Heartbeats",
"Networking" (handshake_timeout). Expectations were checked against RabbitMQ 3.10.
"""

from __future__ import annotations

import threading
import time

import aio_pika
import pika
import pika.exceptions
import pytest
from pamqp import commands as spec

from tests.interop.pika_helpers import Bystander, pika_connection
from tests.interop.raw_client import (
    ACCESS_REFUSED, CHANNEL_ERROR, CONNECTION_FORCED, NOT_ALLOWED,
    PROTOCOL_HEADER, UNEXPECTED_FRAME, ConnectionLost, RawClient, assert_close, body_frame,
    connected, header_frame, method_frame,
)

CAPABILITIES = ["publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                "consumer_cancel_notify", "connection.blocked", "per_consumer_qos",
                "authentication_failure_close"]


def _as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ------------------------------------------------------------------ handshake

def test_connection_start_fields(broker):
    """Spec 1.4.2.1 connection.start: version 0-9, SASL mechanisms PLAIN and
    AMQPLAIN (RabbitMQ's defaults), locale en_US, server properties."""
    with RawClient.for_broker(broker) as client:
        start = client.begin()
        assert (start.version_major, start.version_minor) == (0, 9)
        assert {"PLAIN", "AMQPLAIN"} <= set(_as_text(start.mechanisms).split())
        assert "en_US" in _as_text(start.locales).split()
        props = start.server_properties
        for key in ("product", "version", "platform"):
            assert isinstance(_as_text(props[key]), str) and _as_text(props[key]), key
        for cap in CAPABILITIES:
            assert props["capabilities"].get(cap) is True, cap


def test_server_properties_seen_by_pika(broker):
    """RabbitMQ "Connections"/extensions: capabilities table announces every
    RabbitMQ extension a client may rely on."""
    with pika_connection(broker) as conn:
        props = conn._impl.server_properties
        assert {"product", "version", "platform", "capabilities"} <= set(props)
        for cap in CAPABILITIES:
            assert props["capabilities"].get(cap) is True, cap
        assert conn.channel().is_open


async def test_server_properties_seen_by_aio_pika(broker):
    """aio-pika/aiormq PLAIN login and capabilities (RabbitMQ extensions)."""
    conn = await aio_pika.connect(broker.url)
    try:
        caps = conn.transport.connection.server_capabilities
        for cap in CAPABILITIES:
            assert caps.get(cap) is True, cap
        channel = await conn.channel()
        queue = await channel.declare_queue("", exclusive=True)
        assert queue.name.startswith("amq.gen-")
    finally:
        await conn.close()


def test_tune_proposes_rabbitmq_defaults(broker):
    """Spec 1.4.2.5 connection.tune: RabbitMQ proposes channel_max 2047,
    frame_max 131072 and heartbeat 60 (rabbitmq.conf defaults)."""
    with RawClient.for_broker(broker) as client:
        client.begin()
        client.login()
        tune = client.read_tune()
        assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)


def test_amqplain_login(broker):
    """RabbitMQ "Authentication": AMQPLAIN (a field table with LOGIN and
    PASSWORD) is accepted like PLAIN."""
    with connected(broker, mechanism="AMQPLAIN") as client:
        ok = client.rpc(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk)
        assert ok.queue.startswith("amq.gen-")


@pytest.mark.parametrize("mechanism", ["PLAIN", "AMQPLAIN"])
@pytest.mark.parametrize("user,password", [("guest", "wrong"), ("nobody-here", "guest")])
def test_login_refused_raw(broker, mechanism, user, password):
    """RabbitMQ "Authentication failure notifications": a client announcing
    authentication_failure_close gets connection.close 403 ACCESS_REFUSED
    (class 0, method 0) instead of connection.tune, then the socket closes."""
    with Bystander(broker) as bystander, RawClient.for_broker(broker) as client:
        client.begin()
        client.login(user, password, mechanism)
        info = client.wait_connection_close()
        assert_close(info, ACCESS_REFUSED, 0, 0)
        assert mechanism in info.reply_text
        assert client.wait_socket_closed(5.0)
        bystander.check()


def test_login_refused_pika(broker):
    """pika sees the 403 as ProbableAuthenticationError (RabbitMQ
    "Authentication failure notifications")."""
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as err:
        pika.BlockingConnection(pika.ConnectionParameters(
            broker.host, broker.port, "/", pika.PlainCredentials("guest", "wrong"),
            connection_attempts=1, heartbeat=0))
    assert "(403)" in str(err.value) and "ACCESS_REFUSED" in str(err.value)


async def test_login_refused_aio_pika(broker):
    """aiormq raises ProbableAuthenticationError on connection.close 403."""
    url = broker.url.replace("guest:guest@", "guest:wrong@")
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(url)


def test_unknown_mechanism_closes_silently(broker):
    """RabbitMQ: an error before connection.tune (here an unknown SASL
    mechanism) closes the socket without any frame (handshake_error)."""
    with RawClient.for_broker(broker) as client:
        client.begin()
        client.login(mechanism="NO-SUCH-MECH", response=b"\x00guest\x00guest")
        with pytest.raises(ConnectionLost):
            client.next_frame(timeout=6.0)


def test_unknown_vhost_raw(broker):
    """Spec connection.open: unknown virtual host -> connection.close
    530 NOT_ALLOWED for connection.open (class 10, method 40)."""
    with RawClient.for_broker(broker) as client:
        client.begin()
        client.login()
        client.read_tune()
        client.tune_ok()
        client.open_vhost("no-such-vhost")
        info = client.wait_connection_close()
        assert_close(info, NOT_ALLOWED, 10, 40)
        assert "no-such-vhost" in info.reply_text
        assert client.wait_socket_closed(5.0)


def test_unknown_vhost_pika(broker):
    """pika reports the 530 as ProbableAccessDeniedError."""
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as err:
        pika.BlockingConnection(pika.ConnectionParameters(
            broker.host, broker.port, "no-such-vhost", pika.PlainCredentials("guest", "guest"),
            connection_attempts=1, heartbeat=0))
    assert "(530)" in str(err.value)


def test_second_connection_open_is_channel_error(broker):
    """RabbitMQ: connection.open on an open connection -> 504 CHANNEL_ERROR
    ("unexpected method in connection state running"), class 10 method 40."""
    with connected(broker, channel=None) as client:
        client.open_vhost("/")
        assert_close(client.wait_connection_close(), CHANNEL_ERROR, 10, 40)


def test_channel_open_before_connection_open(broker):
    """RabbitMQ: a channel method before connection.open-ok is
    505 UNEXPECTED_FRAME with class 0, method 0."""
    with RawClient.for_broker(broker) as client:
        client.begin()
        client.login()
        client.read_tune()
        client.tune_ok()
        client.send_method(1, spec.Channel.Open())
        assert_close(client.wait_connection_close(), UNEXPECTED_FRAME, 0, 0)
        assert client.wait_socket_closed(5.0)


# ------------------------------------------------------------------ tuning

def test_client_lowers_channel_max_and_frame_max(broker, unique):
    """Spec connection.tune-ok: the client may lower channel_max and
    frame_max; a 50 kB message then travels in 8 kB frames both ways."""
    with pika_connection(broker, channel_max=10, frame_max=8192) as conn:
        assert conn._impl.params.channel_max == 10
        assert conn._impl.params.frame_max == 8192
        ch = conn.channel()
        queue = ch.queue_declare(unique("q"), exclusive=True).method.queue
        body = bytes(range(256)) * 200
        ch.confirm_delivery()
        ch.basic_publish("", queue, body)
        method, _, got = ch.basic_get(queue, auto_ack=True)
        assert method is not None and got == body


def test_server_splits_bodies_to_negotiated_frame_max(broker, unique):
    """Spec 2.3.5.2 / 4.2.6: no frame the server sends is larger than the
    negotiated frame_max (here 4096), so a 10000-byte body comes in pieces."""
    with connected(broker, frame_max=4096) as client:
        queue = unique("q")
        client.rpc(1, spec.Queue.Declare(queue=queue, exclusive=True), spec.Queue.DeclareOk)
        body = b"0123456789" * 1000
        client.confirm_select(1)
        client.publish(1, "", queue, body[:4000])  # publishing side: keep under frame_max
        # second message built from several body frames of <= 4088 payload
        data = method_frame(1, spec.Basic.Publish(exchange="", routing_key=queue))
        data += header_frame(1, len(body))
        for i in range(0, len(body), 4088):
            data += body_frame(1, body[i:i + 4088])
        client.send(data)
        client.wait_acks(2)
        for expected in (body[:4000], body):
            client.send_method(1, spec.Basic.Get(queue=queue, no_ack=True))
            client.expect(spec.Basic.GetOk, 1)
            header = client.next_frame()
            assert header.type == 2
            got = b""
            while len(got) < len(expected):
                frame = client.next_frame()
                assert frame.type == 3, frame.name
                assert len(frame.payload) + 8 <= 4096
                got += frame.payload
            assert got == expected


def test_heartbeat_zero_accepted(broker):
    """Spec connection.tune-ok heartbeat=0: no heartbeats are sent and the
    idle connection is not closed."""
    with pika_connection(broker, heartbeat=0) as conn:
        assert conn._impl.params.heartbeat == 0
    with connected(broker, heartbeat=0) as client:
        with pytest.raises(TimeoutError):
            client.next_frame(timeout=1.5, skip_heartbeats=False)
        client.open_channel(2)


# ------------------------------------------------------------------ close

def test_client_close_gets_close_ok(broker):
    """Spec connection.close / close-ok: the server answers close-ok on channel 0."""
    with connected(broker) as client:
        client.send_method(0, spec.Connection.Close(reply_code=200, reply_text="bye",
                                                    class_id=0, method_id=0))
        client.expect(spec.Connection.CloseOk, 0)
    with pika_connection(broker) as conn:
        conn.channel()
        conn.close()
        assert conn.is_closed


@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00", b"HTTP/1.1", b"GET / HTTP/1.1\r\n\r\n",
    b"AMQP\x00\x01\x00\x00", b"AMQP\x00\x00\x08\x00",
])
def test_wrong_protocol_header(broker, header):
    """Spec 4.2.2: on a bad protocol header the server writes a valid header
    (AMQP 0-9-1) and closes the socket."""
    with RawClient.for_broker(broker) as client:
        client.send(header)
        assert client.read_bytes(8) == PROTOCOL_HEADER
        assert client.wait_socket_closed(5.0)


def test_handshake_timeout(fresh_broker):
    """RabbitMQ "Networking": handshake_timeout; a socket that never sends
    the protocol header, or stalls after connection.start, is closed: not
    before the timeout, and at all (the 30 s wait is a hang guard; with the
    timeout off the socket would stay open)."""
    proc = fresh_broker("--handshake-timeout", "1")
    with RawClient(proc.host, proc.port) as client:
        started = time.monotonic()
        assert client.wait_socket_closed(30.0)
        assert time.monotonic() - started >= 0.9
    with RawClient(proc.host, proc.port) as client:
        client.begin()
        started = time.monotonic()
        assert client.wait_socket_closed(30.0)
        assert time.monotonic() - started >= 0.9


# ------------------------------------------------------------------ heartbeats

def _silent_until_closed(client: RawClient, limit: float = 30.0) -> tuple[float, list[str]]:
    """Stay silent; return (seconds until the server closed, frames seen).
    ``limit`` is a hang guard: without heartbeat checks the server would
    keep the connection for ever."""
    started = time.monotonic()
    seen = []
    while time.monotonic() - started < limit:
        try:
            seen.append(client.next_frame(timeout=limit, skip_heartbeats=False).name)
        except (ConnectionLost, OSError):
            return time.monotonic() - started, seen
    raise AssertionError(f"server kept a silent connection for {limit}s: {seen}")


def test_silent_client_is_disconnected(broker):
    """Spec 4.2.7 / RabbitMQ "Heartbeats": with heartbeat 1 the server sends
    heartbeat frames and drops a client that sends nothing (RabbitMQ: after
    ~3 s, with no connection.close)."""
    with connected(broker, heartbeat=1) as client:
        elapsed, seen = _silent_until_closed(client)
        assert elapsed >= 1.5, elapsed      # not before two missed heartbeats
        assert seen and set(seen) == {"Heartbeat"}, seen


def test_server_heartbeat_setting(fresh_broker):
    """--heartbeat 1 is proposed in connection.tune; a silent client that
    accepted it is disconnected within a few seconds."""
    proc = fresh_broker("--heartbeat", "1")
    with RawClient(proc.host, proc.port) as client:
        client.begin()
        client.login()
        assert client.read_tune().heartbeat == 1
        client.tune_ok(heartbeat=1)
        client.open_vhost("/")
        client.expect(spec.Connection.OpenOk, 0)
        elapsed, seen = _silent_until_closed(client)
        assert elapsed >= 1.5, elapsed      # not before two missed heartbeats
        assert "Heartbeat" in seen


def _stay_busy(conn: pika.BlockingConnection, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)


def test_pika_heartbeats_keep_connection_alive(broker):
    """RabbitMQ "Heartbeats": a client that sends heartbeats (pika,
    heartbeat=1, processing events) stays connected well past the timeout."""
    with pika_connection(broker, heartbeat=1) as conn:
        assert conn._impl.params.heartbeat == 1
        _stay_busy(conn, 4.0)
        assert conn.is_open
        assert conn.channel().queue_declare("", exclusive=True).method.queue


def test_pika_accepts_server_heartbeat(fresh_broker):
    """pika accepting the server's --heartbeat 1 stays connected for 4 s."""
    proc = fresh_broker("--heartbeat", "1")
    with pika_connection(proc, heartbeat=None) as conn:
        assert conn._impl.params.heartbeat == 1
        _stay_busy(conn, 4.0)
        assert conn.channel().is_open


# ------------------------------------------------------------------ shutdown

def test_shutdown_sends_connection_forced(fresh_broker):
    """RabbitMQ on shutdown: every client gets connection.close
    320 CONNECTION_FORCED (class 0, method 0); the process exits with 0."""
    proc = fresh_broker()
    result = {}
    with connected(proc) as raw, pika_connection(proc) as conn:
        conn.channel()
        stopper = threading.Thread(target=lambda: result.setdefault("rc", proc.stop()))
        stopper.start()
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as err:
            _stay_busy(conn, 10.0)
        assert err.value.reply_code == CONNECTION_FORCED
        info = raw.wait_connection_close(timeout=10.0)
        assert_close(info, CONNECTION_FORCED, 0, 0)
        stopper.join(15)
    assert result.get("rc") == 0
