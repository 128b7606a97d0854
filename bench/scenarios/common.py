"""What every scenario shares: the run context, topology helpers, broker
CPU/RSS sampling, latency percentiles and the correctness verdict.

A scenario module has ``NAME``, ``FSYNC`` (what Leveret runs with) and
``run(ctx) -> list[dict]``: one row per variant, with at least ``variant``,
``kind`` (a stable id ``bench.report`` keys metrics and targets on), the
measured figures and the checks (``ok``, ``problems``, ``checks``);
``bench.run`` adds broker, size and scenario.
"""

from __future__ import annotations

import threading
import time
from array import array
from contextlib import contextmanager
from dataclasses import dataclass, field

from pamqp import commands

from bench.amqp_client import AMQPClosed, Connection
from bench.deep_queue import proc_cpu_s, proc_memory
from bench.workers import Group

CHECK_KEYS = ("missing", "duplicates", "reordered", "corrupt", "out_of_range", "redelivered")


@dataclass
class Ctx:
    """One scenario run against one server. ``size``: body bytes;
    ``params``: the profile's knobs (``bench.run.PROFILES``); ``prefix``:
    unique name prefix for queues/exchanges of this run."""
    target: object
    size: int
    params: dict
    prefix: str
    notes: list = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.target.host

    @property
    def port(self) -> int:
        return self.target.port

    def name(self, *parts) -> str:
        return ".".join([self.prefix, *map(str, parts)])

    def p(self, key: str):
        """A profile knob; a dict of them is keyed by body size."""
        value = self.params[key]
        return value[self.size] if isinstance(value, dict) else value


def control(ctx: Ctx) -> Connection:
    """A connection with channel 1 open, for declares and deletes."""
    conn = Connection(ctx.host, ctx.port, timeout=60)
    conn.open_channel(1)
    return conn


def declare_queue(conn: Connection, name: str, durable: bool = False) -> None:
    conn.rpc(1, commands.Queue.Declare(queue=name, durable=durable), commands.Queue.DeclareOk)


def delete_queues(ctx: Ctx, names: list[str], exchanges: list[str] = ()) -> None:
    """Delete queues/exchanges of a finished run (best effort, fresh connection)."""
    try:
        conn = control(ctx)
    except OSError:
        return
    try:
        for n in names:
            conn.rpc(1, commands.Queue.Delete(queue=n), commands.Queue.DeleteOk)
        for x in exchanges:
            conn.rpc(1, commands.Exchange.Delete(exchange=x), commands.Exchange.DeleteOk)
    except (OSError, AMQPClosed, ValueError):
        pass
    finally:
        conn.close()


