"""``leveret users|permissions|vhosts`` on a running broker process, as an
operator runs them: rabbitmqctl's argument shapes and output, passwords
from stdin, and what the changes do to real AMQP clients (pika): a new user
logs in, a changed password takes over, cleared permissions refuse the
vhost, a deleted vhost closes its connections with 320."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from tests.interop.admin_helpers import connect_error, leveret, ok, user_url
from tests.interop.pika_helpers import pika_connection


@pytest.fixture
def broker(fresh_broker):
    return fresh_broker()


def test_users_lifecycle(broker):
    assert ok(broker, "users", "list") == "Listing users ...\nuser\ttags\nguest\t[administrator]\n"
    assert ok(broker, "users", "add", "h8_bob", stdin="first pw\n") == 'Adding user "h8_bob" ...\n'
    assert ok(broker, "permissions", "set", "h8_bob", ".*", ".*", ".*") == \
        'Setting permissions for user "h8_bob" in vhost "/" ...\n'
    assert connect_error(broker, "h8_bob", "first pw") is None

    ok(broker, "users", "set-password", "h8_bob", "second")
    assert connect_error(broker, "h8_bob", "first pw")[0] == 403
    assert connect_error(broker, "h8_bob", "second") is None

    ok(broker, "users", "set-tags", "h8_bob", "monitoring", "policymaker")
    assert ok(broker, "users", "list", "-q") == "user\ttags\nguest\t[administrator]\n" \
                                                "h8_bob\t[monitoring, policymaker]\n"
    assert '"name": "h8_bob"' in ok(broker, "users", "list", "--json")

    with pika_connection(user_url(broker, "h8_bob", "second")) as conn:
        ok(broker, "users", "delete", "h8_bob")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            conn.channel().queue_declare("h8_after_delete")
        assert (closed.value.reply_code, closed.value.reply_text) == \
            (320, "CONNECTION_FORCED - user 'h8_bob' is deleted")
    assert "h8_bob" not in ok(broker, "users", "list")
    assert connect_error(broker, "h8_bob", "second")[0] == 403
    assert "audit" in broker.log_text() and "second" not in broker.log_text()  # passwords never logged


def test_errors_are_reported_with_status_1(broker):
    ok(broker, "users", "add", "h8_carol", "pw")
    for args, message in (
        (("users", "add", "h8_carol", "pw"), 'User "h8_carol" already exists'),
        (("users", "delete", "h8_nobody"), 'User "h8_nobody" does not exist'),
        (("users", "set-password", "h8_nobody", "x"), 'User "h8_nobody" does not exist'),
        (("permissions", "set", "-p", "h8_novhost", "h8_carol", ".*", ".*", ".*"),
         'Virtual host "h8_novhost" does not exist'),
        (("permissions", "set", "h8_carol", "(", ".*", ".*"), "invalid regular expression '('"),
        (("permissions", "list", "-p", "h8_novhost"), 'Virtual host "h8_novhost" does not exist'),
        (("vhosts", "delete", "h8_novhost"), 'Virtual host "h8_novhost" does not exist'),
    ):
        done = leveret(broker, *args)
        assert done.returncode == 1, args
        assert message in done.stderr, (args, done.stderr)
    empty_stdin = leveret(broker, "users", "add", "h8_dave")
    assert empty_stdin.returncode == 1 and "no password" in empty_stdin.stderr
    assert "h8_dave" not in ok(broker, "users", "list")


def test_no_broker_running(tmp_path):
    class Stopped:
        data_dir = tmp_path

    done = leveret(Stopped, "vhosts", "list")
    assert done.returncode == 1
    assert f"no broker running on data directory {tmp_path}" in done.stderr


def test_permissions_list_set_clear(broker):
    ok(broker, "vhosts", "add", "h8_vh")
    ok(broker, "users", "add", "h8_erin", "pw")
    ok(broker, "permissions", "set", "-p", "h8_vh", "h8_erin", "^h8_", "", "^amq\\.")
    assert ok(broker, "permissions", "list", "-p", "h8_vh") == (
        'Listing permissions for vhost "h8_vh" ...\nuser\tconfigure\twrite\tread\nh8_erin\t^h8_\t\t^amq\\.\n')
    assert ok(broker, "permissions", "list", "--user", "h8_erin") == (
        'Listing permissions for user "h8_erin" ...\nvhost\tconfigure\twrite\tread\nh8_vh\t^h8_\t\t^amq\\.\n')
    assert ok(broker, "permissions", "list") == (  # the default vhost
        'Listing permissions for vhost "/" ...\nuser\tconfigure\twrite\tread\nguest\t.*\t.*\t.*\n')
    assert connect_error(broker, "h8_erin", "pw", "h8_vh") is None
    assert connect_error(broker, "h8_erin", "pw", "/") == \
        (530, "NOT_ALLOWED - access to vhost '/' refused for user 'h8_erin'")

    ok(broker, "permissions", "clear", "-p", "h8_vh", "h8_erin")
    assert ok(broker, "permissions", "list", "-p", "h8_vh", "-q") == "user\tconfigure\twrite\tread\n"
    assert connect_error(broker, "h8_erin", "pw", "h8_vh") == \
        (530, "NOT_ALLOWED - access to vhost 'h8_vh' refused for user 'h8_erin'")


def test_vhosts_add_list_delete(broker):
    assert ok(broker, "vhosts", "add", "h8_shop", "--description", "the shop", "--tags", "eu,prod") == \
        'Adding vhost "h8_shop" ...\n'
    ok(broker, "vhosts", "add", "h8_shop", "--description", "the shop", "--tags", "eu,prod")  # idempotent
    assert ok(broker, "vhosts", "list") == ("Listing vhosts ...\nname\tdescription\ttags\n"
                                            "/\tDefault virtual host\t[]\nh8_shop\tthe shop\t[eu, prod]\n")
    ok(broker, "permissions", "set", "-p", "h8_shop", "guest", ".*", ".*", ".*")
    with pika_connection(user_url(broker, "guest", "guest", "h8_shop")) as conn:
        ch = conn.channel()
        ch.queue_declare("h8_orders", durable=True)
        ch.basic_publish("", "h8_orders", b"order", pika.BasicProperties(delivery_mode=2))
        assert ok(broker, "vhosts", "delete", "h8_shop") == 'Deleting vhost "h8_shop" ...\n'
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
            ch.queue_declare("h8_orders", passive=True)
        assert (closed.value.reply_code, closed.value.reply_text) == \
            (320, "CONNECTION_FORCED - vhost 'h8_shop' is deleted")
    assert "h8_shop" not in ok(broker, "vhosts", "list")
    assert connect_error(broker, "guest", "guest", "h8_shop") == (530, "NOT_ALLOWED - vhost h8_shop not found")
