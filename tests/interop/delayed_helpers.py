"""Helpers shared by the x-delayed-message exchange tests."""

from __future__ import annotations

import time

import pika

from tests.interop.pika_helpers import drain


def declare_delayed(ch, name: str, kind: str = "direct", durable: bool = False) -> None:
    """exchange.declare of an ``x-delayed-message`` exchange routing like ``kind``."""
    ch.exchange_declare(name, "x-delayed-message", durable=durable, arguments={"x-delayed-type": kind})


def delay_props(delay, **kwargs) -> pika.BasicProperties:
    """Properties with an ``x-delay`` header (ms) and ``kwargs``."""
    return pika.BasicProperties(headers={"x-delay": delay}, **kwargs)


def wait_for(ch, queue: str, count: int, timeout: float = 15.0) -> list:
    """basic.get from ``queue`` until ``count`` messages came or ``timeout``
    seconds passed; returns the (method, props, body) tuples."""
    deadline = time.monotonic() + timeout
    got = []
    while len(got) < count and time.monotonic() < deadline:
        got += drain(ch, queue)
        if len(got) < count:
            time.sleep(0.02)
    return got
