"""The messages of the crash tests, derived from their number alone, so a
checker recomputes the exact body and properties a publisher sent.

Every 13th body is larger than 128 KiB, so it spans several body frames
(frame-max 131072); the others vary from a few bytes to a few KiB. The
properties use every basic property a publisher commonly sets, and nested
header tables.
"""

from __future__ import annotations

import hashlib
import struct

import pika
import pika.exceptions

PERSISTENT = 2
#: what pika raises when the broker's socket goes away (a SIGKILL: the
#: scripts' normal end). Not a close the broker sent (ConnectionClosedByBroker),
#: a channel error or a nack: those are reported (``report_failure``).
#: (the WrongState errors: a call on a channel or connection already lost)
CONNECTION_LOST = (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelWrongStateError,
                   pika.exceptions.ConnectionWrongStateError, OSError)
LARGE_EVERY = 13


def body_size(n: int) -> int:
    if n % LARGE_EVERY == 0:
        return 128 * 1024 + 1 + (n * 7919) % (96 * 1024)
    return 1 + (n * 131) % 4000


def expected_body(n: int) -> bytes:
    """``n`` as 8 bytes, then a keyed hash stream, ``body_size(n)`` long."""
    size = body_size(n)
    block = hashlib.blake2b(struct.pack(">Q", n), digest_size=64).digest()
    return (struct.pack(">Q", n) + block * (size // 64 + 1))[:size]


def expected_properties(n: int) -> pika.BasicProperties:
    headers = {"n": n, "tag": "x" * (n % 5), "nested": {"mod7": n % 7, "odd": bool(n % 2)},
               "list": [n % 3, "two"]}
    return pika.BasicProperties(
        content_type=("application/octet-stream", "text/plain", "application/json")[n % 3],
        content_encoding="identity" if n % 4 == 0 else None,
        headers=headers,
        delivery_mode=PERSISTENT,
        priority=n % 10,
        correlation_id=f"corr-{n * 3}",
        reply_to=f"reply-{n % 4}" if n % 2 else None,
        message_id=f"msg-{n}",
        timestamp=1_700_000_000 + n,
        type="crash-test",
        app_id="leveret-tests",
    )


def number_of(properties: pika.BasicProperties) -> int:
    """The message number a delivery claims to be (from message_id), -1
    when message_id is not one of the corpus's."""
    try:
        return int(properties.message_id.removeprefix("msg-"))
    except (AttributeError, ValueError):
        return -1


def mismatch(properties: pika.BasicProperties, body: bytes) -> str | None:
    """None when ``body`` and ``properties`` are exactly what message
    ``number_of(properties)`` was published with, else what differs.
    Properties are compared as their encoded content-header bytes."""
    n = number_of(properties)
    if n < 0:
        return f"unparseable message_id {getattr(properties, 'message_id', None)!r}"
    want = expected_body(n)
    if body != want:
        return f"msg-{n}: body differs ({len(body)} bytes, expected {len(want)})"
    if b"".join(properties.encode()) != b"".join(expected_properties(n).encode()):
        return f"msg-{n}: properties differ: {properties!r}"
    return None


def report_failure(exc: BaseException) -> bool:
    """Print what a broker error means as one flushed line and return True
    (the script should stop), or return False for a lost connection (the
    expected end). Lines: ``channel-closed CODE TEXT``, ``connection-closed
    CODE TEXT``, ``error REPR``. A nack is reported by the caller
    (``nack N``), since the channel goes on."""
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        print(f"channel-closed {exc.reply_code} {exc.reply_text}", flush=True)
    elif isinstance(exc, pika.exceptions.ConnectionClosedByBroker):
        print(f"connection-closed {exc.reply_code} {exc.reply_text}", flush=True)
    elif isinstance(exc, CONNECTION_LOST):
        return False
    else:
        print(f"error {exc!r}", flush=True)
    return True
