"""``confirm``: persistent messages to a durable queue with publisher
confirms (Leveret with ``--fsync always``: a confirm means fsynced).

- ``window 1000``: ``confirm_count`` messages, at most 1,000 unconfirmed;
  rate (msg/s) = messages / (release until the last confirm).
- ``window 1``: publish, wait for the confirm, repeat for ``confirm_w1_s``
  seconds; confirm latency p50/p99 (ms) and rate.

Both queues are then drained by consumers that check every confirmed
message is there exactly once, in order, intact.
"""

from __future__ import annotations

from array import array

from bench import roles
from bench.scenarios.common import (Ctx, client_cpu, control, declare_queue, delete_queues, percentiles, run_group, verdict,
                                    wait_quiet)
from bench.workers import Group

NAME = "confirm"
FSYNC = "always"


def run(ctx: Ctx) -> list[dict]:
    qa, qb = ctx.name("confirm", "w1000"), ctx.name("confirm", "w1")
    conn = control(ctx)
    declare_queue(conn, qa, durable=True)
    declare_queue(conn, qb, durable=True)
    conn.close()
    wide: dict = {"variant": "window 1000", "kind": "confirm_w1000"}
    one: dict = {"variant": "window 1", "kind": "confirm_w1"}
    try:
        group = Group()
        group.add(roles.confirmed_producer, host=ctx.host, port=ctx.port, queue=qa, size=ctx.size,
                  count=ctx.p("confirm_count"), window=1000)
        t0, (pub,) = run_group(group, ctx, wide)
        wide.update(sent=pub["sent"], seconds=round(pub["t_end"] - t0, 3),
                    rate=round(pub["sent"] / (pub["t_end"] - t0)))
        client_cpu(wide, [pub])

        wait_quiet(timeout=ctx.p("quiet_s"))
        group = Group()
        group.add(roles.latency_producer, host=ctx.host, port=ctx.port, queue=qb, size=ctx.size,
                  seconds=ctx.p("confirm_w1_s"))
        t0, (lat,) = run_group(group, ctx, one)
        one.update(sent=lat["sent"], seconds=round(lat["t_end"] - t0, 3),
                   rate=round(lat["sent"] / (lat["t_end"] - t0)))
        one.update(percentiles(array("q", lat["latency_ns"]).tobytes()))
        client_cpu(one, [lat])

        group = Group()
        for q, row in ((qa, wide), (qb, one)):
            group.add(roles.consumer, host=ctx.host, port=ctx.port, queues=[q], size=ctx.size,
                      expected=row["sent"], subscribe_at_go=True, idle_timeout=ctx.p("idle_timeout"),
                      grace=ctx.p("grace_s"))
        _, results = run_group(group, ctx, {})
        for row, con in zip((wide, one), results):
            verdict(row, con, row["sent"])
    finally:
        delete_queues(ctx, [qa, qb])
    return [wide, one]
