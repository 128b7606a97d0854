"""Deep-queue benchmark for issue 3's targets: 1,000,000 queued 1 KiB
persistent messages with broker RSS under 300 MB, and recovered in under 20 s.

Starts a broker (``python -m broker``, tests/interop/server_process.py) on a
fresh temporary data dir with fsync always, declares a durable queue and
publishes ``--count`` persistent ``--size``-byte messages with publisher
confirms from raw-socket publishers (bench/amqp_load.py), sampling the
broker's RSS. Then stops it (``--restart-mode kill``: SIGKILL, a crash;
``term``: SIGTERM), restarts it and times the recovery, and drains the queue
checking that every body arrives exactly once, in order, intact.

    PYTHONPATH=. .venv/bin/python bench/deep_queue.py                 # 1,000,000 x 1 KiB
    PYTHONPATH=. .venv/bin/python bench/deep_queue.py --count 20000   # smoke test, seconds

Prints publish rate (msg/s), broker RSS (MB = 10^6 bytes) peak and final,
RSS per queued message (bytes), data dir size (MB), recovery seconds (start
to listening, and the broker's own "recovery:" / "WAL ... replayed in" log
figures), RSS after recovery and drain rate (msg/s); appends one JSON line
to bench/results/deep_queue.jsonl. Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.amqp_client import Connection  # noqa: E402
from bench.amqp_load import consume, publish_confirmed  # noqa: E402
from bench.report import append_jsonl  # noqa: E402
from tests.interop.server_process import BrokerProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "deep_queue.jsonl"
MB = 1e6


def proc_memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of process ``pid`` in MB (10^6 bytes); (0, 0) if gone."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024 / MB
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024 / MB
    except FileNotFoundError:
        pass
    return rss, hwm


def child_pids(pid: int) -> list[int]:
    """Pids of the direct children of ``pid`` (the message database process)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Samples ``proc_memory(pid)`` every ``interval`` seconds until
    ``stop()``; ``peak`` is the highest VmRSS seen or VmHWM, in MB.
    ``cpu_pct()`` after ``stop()``: CPU use of ``pid`` and of this process
    between start and stop, in % of one core."""

    def __init__(self, pid: int, interval: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._done = threading.Event()
        self._t0, self._cpu0, self._own0 = time.perf_counter(), proc_cpu_s(pid), time.process_time()
        self._cpu = (0.0, 0.0)

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, *proc_memory(self.pid))

    def stop(self) -> float:
        self._done.set()
        self.join()
        self.peak = max(self.peak, *proc_memory(self.pid))
        elapsed = time.perf_counter() - self._t0
        self._cpu = (100 * (proc_cpu_s(self.pid) - self._cpu0) / elapsed,
                     100 * (time.process_time() - self._own0) / elapsed)
        return self.peak

    def cpu_pct(self) -> tuple[float, float]:
        """(broker CPU %, benchmark process CPU %) over the sampled span."""
        return self._cpu


def dir_size_mb(path: Path) -> float:
    """Total size of the regular files under ``path``, MB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / MB


def recovery_from_log(text: str) -> dict:
    """The broker's own recovery figures from its log: "recovery: N messages
    ... in X s" and "WAL ... opened: ... replayed in Y s" (seconds)."""
    found = {}
    m = re.search(r"recovery: (\d+) messages .* in ([\d.]+) s", text)
    if m:
        found["log_recovered_messages"], found["log_recovery_s"] = int(m.group(1)), float(m.group(2))
    m = re.search(r"WAL \S+ opened: (\d+) records, ([\d.]+) MiB .* replayed in ([\d.]+) s", text)
    if m:
        found["wal_records"], found["wal_replay_s"] = int(m.group(1)), float(m.group(3))
    return found


def publish_all(broker: BrokerProcess, args) -> tuple[float, list[tuple[int, int]]]:
    """Publish ``args.count`` messages from ``args.publishers`` connections
    (threads) at once; returns (seconds until the last confirm, the
    sequence-number range each publisher used)."""
    share = -(-args.count // args.publishers)
    ranges = [(i * share, min((i + 1) * share, args.count)) for i in range(args.publishers)]
    conns = [Connection(broker.host, broker.port) for _ in ranges]
    errors: list[BaseException] = []

    def run(conn: Connection, start: int, stop: int) -> None:
        try:
            publish_confirmed(conn, args.queue, stop - start, args.size, start, args.window, args.batch)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c, *r)) for c, r in zip(conns, ranges)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    for conn in conns:
        conn.close()
    if errors:
        raise errors[0]
    return seconds, ranges


