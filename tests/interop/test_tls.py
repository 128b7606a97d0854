"""amqps against a real broker process, with certificates the test makes
(tests/interop/tls_certs.py): server-only TLS, mutual TLS, SASL EXTERNAL
(the user is the client certificate's CN), refused certificates, TLS
below 1.2, and a TLS client on the plain port or a plain client on the TLS
port. Each refusal closes that socket only, with a log line naming the
peer; a bystander connection opened before it keeps working
(rabbitmq.com/docs/ssl, rabbitmq.com/docs/troubleshooting-ssl)."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aio_pika
import pika
import pika.credentials
import pika.exceptions
import pytest

from tests.interop.conftest import EXTERNAL_URL
from tests.interop.lifecycle_helpers import wait_until
from tests.interop.pika_helpers import Bystander, pika_connection
from tests.interop.raw_client import ACCESS_REFUSED, PROTOCOL_HEADER, RawClient
from tests.interop.server_process import BrokerProcess, free_port
from tests.interop.tls_certs import PKI, Pair, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def start_tls_broker(directory, *args: str) -> BrokerProcess:
    """A broker with plain AMQP on ``port`` and amqps on ``tls_port``."""
    if EXTERNAL_URL:
        pytest.skip("needs its own Leveret process")
    proc = BrokerProcess(directory / "data")
    proc.tls_port = free_port()
    while proc.tls_port == proc.port:
        proc.tls_port = free_port()
    proc.extra_args = ["--tls-port", str(proc.tls_port), *args]
    return proc.start()


@pytest.fixture(scope="module")
def server_only(pki, tmp_path_factory):
    """amqps with a server certificate; no client certificate asked for."""
    proc = start_tls_broker(tmp_path_factory.mktemp("server-only"), *pki.server_args())
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def mutual(pki, tmp_path_factory):
    """amqps with --tls-verify peer: a client certificate signed by the CA is required."""
    proc = start_tls_broker(tmp_path_factory.mktemp("mutual"), *pki.server_args("peer"))
    yield proc
    proc.stop()


def tls_params(proc: BrokerProcess, context: ssl.SSLContext, **overrides) -> dict:
    """pika overrides for the amqps port of ``proc``, checking its name."""
    return dict(host="localhost", port=proc.tls_port,
                ssl_options=pika.SSLOptions(context, server_hostname="localhost"), **overrides)


def round_trip(conn: pika.BlockingConnection, body: bytes) -> bytes:
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, body)
    method, _, got = channel.basic_get(queue, auto_ack=True)
    assert method is not None
    return got


def raw_tls(proc: BrokerProcess, context: ssl.SSLContext) -> RawClient:
    """A RawClient whose socket speaks TLS to the amqps port."""
    client = RawClient("127.0.0.1", proc.tls_port)
    client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    return client


def refused_tls(proc: BrokerProcess, context: ssl.SSLContext) -> int:
    """Open a TLS session that the broker must refuse: the handshake, or
    (TLS 1.3: the client finishes first) the first read fails or sees the
    socket closed. Returns the client's local port, for the log line."""
    sock = socket.create_connection(("127.0.0.1", proc.tls_port), timeout=5)
    local_port = sock.getsockname()[1]
    try:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(PROTOCOL_HEADER)
            assert tls.recv(100) == b"", "the broker answered a refused TLS client"
    except (ssl.SSLError, ConnectionError):
        pass
    finally:
        sock.close()
    return local_port


def log_line(proc: BrokerProcess, peer_port: int, text: str) -> str:
    """Wait for the broker's log line about the connection from
    ``peer_port`` that contains ``text``; return it."""
    def find():
        return next((line for line in proc.log_text().splitlines()
                     if f"127.0.0.1:{peer_port} -> " in line and text in line), None)
    return wait_until(find, timeout=10) and find()


# ---- server-only TLS ------------------------------------------------------

def test_pika_publishes_and_gets_over_amqps(server_only, pki):
    with pika_connection(server_only, **tls_params(server_only, pki.client_context())) as conn:
        assert round_trip(conn, b"over tls") == b"over tls"


