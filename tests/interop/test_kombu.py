"""kombu (with py-amqp, its ``pyamqp`` transport) against the broker, as
Celery uses it: consume from a queue, then delete the queue from the
consuming channel.

py-amqp raises ``ConsumerCancelled`` for a server basic.cancel when no
cancel callback is registered (kombu registers none). RabbitMQ answers
queue.delete-ok first and sends the cancel afterwards (rabbit_channel.erl
``handle_consuming_queue_down_or_eol``), so ``queue.delete()`` returns and
the cancel surfaces at the next read; a broker that sends the cancel first
makes ``queue.delete()`` itself fail (issue 17). Checked against RabbitMQ
3.10 with ``LEVERET_TEST_URL=$(bash ../shared/tools/reference-rabbitmq url)``.
"""

from __future__ import annotations

import pytest

kombu = pytest.importorskip("kombu", reason="kombu is in the test extra: pip install -e '.[test]'")
amqp_exceptions = pytest.importorskip("amqp.exceptions")


def _kombu_url(broker) -> str:
    """The broker's URL for kombu: default vhost spelled ``//``."""
    return f"amqp://guest:guest@{broker.host}:{broker.port}//"


def test_delete_queue_while_consuming(broker, unique):
    """A message is consumed, then ``queue.delete()`` on the consuming
    channel returns the count (0); the server's cancel comes after it and
    surfaces at the next ``drain_events``; closing the channel and the
    connection afterwards works."""
    name = unique("kombu")
    received = []
    with kombu.Connection(_kombu_url(broker), transport="pyamqp", connect_timeout=5) as conn:
        channel = conn.channel()
        queue = kombu.Queue(name, exchange=kombu.Exchange("", type="direct"), routing_key=name)(channel)
        queue.declare()
        kombu.Producer(channel).publish({"n": 1}, routing_key=name, serializer="json")
        consumer = kombu.Consumer(channel, queues=[queue],
                                  callbacks=[lambda body, message: (received.append(body), message.ack())])
        consumer.consume()
        conn.drain_events(timeout=5)
        assert received == [{"n": 1}]

        assert queue.delete() == 0

        with pytest.raises(amqp_exceptions.ConsumerCancelled):
            conn.drain_events(timeout=5)
        channel.close()
    with kombu.Connection(_kombu_url(broker), transport="pyamqp", connect_timeout=5) as conn:
        with pytest.raises(amqp_exceptions.NotFound):
            kombu.Queue(name)(conn.channel()).queue_declare(passive=True)


def test_delete_queue_then_close_while_consuming(broker, unique):
    """Deleting the queue and closing the connection at once (the cancel
    still on its way) raises nothing: the cancel never follows close-ok."""
    name = unique("kombu")
    with kombu.Connection(_kombu_url(broker), transport="pyamqp", connect_timeout=5) as conn:
        channel = conn.channel()
        queue = kombu.Queue(name, exchange=kombu.Exchange("", type="direct"), routing_key=name)(channel)
        queue.declare()
        kombu.Consumer(channel, queues=[queue], callbacks=[lambda body, message: None]).consume()
        assert queue.delete() == 0
    assert not conn.connected
