"""Channel class: open/close, flow, channel_max and channel-number errors.

AMQP 0-9-1 spec section 2.2.5 / 1.5 ("The Channel Class"), 2.3.7 (closing);
RabbitMQ docs: "Channels" (channel_max), "Spec differences" (channel.flow).
Expectations were checked against RabbitMQ 3.10.
"""

from __future__ import annotations

import pika.exceptions
import pytest
from pamqp import commands as spec

from tests.interop.pika_helpers import Bystander, channel_error, pika_connection
from tests.interop.raw_client import (
    CHANNEL_ERROR, COMMAND_INVALID, NOT_ALLOWED, NOT_FOUND, NOT_IMPLEMENTED, assert_close,
    connected,
)


def test_open_and_close_several_channels_pika(broker, unique):
    """Spec 2.2.5: a connection carries several independent channels; closing
    one leaves the others working."""
    with pika_connection(broker) as conn:
        channels = [conn.channel() for _ in range(5)]
        assert len({ch.channel_number for ch in channels}) == 5
        queue = channels[0].queue_declare(unique("q"), exclusive=True).method.queue
        channels[2].close()
        assert channels[2].is_closed
        for ch in channels[:2] + channels[3:]:
            ch.basic_publish("", queue, b"x")
            assert ch.queue_declare(queue, passive=True).method.queue == queue
        assert conn.channel().is_open


def test_close_channel_and_reuse_number(broker, unique):
    """Spec channel.close / close-ok: after close-ok the channel number may be
    opened again; other channels are untouched."""
    with connected(broker, channel=None) as client:
        for n in (1, 2, 3, 1000, 2047):
            client.open_channel(n)
        client.rpc(3, spec.Channel.Close(reply_code=200, reply_text="done", class_id=0, method_id=0),
                   spec.Channel.CloseOk)
        for n in (1, 2, 1000, 2047):
            client.rpc(n, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk)
        client.open_channel(3)
        client.rpc(3, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk)


def test_channel_error_leaves_other_channels_working(broker, unique):
    """Spec 1.5.2.5: a channel exception closes only that channel."""
    with pika_connection(broker) as conn:
        good, bad = conn.channel(), conn.channel()
        code, _ = channel_error(lambda: bad.queue_declare(unique("missing"), passive=True))
        assert code == NOT_FOUND
        assert bad.is_closed and good.is_open and conn.is_open
        queue = good.queue_declare(unique("q"), exclusive=True).method.queue
        good.confirm_delivery()
        good.basic_publish("", queue, b"hello")
        assert good.basic_get(queue, auto_ack=True)[2] == b"hello"


def test_channel_reopened_after_server_close(broker, unique):
    """Spec channel.close: after the server closes a channel and the client
    answers close-ok, the same number can be opened again."""
    with connected(broker) as client:
        client.send_method(1, spec.Queue.Declare(queue=unique("missing"), passive=True))
        assert_close(client.wait_channel_close(1), NOT_FOUND, 50, 10)
        client.open_channel(1)
        client.rpc(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk)


def test_methods_ignored_while_server_closes_channel(broker, unique):
    """Spec 2.3.7 (channel.close): after sending channel.close the server
    discards methods other than close/close-ok on that channel."""
    with connected(broker) as client:
        client.send_method(1, spec.Queue.Declare(queue=unique("missing"), passive=True))
        assert_close(client.wait_channel_close(1, reply=False), NOT_FOUND, 50, 10)
        client.send_method(1, spec.Queue.Declare(queue="", exclusive=True))
        client.send_method(1, spec.Basic.Qos(prefetch_count=5))
        with pytest.raises(TimeoutError):
            client.next_frame(timeout=0.5)
        client.send_method(1, spec.Channel.CloseOk())
        client.open_channel(1)


def test_flow_active_true(broker):
    """Spec channel.flow: active=true is answered with flow-ok active=true."""
    with connected(broker) as client:
        ok = client.rpc(1, spec.Channel.Flow(active=True), spec.Channel.FlowOk)
        assert ok.active is True


def test_flow_active_false_not_implemented(broker):
    """RabbitMQ "Spec differences": channel.flow active=false from a client is
    not supported -> connection.close 540 NOT_IMPLEMENTED, class 20 method 20."""
    with Bystander(broker) as bystander, connected(broker) as client:
        client.send_method(1, spec.Channel.Flow(active=False))
        info = client.wait_connection_close()
        assert_close(info, NOT_IMPLEMENTED, 20, 20)
        assert info.reply_text == "NOT_IMPLEMENTED - active=false"
        assert client.wait_socket_closed(5.0)
        bystander.check()


