"""Helpers for the queue-lifecycle integration tests (TTL, dead-lettering,
length limits, delivery limit, queue expiry): pika connections, polling
with generous timeouts (the test machine is shared), queue counts."""

from __future__ import annotations

import os
from typing import Callable

import pika
import pika.exceptions

from tests.interop.clients import wait_for

#: set when the tests run against another broker (the reference RabbitMQ)
EXTERNAL = bool(os.environ.get("LEVERET_TEST_URL"))
PERSISTENT = 2


def connect(broker) -> pika.BlockingConnection:
    params = pika.URLParameters(broker.url)
    params.heartbeat = 0
    params.blocked_connection_timeout = 30
    return pika.BlockingConnection(params)


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05):
    """``clients.wait_for`` with the generous timeout (seconds) these tests
    use on a shared machine: the truthy value of ``predicate``, or
    AssertionError after ``timeout``."""
    return wait_for(predicate, timeout=timeout, interval=interval)


def count(channel, queue: str) -> int:
    """Ready messages of ``queue`` (passive declare)."""
    return channel.queue_declare(queue, passive=True).method.message_count


def get_all(channel, queue: str) -> list[tuple]:
    """Every ready message as (body, properties, method), acked."""
    out = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, props, method))


def dead_letter_setup(channel, source: str, dlq: str, durable: bool = False, **arguments) -> str:
    """A fanout DLX ``<dlq>-x`` bound to ``dlq``, and ``source`` dead-lettering
    to it with extra queue ``arguments``; returns the DLX name."""
    dlx = dlq + "-x"
    channel.exchange_declare(dlx, "fanout", durable=durable)
    channel.queue_declare(dlq, durable=durable)
    channel.queue_bind(dlq, dlx)
    channel.queue_declare(source, durable=durable, arguments={"x-dead-letter-exchange": dlx, **arguments})
    return dlx