class Sampler(threading.Thread):
    """Samples the VmRSS of ``pid`` every ``interval`` seconds from start
    to ``stop()``. Unlike ``bench.deep_queue.RssSampler`` it ignores VmHWM
    (a lifetime peak: wrong for a long-running RabbitMQ). After ``stop()``:
    ``peak_mb`` (MB) and ``cpu_pct`` (user+system CPU of ``pid`` over the
    span, % of one core)."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_mb = proc_memory(pid)[0]
        self.cpu_pct = 0.0
        self._done = threading.Event()
        self._t0, self._cpu0 = time.monotonic(), proc_cpu_s(pid)

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak_mb = max(self.peak_mb, proc_memory(self.pid)[0])

    def stop(self) -> "Sampler":
        self._done.set()
        self.join()
        self.peak_mb = max(self.peak_mb, proc_memory(self.pid)[0])
        self.cpu_pct = 100 * (proc_cpu_s(self.pid) - self._cpu0) / (time.monotonic() - self._t0)
        return self


@contextmanager
def sampled(ctx: Ctx, into: dict):
    """Sample the server's CPU and RSS while the block runs: sets
    ``cpu_pct`` (% of one core, average), ``rss_mb`` (peak VmRSS, MB = 10^6
    bytes) in ``into`` (None when the server's pid is unknown)."""
    pid = getattr(ctx.target, "pid", None)
    if not pid:
        into.update(cpu_pct=None, rss_mb=None)
        yield
        return
    sampler = Sampler(pid)
    sampler.start()
    try:
        yield
    finally:
        sampler.stop()
        into["rss_mb"], into["cpu_pct"] = round(sampler.peak_mb, 1), round(sampler.cpu_pct, 1)


def rss_now(ctx: Ctx) -> float | None:
    """The server's RSS now, MB (None when its pid is unknown)."""
    pid = getattr(ctx.target, "pid", None)
    return round(proc_memory(pid)[0], 1) if pid else None


def run_group(group: Group, ctx: Ctx, into: dict, timeout: float = 300.0, on_done=None) -> tuple[float, list]:
    """Start ``group``, release it while sampling the server, and return
    (release time, results); ``on_done`` as in ``Group.results``. Workers
    are always reaped."""
    try:
        group.start()
        with sampled(ctx, into):
            t0 = group.go()
            results = group.results(timeout, on_done)
        return t0, results
    finally:
        group.close()


def percentiles(latency_bytes: bytes, points=(50, 99)) -> dict:
    """{"p50_ms": ..., "p99_ms": ...} from ``array('q')`` bytes of nanoseconds."""
    lat = array("q")
    lat.frombytes(latency_bytes)
    if not lat:
        return {f"p{p}_ms": None for p in points}
    ordered = sorted(lat)
    return {f"p{p}_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] / 1e6, 3)
            for p in points}


def client_cpu(row: dict, producers=(), consumers=()) -> None:
    """Record the busiest producer and consumer process's own CPU use (%
    of one core, ``client_cpu_pct`` from ``bench.workers``): near 100 means
    the client, not the broker, was the limit."""
    for key, results in (("producer_cpu_pct", producers), ("consumer_cpu_pct", consumers)):
        values = [r["client_cpu_pct"] for r in results if r and "client_cpu_pct" in r]
        if values:
            row[key] = round(max(values), 1)


def verdict(row: dict, consumed: dict, expected: int) -> dict:
    """Fill ``row`` with the consumer's counters and ``ok``/``problems``:
    ok when exactly ``expected`` distinct messages arrived, none twice, in
    order, intact, none redelivered."""
    checks = {k: consumed.get(k, 0) for k in CHECK_KEYS}
    checks["missing"] = max(0, expected - consumed.get("unique", 0))
    checks["expected"], checks["unique"] = expected, consumed.get("unique", 0)
    row["checks"] = checks
    problems = [f"{k}={v}" for k, v in checks.items() if k in CHECK_KEYS and v]
    if consumed.get("unique", 0) > expected:
        problems.append(f"{consumed['unique'] - expected} more distinct messages than published")
    row["problems"] = problems + consumed.get("examples", [])[:5] if problems else []
    row["ok"] = row.get("ok", True) and not problems
    return row


def machine_busy(span: float = 0.25) -> float:
    """CPU busy time of the whole machine over ``span`` seconds, % of all cores."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]          # total, idle + iowait
    total0, idle0 = sample()
    time.sleep(span)
    total1, idle1 = sample()
    return 100.0 * (1 - (idle1 - idle0) / max(total1 - total0, 1))


def wait_quiet(limit_pct: float = 20.0, timeout: float = 3.0) -> float | None:
    """Wait (at most ``timeout`` seconds) until the machine is less than
    ``limit_pct`` % busy, so the previous run's leftovers (a broker freeing a
    deleted queue, disk write-back) do not land in the next one; returns the
    last busy % seen (recorded in each row as ``machine_busy_pct``); None,
    without looking, when ``timeout`` is 0."""
    if timeout <= 0:
        return None
    deadline = time.monotonic() + timeout
    busy = machine_busy()
    while busy >= limit_pct and time.monotonic() < deadline:
        busy = machine_busy()
    return round(busy, 1)


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
