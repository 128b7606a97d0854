"""Consumer priorities (rabbitmq.com/consumer-priority.html): the
``x-priority`` basic.consume argument; higher-priority consumers get
messages while they have prefetch credit, lower ones only when all higher
ones are blocked; equal priorities share round-robin. Checked against
RabbitMQ 3.10 with LEVERET_TEST_URL."""

from __future__ import annotations

import pytest

from tests.interop.consumer_helpers import Recorder, publish, pump, settle
from tests.interop.pika_helpers import channel_error, pika_connection


def test_higher_priority_consumer_first_while_it_has_credit(broker, unique):
    """high (x-priority 10, prefetch 5, never acks) gets m0..m4, the rest
    goes to low (priority 0) and lowest (priority -5) gets nothing."""
    queue = unique("cprio")
    with pika_connection(broker) as c1, pika_connection(broker) as c2:
        ch = c1.channel()
        ch.queue_declare(queue, exclusive=False, arguments={})
        low = Recorder(c2.channel(), queue, ack=False, prefetch=100)
        lowest = Recorder(c2.channel(), queue, ack=False, prefetch=100, arguments={"x-priority": -5})
        high = Recorder(c1.channel(), queue, ack=False, prefetch=5, arguments={"x-priority": 10})
        publish(ch, queue, 20)
        assert pump([c1, c2], lambda: len(high.got) + len(low.got) == 20)
        settle([c1, c2], 0.3)
        assert high.bodies == [b"m%d" % i for i in range(5)]
        assert low.bodies == [b"m%d" % i for i in range(5, 20)]
        assert lowest.got == []
        ch.queue_delete(queue)


def test_credit_returned_to_the_high_priority_consumer_wins_again(broker, unique):
    """Once high acks, it is the one that gets the next messages."""
    queue = unique("cprio-ack")
    with pika_connection(broker) as c1, pika_connection(broker) as c2:
        ch = c1.channel()
        ch.queue_declare(queue)
        low = Recorder(c2.channel(), queue, ack=False, prefetch=100)
        high = Recorder(c1.channel(), queue, ack=False, prefetch=2, arguments={"x-priority": 1})
        publish(ch, queue, 4)
        assert pump([c1, c2], lambda: len(high.got) + len(low.got) == 4)
        high.channel.basic_ack(high.tags[-1], multiple=True)
        publish(ch, queue, 2, start=4)
        assert pump([c1, c2], lambda: len(high.got) + len(low.got) == 6)
        settle([c1, c2], 0.3)
        assert high.bodies == [b"m0", b"m1", b"m4", b"m5"]
        assert low.bodies == [b"m2", b"m3"]
        ch.queue_delete(queue)


def test_equal_priorities_share_round_robin(broker, unique):
    queue = unique("cprio-rr")
    with pika_connection(broker) as c1, pika_connection(broker) as c2:
        ch = c1.channel()
        ch.queue_declare(queue)
        low = Recorder(c2.channel(), queue)
        a = Recorder(c1.channel(), queue, arguments={"x-priority": 3})
        b = Recorder(c2.channel(), queue, arguments={"x-priority": 3})
        publish(ch, queue, 10)
        assert pump([c1, c2], lambda: len(a.got) + len(b.got) == 10)
        settle([c1, c2], 0.3)
        assert low.got == []
        assert sorted(a.bodies + b.bodies) == sorted(b"m%d" % i for i in range(10))
        assert len(a.got) == len(b.got) == 5
        ch.queue_delete(queue)


@pytest.mark.parametrize("value, kind", [("hi", "longstr"), (True, "bool")])
def test_non_integer_priority_is_refused_with_rabbitmq_text(broker, unique, value, kind):
    queue = unique("cprio-bad")
    with pika_connection(broker) as connection:
        ch = connection.channel()
        ch.queue_declare(queue, exclusive=True)
        code, text = channel_error(lambda: ch.basic_consume(queue, lambda *a: None, arguments={"x-priority": value}))
    assert code == 406
    assert text == (f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{queue}' in vhost '/': "
                    f'"expected integer, got {kind}"')
