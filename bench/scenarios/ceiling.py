"""The load generator's own ceiling, against ``bench.sink`` (a server that
discards every publish, confirms at once and streams deliveries without
limit): what one producer or consumer process can do when the server costs
nothing. Must be many times any broker's rate, or the broker figures
measure the client.

- ``publish``: unconfirmed publisher for ``publish_s`` seconds; the sink's
  count (queue.declare message_count) must equal what was sent.
- ``confirm window 1000``: ``confirm_count`` messages, confirmed.
- ``consume``: one consumer process takes ``ceiling_consume`` deliveries,
  checked exactly once, in order, intact.
"""

from __future__ import annotations

from bench import roles
from bench.scenarios.common import Ctx, client_cpu, run_group, verdict
from bench.workers import Group

NAME = "ceiling"
FSYNC = None


def run(ctx: Ctx) -> list[dict]:
    q = ctx.name("sink")
    pub_row: dict = {"variant": "publish (1 process)", "kind": "ceiling_publish"}
    group = Group()
    group.add(roles.producer, host=ctx.host, port=ctx.port, routing_key=q, size=ctx.size,
              seconds=ctx.p("publish_s"), landed_queue=q)
    t0, (pub,) = run_group(group, ctx, pub_row)
    pub_row.update(sent=pub["sent"], landed=pub["landed"], seconds=round(pub["t_landed"] - t0, 3),
                   rate=round(pub["landed"] / (pub["t_landed"] - t0)), checks={},
                   ok=pub["landed"] == pub["sent"],
                   problems=[] if pub["landed"] == pub["sent"] else [f"sink counted {pub['landed']}, sent {pub['sent']}"])

    client_cpu(pub_row, [pub])
    conf_row: dict = {"variant": "confirm window 1000 (1 process)", "kind": "ceiling_confirm"}
    group = Group()
    group.add(roles.confirmed_producer, host=ctx.host, port=ctx.port, queue=q, size=ctx.size,
              count=ctx.p("confirm_count") * 3, window=1000)
    t0, (conf,) = run_group(group, ctx, conf_row)
    conf_row.update(sent=conf["sent"], seconds=round(conf["t_end"] - t0, 3),
                    rate=round(conf["sent"] / (conf["t_end"] - t0)), ok=True, problems=[], checks={})

    client_cpu(conf_row, [conf])
    con_row: dict = {"variant": "consume (1 process)", "kind": "ceiling_consume"}
    count = ctx.p("ceiling_consume")
    group = Group()
    group.add(roles.consumer, host=ctx.host, port=ctx.port, queues=[q], size=ctx.size, expected=count,
              subscribe_at_go=True, grace=0.0)
    t0, (con,) = run_group(group, ctx, con_row)
    con_row.update(sent=count, seconds=round(con["t_done"] - t0, 3), rate=round(count / (con["t_done"] - t0)))
    client_cpu(con_row, [], [con])
    con["unique"] = min(con["unique"], count)         # the sink streams on past ``count``
    return [pub_row, conf_row, verdict(con_row, con, count)]
