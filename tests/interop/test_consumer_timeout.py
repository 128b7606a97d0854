"""Delivery acknowledgement timeout (rabbitmq.com/consumers.html#acknowledgement-timeout):
a delivery unacked for longer than the timeout closes its channel with
406 PRECONDITION_FAILED and RabbitMQ's text (class 0, method 0); its
messages are requeued. The broker default comes from --consumer-timeout
(ms), the queue argument x-consumer-timeout overrides it (0: none).

Not run against RabbitMQ 3.10: its timeout is a node setting (30 min) and
it has no x-consumer-timeout; the reply text is RabbitMQ 3.10's."""

from __future__ import annotations

import time

import pika
import pytest

from tests.interop.conftest import EXTERNAL_URL
from tests.interop.consumer_helpers import Recorder, publish, pump, settle
from tests.interop.pika_helpers import pika_connection

external = pytest.mark.skipif(bool(EXTERNAL_URL), reason="RabbitMQ 3.10 has no x-consumer-timeout")


def _text(channel_number: int, ms: int) -> str:
    return (f"PRECONDITION_FAILED - delivery acknowledgement on channel {channel_number} timed out. "
            f"Timeout value used: {ms} ms. This timeout value can be configured, see consumers doc guide "
            "to learn more")


def _watch_close(channel) -> list:
    """Collect the reason (pika ChannelClosedByBroker) when the broker closes ``channel``."""
    reasons: list = []
    channel._impl.add_on_close_callback(lambda _ch, reason: reasons.append(reason))
    return reasons


def _assert_closed_for_timeout(reasons: list, channel_number: int, ms: int) -> None:
    assert len(reasons) == 1
    reason = reasons[0]
    assert isinstance(reason, pika.exceptions.ChannelClosedByBroker)
    assert (reason.reply_code, reason.reply_text) == (406, _text(channel_number, ms))


def test_unacked_delivery_closes_the_channel_and_is_requeued(fresh_broker, unique):
    """--consumer-timeout 500: the consumer that never acks loses its
    channel (not before 500 ms) and the message comes back redelivered; a
    consumer on another channel that acks at once keeps its channel."""
    proc = fresh_broker("--consumer-timeout", "500")
    slow_q, quick_q = unique("slow"), unique("quick")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(slow_q)
        ch.queue_declare(quick_q)
        slow_channel = connection.channel()
        reasons = _watch_close(slow_channel)
        slow = Recorder(slow_channel, slow_q, ack=False)
        quick = Recorder(connection.channel(), quick_q)
        publish(ch, slow_q, 1)
        started = time.monotonic()
        publish(ch, quick_q, 3)
        assert pump([connection], lambda: bool(reasons), timeout=20)
        assert time.monotonic() - started >= 0.4
        _assert_closed_for_timeout(reasons, slow_channel.channel_number, 500)
        assert slow.got == [(b"m0", False)]
        assert quick.channel.is_open and len(quick.got) == 3
        method, _props, body = ch.basic_get(slow_q, auto_ack=True)
        assert (body, method.redelivered) == (b"m0", True)
        settle([connection], 1.0)
        assert quick.channel.is_open and ch.is_open


def test_basic_get_without_ack_times_out_too(fresh_broker, unique):
    proc = fresh_broker("--consumer-timeout", "500")
    queue = unique("get")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(queue)
        publish(ch, queue, 1)
        reasons = _watch_close(ch)
        assert ch.basic_get(queue)[2] == b"m0"
        assert pump([connection], lambda: bool(reasons), timeout=20)
        _assert_closed_for_timeout(reasons, ch.channel_number, 500)


def test_queue_argument_zero_turns_the_broker_timeout_off(fresh_broker, unique):
    proc = fresh_broker("--consumer-timeout", "300")
    queue = unique("no-timeout")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, arguments={"x-consumer-timeout": 0})
        consumer = Recorder(connection.channel(), queue, ack=False)
        publish(ch, queue, 2)
        assert pump([connection], lambda: len(consumer.got) == 2)
        settle([connection], 1.5)
        assert consumer.channel.is_open
        consumer.channel.basic_ack(consumer.tags[-1], multiple=True)
        assert ch.queue_declare(queue, passive=True).method.message_count == 0


@external
def test_queue_argument_overrides_the_broker_default(broker, unique):
    """The shared broker runs with the 30 min default; x-consumer-timeout
    500 on one queue closes the channel holding its delivery, while a
    channel holding a delivery of a queue without the argument stays open."""
    short_q, plain_q = unique("short"), unique("plain")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        ch.queue_declare(short_q, arguments={"x-consumer-timeout": 500})
        ch.queue_declare(plain_q)
        short_channel = connection.channel()
        reasons = _watch_close(short_channel)
        Recorder(short_channel, short_q, ack=False)
        plain = Recorder(connection.channel(), plain_q, ack=False)
        publish(ch, plain_q, 1)
        publish(ch, short_q, 1)
        assert pump([connection], lambda: bool(reasons), timeout=20)
        _assert_closed_for_timeout(reasons, short_channel.channel_number, 500)
        assert plain.got == [(b"m0", False)] and plain.channel.is_open
        ch.queue_delete(short_q)
        ch.queue_delete(plain_q)


@pytest.mark.parametrize("bad, text", [
    ("x", '"expected integer, got longstr"'),
    (-5, "{value_negative,-5}"),
])
@external
def test_invalid_queue_argument_is_refused(broker, unique, bad, text):
    from tests.interop.pika_helpers import channel_error

    queue = unique("bad-timeout")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        code, reply = channel_error(lambda: ch.queue_declare(queue, arguments={"x-consumer-timeout": bad}))
    assert code == 406
    assert reply == f"PRECONDITION_FAILED - invalid arg 'x-consumer-timeout' for queue '{queue}' in vhost '/': {text}"


def test_durable_queue_timeout_argument_after_sigkill(fresh_broker, unique):
    """A durable queue's x-consumer-timeout survives a SIGKILL restart with
    its persistent message: the recovered delivery left unacked still
    closes the channel, and the message is then redelivered."""
    proc = fresh_broker()
    queue = unique("timeout-durable")
    arguments = {"x-consumer-timeout": 500}
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, durable=True, arguments=arguments)
        ch.confirm_delivery()
        publish(ch, queue, 1, persistent=True)
    proc.kill()
    proc.start()
    with pika_connection(proc) as connection:
        ch = connection.channel()
        reasons = _watch_close(ch)
        consumer = Recorder(ch, queue, ack=False)
        assert pump([connection], lambda: bool(reasons), timeout=20)
        _assert_closed_for_timeout(reasons, ch.channel_number, 500)
        assert consumer.got == [(b"m0", False)]
        method, _props, body = connection.channel().basic_get(queue, auto_ack=True)
        assert (body, method.redelivered) == (b"m0", True)
