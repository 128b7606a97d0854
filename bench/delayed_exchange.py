"""Delayed-message exchange benchmark (issue 4): N delayed persistent
messages (default 1,000,000) wait in a durable ``x-delayed-message``
exchange and must be routed on time; RabbitMQ's plugin delivers early past
about 100k waiting messages.

Starts a broker on a fresh data dir, declares a durable x-delayed-message
exchange (x-delayed-type direct) bound to a durable queue, starts a
raw-socket consumer (thread) on the queue, then publishes ``--count``
persistent messages with confirms, each with an ``x-delay`` drawn uniformly
from [--min-delay, --max-delay] s. The body starts with the message's due
time (wall-clock ms since the epoch, 8 bytes big-endian: the publisher's
clock at send + x-delay) then its sequence number. The consumer records
``arrival - due`` (lateness, ms) for every message.

    PYTHONPATH=. .venv/bin/python bench/delayed_exchange.py                  # 1,000,000
    PYTHONPATH=. .venv/bin/python bench/delayed_exchange.py --count 100000
    PYTHONPATH=. .venv/bin/python bench/delayed_exchange.py --count 100000 --profile /tmp/d.prof  # cProfile

Prints publish rate, broker RSS peak (MB = 10^6 bytes) and per waiting
message, lateness worst / p99 / p50 and earliest (negative = early: must
not happen beyond the clock granularity, a few ms), and appends a JSON line
to bench/results/delayed_exchange.jsonl. The publisher stamps the due time
when it sends, the broker when it receives, so queueing in the publish
window (--window) counts as lateness here: the figures are an upper bound.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pamqp import commands  # noqa: E402
from pamqp import frame as pframe  # noqa: E402

from bench.amqp_client import FRAME_END, FRAME_HEAD, Connection  # noqa: E402
from bench.amqp_load import _ACK_METHOD, _DELIVER_METHOD, _TAG_BITS, _read_confirms  # noqa: E402
from bench.deep_queue import RssSampler, proc_memory  # noqa: E402
from bench.profile_broker import ProfiledLeveret, print_profile  # noqa: E402
from bench.report import append_jsonl  # noqa: E402
from tests.interop.server_process import BrokerProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "delayed_exchange.jsonl"
MB = 1e6
U64 = struct.Struct(">Q")
I32 = struct.Struct(">i")


def message_template(channel: int, exchange: str, routing_key: str, size: int) -> tuple[bytes, int, int]:
    """Frames of one persistent message with headers {"x-delay": int32}
    and a ``size``-byte body; returns (bytes, offset of the int32 delay,
    offset of the body). Built by hand so a million differ only by patching."""
    head = pframe.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), channel)
    table = b"\x07x-delay" + b"I" + I32.pack(0)
    props = struct.pack(">H", 0x3000) + struct.pack(">I", len(table)) + table + b"\x02"
    payload = struct.pack(">HHQ", 60, 0, size) + props
    header = struct.pack(">BHI", 2, channel, len(payload)) + payload + bytes((FRAME_END,))
    delay_at = len(head) + 7 + 12 + 2 + 4 + 9
    body = bytes(size)
    frame = struct.pack(">BHI", 3, channel, size) + body + bytes((FRAME_END,))
    return head + header + frame, delay_at, len(head) + len(header) + 7


def publish(conn: Connection, args, exchange: str) -> float:
    """Publish ``args.count`` delayed messages with confirms; returns seconds."""
    conn.open_channel(1)
    conn.rpc(1, commands.Confirm.Select(), commands.Confirm.SelectOk)
    template, delay_at, body_at = message_template(1, exchange, "k", args.size)
    stride = len(template)
    rng = random.Random(args.seed)
    lo, hi = int(args.min_delay * 1000), int(args.max_delay * 1000)
    sent = confirmed = 0
    singles: set[int] = set()
    started = time.perf_counter()
    while confirmed < args.count:
        room = min(args.batch, args.count - sent, args.window - (sent - confirmed))
        if room > 0:
            data = bytearray(template) * room
            now = time.time_ns() // 1_000_000
            for i in range(room):
                delay = rng.randint(lo, hi)
                base = i * stride
                I32.pack_into(data, base + delay_at, delay)
                U64.pack_into(data, base + body_at, now + delay)
                U64.pack_into(data, base + body_at + 8, sent + i)
            conn.send(data)
            sent += room
        if conn.fill(block=room <= 0) or room <= 0:
            confirmed = _read_confirms(conn, confirmed, singles)
    return time.perf_counter() - started


def consume(conn: Connection, queue: str, count: int, late: list, stop: threading.Event) -> None:
    """Consume ``count`` messages, appending ``arrival_ms - due_ms`` per
    message to ``late``; acks with multiple=true every 500."""
    conn.open_channel(2)
    conn.rpc(2, commands.Basic.Qos(prefetch_count=5000), commands.Basic.QosOk)
    conn.rpc(2, commands.Basic.Consume(queue=queue, consumer_tag="bench"), commands.Basic.ConsumeOk)
    ack_head = FRAME_HEAD.pack(1, 2, 13) + _ACK_METHOD
    buf = conn.buf
    received = acked = tag = 0
    conn.sock.settimeout(1.0)
    while received < count and not stop.is_set():
        pos, end = conn.pos, conn.end
        while end - pos >= 7:
            ftype, _ch, fsize = FRAME_HEAD.unpack_from(buf, pos)
            stop_at = pos + 7 + fsize
            if stop_at >= end:
                break
            start = pos + 7
            if ftype == 3:
                late.append(time.time_ns() // 1_000_000 - U64.unpack_from(buf, start)[0])
                received += 1
            elif ftype == 1 and buf[start:start + 4] == _DELIVER_METHOD:
                tag = _TAG_BITS.unpack_from(buf, start + 5 + buf[start + 4])[0]
            pos = stop_at + 1
        conn.pos = pos
        if received - acked >= 500 or (received == count and acked < received):
            conn.send(ack_head + _TAG_BITS.pack(tag, 1) + bytes((FRAME_END,)))
            acked = received
        if received < count:
            try:
                conn.fill()
            except TimeoutError:
                continue


def percentile(sorted_values: list, p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="leveret-delayed-"))
    os.environ["LEVERET_FSYNC"] = args.fsync
    if args.profile:
        broker = ProfiledLeveret(tmp, args.profile, ["--fsync", args.fsync, *args.broker_args.split()])
    else:
        broker = BrokerProcess(tmp / "data", args.broker_args.split())
    r: dict = {"broker_args": args.broker_args, "count": args.count, "size": args.size, "min_delay_s": args.min_delay, "max_delay_s": args.max_delay,
               "window": args.window, "fsync": args.fsync}
    stop = threading.Event()
    try:
        broker.start(timeout=120)
        setup = Connection(broker.host, broker.port)
        setup.open_channel(1)
        setup.rpc(1, commands.Exchange.Declare(exchange="delayed", exchange_type="x-delayed-message", durable=True,
                                               arguments={"x-delayed-type": "direct"}), commands.Exchange.DeclareOk)
        setup.queue_declare(1, "due", durable=True)
        setup.rpc(1, commands.Queue.Bind(queue="due", exchange="delayed", routing_key="k"), commands.Queue.BindOk)
        setup.close()
        r["rss_idle_mb"] = proc_memory(broker.proc.pid)[0]
        late: list[int] = []
        consumer_conn = Connection(broker.host, broker.port)
        consumer = threading.Thread(target=consume, args=(consumer_conn, "due", args.count, late, stop), daemon=True)
        consumer.start()
        sampler = RssSampler(broker.proc.pid)
        sampler.start()
        pub = Connection(broker.host, broker.port)
        seconds = publish(pub, args, "delayed")
        r["publish_s"], r["publish_rate"] = seconds, args.count / seconds
        r["rss_after_publish_mb"] = proc_memory(broker.proc.pid)[0]
        r["delivered_during_publish"] = len(late)
        r["rss_per_waiting_msg_bytes_after_publish"] = (r["rss_after_publish_mb"] - r["rss_idle_mb"]) * MB / args.count
        print(f"publish: {args.count:,} confirmed in {seconds:.1f} s = {r['publish_rate']:,.0f} msg/s; RSS "
              f"{r['rss_after_publish_mb']:,.0f} MB ({len(late):,} already delivered)", flush=True)
        consumer.join(timeout=args.max_delay + seconds + args.grace)
        stop.set()
        r["rss_peak_mb"] = sampler.stop()
        r["rss_per_waiting_msg_bytes"] = (r["rss_peak_mb"] - r["rss_idle_mb"]) * MB / args.count
        pub.close()
        consumer_conn.close()
        values = sorted(late)
        r["received"] = len(values)
        if values:
            r.update(late_worst_ms=values[-1], late_p99_ms=percentile(values, 0.99),
                     late_p50_ms=percentile(values, 0.5), earliest_ms=values[0])
        broker.stop()
    finally:
        stop.set()
        broker.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    r["ok"] = r.get("received") == args.count and r.get("earliest_ms", -1000) >= -5
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=64, help="body bytes (at least 16)")
    parser.add_argument("--min-delay", type=float, default=5.0, help="s")
    parser.add_argument("--max-delay", type=float, default=30.0, help="s")
    parser.add_argument("--window", type=int, default=5000, help="unconfirmed messages")
    parser.add_argument("--batch", type=int, default=500, help="messages per sendall")
    parser.add_argument("--fsync", choices=("always", "never"), default="always")
    parser.add_argument("--grace", type=float, default=120.0, help="s to wait for stragglers")
    parser.add_argument("--broker-args", default="", help='extra broker options, e.g. "--mirror off"')
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--profile", type=Path, help="run the broker under cProfile, write the profile here")
    args = parser.parse_args()
    if args.size < 16:
        parser.error("--size must be at least 16")
    r = run(args)
    r["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    r["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip()
    print(f"== delayed exchange: {r['count']:,} messages, delays {args.min_delay}-{args.max_delay} s ==\n"
          f"received {r.get('received', 0):,}; lateness worst {r.get('late_worst_ms')} ms, p99 "
          f"{r.get('late_p99_ms')} ms, p50 {r.get('late_p50_ms')} ms, earliest {r.get('earliest_ms')} ms; "
          f"broker RSS peak {r['rss_peak_mb']:,.0f} MB (idle {r['rss_idle_mb']:.0f} MB, "
          f"peak {r['rss_per_waiting_msg_bytes']:,.0f} B/msg; after publish {r['rss_after_publish_mb']:,.0f} MB, "
          f"{r['rss_per_waiting_msg_bytes_after_publish']:,.0f} B/msg); {'OK' if r['ok'] else 'FAILED'}")
    if args.profile:
        print_profile(args.profile, 30)
        return 0
    append_jsonl(args.results, [r])
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
