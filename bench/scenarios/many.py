"""``many``: ``many_conns`` connections, each with a consumer on its own
exclusive queue and a slow publisher (``many_rate`` msg/s per connection),
spread over ``many_workers`` processes.

Measured: the broker's RSS before the connections (``rss_base_mb``), with
every connection open and idle (``rss_idle_mb``, after ``many_settle_s``),
hence ``per_conn_kb`` (kB = 1,000 bytes, RSS per connection) and idle CPU;
then ``many_s`` seconds of slow publishing: broker CPU (% of one core),
end-to-end latency p50/p99 (ms), every message checked exactly once.

The reference RabbitMQ as started by the tool has an open-file soft limit
of 1,024, which caps it at about 830 sockets: it then gets as many
connections as it accepts (minus a margin), and its RSS at ``many_conns``
is extrapolated from its per-connection figure (``extrapolated`` note).
"""

from __future__ import annotations

import time

from bench.many_load import many_worker
from bench.scenarios.common import Ctx, Sampler, client_cpu, percentiles, rss_now, sampled, verdict
from bench.workers import Group

NAME = "many"
FSYNC = "always"
MARGIN = 20          # sockets left to RabbitMQ for our control connections


def run(ctx: Ctx) -> list[dict]:
    wanted = ctx.p("many_conns")
    n = wanted
    cap = ctx.target.max_connections() if hasattr(ctx.target, "max_connections") else None
    if cap is not None and n > cap - MARGIN:
        n = cap - MARGIN
        ctx.notes.append(f"many: {ctx.target.name} accepts about {cap} sockets (open-file soft limit); "
                         f"measured with {n} connections, RSS at {wanted} extrapolated")
    names = [ctx.name("many", i) for i in range(n)]
    workers = ctx.p("many_workers")
    idle: dict = {"variant": f"{wanted:,} idle connections", "kind": "many_idle", "connections": n}
    busy: dict = {"variant": f"{wanted:,} slow publishers ({ctx.p('many_rate'):g} msg/s each)",
                  "kind": "many_busy", "connections": n}
    group = Group()
    for w in range(workers):
        group.add(many_worker, host=ctx.host, port=ctx.port, names=names[w::workers], size=ctx.size,
                  per_conn_rate=ctx.p("many_rate"), seconds=ctx.p("many_s"), idle_timeout=ctx.p("idle_timeout"))
    try:
        time.sleep(ctx.p("many_settle_s"))
        base = rss_now(ctx)
        t_setup = time.monotonic()
        group.start(timeout=300)
        idle["setup_s"] = round(time.monotonic() - t_setup, 2)
        idle["setup_rate"] = round(n / (time.monotonic() - t_setup))   # connections/s (with 2 channels, a consumer)
        time.sleep(ctx.p("many_settle_s"))
        pid = getattr(ctx.target, "pid", None)
        if pid:
            sampler = Sampler(pid)
            sampler.start()
            time.sleep(ctx.p("many_idle_s"))
            idle["cpu_pct"] = round(sampler.stop().cpu_pct, 1)
        idle["rss_mb"] = idle["rss_idle_mb"] = rss_now(ctx)
        idle["rss_base_mb"] = base
        if base is not None:
            per_conn = (idle["rss_idle_mb"] - base) / n
            idle["per_conn_kb"] = round(per_conn * 1000, 1)
            if n != wanted:
                idle["rss_idle_measured_mb"] = idle["rss_idle_mb"]
                idle["rss_idle_mb"] = idle["rss_mb"] = round(base + per_conn * wanted, 1)
                idle["extrapolated"] = True
        with sampled(ctx, busy):
            t0 = group.go()
            results = group.results(timeout=ctx.p("many_s") + 120)
    finally:
        group.close()
    sent = sum(r["sent"] for r in results)
    done = max(r["t_done"] for r in results)
    lat = b"".join(r["latency_ns"] for r in results)
    merged = {k: sum(r[k] for r in results) for k in ("unique", "missing", "duplicates", "reordered", "corrupt",
                                                      "out_of_range", "redelivered")}
    merged["examples"] = [e for r in results for e in r["examples"]]
    busy.update(sent=sent, seconds=round(done - t0, 3), rate=round(merged["unique"] / max(done - t0, 1e-9)))
    busy.update(percentiles(lat))
    client_cpu(busy, [], results)
    idle.update(ok=True, problems=[], checks={})
    return [idle, verdict(busy, merged, sent)]
