"""Limits with RabbitMQ 3.10's reply codes and texts (checked against the
reference): per vhost max-connections (530 on connection.open) and
max-queues (406 on queue.declare), per user max-connections (530) and
max-channels (530 closing the connection); a negative value lifts a
limit, and the limit counts only what is open now."""

from __future__ import annotations

import pika
import pytest
from pamqp import commands as spec
from pika.exceptions import ChannelClosedByBroker, ProbableAccessDeniedError

from broker.admin import AdminError
from tests.interop.inprocess_broker import InProcessBroker
from tests.interop.raw_client import RawClient


@pytest.fixture
def leveret(tmp_path):
    with InProcessBroker(tmp_path / "data") as broker:
        broker.admin("add_user", "carol", "pw")
        broker.admin("add_vhost", "limited")
        broker.admin("set_permissions", "carol", "limited", ".*", ".*", ".*")
        yield broker


def connect(broker, vhost="limited"):
    return pika.BlockingConnection(pika.URLParameters(broker.url("carol", "pw", vhost)))


def refusal(broker, vhost="limited") -> str:
    with pytest.raises(ProbableAccessDeniedError) as info:
        connect(broker, vhost)
    return str(info.value)


def test_vhost_max_connections(leveret):
    leveret.admin("set_vhost_limits", "limited", {"max-connections": 2})
    first, second = connect(leveret), connect(leveret)
    assert ("530) \"NOT_ALLOWED - access to vhost 'limited' refused for user 'carol': connection limit (2) "
            "is reached\"") in refusal(leveret)
    first.close()
    third = connect(leveret)  # a closed connection no longer counts
    leveret.admin("set_vhost_limits", "limited", {"max-connections": -1})  # negative: no limit
    fourth = connect(leveret)
    for conn in (second, third, fourth):
        conn.close()


def test_vhost_max_queues(leveret):
    leveret.admin("set_vhost_limits", "limited", {"max-queues": 1})
    with connect(leveret) as conn:
        ch = conn.channel()
        ch.queue_declare("one")
        ch.queue_declare("one")  # redeclaring an existing queue is not a new queue
        with pytest.raises(ChannelClosedByBroker) as info:
            ch.queue_declare("two")
        ch = conn.channel()
        ch.queue_delete("one")
        ch.queue_declare("two")  # room again
    assert (info.value.reply_code, info.value.reply_text) == (
        406, "PRECONDITION_FAILED - cannot declare queue 'two': queue limit in vhost 'limited' (1) is reached")


def test_user_max_connections(leveret):
    leveret.admin("add_vhost", "other")
    leveret.admin("set_permissions", "carol", "other", ".*", ".*", ".*")
    leveret.admin("set_user_limits", "carol", {"max-connections": 1})
    with connect(leveret):
        text = refusal(leveret, "other")  # counted across vhosts
    assert "NOT_ALLOWED - connection refused for user 'carol': user connection limit (1) is reached" in text


def test_user_max_channels_closes_the_connection(leveret):
    leveret.admin("set_user_limits", "carol", {"max-channels": 2})
    with RawClient(leveret.host, leveret.port) as other, RawClient(leveret.host, leveret.port) as raw:
        other.handshake("carol", "pw", "limited")
        other.open_channel(1)  # counted across the user's connections
        raw.handshake("carol", "pw", "limited")
        raw.open_channel(1)
        raw.send_method(2, spec.Channel.Open())
        close = raw.expect(spec.Connection.Close, 0)
        other.rpc(1, spec.Basic.Qos(prefetch_count=1), spec.Basic.QosOk)  # the other connection is fine
    assert (close.reply_code, close.class_id, close.method_id) == (530, 0, 0)
    assert close.reply_text == ("NOT_ALLOWED - number of channels opened for user 'carol' has reached the "
                                "maximum allowed user limit of (2)")


def test_invalid_limits_are_refused(leveret):
    with pytest.raises(AdminError) as info:
        leveret.admin("set_vhost_limits", "limited", {"max-channels": 1})
    assert info.value.kind == "invalid" and "unknown vhost limit 'max-channels'" in str(info.value)
    with pytest.raises(AdminError) as info:
        leveret.admin("set_user_limits", "carol", {"max-connections": "ten"})
    assert info.value.kind == "invalid"
    with pytest.raises(AdminError) as info:
        leveret.admin("set_user_limits", "nobody", {"max-connections": 1})
    assert info.value.kind == "not_found"
    assert leveret.admin("list_user_limits") == {}