def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="leveret-deep-"))
    os.environ["LEVERET_FSYNC"] = args.fsync
    broker = BrokerProcess(tmp / "data")
    r: dict = {"count": args.count, "size": args.size, "publishers": args.publishers, "window": args.window,
               "fsync": args.fsync, "restart_mode": args.restart_mode}
    try:
        broker.start(timeout=args.start_timeout)
        conn = Connection(broker.host, broker.port)
        conn.open_channel(1)
        conn.queue_declare(1, args.queue, durable=True)
        conn.close()
        r["rss_idle_mb"] = proc_memory(broker.proc.pid)[0]

        sampler = RssSampler(broker.proc.pid)
        sampler.start()
        children0 = {c: proc_cpu_s(c) for c in child_pids(broker.proc.pid)}
        seconds, ranges = publish_all(broker, args)
        r["mirror_cpu_publish_pct"] = 100 * sum(proc_cpu_s(c) - t for c, t in children0.items()
                                                if c in child_pids(broker.proc.pid)) / seconds
        r["rss_final_mb"] = proc_memory(broker.proc.pid)[0]
        r["rss_peak_mb"] = sampler.stop()
        r["broker_cpu_publish_pct"], r["client_cpu_publish_pct"] = sampler.cpu_pct()
        r["publish_s"], r["publish_rate"] = seconds, args.count / seconds
        r["rss_per_msg_bytes"] = (r["rss_final_mb"] - r["rss_idle_mb"]) * MB / args.count
        r["data_dir_mb"] = dir_size_mb(broker.data_dir)
        children = [proc_memory(c) for c in child_pids(broker.proc.pid)]
        r["mirror_rss_mb"], r["mirror_rss_peak_mb"] = (sum(c[0] for c in children),
                                                       sum(c[1] for c in children))
        print(f"publish: {args.count:,} x {args.size} B confirmed in {seconds:.1f} s = "
              f"{r['publish_rate']:,.0f} msg/s; broker RSS peak {r['rss_peak_mb']:,.0f} MB, final "
              f"{r['rss_final_mb']:,.0f} MB (idle {r['rss_idle_mb']:.0f} MB, "
              f"{r['rss_per_msg_bytes']:,.0f} B/msg); message database process RSS "
              f"{r['mirror_rss_mb']:,.0f} MB (peak {r['mirror_rss_peak_mb']:,.0f} MB, CPU "
              f"{r['mirror_cpu_publish_pct']:.0f} % of one core); data dir "
              f"{r['data_dir_mb']:,.0f} MB", flush=True)

        log_offset = len(broker.log_text())
        if args.restart_mode == "kill":
            broker.kill()
        else:
            t0 = time.perf_counter()
            broker.stop(timeout=args.start_timeout)
            r["stop_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        broker.start(timeout=args.start_timeout)
        r["recovery_listen_s"] = time.perf_counter() - t0
        r.update(recovery_from_log(broker.log_text()[log_offset:]))
        r["rss_recovered_mb"], r["rss_recovered_hwm_mb"] = proc_memory(broker.proc.pid)
        conn = Connection(broker.host, broker.port)
        conn.open_channel(1)
        r["queued_after_restart"] = conn.queue_declare(1, args.queue, durable=True, passive=True)
        print(f"recovery ({args.restart_mode}): listening after {r['recovery_listen_s']:.2f} s; log: "
              f"recovery {r.get('log_recovery_s', float('nan')):.2f} s, WAL replay "
              f"{r.get('wal_replay_s', float('nan')):.2f} s; {r['queued_after_restart']:,} queued; "
              f"RSS {r['rss_recovered_mb']:,.0f} MB (peak {r['rss_recovered_hwm_mb']:,.0f} MB)", flush=True)

        sampler = RssSampler(broker.proc.pid)
        sampler.start()
        result = consume(conn, args.queue, args.count, args.size, args.prefetch, args.ack_every, channel=2,
                         ranges=ranges)
        r["rss_drain_peak_mb"] = sampler.stop()
        r["broker_cpu_drain_pct"], r["client_cpu_drain_pct"] = sampler.cpu_pct()
        r["drain_s"], r["drain_rate"] = result.seconds, result.rate
        r["drained"], r["redelivered"], r["errors"] = result.count, result.redelivered, result.errors
        conn.close()
        conn = Connection(broker.host, broker.port)
        conn.open_channel(1)
        r["queued_after_drain"] = conn.queue_declare(1, args.queue, durable=True, passive=True)
        conn.close()
        print(f"drain: {result.count:,} in {result.seconds:.1f} s = {result.rate:,.0f} msg/s; RSS peak "
              f"{r['rss_drain_peak_mb']:,.0f} MB; {len(result.errors)} errors; "
              f"{r['queued_after_drain']} left", flush=True)
        broker.stop()
    finally:
        broker.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    r["ok"] = (not r["errors"] and r["drained"] == args.count and r["queued_after_restart"] == args.count
               and r["queued_after_drain"] == 0)
    return r


def summary(r: dict) -> str:
    rows = [("messages", f"{r['count']:,} x {r['size']} B persistent, fsync {r['fsync']}, "
                         f"{r['publishers']} publisher(s), window {r['window']:,}"),
            ("publish", f"{r['publish_rate']:,.0f} msg/s ({r['publish_s']:.1f} s)"),
            ("broker RSS", f"peak {r['rss_peak_mb']:,.0f} MB, final {r['rss_final_mb']:,.0f} MB, "
                           f"{r['rss_per_msg_bytes']:,.0f} B/msg (target: < 300 MB at 1M)"),
            ("CPU", f"publish: broker {r['broker_cpu_publish_pct']:.0f} %, bench {r['client_cpu_publish_pct']:.0f} %;"
                    f" drain: broker {r['broker_cpu_drain_pct']:.0f} %, bench {r['client_cpu_drain_pct']:.0f} %"
                    " (of one core)"),
            ("data dir", f"{r['data_dir_mb']:,.0f} MB"),
            ("recovery", f"{r['recovery_listen_s']:.2f} s to listening after {r['restart_mode']} (log: "
                         f"{r.get('log_recovery_s', float('nan')):.2f} s, WAL replay "
                         f"{r.get('wal_replay_s', float('nan')):.2f} s; target < 20 s at 1M)"),
            ("RSS recovered", f"{r['rss_recovered_mb']:,.0f} MB"),
            ("drain", f"{r['drain_rate']:,.0f} msg/s ({r['drain_s']:.1f} s), RSS peak "
                      f"{r['rss_drain_peak_mb']:,.0f} MB"),
            ("checks", "OK" if r["ok"] else f"FAILED: {r['errors'][:5]}, drained {r['drained']:,}, "
                       f"queued after restart {r['queued_after_restart']:,}, after drain {r['queued_after_drain']}")]
    return "\n".join(["== deep queue summary =="] + [f"{k:>14}: {v}" for k, v in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="messages")
    parser.add_argument("--size", type=int, default=1024, help="body bytes (at least 8)")
    parser.add_argument("--publishers", type=int, default=1, help="publisher connections")
    parser.add_argument("--window", type=int, default=20_000, help="unconfirmed messages per publisher")
    parser.add_argument("--batch", type=int, default=1000, help="messages per sendall")
    parser.add_argument("--prefetch", type=int, default=2000, help="consumer basic.qos prefetch")
    parser.add_argument("--ack-every", type=int, default=500, help="consumer acks (multiple) every N")
    parser.add_argument("--restart-mode", choices=("kill", "term"), default="kill")
    parser.add_argument("--fsync", choices=("always", "never"), default="always")
    parser.add_argument("--queue", default="deep")
    parser.add_argument("--start-timeout", type=float, default=900.0, help="seconds to wait for listening")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines file to append to")
    args = parser.parse_args()
    if args.size < 8 or args.ack_every >= args.prefetch or args.count < 1:
        parser.error("need --size >= 8, --ack-every < --prefetch, --count >= 1")
    r = run(args)
    r["time"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    r["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip()
    print(summary(r))
    append_jsonl(args.results, [r])
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
