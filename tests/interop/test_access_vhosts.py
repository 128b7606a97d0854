"""Virtual hosts on a running broker (rabbitmq.com/vhosts.html): created
with the standard exchanges, deleted with everything in them: its
connections get 320 CONNECTION_FORCED "vhost 'v' is deleted" (RabbitMQ's
text, checked on the reference), its queues go with their stored messages
released from the WAL, its exchanges and bindings go, and none of it comes
back after a restart; other vhosts' connections notice nothing."""

from __future__ import annotations

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, ProbableAccessDeniedError

from broker.admin import AdminError, PermissionInfo
from storage.live_index import VHOST
from tests.interop.inprocess_broker import InProcessBroker

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def connect(broker, vhost):
    return pika.BlockingConnection(pika.URLParameters(broker.url("guest", "guest", vhost)))


def stored_messages(broker, vhost: str) -> int:
    """Messages of ``vhost`` the WAL's live index still holds."""
    return broker.on_loop(lambda server: sum(1 for entry in server.storage.backend.live.values()
                                             if entry[VHOST] == vhost))


def test_new_vhost_has_standard_exchanges(tmp_path):
    with InProcessBroker(tmp_path / "data") as broker:
        broker.admin("add_vhost", "fresh", "for tests")
        broker.admin("set_permissions", "guest", "fresh", ".*", ".*", ".*")
        assert [v.name for v in broker.admin("list_vhosts")] == ["/", "fresh"]
        with connect(broker, "fresh") as conn:
            ch = conn.channel()
            for name in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"):
                ch.exchange_declare(name, passive=True)


def test_delete_vhost_closes_its_connections_and_drops_everything(tmp_path):
    with InProcessBroker(tmp_path / "data") as broker:
        broker.admin("add_vhost", "doomed")
        broker.admin("set_permissions", "guest", "doomed", ".*", ".*", ".*")
        doomed = connect(broker, "doomed")
        ch = doomed.channel()
        ch.confirm_delivery()
        ch.exchange_declare("events", "fanout", durable=True)
        ch.queue_declare("work", durable=True)
        ch.queue_bind("work", "events")
        for n in range(5):
            ch.basic_publish("events", "", str(n).encode(), PERSISTENT)
        method, _props, _body = ch.basic_get("work")  # stays unacked: requeued when the connection closes
        assert method is not None and stored_messages(broker, "doomed") == 5
        bystander = connect(broker, "/")
        bystander.channel().queue_declare("kept", durable=True)

        broker.admin("delete_vhost", "doomed")

        with pytest.raises(ConnectionClosedByBroker) as info:
            ch.basic_get("work")
        assert (info.value.reply_code, info.value.reply_text) == (320, "CONNECTION_FORCED - vhost 'doomed' is deleted")
        assert stored_messages(broker, "doomed") == 0
        bystander.channel().queue_declare("kept", passive=True)  # another vhost notices nothing
        bystander.close()
        with pytest.raises(ProbableAccessDeniedError) as refused:
            connect(broker, "doomed")
        assert "NOT_ALLOWED - vhost doomed not found" in str(refused.value)
        assert [v.name for v in broker.admin("list_vhosts")] == ["/"]
        assert broker.admin("list_permissions", vhost="doomed") == []
        assert any("delete_vhost 'doomed' (1 connections closed, 1 queues with 5 messages deleted)" in line
                   for line in broker.log_lines())
    with InProcessBroker(tmp_path / "data") as broker:  # nothing comes back after a restart
        assert [v.name for v in broker.admin("list_vhosts")] == ["/"]
        broker.admin("add_vhost", "doomed")
        broker.admin("set_permissions", "guest", "doomed", ".*", ".*", ".*")
        with connect(broker, "doomed") as conn:
            with pytest.raises(ChannelClosedByBroker) as missing:
                conn.channel().queue_declare("work", passive=True)
            assert missing.value.reply_code == 404
            with pytest.raises(ChannelClosedByBroker) as missing:
                conn.channel().exchange_declare("events", passive=True)
            assert missing.value.reply_code == 404
        assert stored_messages(broker, "doomed") == 0


def test_admin_errors(tmp_path):
    with InProcessBroker(tmp_path / "data") as broker:
        with pytest.raises(AdminError) as info:
            broker.admin("delete_vhost", "missing")
        assert (info.value.kind, str(info.value)) == ("not_found", 'Virtual host "missing" does not exist')
        with pytest.raises(AdminError) as info:
            broker.admin("set_permissions", "guest", "missing", ".*", ".*", ".*")
        assert info.value.kind == "not_found"
        with pytest.raises(AdminError) as info:
            broker.admin("set_permissions", "guest", "/", "(", ".*", ".*")
        assert info.value.kind == "invalid"
        with pytest.raises(AdminError) as info:
            broker.admin("add_user", "guest", "again")
        assert (info.value.kind, str(info.value)) == ("exists", 'User "guest" already exists')
        assert broker.admin("list_permissions") == [PermissionInfo("guest", "/", ".*", ".*", ".*")]
