"""A long stream of confirmed persistent publishes (rabbitmq.com/confirms.html):
every one is acked, none nacked, each exactly once, and the queue holds them
all in order. The crash tests restart the broker every few hundred
publishes; this one keeps a broker process for STREAM publishes, so a
fault that shows once in a while (a nack now and then, a lost or doubled
ack) is counted here.

Outcomes are counted, not raised: the test fails with the number of acks,
nacks and channel errors it saw.
"""

from __future__ import annotations

import asyncio

import aio_pika
import aio_pika.exceptions

STREAM = 5000          # persistent publishes on one channel, one broker process
IN_FLIGHT = 200        # unconfirmed publishes at a time
CONFIRM_GUARD = 30     # seconds: a confirm that never comes is counted as an error, not a hang


async def publish_stream(url: str, queue: str) -> dict[str, int]:
    """Publish STREAM persistent messages with confirms; returns the count
    of each outcome ("ack", "nack", "error: <type>")."""
    outcomes: dict[str, int] = {}
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)

        async def one(n: int) -> None:
            message = aio_pika.Message(b"%d" % n, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            try:
                await channel.default_exchange.publish(message, queue, timeout=CONFIRM_GUARD)
                kind = "ack"
            except aio_pika.exceptions.DeliveryError:
                kind = "nack"
            except Exception as exc:       # a channel or connection error: counted
                kind = f"error: {type(exc).__name__}"
            outcomes[kind] = outcomes.get(kind, 0) + 1

        for first in range(0, STREAM, IN_FLIGHT):
            await asyncio.gather(*(one(n) for n in range(first, min(first + IN_FLIGHT, STREAM))))
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        outcomes["queued"] = declared.declaration_result.message_count
        received = []
        async with declared.iterator() as messages:
            async for message in messages:
                received.append(int(message.body))
                await message.ack()
                if len(received) == outcomes["queued"]:
                    break
        outcomes["in order"] = int(received == list(range(STREAM)))
    return outcomes


def test_every_persistent_publish_of_a_long_stream_is_acked_once(fresh_broker, unique):
    proc = fresh_broker()
    outcomes = asyncio.run(publish_stream(proc.url, unique("stream")))
    assert outcomes == {"ack": STREAM, "queued": STREAM, "in order": 1}, outcomes


async def publish_into_a_full_queue(url: str, queue: str) -> list[str]:
    """Two persistent publishes in one go into a durable x-max-length 1
    reject-publish queue: the first is stored (confirmed after the fsync),
    the second refused (nacked at once). Returns each outcome, in order."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True,
                                    arguments={"x-max-length": 1, "x-overflow": "reject-publish"})

        async def one(n: int) -> str:
            message = aio_pika.Message(b"%d" % n, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            try:
                await channel.default_exchange.publish(message, queue, timeout=CONFIRM_GUARD)
                return "ack"
            except aio_pika.exceptions.DeliveryError:
                return "nack"
            except asyncio.TimeoutError:
                return "no confirm"
        return list(await asyncio.gather(one(1), one(2)))


def test_a_nack_does_not_swallow_the_acks_settled_after_it(fresh_broker, unique):
    """rabbitmq.com/confirms.html: each publish is confirmed once. A
    multiple ack whose delivery tag was already nacked is dropped whole by
    aio-pika (aiormq ignores a confirm for an unknown tag), so the broker
    must name a tag it confirms now, as RabbitMQ does."""
    proc = fresh_broker()
    assert asyncio.run(publish_into_a_full_queue(proc.url, unique("full"))) == ["ack", "nack"]
