"""The durability contract checked from the broker's system calls
(docs/architecture.md, "Durability contract"; README, "Durability"):

- confirmed means fsynced: when a socket write carrying a basic.ack of
  publisher confirms starts, every message that ack confirms has its WAL
  MESSAGE record inside a range an ``fdatasync`` already returned for;
- at least once: a basic.deliver of a stored message starts leaving the
  socket only after the fsync covering its DELIVERED record returned.

SIGKILL tests cannot see this (the page cache survives a killed process),
so the broker runs under ``strace`` (tests/durability/syscall_trace.py) and
the check reads the recorded pwrite64 / fdatasync / write / writev / sendto
calls. No mock: a real broker, real clients, the kernel's own record.

The same run with ``--fsync never`` must fail the check (it is the proof the
check can fail) and must log the unsafe-mode warning. The ``always`` run
passes no ``--fsync`` flag, so it also pins the default.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct

import aio_pika
import pytest

from tests.durability.syscall_trace import (BASIC, BASIC_ACK, BASIC_DELIVER, BASIC_NACK, STRACE_OPTIONS,
                                            Trace, parse)
from tests.interop.server_process import BrokerProcess

COUNT = 240                 # persistent messages published, with confirms
IN_FLIGHT = 40              # unconfirmed publishes at a time (so acks come as multiple=true too)
BODY_SIZE = 600
MARKER = re.compile(rb"^strace-msg-(\d{8})\|")
UNSAFE_LINE = "fsync = never: publisher confirms do not wait for the disk"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY = 1, 2, 3

pytestmark = pytest.mark.skipif(shutil.which("strace") is None,
                                reason="strace is not installed (.ci/run installs it)")


def body(n: int) -> bytes:
    """Message ``n``'s body: a marker, then padding to BODY_SIZE bytes."""
    head = b"strace-msg-%08d|" % n
    return head + b"." * (BODY_SIZE - len(head))


def number(message_body: bytes) -> int:
    match = MARKER.match(message_body)
    assert match, f"not a test message: {message_body[:40]!r}"
    return int(match.group(1))


async def publish_and_consume(url: str, queue: str) -> list[int]:
    """Publish messages 1..COUNT (persistent, confirmed, IN_FLIGHT at a
    time) on one channel, then consume them all with manual acks; returns
    the numbers consumed, in order."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        for first in range(1, COUNT + 1, IN_FLIGHT):
            await asyncio.gather(*(
                channel.default_exchange.publish(
                    aio_pika.Message(body(n), delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue)
                for n in range(first, min(first + IN_FLIGHT, COUNT + 1))))
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=50)
        seen: list[int] = []
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(number(message.body))
            await message.ack()
            if len(seen) == COUNT:
                done.set()

        await (await consumer.get_queue(queue)).consume(on_message)
        await asyncio.wait_for(done.wait(), 60)
    return seen


def durable_numbers(trace: Trace) -> tuple[dict[int, int], dict[int, int]]:
    """message number -> trace line where its MESSAGE record became durable;
    message id -> message number."""
    ids = {message_id: number(data) for message_id, data in trace.bodies.items()}
    return {ids[i]: line for i, line in trace.message_durable.items()}, ids


def confirm_problems(trace: Trace) -> tuple[int, list[str]]:
    """Check every basic.ack / basic.nack the broker wrote (one publishing
    channel: delivery tag n confirms message n). Returns (messages
    confirmed, problems)."""
    durable, _ids = durable_numbers(trace)
    confirmed: set[int] = set()
    problems: list[str] = []
    for frame in trace.frames:
        if frame.type != FRAME_METHOD or frame.payload[:2] != struct.pack(">H", BASIC):
            continue
        method = struct.unpack_from(">H", frame.payload, 2)[0]
        if method not in (BASIC_ACK, BASIC_NACK):
            continue
        tag, bits = struct.unpack_from(">QB", frame.payload, 4)
        if method == BASIC_NACK:
            problems.append(f"line {frame.at}: basic.nack of delivery tag {tag}")
            continue
        tags = range(1, tag + 1) if bits & 1 else [tag]
        for n in (t for t in tags if t not in confirmed):
            confirmed.add(n)
            if n not in durable:
                problems.append(f"line {frame.at}: confirm of message {n}, whose WAL record was never fsynced")
            elif durable[n] > frame.at:
                problems.append(f"line {frame.at}: confirm of message {n} before the fsync of its WAL record "
                                f"(returned at line {durable[n]})")
    return len(confirmed), problems


def delivery_problems(trace: Trace) -> tuple[int, list[str]]:
    """Check every basic.deliver the broker wrote: its DELIVERED record was
    fsynced before the write carrying the method frame started. Returns
    (deliveries, problems)."""
    _durable, ids = durable_numbers(trace)
    delivered_line = {ids[i]: line for i, line in trace.delivered_durable.items() if i in ids}
    problems: list[str] = []
    started: dict[tuple[str, int], int] = {}        # (connection, channel) -> line of the deliver frame
    count = 0
    for frame in trace.frames:
        key = (frame.connection, frame.channel)
        if frame.type == FRAME_METHOD and frame.payload[:4] == struct.pack(">HH", BASIC, BASIC_DELIVER):
            started[key] = frame.at
        elif frame.type == FRAME_BODY and key in started:
            n, at = number(frame.payload), started.pop(key)
            count += 1
            if n not in delivered_line:
                problems.append(f"line {at}: delivery of message {n}, whose DELIVERED record was never fsynced")
            elif delivered_line[n] > at:
                problems.append(f"line {at}: delivery of message {n} before the fsync of its DELIVERED "
                                f"record (returned at line {delivered_line[n]})")
    return count, problems


def traced_run(tmp_path, unique, *broker_args: str) -> tuple[Trace, str]:
    """Run the scenario against a broker under strace; return the parsed
    trace and the broker's log."""
    trace_path = tmp_path / "broker.strace"
    proc = BrokerProcess(tmp_path / "data", ["--mirror", "off", *broker_args],
                         wrapper=["strace", *STRACE_OPTIONS, "-o", str(trace_path)])
    proc.start(timeout=60)
    try:
        seen = asyncio.run(publish_and_consume(proc.url, unique("strace")))
    finally:
        proc.stop(timeout=60)
    assert seen == list(range(1, COUNT + 1))
    return parse(trace_path.read_text()), proc.log_text()


def test_confirms_and_deliveries_wait_for_fsync_by_default(tmp_path, unique):
    trace, log = traced_run(tmp_path, unique)
    confirmed, problems = confirm_problems(trace)
    assert confirmed == COUNT, f"{confirmed} of {COUNT} publishes confirmed"
    assert not problems, "\n".join(problems[:20])
    delivered, problems = delivery_problems(trace)
    assert delivered == COUNT
    assert not problems, "\n".join(problems[:20])
    assert trace.wal_syncs > 0
    assert UNSAFE_LINE not in log


def test_fsync_never_fails_the_check_and_says_so(tmp_path, unique):
    """The check's own failure case: with no fsync at all every confirm and
    every delivery is flagged, and the broker logs that it runs unsafe."""
    trace, log = traced_run(tmp_path, unique, "--fsync", "never")
    assert trace.wal_syncs == 0
    confirmed, problems = confirm_problems(trace)
    assert confirmed == COUNT and len(problems) == COUNT, problems[:5]
    delivered, problems = delivery_problems(trace)
    assert delivered == COUNT and len(problems) == COUNT, problems[:5]
    assert re.search(rf" WARNING \S+: {re.escape(UNSAFE_LINE)}.*UNSAFE", log), log[-2000:]
