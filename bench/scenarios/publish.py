"""``publish``: one producer process publishes transient messages without
confirms to a queue nobody consumes, for ``publish_s`` seconds.

Rate (msg/s) = messages that landed in the queue / (release until
queue.declare reports them all). Then a consumer drains the queue (not
timed for the rate; reported as ``drain_rate``) and checks every message
arrived exactly once, in order, intact.
"""

from __future__ import annotations

from bench import roles
from bench.scenarios.common import Ctx, client_cpu, control, declare_queue, delete_queues, run_group, verdict
from bench.workers import Group

NAME = "publish"
FSYNC = "always"


def run(ctx: Ctx) -> list[dict]:
    q = ctx.name("publish")
    conn = control(ctx)
    declare_queue(conn, q, durable=False)
    conn.close()
    row: dict = {"variant": "transient, no confirms", "kind": "publish"}
    try:
        group = Group()
        group.add(roles.producer, host=ctx.host, port=ctx.port, routing_key=q, size=ctx.size,
                  seconds=ctx.p("publish_s"), count=ctx.p("max_count"), landed_queue=q)
        t0, (pub,) = run_group(group, ctx, row)
        row.update(sent=pub["sent"], landed=pub["landed"], seconds=round(pub["t_landed"] - t0, 3))
        row["rate"] = round(pub["landed"] / (pub["t_landed"] - t0))
        client_cpu(row, [pub])
        group = Group()
        group.add(roles.consumer, host=ctx.host, port=ctx.port, queues=[q], size=ctx.size,
                  expected=pub["sent"], subscribe_at_go=True, idle_timeout=ctx.p("idle_timeout"),
                  grace=ctx.p("grace_s"))
        t1, (con,) = run_group(group, ctx, {})
        row["drain_rate"] = round(con["unique"] / max(con["t_done"] - t1, 1e-9))
        verdict(row, con, pub["sent"])
        if pub["landed"] != pub["sent"]:
            row["ok"] = False
            row["problems"].insert(0, f"{pub['landed']} landed in the queue, {pub['sent']} sent")
    finally:
        delete_queues(ctx, [q])
    return [row]
