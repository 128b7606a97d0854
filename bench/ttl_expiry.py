"""Message-TTL expiry benchmark (issue 4): ``--count`` messages (default
1,000,000) with random per-message TTLs (``--min-ttl``..``--max-ttl`` s,
default 1-20 s) in ONE queue, which dead-letters them to a DLQ; a raw-socket
consumer on the DLQ measures how late each message arrives after its
deadline.

Starts a broker (``python -m broker``, tests/interop/server_process.py) on
a fresh temporary data dir. Each message body is its deadline in wall-clock
ms, taken by the publisher just before sending (so the figure includes the
time the message spent in flight to the broker: it is an upper bound of the
broker's own lateness). Publishing goes in confirmed windows of ``--window``
messages so that the broker never lags far behind the publisher's clock.

    PYTHONPATH=. .venv/bin/python bench/ttl_expiry.py --count 100000
    PYTHONPATH=. .venv/bin/python bench/ttl_expiry.py                     # 1,000,000
    PYTHONPATH=. .venv/bin/python bench/ttl_expiry.py --durable           # persistent, durable queues
    PYTHONPATH=. .venv/bin/python bench/ttl_expiry.py --count 100000 --profile /tmp/ttl.prof  # broker under cProfile

Prints publish rate (msg/s), lateness (ms: worst, p99, p50; negative =
early; also for the messages whose deadline fell after the last publish,
i.e. without the publishing load on the same 1-2 cores), messages that never arrived, broker RSS (MB = 10^6 bytes) peak;
appends one JSON line to bench/results/ttl_expiry.jsonl. Exit status 1 when
a message is missing or arrived early.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pamqp import commands  # noqa: E402

from bench.amqp_client import Connection  # noqa: E402
from bench.deep_queue import RssSampler  # noqa: E402
from bench.profile_broker import ProfiledLeveret, print_profile  # noqa: E402
from tests.interop.server_process import BrokerProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ttl_expiry.jsonl"
FRAME = struct.Struct(">BHI")
HEADER = struct.Struct(">HHQH")  # class, weight, body size, property flags


def publish_frame(queue: str, body: bytes, expiration: str, persistent: bool) -> bytes:
    """basic.publish + content header (expiration[, delivery-mode 2]) + body, on channel 1."""
    q = queue.encode()
    method = struct.pack(">HHH", 60, 40, 0) + b"\x00" + bytes([len(q)]) + q + b"\x00"
    flags = 0x0100 | (0x1000 if persistent else 0)
    props = (b"\x02" if persistent else b"") + bytes([len(expiration)]) + expiration.encode()
    header = HEADER.pack(60, 0, len(body), flags) + props
    return b"".join(FRAME.pack(t, 1, len(p)) + p + b"\xce" for t, p in ((1, method), (2, header), (3, body)))


def wait_confirms(conn: Connection, upto: int) -> None:
    """Read basic.ack frames until ``upto`` is covered."""
    acked = 0
    while acked < upto:
        ftype, _ch, start, _stop = conn.next_frame()
        if ftype == 1 and conn.buf[start:start + 4] == b"\x00\x3c\x00\x50":
            tag, multiple = struct.unpack_from(">QB", conn.buf, start + 4)
            acked = max(acked, tag)


class DeadLetterConsumer(threading.Thread):
    """Consumes the DLQ (no-ack) and records arrival - deadline per message, ms."""

    def __init__(self, port: int, queue: str, expected: int):
        super().__init__(daemon=True)
        self.conn = Connection("127.0.0.1", port)
        self.conn.open_channel(1)
        self.conn.rpc(1, commands.Basic.Consume(queue=queue, no_ack=True), commands.Basic.ConsumeOk)
        self.expected = expected
        self.lateness: list[int] = []
        self.deadlines: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        conn, late = self.conn, self.lateness
        while len(late) < self.expected and not self.done.is_set():
            ftype, _ch, start, stop = conn.next_frame()
            if ftype == 3:
                deadline = int(bytes(conn.buf[start:stop]))
                late.append(time.time_ns() // 1_000_000 - deadline)
                self.deadlines.append(deadline)


def run(args) -> dict:
    data = Path(tempfile.mkdtemp(prefix="ttl-expiry-"))
    if args.profile:
        broker = ProfiledLeveret(data, args.profile).start()
    else:
        broker = BrokerProcess(data / "data", ["--log-level", "info"]).start()
    try:
        conn = Connection("127.0.0.1", broker.port)
        conn.open_channel(1)
        conn.rpc(1, commands.Exchange.Declare(exchange="ttl-dlx", exchange_type="fanout", durable=args.durable),
                 commands.Exchange.DeclareOk)
        conn.rpc(1, commands.Queue.Declare(queue="ttl-dlq", durable=args.durable), commands.Queue.DeclareOk)
        conn.rpc(1, commands.Queue.Bind(queue="ttl-dlq", exchange="ttl-dlx"), commands.Queue.BindOk)
        conn.rpc(1, commands.Queue.Declare(queue="ttl-src", durable=args.durable,
                                           arguments={"x-dead-letter-exchange": "ttl-dlx"}),
                 commands.Queue.DeclareOk)
        conn.rpc(1, commands.Confirm.Select(), commands.Confirm.SelectOk)
        consumer = DeadLetterConsumer(broker.port, "ttl-dlq", args.count)
        consumer.start()
        sampler = RssSampler(broker.proc.pid)
        sampler.start()
        rng = random.Random(args.seed)
        lo, hi = int(args.min_ttl * 1000), int(args.max_ttl * 1000)
        started = time.perf_counter()
        sent = 0
        while sent < args.count:
            batch = []
            for _ in range(min(args.window, args.count - sent)):
                ttl = rng.randint(lo, hi)
                deadline = time.time_ns() // 1_000_000 + ttl
                batch.append(publish_frame("ttl-src", str(deadline).encode(), str(ttl), args.durable))
            conn.send(b"".join(batch))
            sent += len(batch)
            wait_confirms(conn, sent)
        publish_s = time.perf_counter() - started
        published_at = time.time_ns() // 1_000_000
        consumer.join(timeout=args.max_ttl + 120)
        consumer.done.set()
        peak = sampler.stop()
        late = sorted(consumer.lateness)
        n = len(late)
        quiet = sorted(x for x, d in zip(consumer.lateness, consumer.deadlines) if d > published_at)
        q = len(quiet)
        result = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "count": args.count,
            "durable": args.durable, "ttl_s": [args.min_ttl, args.max_ttl],
            "publish_s": round(publish_s, 2), "publish_rate": round(args.count / publish_s),
            "arrived": n, "missing": args.count - n,
            "late_worst_ms": late[-1] if n else None, "late_p99_ms": late[int(n * 0.99)] if n else None,
            "late_p50_ms": late[n // 2] if n else None, "early": sum(1 for x in late if x < 0),
            "earliest_ms": late[0] if n else None,
            # deadlines after the last publish: expiry alone, without the publish load
            "after_publish": q, "after_publish_worst_ms": quiet[-1] if q else None,
            "after_publish_p99_ms": quiet[int(q * 0.99)] if q else None, "rss_peak_mb": round(peak, 1),
        }
        conn.close()
        return result
    finally:
        broker.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--min-ttl", type=float, default=1.0, help="seconds")
    parser.add_argument("--max-ttl", type=float, default=20.0, help="seconds")
    parser.add_argument("--window", type=int, default=100, help="messages per confirmed window")
    parser.add_argument("--durable", action="store_true", help="persistent messages, durable queues")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--profile", type=Path, help="run the broker under cProfile, write the profile here")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result))
    if args.profile:
        print_profile(args.profile, 30)
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(result) + "\n")
    return 1 if result["missing"] or result["early"] else 0


if __name__ == "__main__":
    sys.exit(main())
