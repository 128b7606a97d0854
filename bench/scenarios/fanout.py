"""``fanout``: one producer publishes transient messages for ``fanout_s``
seconds to a fanout exchange bound to ``fanout_queues`` queues, each with a
consumer (prefetch 1000; the consumers share ``fanout_workers`` processes,
one connection per queue).

Rate = deliveries per second (every consumer's messages / release until
the last one arrived). Every queue must get every message exactly once, in order.
"""

from __future__ import annotations

from pamqp import commands

from bench import roles
from bench.scenarios.common import Ctx, client_cpu, control, declare_queue, delete_queues, run_group, verdict
from bench.workers import Group, shared_count

NAME = "fanout"
FSYNC = "always"


def run(ctx: Ctx) -> list[dict]:
    n, workers = ctx.p("fanout_queues"), ctx.p("fanout_workers")
    exchange = ctx.name("fanout", "x")
    queues = [ctx.name("fanout", i) for i in range(n)]
    conn = control(ctx)
    conn.rpc(1, commands.Exchange.Declare(exchange=exchange, exchange_type="fanout"), commands.Exchange.DeclareOk)
    for q in queues:
        declare_queue(conn, q, durable=False)
        conn.rpc(1, commands.Queue.Bind(queue=q, exchange=exchange, routing_key=""), commands.Queue.BindOk)
    conn.close()
    row: dict = {"variant": f"1 producer, {n} queues", "kind": "fanout"}
    expected = shared_count()
    try:
        group = Group()
        for w in range(workers):
            group.add(roles.consumer, host=ctx.host, port=ctx.port, queues=queues[w::workers], size=ctx.size,
                      expected=expected, prefetch=1000, ack_every=250, idle_timeout=ctx.p("idle_timeout"),
                      grace=ctx.p("grace_s"))
        producer = group.add(roles.producer, host=ctx.host, port=ctx.port, exchange=exchange, routing_key="",
                             size=ctx.size, seconds=ctx.p("fanout_s"), count=ctx.p("max_count"))

        def producer_done(index: int, result: dict) -> None:
            if index == producer:
                expected.value = result["sent"]

        t0, results = run_group(group, ctx, row, on_done=producer_done)
        pub, cons = results[producer], results[:producer]
        done = max(c["t_done"] for c in cons)
        merged = {k: sum(c[k] for c in cons) for k in ("unique", "missing", "duplicates", "reordered", "corrupt",
                                                       "out_of_range", "redelivered")}
        merged["examples"] = [e for c in cons for e in c["examples"]]
        row.update(sent=pub["sent"], seconds=round(done - t0, 3), rate=round(merged["unique"] / (done - t0)),
                   publish_rate=round(pub["sent"] / (done - t0)))
        client_cpu(row, [pub], cons)
        verdict(row, merged, pub["sent"] * n)
    finally:
        delete_queues(ctx, queues, [exchange])
    return [row]
