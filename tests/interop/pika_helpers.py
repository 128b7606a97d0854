"""pika helpers for the connection, channel, exchange, queue and framing tests.

* :func:`params` / :func:`pika_connection`: a ``BlockingConnection`` to the
  broker under test (a fixture object with ``url``, or a URL string);
* :func:`channel_error`: run a pika call that must make the broker close the
  channel and return the reply code and text;
* :func:`drain` / :func:`get_bodies`: read what a queue holds with basic.get;
* :class:`Bystander`: a second connection opened before a test provokes an
  error, checked afterwards to prove that other connections are unaffected.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator

import pika
import pika.exceptions


def params(broker_or_url: Any, **overrides: Any) -> pika.URLParameters:
    """Connection parameters for a broker fixture or an AMQP URL.

    Heartbeats are off and timeouts short unless ``overrides`` say otherwise.
    """
    url = broker_or_url if isinstance(broker_or_url, str) else broker_or_url.url
    p = pika.URLParameters(url)
    p.heartbeat = 0
    p.connection_attempts = 1
    p.socket_timeout = 5
    p.stack_timeout = 10
    p.blocked_connection_timeout = 30
    for key, value in overrides.items():
        setattr(p, key, value)
    return p


@contextlib.contextmanager
def pika_connection(broker_or_url: Any, **overrides: Any) -> Iterator[pika.BlockingConnection]:
    """A pika ``BlockingConnection``, closed on exit if still open."""
    conn = pika.BlockingConnection(params(broker_or_url, **overrides))
    try:
        yield conn
    finally:
        if conn.is_open:
            try:
                conn.close()
            except pika.exceptions.AMQPError:
                pass


def channel_error(call: Callable[[], Any]) -> tuple[int, str]:
    """Run ``call``; it must raise ChannelClosedByBroker. Returns (code, text)."""
    try:
        call()
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code, exc.reply_text
    raise AssertionError("the broker did not close the channel")


def connection_error(call: Callable[[], Any]) -> tuple[int, str]:
    """Run ``call``; it must raise ConnectionClosedByBroker. Returns (code, text)."""
    try:
        call()
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return exc.reply_code, exc.reply_text
    raise AssertionError("the broker did not close the connection")


def drain(channel, queue: str, limit: int = 10_000) -> list:
    """basic.get (auto-ack) until the queue is empty; returns (method, props, body) tuples."""
    out = []
    for _ in range(limit):
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((method, props, body))
    raise AssertionError(f"queue {queue} did not run dry after {limit} messages")


def get_bodies(channel, queue: str) -> list[bytes]:
    """The bodies of every message in ``queue`` (consumed with auto-ack)."""
    return [body for _, _, body in drain(channel, queue)]


def wait_for_bodies(channel, queue: str, expected: int, timeout: float = 5.0) -> list[bytes]:
    """Collect bodies from ``queue`` until ``expected`` arrived (or timeout)."""
    deadline = time.monotonic() + timeout
    bodies: list[bytes] = []
    while len(bodies) < expected and time.monotonic() < deadline:
        bodies += get_bodies(channel, queue)
        if len(bodies) < expected:
            time.sleep(0.02)
    return bodies


class Bystander:
    """A connection that must keep working while another one misbehaves.

    Open it before provoking an error; call :meth:`check` afterwards: it
    declares a queue, publishes with a confirm and reads the message back.
    """

    def __init__(self, broker_or_url: Any):
        self.conn = pika.BlockingConnection(params(broker_or_url))
        self.channel = self.conn.channel()
        self.channel.confirm_delivery()
        self.queue = self.channel.queue_declare("", exclusive=True).method.queue

    def check(self) -> None:
        assert self.conn.is_open and self.channel.is_open, "bystander connection was disturbed"
        body = f"still here {time.monotonic()}".encode()
        self.channel.basic_publish("", self.queue, body)
        method, _, got = self.channel.basic_get(self.queue, auto_ack=True)
        assert method is not None and got == body, "bystander connection lost its message"

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()

    def __enter__(self) -> "Bystander":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
