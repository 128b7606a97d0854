"""``pubsub``: one producer process, one consumer process (prefetch 1000,
acks multiple every 250), transient messages through one queue.

- ``unpaced``: the producer publishes as fast as it can for ``pubsub_s``
  seconds; rate (msg/s) = messages consumed / (release until the last one
  arrived).
- ``paced``: ``paced_rate`` msg/s for ``paced_s`` seconds; end-to-end
  latency p50/p99 (ms) from the send time stamp in each body to its arrival.

The consumer checks every message arrived exactly once, in order, intact.
"""

from __future__ import annotations

from bench import roles
from bench.scenarios.common import (Ctx, client_cpu, control, declare_queue, delete_queues, percentiles, run_group, verdict,
                                    wait_quiet)
from bench.workers import Group, shared_count

NAME = "pubsub"
FSYNC = "always"


def one_to_one(ctx: Ctx, q: str, row: dict, seconds: float, rate: float | None) -> dict:
    """Run one producer + one consumer on ``q``; fills and returns ``row``."""
    expected = shared_count()
    group = Group()
    group.add(roles.consumer, host=ctx.host, port=ctx.port, queues=[q], size=ctx.size, expected=expected,
              prefetch=1000, ack_every=250, latency=rate is not None, idle_timeout=ctx.p("idle_timeout"),
              grace=ctx.p("grace_s"))
    group.add(roles.producer, host=ctx.host, port=ctx.port, routing_key=q, size=ctx.size,
              seconds=seconds, rate=rate, count=ctx.p("max_count"))

    def producer_done(index: int, result: dict) -> None:
        if index == 1:
            expected.value = result["sent"]

    t0, (con, pub) = run_group(group, ctx, row, on_done=producer_done)
    row.update(sent=pub["sent"], seconds=round(con["t_done"] - t0, 3),
               rate=round(con["unique"] / max(con["t_done"] - t0, 1e-9)),
               publish_rate=round(pub["sent"] / (pub["t_sent"] - t0)))
    if rate is not None:
        row.update(percentiles(con["latency_ns"]))
    client_cpu(row, [pub], [con])
    return verdict(row, con, pub["sent"])


def run(ctx: Ctx) -> list[dict]:
    q, qp = ctx.name("pubsub"), ctx.name("pubsub", "paced")
    conn = control(ctx)
    declare_queue(conn, q, durable=False)
    declare_queue(conn, qp, durable=False)
    conn.close()
    rate = ctx.p("paced_rate")
    try:
        unpaced = one_to_one(ctx, q, {"variant": "unpaced", "kind": "pubsub"}, ctx.p("pubsub_s"), None)
        wait_quiet(timeout=ctx.p("quiet_s"))
        paced = one_to_one(ctx, qp, {"variant": f"paced {rate / 1000:g}k msg/s", "kind": "pubsub_paced"},
                           ctx.p("paced_s"), rate)
    finally:
        delete_queues(ctx, [q, qp])
    return [unpaced, paced]
