"""Message database lag under a steady load: a real WAL + a real MessageMirror.

Appends WAL records at a steady rate (default 200,000 records over 20 s,
i.e. 10,000 records/s) and feeds each one to the mirror right after
appending it, on one asyncio loop (uvloop if importable): the writer's
share of the work (the message database process also reads the records
back from the WAL files, storage/mirror/follower.py;
bench/mirror_lag_broker.py measures it all through a broker). The mix per
message is MESSAGE (1 KiB body; content header with message-id,
correlation-id, timestamp and a small headers table), DELIVERED (500
messages later) and ACK (1,000 messages later): three records per message.
20,000 distinct content headers are built before the clock starts and
cycled (more than the mirror's property cache holds), so the feeding side
costs what the broker's side costs (encode, append) plus the feed. Every tick (5 ms) it
samples ``mirror.lag_seconds()``; at the end it prints the worst lag (the
larger of the worst sample and the mirror's own feed-to-commit
``max_lag``), p99 and p50 of the samples, and the mirror's counters.

    .venv/bin/python bench/mirror_lag.py [--records 200000] [--seconds 20]
        [--body 1024] [--no-fsync] [--dir DIR]

Exit status 1 if the worst lag is above ``--max-lag`` (default 2.0 s).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pamqp import commands, header  # noqa: E402

from storage.mirror import MessageMirror  # noqa: E402
from storage.wal import (ACK, DELIVERED, MESSAGE, WriteAheadLog, encode_ack,  # noqa: E402
                         encode_delivered, encode_message)

DELIVER_AFTER = 500
ACK_AFTER = 1000


def content_header(i: int, body_size: int) -> bytes:
    props = commands.Basic.Properties(
        content_type="application/json", delivery_mode=2, message_id=f"order-{i}",
        correlation_id=f"corr-{i}", timestamp=datetime.datetime(2026, 5, 9, 7, 0, i % 60),
        app_id="bench", headers={"tenant": f"t{i % 7}", "attempt": 1, "n": i})
    return header.ContentHeader(0, body_size, props).marshal()


def records(total: int, body_size: int, distinct_headers: int = 20_000):
    """Yield (type, payload) in the MESSAGE / DELIVERED / ACK mix. Content
    headers are made up front (``distinct_headers`` of them, cycled: more
    than the mirror's property cache holds) so that the feeding loop spends
    its time on what the broker does: encode, append, feed."""
    body = b"x" * body_size
    headers = [content_header(i, body_size) for i in range(min(distinct_headers, total))]
    i = n = 0
    while n < total:
        yield MESSAGE, encode_message(i, "/", "orders", f"order.{i % 10}", ("orders",),
                                      headers[i % len(headers)], body)
        n += 1
        if i >= DELIVER_AFTER and n < total:
            yield DELIVERED, encode_delivered(i - DELIVER_AFTER, "orders", "ctag-1", 1)
            n += 1
        if i >= ACK_AFTER and n < total:
            yield ACK, encode_ack(i - ACK_AFTER, "orders")
            n += 1
        i += 1


async def run(args, directory: Path) -> int:
    wal = WriteAheadLog(directory / "wal", fsync=args.fsync)
    wal.open().drain()
    mirror = MessageMirror(directory / "messages.db")
    await mirror.start()
    rate = args.records / args.seconds
    source = records(args.records, args.body)
    first = next(source)                   # builds the content headers
    source = itertools.chain([first], source)
    samples: list[float] = []
    sent = 0
    t0 = time.monotonic()
    tick = args.tick
    while sent < args.records:
        target = min(args.records, int((time.monotonic() - t0) * rate) + 1)
        while sent < target:
            rtype, payload = next(source)
            mirror.feed(rtype, payload, wal.append(rtype, payload))
            sent += 1
        samples.append(mirror.lag_seconds())
        await asyncio.sleep(tick)
    feed_seconds = time.monotonic() - t0
    await wal.sync()
    while mirror.backlog or mirror.lag_seconds():
        samples.append(mirror.lag_seconds())
        await asyncio.sleep(tick)
    drain_seconds = time.monotonic() - t0 - feed_seconds
    stats = mirror.stats
    await mirror.stop()
    wal.close()
    samples.sort()
    worst = max(samples[-1], stats["max_lag"])
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    p50 = samples[len(samples) // 2]
    size = sum(p.stat().st_size for p in directory.glob("messages.db*"))
    print(f"fed {sent} records in {feed_seconds:.1f} s ({sent / feed_seconds:.0f}/s, "
          f"body {args.body} B, fsync {'on' if args.fsync else 'off'}); "
          f"drained {drain_seconds:.2f} s after the last feed")
    print(f"mirror lag: worst {worst:.3f} s, p99 {p99:.3f} s, p50 {p50:.3f} s "
          f"({len(samples)} samples every {tick * 1000:.0f} ms)")
    print(f"mirror: {stats['batches']} batches, max batch {stats['max_batch_ms']:.0f} ms, "
          f"max backlog {stats['max_backlog_seen']}, mode switches {stats['mode_switches']}, "
          f"{stats['messages']} messages, {stats['events']} events, db {size / 2**20:.1f} MiB")
    return 0 if worst <= args.max_lag else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--body", type=int, default=1024, help="body size in bytes")
    parser.add_argument("--tick", type=float, default=0.005, help="feed/sample period, s")
    parser.add_argument("--no-fsync", dest="fsync", action="store_false")
    parser.add_argument("--max-lag", type=float, default=2.0)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        sys.exit(asyncio.run(run(args, args.dir)))
    with tempfile.TemporaryDirectory() as tmp:
        sys.exit(asyncio.run(run(args, Path(tmp))))


if __name__ == "__main__":
    main()
