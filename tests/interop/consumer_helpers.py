"""pika helpers for the consumer tests (single active consumer, consumer
priorities, consumer timeout): a consumer that records what it gets, and a
poll loop with a generous deadline (the test machine is shared)."""

from __future__ import annotations

import time
from typing import Callable

import pika


class Recorder:
    """A basic.consume on ``channel`` that records ``(body, redelivered)``
    and acks at once when ``ack`` is True (else keeps delivery tags)."""

    def __init__(self, channel, queue: str, ack: bool = True, prefetch: int = 0,
                 arguments: dict | None = None):
        self.channel = channel
        self.ack = ack
        self.got: list[tuple[bytes, bool]] = []
        self.tags: list[int] = []
        if prefetch:
            channel.basic_qos(prefetch_count=prefetch)
        self.tag = channel.basic_consume(queue, self._on_message, arguments=arguments)

    def _on_message(self, channel, method, _props, body) -> None:
        self.got.append((body, method.redelivered))
        if self.ack:
            channel.basic_ack(method.delivery_tag)
        else:
            self.tags.append(method.delivery_tag)

    @property
    def bodies(self) -> list[bytes]:
        return [body for body, _ in self.got]


def pump(connections, condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Process events on ``connections`` until ``condition()`` or the timeout;
    returns the final ``condition()``."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        for connection in connections:
            connection.process_data_events(time_limit=0.02)
    return condition()


def settle(connections, seconds: float) -> None:
    """Process events for ``seconds`` (to show that nothing more arrives)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for connection in connections:
            connection.process_data_events(time_limit=0.02)


def publish(channel, queue: str, count: int, prefix: str = "m", start: int = 0, persistent: bool = False) -> None:
    """Publish ``prefix<start>`` .. ``prefix<start+count-1>`` to ``queue``,
    then wait for a queue.declare round trip (so they are all routed)."""
    for i in range(start, start + count):
        channel.basic_publish("", queue, f"{prefix}{i}".encode(),
                              pika.BasicProperties(delivery_mode=2 if persistent else 1))
    channel.queue_declare(queue, passive=True)