def test_channel_max_counts_open_channels(broker):
    """RabbitMQ "Channels": with channel_max 3 negotiated, opening a 4th
    channel -> connection.close 530 NOT_ALLOWED (class 0, method 0); closing
    one first frees a slot."""
    with connected(broker, channel=None, channel_max=3) as client:
        for n in (1, 2, 3):
            client.open_channel(n)
        client.rpc(2, spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0),
                   spec.Channel.CloseOk)
        client.open_channel(4)
        client.send_method(5, spec.Channel.Open())
        info = client.wait_connection_close()
        assert_close(info, NOT_ALLOWED, 0, 0)
        assert "channel_max (3)" in info.reply_text


def test_channel_number_above_channel_max(broker):
    """RabbitMQ 3.10 checks channel_max against the number of open channels,
    not the channel number: with channel_max 10, channel 11 and 65535 open."""
    with connected(broker, channel=None, channel_max=10) as client:
        for n in (10, 11, 65535):
            client.open_channel(n)
            client.rpc(n, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk)


def test_pika_respects_channel_max(broker):
    """A client honouring channel_max 2 can open exactly 2 channels."""
    with pika_connection(broker, channel_max=2) as conn:
        conn.channel(), conn.channel()
        with pytest.raises(pika.exceptions.NoFreeChannels):
            conn.channel()


def test_reopen_open_channel_is_channel_error(broker):
    """Spec channel.open on an open channel -> 504 CHANNEL_ERROR connection
    close, class 20 method 10 (RabbitMQ: "second 'channel.open' seen")."""
    with Bystander(broker) as bystander, connected(broker) as client:
        client.send_method(1, spec.Channel.Open())
        info = client.wait_connection_close()
        assert_close(info, CHANNEL_ERROR, 20, 10)
        assert client.wait_socket_closed(5.0)
        bystander.check()


@pytest.mark.parametrize("method,ids", [
    (spec.Exchange.Declare(exchange="never-opened"), (40, 10)),
    (spec.Queue.Declare(queue=""), (50, 10)),
    (spec.Basic.Qos(prefetch_count=1), (60, 10)),
    (spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0), (20, 40)),
    (spec.Channel.CloseOk(), (20, 41)),
], ids=["exchange.declare", "queue.declare", "basic.qos", "channel.close", "channel.close-ok"])
def test_method_on_unopened_channel(broker, method, ids):
    """Spec 1.5: using a channel that was never opened -> 504 CHANNEL_ERROR
    ("expected 'channel.open'") with the offending method's ids."""
    with connected(broker) as client:
        client.send_method(7, method)
        info = client.wait_connection_close()
        assert_close(info, CHANNEL_ERROR, *ids)


def test_method_on_closed_channel(broker):
    """A channel closed by channel.close/close-ok is not open any more:
    a method on it -> 504 CHANNEL_ERROR."""
    with connected(broker) as client:
        client.rpc(1, spec.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0),
                   spec.Channel.CloseOk)
        client.send_method(1, spec.Queue.Declare(queue=""))
        assert_close(client.wait_connection_close(), CHANNEL_ERROR, 50, 10)


@pytest.mark.parametrize("method,ids", [
    (spec.Channel.Open(), (20, 10)),
    (spec.Queue.Declare(queue=""), (50, 10)),
    (spec.Basic.Qos(prefetch_count=1), (60, 10)),
], ids=["channel.open", "queue.declare", "basic.qos"])
def test_channel_method_on_channel_zero(broker, method, ids):
    """Spec 2.3.5.1: channel 0 is for connection methods only; RabbitMQ ->
    504 CHANNEL_ERROR ("unexpected method in connection state running")."""
    with connected(broker) as client:
        client.send_method(0, method)
        info = client.wait_connection_close()
        assert_close(info, CHANNEL_ERROR, *ids)


@pytest.mark.parametrize("method,ids", [
    (spec.Connection.Close(reply_code=200, reply_text="", class_id=0, method_id=0), (10, 50)),
    (spec.Channel.FlowOk(active=True), (20, 21)),
    (spec.Channel.CloseOk(), (20, 41)),
], ids=["connection.close", "channel.flow-ok", "channel.close-ok"])
def test_unexpected_method_on_open_channel(broker, method, ids):
    """RabbitMQ: a connection method on a channel, an unsolicited flow-ok or
    close-ok -> 503 COMMAND_INVALID ("unimplemented method")."""
    with connected(broker) as client:
        client.send_method(1, method)
        info = client.wait_connection_close()
        assert_close(info, COMMAND_INVALID, *ids)
