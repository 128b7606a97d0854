"""Resource alarms and per-client bounds against a real broker process
(issue 15; rabbitmq.com/alarms.html, rabbitmq.com/connection-blocked.html):

- a low ``--memory-high-watermark``: a publisher flooding a queue with no
  consumer is blocked (aio-pika, connection.blocked "low on memory"), the
  broker's RSS stays under the watermark plus MEMORY_MARGIN, a consumer on
  another connection drains meanwhile, the publisher is unblocked and
  nothing is lost;
- a ``--disk-free-limit`` above the real free space: publishers are blocked
  ("low on disk", pika's blocked callback), consumers still get messages;
- ``--max-connections``: connection.open beyond gets 530 NOT_ALLOWED;
- a consumer that does not read its socket is handed a bounded amount.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aio_pika
import pika
import pytest
from pamqp import commands as spec

from tests.interop.pika_helpers import pika_connection
from tests.interop.raw_client import RawClient

#: the watermark of the memory test (bytes); the broker starts at ~35 MB
WATERMARK = 100 << 20
#: how far above the watermark the RSS may go: what a publisher sends
#: between two checks (0.5 s) plus socket buffers
MEMORY_MARGIN = 48 << 20
BODY = 32 * 1024


def rss(broker) -> int:
    """The broker process's resident set size in bytes (/proc/PID/status)."""
    for line in open(f"/proc/{broker.proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


class BlockedLog(logging.Handler):
    """aiormq has no blocked callback: it logs connection.blocked and
    connection.unblocked as warnings ("was blocked by: 'reason'"); this
    handler turns those lines into events."""

    def __init__(self):
        super().__init__()
        self.blocked = asyncio.Event()
        self.unblocked = asyncio.Event()
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "was blocked by" in record.msg:
            self.reasons.append(record.args[-1])
            self.blocked.set()
        elif "was unblocked" in record.msg:
            self.unblocked.set()


async def test_memory_alarm_blocks_publisher_while_consumer_drains(fresh_broker, unique):
    broker = fresh_broker("--memory-high-watermark", str(WATERMARK))
    assert rss(broker) < WATERMARK
    queue_name = unique("h9-mem")
    watcher = BlockedLog()
    aiormq_log = logging.getLogger("aiormq.connection")
    aiormq_log.addHandler(watcher)
    publisher = await aio_pika.connect(broker.url)
    consumer = await aio_pika.connect(broker.url)
    try:
        pub_channel = await publisher.channel()  # confirms on: a publish returns once acked
        await pub_channel.declare_queue(queue_name)
        stop = asyncio.Event()
        published = 0

        async def flood():
            nonlocal published
            while not stop.is_set():
                body = published.to_bytes(8, "big") + bytes(BODY)
                await pub_channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue_name)
                published += 1

        flooding = asyncio.create_task(flood())
        await asyncio.wait_for(watcher.blocked.wait(), 60)
        assert watcher.reasons == ["low on memory"]
        peak = rss(broker)
        assert peak < WATERMARK + MEMORY_MARGIN, f"RSS {peak} bytes while blocked"
        blocked_at = published

        received: list[int] = []
        all_in = asyncio.Event()
        con_channel = await consumer.channel()
        queue = await con_channel.get_queue(queue_name)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            received.append(int.from_bytes(message.body[:8], "big"))
            await message.ack()
            if stop.is_set() and len(received) >= published:
                all_in.set()

        await queue.consume(on_message)
        await asyncio.wait_for(watcher.unblocked.wait(), 60)
        stop.set()
        await asyncio.wait_for(flooding, 30)
        if len(received) < published:
            await asyncio.wait_for(all_in.wait(), 60)
        assert published > blocked_at or received  # the publisher went on after unblocked
        assert received == list(range(published))
        assert "memory resource limit alarm set" in broker.log_text()
        assert "memory resource limit alarm cleared" in broker.log_text()
    finally:
        aiormq_log.removeHandler(watcher)
        await publisher.close()
        await consumer.close()


