"""Apply rate of the message database process: how many messages per second
``WalFollower`` + ``MessageMirror`` (what ``python -m storage.mirror.process``
runs) read from WAL segment files and commit to a fresh ``messages.db``.

It first writes a WAL of ``--messages`` persistent messages (default
200,000; ``--body`` bytes each, default 1 KiB; a content header with
delivery-mode 2 and a distinct message-id, as bench/amqp_raw.py publishes)
to one durable queue, then times the follower reading it all and the
mirror applying it, on one asyncio loop (uvloop if importable), as fast as
it can: no broker, so the figure is the process's ceiling on this machine
(bench/mirror_lag_broker.py measures it beside a real broker). With
``--consume`` the WAL also holds what a consumer makes: a DELIVERED_MANY
record per ``--deliver-batch`` messages (default 1,000, as a loop pass of
deliveries) and an ACK_MANY per 250 messages (a ``multiple`` ack), acks
``--ack-after`` messages (default 2,000) behind the publishes.

    .venv/bin/python bench/mirror_apply_rate.py [--messages 200000] [--body 1024]
        [--consume] [--repeat 3] [--dir DIR]

Prints one line per repeat: messages/s, records/s, CPU time per message
(user + system, all threads: on a shared machine the steadier figure, and
the rate one free core would give), database bytes per message, the
mirror's mode switches.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pamqp import commands, header  # noqa: E402

from storage.mirror.follower import WalFollower  # noqa: E402
from storage.mirror.writer import MessageMirror  # noqa: E402
from storage.wal import ACK_MANY, DELIVERED_MANY, MESSAGE, WriteAheadLog, encode_message  # noqa: E402
from storage.wal.batch_record import encode_ack_many, encode_delivered_many  # noqa: E402

QUEUE = "orders"
ACK_BATCH = 250


def content_header(i: int, body_size: int) -> bytes:
    """A content header as bench/amqp_raw.py sends: delivery-mode 2 and a
    12-digit message-id."""
    props = commands.Basic.Properties(delivery_mode=2, message_id=f"{i:012d}")
    return header.ContentHeader(0, body_size, props).marshal()


#: --body-mix: body sizes cycled (bytes), and one 200 KB body per MIX_LARGE messages
MIX_SIZES = (64, 256, 1024, 4096)
MIX_LARGE = 500


def body_size_of(i: int, body_size: int, mix: bool) -> int:
    if not mix:
        return body_size
    return 200_000 if i % MIX_LARGE == 0 else MIX_SIZES[i % len(MIX_SIZES)]


def write_wal(wal_dir: Path, messages: int, body_size: int, consume: bool, deliver_batch: int,
              ack_after: int, mix: bool = False) -> tuple[int, tuple[int, int]]:
    """Write the WAL; returns (records, durable end)."""
    wal = WriteAheadLog(wal_dir, fsync=False)
    wal.open().drain()
    made: dict[int, tuple[bytes, bytes]] = {}      # size -> (header prefix, body)
    at = time.time_ns() // 1_000_000
    records = 0
    delivered = acked = 0
    for i in range(1, messages + 1):
        size = body_size_of(i, body_size, mix)
        if size not in made:
            template = content_header(0, size)
            assert template[-12:] == b"0" * 12
            made[size] = (template[:-12], b"x" * size)
        prefix, body = made[size]
        wal.append(MESSAGE, encode_message(i, "/", "", QUEUE, [QUEUE], prefix + b"%012d" % i,
                                           body, at_ms=at + i // 100))
        records += 1
        if not consume:
            continue
        if i - delivered >= deliver_batch or i == messages:
            ids = list(range(delivered + 1, i + 1))
            wal.append(DELIVERED_MANY, encode_delivered_many(ids, [1] * len(ids), QUEUE, "ctag-1",
                                                             at_ms=at + i // 100))
            delivered = i
            records += 1
        while delivered - acked >= ACK_BATCH and (delivered - acked >= ack_after
                                                  or i == messages):
            ids = list(range(acked + 1, acked + ACK_BATCH + 1))
            wal.append(ACK_MANY, encode_ack_many(ids, QUEUE, 1, at_ms=at + i // 100))
            acked += ACK_BATCH
            records += 1
    if consume and acked < delivered:
        wal.append(ACK_MANY, encode_ack_many(list(range(acked + 1, delivered + 1)), QUEUE, 1,
                                             at_ms=at + messages // 100))
        records += 1
    wal.close()
    end = WriteAheadLog(wal_dir, fsync=False)
    end.open().drain()
    durable = end.durable_end()
    end.close()
    return records, durable


def _cpu() -> float:
    """CPU seconds (user + system) of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def apply(wal_dir: Path, db: Path, durable: tuple[int, int],
                body_limit: int) -> tuple[float, dict]:
    """Seconds for the follower and mirror to apply the whole WAL; stats."""
    mirror = MessageMirror(db, body_limit=body_limit)
    await mirror.start()
    follower = WalFollower(mirror, wal_dir)
    cpu0 = _cpu()
    t0 = time.perf_counter()
    follower.tell(*durable)
    while not follower.caught_up():
        await follower.step()
    await mirror.flush()
    seconds = time.perf_counter() - t0
    stats = mirror.stats
    stats["cpu_seconds"] = _cpu() - cpu0
    await mirror.stop()
    return seconds, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--body", type=int, default=1024, help="body size, bytes")
    parser.add_argument("--consume", action="store_true")
    parser.add_argument("--body-mix", action="store_true",
                        help="bodies of 64 B to 4 KiB, one of 200 KB per 500 (instead of --body)")
    parser.add_argument("--body-limit", type=int, default=65536,
                        help="the mirror's body limit, bytes (0: no bodies)")
    parser.add_argument("--deliver-batch", type=int, default=1000)
    parser.add_argument("--ack-after", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    try:
        import uvloop
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    work = Path(tempfile.mkdtemp(prefix="leveret-apply-", dir=args.dir))
    try:
        records, durable = write_wal(work / "wal", args.messages, args.body, args.consume,
                                     args.deliver_batch, args.ack_after, args.body_mix)
        sizes = [body_size_of(i, args.body, args.body_mix) for i in range(1, args.messages + 1)]
        stored = sum(n for n in sizes if n <= args.body_limit)
        for n in range(args.repeat):
            db = work / f"messages-{n}.db"
            seconds, stats = run(apply(work / "wal", db, durable, args.body_limit))
            if stats["failed"] or stats["applied"] != records:
                print(f"FAILED: {stats['applied']} of {records} records applied", flush=True)
                sys.exit(1)
            size = sum(p.stat().st_size for p in work.glob(f"messages-{n}.db*"))
            body = "64 B-4 KiB + 200 KB" if args.body_mix else f"{args.body} B"
            print(f"{args.messages} messages ({records} records, body {body}, body limit "
                  f"{args.body_limit}, consumer "
                  f"{'on' if args.consume else 'off'}): {seconds:.2f} s, "
                  f"{args.messages / seconds:,.0f} messages/s, {records / seconds:,.0f} records/s,"
                  f" CPU {stats['cpu_seconds'] * 1e6 / args.messages:.1f} us/message "
                  f"({args.messages / stats['cpu_seconds']:,.0f} messages per CPU second),"
                  f" {size / args.messages:,.0f} B/message on disk (bodies stored "
                  f"{stored / args.messages:,.0f} B/message: fixed cost "
                  f"{(size - stored) / args.messages:,.0f} B/message, "
                  f"{size / max(1, stored):.2f}x the bodies), mode switches "
                  f"{stats['mode_switches']}, bodies missing "
                  f"{stats.get('bodies_missing', 'n/a')}", flush=True)
            for p in work.glob(f"messages-{n}.db*"):
                p.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
