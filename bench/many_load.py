"""Worker role for the ``many`` scenario: a share of the connections, each
with a consumer on its own exclusive queue (channel 1, prefetch 10, every
message acked) and a slow publisher to that queue (channel 2, no confirms).

Set-up opens the connections one after the other (blocking handshakes).
Once released, one loop publishes (connection ``g % n`` sends publication
``g`` at ``t0 + g / (n * per_conn_rate)``, so the load is spread evenly) for
``seconds``, while ``bench.consumer.consume_all`` reads every socket, checks
each connection's messages arrived exactly once and in order, and records
end-to-end latencies (ns).
"""

from __future__ import annotations

import time

from pamqp import commands

from bench.amqp_client import Connection
from bench.consumer import Checker, consume_all, summarize
from bench.publisher import Template, now_ns


def many_worker(host: str, port: int, names: list[str], size: int, per_conn_rate: float, seconds: float,
                idle_timeout: float = 5.0):
    """Role: open ``len(names)`` connections (queue ``names[i]`` on
    connection i). Result: ``bench.consumer.summarize`` of all plus
    ``sent``, ``setup_s`` (seconds to open everything) and ``t_sent``."""
    started = time.monotonic()
    checkers, templates = [], []
    try:
        for name in names:
            conn = Connection(host, port, buffer_size=64 << 10, timeout=30)
            checker = Checker(conn, name, size, prefetch=10, ack_every=1, channel=1, latency=True)
            checker.open(subscribe=False)
            conn.rpc(1, commands.Queue.Declare(queue=name, exclusive=True), commands.Queue.DeclareOk)
            checker.subscribe()
            conn.open_channel(2)
            checkers.append(checker)
            templates.append(Template(conn, 2, "", name, size))
    except BaseException:
        for c in checkers:
            c.conn.sock.close()
        raise
    setup_s = time.monotonic() - started
    n = len(checkers)

    def run() -> dict:
        t0 = time.monotonic()
        end = t0 + seconds
        interval = 1.0 / (n * per_conn_rate)
        state = {"g": 0, "finished": False}
        sent = [0] * n

        def publish_due(now: float) -> float:
            if state["finished"]:
                return 0.05
            g = state["g"]
            while t0 + g * interval <= now:
                if t0 + g * interval >= end:
                    state["finished"] = True
                    state["t_sent"] = now
                    for c, k in zip(checkers, sent):
                        c.expected = k
                    return 0.05
                k = g % n
                checkers[k].conn.send(templates[k].batch(sent[k], 1, now_ns()))
                sent[k] += 1
                g += 1
            state["g"] = g
            return max(0.0, t0 + g * interval - time.monotonic())

        consume_all(checkers, idle_timeout=idle_timeout, max_seconds=seconds + 60, on_idle=publish_due)
        result = summarize(checkers)
        result.update(sent=sum(sent), setup_s=setup_s, t_sent=state.get("t_sent", time.monotonic()),
                      connections=n)
        for c in checkers:
            c.conn.close()
        return result
    return run
