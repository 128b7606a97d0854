"""Load: 10,000 messages from 4 pika publishers (threads, one connection each)
through a direct exchange with 3 bound queues to 10 aio-pika consumers (one
connection each).

Checks exactly-once delivery of every message, routing to exactly one queue,
and AMQP's ordering guarantee (section 4.7; https://www.rabbitmq.com/semantics.html):
messages from one publisher on one channel to one queue are seen in publish
order by any single consumer of that queue.
"""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from tests.interop.clients import aio_connect, blocking

pytestmark = pytest.mark.timeout(150)

PUBLISHERS = 4
PER_PUBLISHER = 2500
QUEUES = 3
CONSUMER_QUEUES = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]   # 10 consumers: queue index of each
TOTAL = PUBLISHERS * PER_PUBLISHER


def publisher(broker, exchange: str, pub: int) -> float:
    """Publish PER_PUBLISHER messages 'pub:seq', routing key k<seq % 3>; return seconds taken."""
    start = time.monotonic()
    with blocking(broker) as conn:
        ch = conn.channel()
        for seq in range(PER_PUBLISHER):
            ch.basic_publish(exchange, f"k{seq % QUEUES}", f"{pub}:{seq}".encode())
    return time.monotonic() - start


async def test_ten_thousand_messages_exactly_once_in_order(broker, unique):
    """Every message is delivered exactly once, to the queue its routing key
    names, with per-publisher order kept for each consumer."""
    exchange = unique("load-x")
    queues = [unique(f"load-q{i}") for i in range(QUEUES)]
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.exchange_declare(exchange, "direct", auto_delete=False)
        for i, name in enumerate(queues):
            ch.queue_declare(name)
            ch.queue_bind(name, exchange, f"k{i}")

    # consumer id -> list of (queue index, publisher, seq, redelivered)
    seen: dict[int, list[tuple[int, int, int, bool]]] = collections.defaultdict(list)
    received = 0
    all_in = asyncio.Event()
    ends: set[int] = set()               # queues whose end marker arrived
    all_ends = asyncio.Event()
    connections = []

    def make_handler(cid: int, qi: int):
        async def on_message(message):
            nonlocal received
            if message.body.startswith(b"end"):
                await message.ack()
                ends.add(qi)
                if len(ends) == QUEUES:
                    all_ends.set()
                return
            pub, seq = map(int, message.body.split(b":"))
            seen[cid].append((qi, pub, seq, message.redelivered))
            await message.ack()
            received += 1
            if received >= TOTAL:
                all_in.set()
        return on_message

    loop = asyncio.get_running_loop()
    try:
        for cid, qi in enumerate(CONSUMER_QUEUES):
            conn = await aio_connect(broker)
            connections.append(conn)
            channel = await conn.channel()
            await channel.set_qos(prefetch_count=50)
            queue = await channel.declare_queue(queues[qi], passive=True)
            await queue.consume(make_handler(cid, qi), consumer_tag=f"load-{cid}")

        started = time.monotonic()
        durations = await asyncio.wait_for(asyncio.gather(*(
            loop.run_in_executor(None, publisher, broker, exchange, pub) for pub in range(PUBLISHERS))),
            timeout=60)
        await asyncio.wait_for(all_in.wait(), timeout=max(5.0, 60 - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        # a duplicate would come before a marker published after everything
        with blocking(broker) as conn:
            for i in range(QUEUES):
                conn.channel().basic_publish(exchange, f"k{i}", b"end")
        await asyncio.wait_for(all_ends.wait(), timeout=60)
    finally:
        for conn in connections:
            try:
                await asyncio.wait_for(conn.close(), 10)
            except Exception:
                pass
        with blocking(broker) as conn:
            ch = conn.channel()
            depths = [ch.queue_delete(name).method.message_count for name in queues]
            ch.exchange_delete(exchange)

    print(f"\n{TOTAL} messages in {elapsed:.2f}s; publishers took {[round(d, 2) for d in durations]}s")
    counts = collections.Counter((pub, seq) for msgs in seen.values() for _qi, pub, seq, _r in msgs)
    assert sum(counts.values()) == TOTAL
    assert set(counts) == {(p, s) for p in range(PUBLISHERS) for s in range(PER_PUBLISHER)}
    assert max(counts.values()) == 1
    assert depths == [0, 0, 0]
    for cid, msgs in seen.items():
        assert msgs, f"consumer {cid} got nothing"
        assert all(qi == seq % QUEUES for qi, _p, seq, _r in msgs), f"misrouted message at consumer {cid}"
        assert not any(r for *_x, r in msgs), f"consumer {cid} saw a redelivery"
        for pub in range(PUBLISHERS):
            seqs = [seq for _qi, p, seq, _r in msgs if p == pub]
            assert seqs == sorted(seqs), f"consumer {cid}: publisher {pub} order broken"
    per_consumer = {cid: len(msgs) for cid, msgs in sorted(seen.items())}
    assert len(per_consumer) == len(CONSUMER_QUEUES), per_consumer