def test_aio_pika_publishes_and_consumes_over_amqps(server_only, pki):
    async def scenario() -> bytes:
        connection = await aio_pika.connect(f"amqps://guest:guest@localhost:{server_only.tls_port}/",
                                            ssl_context=pki.client_context(), timeout=10)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            queue = await channel.declare_queue(exclusive=True)
            await channel.default_exchange.publish(aio_pika.Message(b"aio over tls"), routing_key=queue.name)
            async with queue.iterator() as messages:
                async for message in messages:
                    await message.ack()
                    return message.body
        raise AssertionError("no message")

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == b"aio over tls"


def test_external_is_not_offered_without_a_client_certificate(server_only, pki):
    with raw_tls(server_only, pki.client_context()) as client:
        assert client.begin().mechanisms.split() == ["PLAIN", "AMQPLAIN"]


def test_tls_client_on_the_plain_port_gets_a_clean_close(server_only, pki):
    """The broker answers a ClientHello with AMQP's protocol header and
    closes, as RabbitMQ does: the client's handshake fails at once."""
    with Bystander(server_only) as bystander:
        sock = socket.create_connection(("127.0.0.1", server_only.port), timeout=5)
        local_port = sock.getsockname()[1]
        with pytest.raises(ssl.SSLError):
            pki.client_context().wrap_socket(sock, server_hostname="localhost")
        sock.close()
        assert "TLS handshake" in log_line(server_only, local_port, "bad protocol header")
        bystander.check()


def test_plain_client_on_the_tls_port_gets_a_clean_close(server_only, pki):
    with Bystander(server_only) as bystander, \
            pika_connection(server_only, **tls_params(server_only, pki.client_context())) as tls_conn:
        client = RawClient("127.0.0.1", server_only.tls_port)
        local_port = client.sock.getsockname()[1]
        client.send(PROTOCOL_HEADER)
        assert client.wait_socket_closed()
        client.close()
        assert "plain AMQP on the amqps port" in log_line(server_only, local_port, "TLS handshake failed")
        bystander.check()
        assert round_trip(tls_conn, b"tls bystander") == b"tls bystander"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(server_only, pki):
    context = pki.client_context()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    local_port = refused_tls(server_only, context)
    assert log_line(server_only, local_port, "TLS handshake failed")


# ---- mutual TLS and EXTERNAL ---------------------------------------------

def test_external_logs_in_as_the_certificate_cn(mutual, pki):
    context = pki.client_context(pki.client)
    with raw_tls(mutual, context) as client:
        assert "EXTERNAL" in client.begin().mechanisms.split()
    with pika_connection(mutual, **tls_params(mutual, context,
                                              credentials=pika.credentials.ExternalCredentials())) as conn:
        assert round_trip(conn, b"external") == b"external"
    assert "user 'guest' opened vhost '/'" in mutual.log_text()


def test_plain_login_works_with_mutual_tls(mutual, pki):
    with pika_connection(mutual, **tls_params(mutual, pki.client_context(pki.client))) as conn:
        assert round_trip(conn, b"plain over mutual tls") == b"plain over mutual tls"


def test_external_with_an_unknown_user_is_refused_403(mutual, pki):
    """A trusted certificate whose CN names no user: connection.close 403."""
    with Bystander(mutual) as bystander:
        with raw_tls(mutual, pki.client_context(pki.stranger)) as client:
            client.begin()
            client.login(mechanism="EXTERNAL", response=b"")
            info = client.wait_connection_close()
        assert info.reply_code == ACCESS_REFUSED
        assert "Login was refused using authentication mechanism EXTERNAL" in info.reply_text
        bystander.check()


@pytest.mark.parametrize("who", ["no certificate", "untrusted CA"])
def test_client_certificate_missing_or_untrusted_is_refused(mutual, pki, who):
    pair: Pair | None = None if who == "no certificate" else pki.rogue
    with Bystander(mutual) as bystander:
        local_port = refused_tls(mutual, pki.client_context(pair))
        assert log_line(mutual, local_port, "TLS handshake failed")
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            with pika_connection(mutual, **tls_params(mutual, pki.client_context(pair))):
                pass
        bystander.check()
