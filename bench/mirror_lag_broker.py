"""Message database lag through the real broker, under a steady publish load.

For each rate (default 5,000 and 10,000 msg/s) it starts a fresh broker
process (``python -m broker``, its own data dir, fsync on unless
``--fsync never``), publishes persistent messages (delivery_mode 2, 1 KiB
body, a sequence number as message-id) to a durable queue at that steady
rate for ``--seconds`` (default 30) with a raw-socket publisher
(bench/amqp_raw.py), and by default consumes them with a no-ack consumer,
so the WAL and the mirror see three records per message (MESSAGE,
DELIVERED, ACK). Every ``--poll`` seconds (default 0.1) it reads the newest
row of ``<data_dir>/messages.db`` with sqlite3 while the broker runs:

* WAL lag = now - published_at of the newest row: how long ago the newest
  message visible in the database was appended to the WAL (staleness of
  the database; published_at is the broker's WAL time);
* end-to-end lag = now - the time the publisher sent that message (adds
  the socket and the broker's own queueing before the WAL).

It prints p50 / p99 / max of both, the achieved rate, the time the database
took to show the last message after publishing stopped, and the mirror's
own worst feed-to-commit lag and mode switches from the broker log.

    .venv/bin/python bench/mirror_lag_broker.py [--rates 5000,10000] [--seconds 30]
        [--body 1024] [--no-consume] [--fsync always|never] [--poll 0.1] [--keep DIR]
        [--broker-arg=FLAG ...]

Exit status 1 if any max WAL lag is above ``--max-lag`` (default 2.0 s).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.amqp_raw import PublishTemplate, RawConnection  # noqa: E402

TICK = 0.005                  # seconds between two publish bursts
QUEUE = "mirror-lag"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_broker(data_dir: Path, port: int, fsync: str, log_path: Path,
                 extra: list[str]) -> subprocess.Popen:
    """``python -m broker`` on 127.0.0.1:port with the ``extra`` flags;
    returns once it listens."""
    env = dict(os.environ, LEVERET_FSYNC=fsync, PYTHONUNBUFFERED="1")
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "broker", "--port", str(port), "--data-dir",
                             str(data_dir), "--log-level", "info", *extra], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited: {log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("broker did not start listening")


def newest_row(db: Path) -> tuple[int, int] | None:
    """(sequence number, published_at ms) of the newest message row."""
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return None
    try:
        row = conn.execute("SELECT message_id, published_at FROM messages "
                           "ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return None if row is None else (int(row[0]), row[1])


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) of ``values`` (nearest rank), 0s when empty."""
    if not values:
        return 0.0, 0.0, 0.0
    v = sorted(values)
    return v[len(v) // 2], v[min(len(v) - 1, int(len(v) * 0.99))], v[-1]


async def load(port: int, db: Path, rate: int, seconds: float, body: int, consume: bool,
               poll: float, drain_timeout: float = 120.0) -> dict:
    """Publish at ``rate`` msg/s for ``seconds`` while sampling the lag."""
    pub = await RawConnection.open("127.0.0.1", port)
    await pub.declare_durable_queue(QUEUE)
    consumer = task = None
    if consume:
        consumer = await RawConnection.open("127.0.0.1", port)
        task = asyncio.create_task(consumer.consume_and_discard(QUEUE))
    template = PublishTemplate("", QUEUE, body, pub.frame_max)
    sent_at_seq: list[int] = []      # first sequence number of each burst ...
    sent_at_t: list[float] = []      # ... and when it was written (time.time, s)
    wal_lag: list[float] = []
    e2e_lag: list[float] = []
    loop = asyncio.get_running_loop()
    done = False

    async def sample() -> None:
        while not done:
            row = await loop.run_in_executor(None, newest_row, db)
            now = time.time()
            if row is not None:
                seq, published_ms = row
                wal_lag.append(max(0.0, now - published_ms / 1000))
                i = bisect.bisect_right(sent_at_seq, seq) - 1
                if i >= 0:
                    e2e_lag.append(max(0.0, now - sent_at_t[i]))
            await asyncio.sleep(poll)

    sampler = asyncio.create_task(sample())
    sent = 0
    t0 = time.monotonic()
    total = int(rate * seconds)
    while sent < total:
        target = min(total, int((time.monotonic() - t0) * rate) + 1)
        if target > sent:
            sent_at_seq.append(sent + 1)
            sent_at_t.append(time.time())
            pub.writer.write(b"".join(template.frames(s) for s in range(sent + 1, target + 1)))
            sent = target
            await pub.writer.drain()
        await asyncio.sleep(TICK)
    publish_seconds = time.monotonic() - t0
    t_end = time.monotonic()
    drain = None
    while True:                      # the database shows the last message
        row = await loop.run_in_executor(None, newest_row, db)
        if row is not None and row[0] == total:
            drain = time.monotonic() - t_end
            break
        if time.monotonic() - t_end > drain_timeout:
            print(f"  the database did not show message {total} within {drain_timeout:.0f} s "
                  f"after publishing stopped (newest: {row and row[0]})", flush=True)
            break
        await asyncio.sleep(0.01)
    done = True
    await sampler
    if task is not None:
        task.cancel()
        await consumer.close()
    await pub.close()
    return {"sent": total, "publish_seconds": publish_seconds, "drain": drain,
            "wal": percentiles(wal_lag), "e2e": percentiles(e2e_lag), "samples": len(wal_lag)}


def stop_broker(proc: subprocess.Popen, log_path: Path) -> dict:
    """SIGTERM; returns the mirror's own figures from the log."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    text = log_path.read_text(errors="replace")
    worst = re.findall(r"message database: \d+ records applied, \d+ messages, worst lag "
                       r"([\d.]+) s, mode (\S+)", text)
    return {"mirror_worst": float(worst[-1][0]) if worst else None,
            "mode": worst[-1][1] if worst else None,
            "metadata_only_switches": text.count("storing metadata only"),
            "errors": len(re.findall(r" (ERROR|CRITICAL) ", text))}


def run_rate(rate: int, args, work: Path) -> dict:
    data_dir = work / f"data-{rate}"
    shutil.rmtree(data_dir, ignore_errors=True)
    log_path = work / f"broker-{rate}.log"
    port = free_port()
    proc = start_broker(data_dir, port, args.fsync, log_path, args.broker_arg)
    try:
        result = asyncio.run(load(port, data_dir / "messages.db", rate, args.seconds, args.body,
                                  args.consume, args.poll, args.drain_timeout))
    finally:
        result_log = stop_broker(proc, log_path)
    result.update(result_log)
    size = sum(p.stat().st_size for p in data_dir.glob("messages.db*"))
    result["db_mib"] = size / 2**20
    result["metadata_only_seen"] = result["metadata_only_switches"] > 0
    return result


def report(rate: int, r: dict, args) -> None:
    achieved = r["sent"] / r["publish_seconds"]
    print(f"rate {rate} msg/s for {args.seconds:.0f} s (achieved {achieved:.0f} msg/s, "
          f"{r['sent']} messages, body {args.body} B, consumer {'on' if args.consume else 'off'}, "
          f"fsync {args.fsync})")
    print("  WAL lag        p50 {:.3f} s  p99 {:.3f} s  max {:.3f} s  ({} samples every {:.0f} ms)"
          .format(*r["wal"], r["samples"], args.poll * 1000))
    print("  end-to-end lag p50 {:.3f} s  p99 {:.3f} s  max {:.3f} s".format(*r["e2e"]))
    drain = "never" if r["drain"] is None else f"{r['drain']:.3f} s"
    print(f"  last message visible {drain} after publishing stopped; mirror's own "
          f"worst feed-to-commit lag {r['mirror_worst']} s; metadata-only switches "
          f"{r['metadata_only_switches']}; mode at stop {r['mode']}; errors in log {r['errors']}; "
          f"db {r['db_mib']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="5000,10000", help="comma-separated msg/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--body", type=int, default=1024, help="body size, bytes")
    parser.add_argument("--no-consume", dest="consume", action="store_false")
    parser.add_argument("--fsync", choices=("always", "never"), default="always")
    parser.add_argument("--poll", type=float, default=0.1, help="sampling period, s")
    parser.add_argument("--max-lag", type=float, default=2.0, help="seconds")
    parser.add_argument("--drain-timeout", type=float, default=120.0,
                        help="seconds to wait for the last message after publishing stops")
    parser.add_argument("--keep", type=Path, help="keep data dirs and logs here")
    parser.add_argument("--broker-arg", action="append", default=[], metavar="ARG",
                        help="extra broker flag, repeatable (--broker-arg=--mirror-max-backlog "
                             "--broker-arg=1000)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="leveret-lag-"))
    work.mkdir(parents=True, exist_ok=True)
    worst = 0.0
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            r = run_rate(rate, args, work)
            report(rate, r, args)
            worst = max(worst, r["wal"][2] if r["drain"] is not None else float("inf"))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if worst <= args.max_lag else 1)


if __name__ == "__main__":
    main()