def test_disk_alarm_blocks_publishers_consumers_still_get(fresh_broker, unique):
    broker = fresh_broker("--disk-free-limit", str(1 << 62))
    queue_name = unique("h9-disk")
    # a blocked connection is not read, so its connection.close is not
    # either: pika gives up after blocked_connection_timeout (as with RabbitMQ)
    with pika_connection(broker, blocked_connection_timeout=5) as pub, pika_connection(broker) as con:
        told: list[str] = []
        pub.add_on_connection_blocked_callback(lambda _conn, frame: told.append(frame.method.reason))
        channel = pub.channel()
        channel.queue_declare(queue_name)
        # an empty body: the content header completes the message, so it is
        # read whole before the connection is paused (a paused connection
        # may leave the rest of a message unread, as RabbitMQ's does)
        channel.basic_publish("", queue_name, b"")
        deadline = time.monotonic() + 10
        while not told and time.monotonic() < deadline:
            pub.process_data_events(time_limit=0.1)
        assert told == ["low on disk"]
        # the consumer's connection is read: basic.get and its ack work
        con_channel = con.channel()
        method = None
        deadline = time.monotonic() + 10
        while method is None and time.monotonic() < deadline:
            method, _props, body = con_channel.basic_get(queue_name)
        assert method is not None and body == b""
        con_channel.basic_ack(method.delivery_tag)
        # a publish now is not read: the queue stays empty
        channel.basic_publish("", queue_name, b"second")
        pub.process_data_events(time_limit=0.3)
        declared = con_channel.queue_declare(queue_name, passive=True).method
        assert (declared.message_count, declared.consumer_count) == (0, 0)
    assert "disk resource limit alarm set" in broker.log_text()


def test_consumer_only_connection_is_not_blocked(fresh_broker, unique):
    """Under an alarm a connection that never published is read as usual
    and told nothing: declaring, consuming and acking work."""
    broker = fresh_broker("--disk-free-limit", str(1 << 62))
    queue_name = unique("h9-cons")
    with pika_connection(broker) as con:
        told: list[str] = []
        con.add_on_connection_blocked_callback(lambda _conn, frame: told.append(frame.method.reason))
        channel = con.channel()
        channel.queue_declare(queue_name)
        assert channel.queue_declare(queue_name, passive=True).method.message_count == 0
        con.process_data_events(time_limit=0.2)
        assert told == []


def test_max_connections_refuses_with_530(fresh_broker):
    broker = fresh_broker("--max-connections", "2")
    with pika_connection(broker), pika_connection(broker):
        # pika reports a close during connection.open as a probable access denial
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            with pika_connection(broker):
                pass
        assert "(530) 'NOT_ALLOWED - connection refused: node connection limit (2) is reached'" in str(
            refused.value)
        raw = RawClient.for_broker(broker)
        raw.begin()
        raw.login()
        raw.read_tune()
        raw.tune_ok()
        raw.open_vhost()
        close = raw.wait_connection_close()
        assert (close.reply_code, close.class_id, close.method_id) == (530, 10, 40)
    # the two closed: a new one is accepted
    with pika_connection(broker) as third:
        assert third.is_open


#: what a consumer that reads nothing may have taken out of its queue:
#: one pass's output budget (1 MiB) + asyncio's write buffer high-water
#: mark + the kernel's socket buffers on both ends (loopback autotuning:
#: a few MiB)
STALLED_BOUND = 16 << 20


def test_non_reading_consumer_holds_a_bounded_amount(fresh_broker, unique):
    """A consumer with no prefetch limit that never reads its socket: the
    deliveries the broker hands it stop at a buffer size, the rest stay
    ready in the queue (rather than piling up in the broker's memory)."""
    broker = fresh_broker()
    queue_name = unique("h9-stalled")
    count, size = 1200, 32 * 1024  # 37.5 MiB in all
    stalled = RawClient.for_broker(broker, timeout=30.0)
    stalled.handshake()
    stalled.open_channel(1)
    stalled.rpc(1, spec.Queue.Declare(queue=queue_name), spec.Queue.DeclareOk)
    stalled.rpc(1, spec.Basic.Consume(queue=queue_name), spec.Basic.ConsumeOk)
    before = rss(broker)
    with pika_connection(broker) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        for seq in range(count):
            channel.basic_publish("", queue_name, seq.to_bytes(4, "big") + bytes(size - 4))
        # the broker has tried to deliver everything it could: wait until
        # the ready count stops moving
        readings = [-1]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            readings.append(channel.queue_declare(queue_name, passive=True).method.message_count)
            if readings[-1] == readings[-2]:
                break
            conn.process_data_events(time_limit=0.2)
        handed_out = count - readings[-1]
    assert 0 < handed_out * size <= STALLED_BOUND, f"{handed_out} deliveries sent to a consumer that reads nothing"
    assert rss(broker) - before < count * size + STALLED_BOUND
    stalled.sock.close()
