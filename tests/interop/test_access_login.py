"""Logins and connection.open with several users (rabbitmq.com/access-control.html,
rabbitmq.com/auth-notification.html): PLAIN and AMQPLAIN, the failed-login
answer with and without the authentication_failure_close capability, its
log line (user, client address, reason; never the password), vhost access
(530), the user-id check (406), the default user of a fresh data
directory (LEVERET_DEFAULT_USER/PASS/VHOST), and permission changes
reaching open connections."""

from __future__ import annotations

import aio_pika
import aiormq.exceptions
import pika
import pytest
from pamqp import commands as spec
from pika.exceptions import ChannelClosedByBroker, ProbableAccessDeniedError, ProbableAuthenticationError

from tests.interop.inprocess_broker import InProcessBroker
from tests.interop.pika_helpers import pika_connection
from tests.interop.raw_client import ConnectionLost, RawClient

SECRET = "s3cret-Pa55"


@pytest.fixture
def leveret(tmp_path):
    with InProcessBroker(tmp_path / "data") as broker:
        broker.admin("add_user", "bob", SECRET)
        broker.admin("add_vhost", "apps")
        broker.admin("set_permissions", "bob", "apps", ".*", ".*", ".*")
        yield broker


def connect(broker, user="bob", password=SECRET, vhost="apps"):
    return pika.BlockingConnection(pika.URLParameters(broker.url(user, password, vhost)))


def test_plain_login_and_vhost(leveret):
    with connect(leveret) as conn:
        conn.channel().queue_declare("q", auto_delete=True)


def test_amqplain_login(leveret):
    with RawClient(leveret.host, leveret.port) as raw:
        raw.handshake("bob", SECRET, "apps", mechanism="AMQPLAIN")
        raw.open_channel(1)


@pytest.mark.parametrize("user, password, reason", [
    ("bob", "not-the-password", "wrong password"),
    ("nobody", SECRET, "unknown user"),
])
def test_failed_login_is_403_and_logged_with_user_address_reason(leveret, user, password, reason):
    """issue 19: the log names the user, the client address and the reason; the password never."""
    with pytest.raises(ProbableAuthenticationError) as info:
        connect(leveret, user, password)
    assert "403" in str(info.value)
    assert "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN" in str(info.value)
    lines = [line for line in leveret.log_lines() if "login refused" in line]
    assert len(lines) == 1
    assert f"user '{user}'" in lines[0] and "127.0.0.1:" in lines[0] and lines[0].endswith(reason)
    assert not any(password in line for line in leveret.log_lines())


def test_failed_login_without_capability_closes_socket(leveret):
    """rabbitmq.com/auth-notification.html: no connection.close for a client
    that did not announce authentication_failure_close; the socket closes."""
    with RawClient(leveret.host, leveret.port) as raw:
        raw.begin()
        raw.login("bob", "wrong", client_properties={"product": "old client"})
        with pytest.raises(ConnectionLost):
            raw.next_frame(timeout=5)


def test_failed_login_with_capability_gets_connection_close(leveret):
    with RawClient(leveret.host, leveret.port) as raw:
        raw.begin()
        raw.login("bob", "wrong", "AMQPLAIN")
        close = raw.expect(spec.Connection.Close, 0)
    assert (close.reply_code, close.class_id, close.method_id) == (403, 0, 0)
    assert close.reply_text == ("ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. "
                                "For details see the broker logfile.")


def test_vhost_without_permission_is_530(leveret):
    with pytest.raises(ProbableAccessDeniedError) as info:
        connect(leveret, vhost="/")
    assert "530" in str(info.value) and "NOT_ALLOWED - access to vhost '/' refused for user 'bob'" in str(info.value)
    assert any("user 'bob' refused vhost '/'" in line for line in leveret.log_lines())


def test_user_id_must_be_the_user(leveret):
    with connect(leveret) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("amq.direct", "k", b"mine", pika.BasicProperties(user_id="bob"))
        with pytest.raises(ChannelClosedByBroker) as info:
            ch.basic_publish("amq.direct", "k", b"theirs", pika.BasicProperties(user_id="guest"))
    assert info.value.reply_code == 406
    assert info.value.reply_text == ("PRECONDITION_FAILED - user_id property set to 'guest' but authenticated "
                                     "user was 'bob'")


async def test_permission_change_reaches_open_connection_aio_pika(leveret):
    """A permission change applies at once to open connections, on the
    route cache's fast path too (a publish allowed before is refused after)."""
    connection = await aio_pika.connect(leveret.url("bob", SECRET, "apps"))
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue("orders", auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"1"), routing_key="orders")
        leveret.admin("set_permissions", "bob", "apps", ".*", "^nothing$", ".*")
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused) as info:
            await channel.default_exchange.publish(aio_pika.Message(b"2"), routing_key="orders")
    finally:
        await connection.close()
    assert "ACCESS_REFUSED - access to exchange 'amq.default' in vhost 'apps' refused for user 'bob'" in str(
        info.value)
    assert queue.name == "orders"


def test_deleted_user_connections_closed_with_320(leveret):
    conn = connect(leveret)
    leveret.admin("delete_user", "bob")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        conn.channel().queue_declare("q2")
    assert (info.value.reply_code, info.value.reply_text) == (320, "CONNECTION_FORCED - user 'bob' is deleted")
    with pytest.raises(ProbableAuthenticationError):
        connect(leveret)


def test_default_user_of_a_fresh_data_directory(fresh_broker, monkeypatch):
    """LEVERET_DEFAULT_USER/PASS/VHOST seed a fresh data directory (RabbitMQ's
    default_user): that user has full permissions on that vhost, and guest
    does not exist."""
    monkeypatch.setenv("LEVERET_DEFAULT_USER", "app")
    monkeypatch.setenv("LEVERET_DEFAULT_PASS", "app-secret")
    monkeypatch.setenv("LEVERET_DEFAULT_VHOST", "prod")
    proc = fresh_broker()
    with pika.BlockingConnection(pika.ConnectionParameters(proc.host, proc.port, "prod",
                                                           pika.PlainCredentials("app", "app-secret"))) as conn:
        ch = conn.channel()
        ch.queue_declare("work", durable=True)
        ch.exchange_declare("events", "topic")
    with pytest.raises(ProbableAuthenticationError):
        with pika_connection(proc):  # guest/guest
            pass


def test_cleared_then_restored_permissions_on_an_open_connection(leveret):
    conn = connect(leveret)
    try:
        leveret.admin("clear_permissions", "bob", "apps")
        assert leveret.admin("list_permissions", user="bob") == []
        with pytest.raises(ChannelClosedByBroker) as info:
            conn.channel().queue_declare("q3", auto_delete=True)
        assert info.value.reply_code == 403
        with pytest.raises(ProbableAccessDeniedError):
            connect(leveret)  # a new connection: 530 for the vhost
        leveret.admin("set_permissions", "bob", "apps", ".*", ".*", ".*")
        conn.channel().queue_declare("q3", auto_delete=True)  # the same connection is allowed again
    finally:
        conn.close()
