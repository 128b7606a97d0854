"""Query times of the message database at 10 million messages.

Builds (once; ``--db`` keeps it for later runs) a database of ``--messages``
messages (default 10,000,000) by writing rows straight through the mirror's
writer (``storage.mirror.database.write``: the same statements, indexes and
transactions as the message database process, without decoding WAL records,
which would take hours on this machine): a week of traffic (one message
every ~60 ms of ``published_at``) over 20 queues, 1 % of the messages
fanned out to two queues, a message-id each, a correlation-id on half of
them (shared by two messages), a ``tenant`` (50 values) and ``n`` (1,000
values) header on each, a ``--body``-byte body (default 100 B, so the file
stays a few GB), and the timeline routed / delivered / acked (99 %), or
queued / delivered / rejected for the rest; every 1,000th message has a
10-event timeline (four deliveries and requeues before its ack).

Then it times, through ``storage.mirror.query`` (what ``leveret messages
find`` / ``show`` run, connection included), ``--repeat`` different
arguments per query, and prints the median and the worst in ms:
find by message-id, by correlation-id, by queue + state + a 10-minute time
range, by a header (a common value, newest 100; a rare one within a day),
and ``show`` of a message with a 10-event timeline.

    .venv/bin/python bench/mirror_query_10m.py [--messages 10000000] [--db PATH]
        [--body 100] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.mirror import find, show  # noqa: E402
from storage.mirror.database import _open, write  # noqa: E402
from storage.mirror.rows import Resolved  # noqa: E402
from storage.mirror.schema import MODE_FULL  # noqa: E402

T0 = 1_796_000_000_000                   # ms: 2026-12-01
WEEK_MS = 7 * 86400 * 1000
QUEUES = [f"orders-{n}" for n in range(20)]
BATCH = 20_000
#: property mask bits (schema.PROPERTY_COLUMNS order): message_id, correlation_id, headers
_MID, _CID, _DM, _HEADERS = 1 << 0, 1 << 1, 1 << 10, 1 << 12


def message(i: int, total: int, body: bytes) -> tuple[list, list, list]:
    """(decoded row, queues if fanned out, events) of message ``i``."""
    at = T0 + i * WEEK_MS // total
    fanout = i % 100 == 0
    queues = [QUEUES[i % 20], QUEUES[(i + 1) % 20]] if fanout else [QUEUES[i % 20]]
    cid = f"corr-{i // 2}" if i % 4 < 2 else None
    headers = json.dumps({"tenant": f"t{i % 50}", "n": i % 1000}, separators=(",", ":"))
    finished = i % 100 != 7
    mask = _MID | _DM | _HEADERS | (_CID if cid else 0)
    row = [i, "/", "shop", f"order.{i % 10}", len(queues), f"msg-{i}", cid, None, None, None,
           None, None, None, None, None, 2, None, headers, len(body), body, at,
           "acked" if finished else "rejected", at + 25, mask,
           None if fanout else queues[0]]
    events = []
    for q in queues:
        events.append((i, q, "routed", at, None, None))
    q = queues[0]
    if i % 1000 == 0:
        for n in range(1, 5):
            events.append((i, q, "delivered", at + n, "ctag-1", n))
            events.append((i, q, "requeued", at + n, None, None))
        events.append((i, q, "delivered", at + 20, "ctag-1", 5))
    else:
        events.append((i, q, "delivered", at + 5, "ctag-1", 1))
    events.append((i, q, "acked" if finished else "rejected", at + 25, None, None))
    for other in queues[1:]:
        events.append((i, other, "acked", at + 25, None, None))
    return row, [(i, q) for q in queues] if fanout else [], events


def build(path: Path, total: int, body_size: int) -> None:
    conn, _ = _open(path, 65536)
    have = conn.execute("SELECT coalesce(max(id), 0) FROM message_rows").fetchone()[0]
    body = b"b" * body_size
    t0 = time.monotonic()
    for start in range(have + 1, total + 1, BATCH):
        out = Resolved()
        for i in range(start, min(total + 1, start + BATCH)):
            row, queues, events = message(i, total, body)
            out.messages.append(row)
            out.queues.extend(queues)
            out.events.extend(events)
        write(conn, out, (1, start, 1), MODE_FULL, 0)
        done = min(total, start + BATCH - 1)
        if done % 500_000 < BATCH:
            rate = (done - have) / (time.monotonic() - t0)
            print(f"  built {done:,} messages ({rate:,.0f}/s)", flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()


def timed(fn, args_list) -> tuple[float, float, object]:
    times = []
    result = None
    for args in args_list:
        t0 = time.perf_counter()
        result = fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/leveret-query-10m/messages.db"))
    parser.add_argument("--body", type=int, default=100, help="body size, bytes")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    build(args.db, args.messages, args.body)
    print(f"database {args.db}: {args.messages:,} messages, built/checked in "
          f"{time.monotonic() - t0:.0f} s, {args.db.stat().st_size / 2**30:.2f} GiB")
    conn = sqlite3.connect(args.db)
    events = conn.execute("SELECT count(*) FROM message_events").fetchone()[0]
    conn.close()
    print(f"  {events:,} events")
    rnd = random.Random(22)
    n, total, db = args.repeat, args.messages, args.db
    ids = [rnd.randrange(1, total + 1) for _ in range(n)]
    day = 86400 * 1000

    def window(i: int, length: int) -> tuple[int, int]:
        at = T0 + i * WEEK_MS // total
        return at - length // 2, at + length // 2

    queries = [
        ("find --message-id", lambda i: find(db, message_id=f"msg-{i}"),
         [(i,) for i in ids], 1),
        ("find --correlation-id", lambda i: find(db, correlation_id=f"corr-{i // 2}"),
         [(i - i % 4,) for i in ids], 2),
        ("find --queue --state acked, 10-minute range",
         lambda i: find(db, queue=QUEUES[i % 20], state="acked", since=window(i, 600_000)[0],
                        until=window(i, 600_000)[1]), [(i,) for i in ids], None),
        ("find --header tenant=tX (common value), newest 100",
         lambda i: find(db, headers={"tenant": f"t{i % 50}"}), [(i,) for i in ids], 100),
        ("find --header n=X (1 in 1,000) --since/--until one day",
         lambda i: find(db, headers={"n": str(i % 1000)}, since=window(i, day)[0],
                        until=window(i, day)[1]), [(i,) for i in ids], None),
        ("show ID (10-event timeline)", lambda i: show(db, i),
         [(max(1000, i - i % 1000),) for i in ids], None),
    ]
    print(f"query times over {n} different arguments each (ms):")
    for name, fn, arg_list, expect in queries:
        median, worst, result = timed(fn, arg_list)
        size = len(result["events"]) if isinstance(result, dict) else len(result)
        ok = "" if expect is None or size == expect else f"  (UNEXPECTED: {size} rows)"
        print(f"  {name:55s} median {median:7.2f}  worst {worst:7.2f}  "
              f"({size} {'events' if isinstance(result, dict) else 'rows'}){ok}", flush=True)


if __name__ == "__main__":
    main()
