"""``drain``: preload ``drain_count`` persistent messages into a durable
queue (confirmed, window 10,000; Leveret with ``--fsync always``), then one
consumer process (prefetch 1000, acks multiple every 250) drains it.

Rate (msg/s) = messages / (basic.consume until the last one arrived);
broker CPU/RSS are sampled during the drain only. ``preload_rate`` is the
confirmed publish rate of the preload. Every message must arrive exactly
once, in order, intact, not redelivered.
"""

from __future__ import annotations

from bench import roles
from bench.scenarios.common import Ctx, client_cpu, control, declare_queue, delete_queues, run_group, verdict, wait_quiet
from bench.workers import Group

NAME = "drain"
FSYNC = "always"


def run(ctx: Ctx) -> list[dict]:
    q = ctx.name("drain")
    count = ctx.p("drain_count")
    conn = control(ctx)
    declare_queue(conn, q, durable=True)
    conn.close()
    row: dict = {"variant": f"{count // 1000}k persistent backlog", "kind": "drain"}
    try:
        group = Group()
        group.add(roles.confirmed_producer, host=ctx.host, port=ctx.port, queue=q, size=ctx.size, count=count,
                  window=10_000)
        t0, (pub,) = run_group(group, ctx, {})
        row["preload_rate"] = round(pub["sent"] / (pub["t_end"] - t0))
        wait_quiet(timeout=ctx.p("quiet_s"))
        group = Group()
        group.add(roles.consumer, host=ctx.host, port=ctx.port, queues=[q], size=ctx.size, expected=count,
                  prefetch=1000, ack_every=250, subscribe_at_go=True, idle_timeout=ctx.p("idle_timeout"),
                  grace=ctx.p("grace_s"))
        t0, (con,) = run_group(group, ctx, row)
        row.update(sent=count, seconds=round(con["t_done"] - t0, 3),
                   rate=round(con["unique"] / max(con["t_done"] - t0, 1e-9)))
        client_cpu(row, [], [con])
        verdict(row, con, count)
    finally:
        delete_queues(ctx, [q])
    return [row]
