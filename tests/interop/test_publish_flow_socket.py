"""Publisher flow control end to end (broker/transport/flow_control.py;
rabbitmq.com/flow-control.html, "Per-Connection Flow Control"): a real
publishing connection on a real socket is paused while the broker's
message-TTL timer is late, read again afterwards, loses nothing, and the
acks it sends as a consumer are read too.

How the timer is made late without a clock: FLOOD messages with a 1 s TTL
are published, the broker process is stopped (SIGSTOP) until they are all
due, then continued: the first expiry batch is hundreds of ms late, and the
broker logs the pause (``publish flow: 1 publishing connections paused``).
Meanwhile the client keeps writing publishes and acks into its socket.
"""

from __future__ import annotations

import os
import signal
import time

from pamqp import commands as spec

from tests.interop.clients import RawConnection, wait_for

FLOOD = 3000          # due at once: several expiry batches (BATCH = 512)
WORK = 200            # messages the same connection consumes and acks
MORE = 300            # publishes written while the broker is stopped or pausing
PAUSED_LINE = "publish flow: 1 publishing connections paused"


def _acks_until(conn: RawConnection, tag: int, acked: set[int]) -> None:
    """Read commands until every delivery tag up to ``tag`` was confirmed
    (basic.ack, multiple or not) into ``acked``; fails on a basic.nack."""
    while len(acked) < tag:
        cmd = conn.read_command(timeout=30)
        assert not isinstance(cmd.method, spec.Basic.Nack), f"nack of {cmd.method.delivery_tag}"
        if isinstance(cmd.method, spec.Basic.Ack):
            first = min(set(range(1, tag + 1)) - acked) if cmd.method.multiple else cmd.method.delivery_tag
            acked.update(range(first, cmd.method.delivery_tag + 1) if cmd.method.multiple
                         else [cmd.method.delivery_tag])


def test_late_timer_pauses_a_real_publisher_and_loses_nothing(fresh_broker, unique):
    proc = fresh_broker()
    ttl_queue, work_queue = unique("flood"), unique("work")
    with RawConnection(proc.host, proc.port, timeout=30).open() as conn:
        conn.channel(1)
        conn.call(1, spec.Confirm.Select(), spec.Confirm.SelectOk)
        conn.call(1, spec.Queue.Declare(queue=ttl_queue, arguments={"x-message-ttl": 1000}),
                  spec.Queue.DeclareOk)
        conn.call(1, spec.Queue.Declare(queue=work_queue), spec.Queue.DeclareOk)
        acked: set[int] = set()
        for n in range(FLOOD):
            conn.publish(1, "", ttl_queue, b"f%d" % n)
        for n in range(WORK):
            conn.publish(1, "", work_queue, b"w%d" % n)
        _acks_until(conn, FLOOD + WORK, acked)
        published = time.monotonic()

        pid = proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            for n in range(MORE // 2):             # into the socket while the broker is stopped
                conn.publish(1, "", work_queue, b"m%d" % n)
            time.sleep(max(0.0, published + 1.5 - time.monotonic()))   # the flood falls due meanwhile
        finally:
            os.kill(pid, signal.SIGCONT)
        for n in range(MORE // 2, MORE):
            conn.publish(1, "", work_queue, b"m%d" % n)
        wait_for(lambda: PAUSED_LINE in proc.log_text(), timeout=30)
        _acks_until(conn, FLOOD + WORK + MORE, acked)       # read again: every publish confirmed

        conn.send(1, spec.Basic.Consume(queue=work_queue, consumer_tag="flow"))
        bodies = []
        while len(bodies) < WORK + MORE:
            cmd = conn.read_command(timeout=30)
            if isinstance(cmd.method, spec.Basic.Deliver):
                bodies.append(cmd.body)
                conn.send(1, spec.Basic.Ack(delivery_tag=cmd.method.delivery_tag))
        assert bodies == [b"w%d" % n for n in range(WORK)] + [b"m%d" % n for n in range(MORE)]
        conn.close_channel(1)       # acks not read would be requeued now
        conn.channel(3)
        ok = conn.call(3, spec.Queue.Declare(queue=work_queue, passive=True), spec.Queue.DeclareOk)
        assert ok.method.message_count == 0, f"{ok.method.message_count} acks were not read"
        ok = conn.call(3, spec.Queue.Declare(queue=ttl_queue, passive=True), spec.Queue.DeclareOk)
        assert ok.method.message_count == 0
