"""Single active consumer (rabbitmq.com/consumers.html#single-active-consumer):
with ``x-single-active-consumer=true`` only the first registered consumer
gets messages; when it is cancelled, or its channel or connection closes,
the next one takes over, starting with the departed consumer's requeued
unacknowledged messages. Checked against RabbitMQ 3.10 with
LEVERET_TEST_URL."""

from __future__ import annotations

import pytest

from tests.interop.consumer_helpers import Recorder, publish, pump, settle
from tests.interop.pika_helpers import channel_error, pika_connection

SAC = {"x-single-active-consumer": True}


@pytest.mark.parametrize("departure", ["channel", "connection"])
def test_next_consumer_takes_over_with_the_requeued_messages_first(broker, unique, departure):
    queue = unique("sac")
    with pika_connection(broker) as c1, pika_connection(broker) as c2, pika_connection(broker) as c3:
        publisher = c3.channel()
        publisher.queue_declare(queue, arguments=SAC)
        first = Recorder(c1.channel(), queue, ack=False, prefetch=2)
        second = Recorder(c2.channel(), queue)
        assert publisher.queue_declare(queue, passive=True).method.consumer_count == 2
        publish(publisher, queue, 6)
        assert pump([c1, c2], lambda: len(first.got) == 2)
        settle([c1, c2], 0.5)
        assert first.got == [(b"m0", False), (b"m1", False)]
        assert second.got == []  # m2..m5 wait: the active consumer has no credit
        if departure == "channel":
            first.channel.close()
        else:
            c1.close()
        assert pump([c2], lambda: len(second.got) == 6)
        assert second.got == [(b"m0", True), (b"m1", True), (b"m2", False), (b"m3", False), (b"m4", False),
                              (b"m5", False)]
        publisher.queue_delete(queue)


def test_cancel_hands_over_to_the_next_consumer_in_registration_order(broker, unique):
    queue = unique("sac-cancel")
    with pika_connection(broker) as c1, pika_connection(broker) as c2:
        ch = c1.channel()
        ch.queue_declare(queue, arguments=SAC)
        first = Recorder(ch, queue)
        second = Recorder(c2.channel(), queue)
        third = Recorder(c2.channel(), queue)
        publish(ch, queue, 4)
        assert pump([c1, c2], lambda: len(first.got) == 4)
        ch.basic_cancel(first.tag)
        publish(ch, queue, 4, start=4)
        assert pump([c1, c2], lambda: len(second.got) == 4)
        settle([c1, c2], 0.3)
        assert first.bodies == [b"m0", b"m1", b"m2", b"m3"]
        assert second.bodies == [b"m4", b"m5", b"m6", b"m7"]
        assert third.got == []
        ch.queue_delete(queue)


@pytest.mark.parametrize("value, kind", [(1, "signedint"), ("true", "longstr")])
def test_non_boolean_argument_is_refused_with_rabbitmq_text(broker, unique, value, kind):
    queue = unique("sac-bad")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        code, text = channel_error(lambda: ch.queue_declare(queue, arguments={"x-single-active-consumer": value}))
    assert code == 406
    assert text == (f"PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue '{queue}' "
                    f"in vhost '/': {{unacceptable_type,{kind}}}")


def test_durable_single_active_consumer_queue_after_sigkill(fresh_broker, unique):
    """The argument survives a SIGKILL restart with the queue: afterwards
    only the first consumer gets the recovered messages, then the second
    once the first one's connection is gone."""
    proc = fresh_broker()
    queue = unique("sac-durable")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, durable=True, arguments=SAC)
        ch.confirm_delivery()
        publish(ch, queue, 5, persistent=True)
    proc.kill()
    proc.start()
    with pika_connection(proc) as c1, pika_connection(proc) as c2:
        c1.channel().queue_declare(queue, durable=True, arguments=SAC)
        first = Recorder(c1.channel(), queue, ack=False, prefetch=3)
        second = Recorder(c2.channel(), queue)
        assert pump([c1, c2], lambda: len(first.got) == 3)
        settle([c1, c2], 0.5)
        assert second.got == []
        c1.close()
        assert pump([c2], lambda: len(second.got) == 5)
        assert second.got == [(b"m0", True), (b"m1", True), (b"m2", True), (b"m3", False), (b"m4", False)]


def test_exclusive_consume_on_a_single_active_consumer_queue_is_refused(broker, unique):
    """RabbitMQ 3.10 refuses it even when the queue has no consumer."""
    queue = unique("sac-exclusive")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, arguments=SAC)
        code, text = channel_error(lambda: ch.basic_consume(queue, lambda *a: None, exclusive=True))
        assert (code, text) == (403, f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use")
        connection.channel().queue_delete(queue)
