"""Producer loops for the benchmark scenarios (run inside worker processes).

Body layout (``size`` >= 16 bytes): an 8-byte big-endian sequence number, an
8-byte big-endian send time (``time.monotonic_ns()``, CLOCK_MONOTONIC, so it
compares across processes on one machine), then ``bench.amqp_load.filler(size)[8:]``.
That is ``bench.amqp_load``'s layout with the first filler bytes replaced by
the time stamp, so ``bench.consumer`` checks both.

Messages are encoded once (``bench.amqp_load.message_frames``) and copied
``batch`` times per ``sendall``, with sequence number and time stamp patched in.
"""

from __future__ import annotations

import struct
import time

from pamqp import commands

from bench.amqp_client import Connection
from bench.amqp_load import message_frames

STAMP = struct.Struct(">QQ")           # sequence number, send time (ns)
ACK_METHOD = b"\x00\x3c\x00\x50"
now_ns = time.monotonic_ns


class Template:
    """One message's frames and where its sequence number/time stamp go.
    ``size``: body bytes (>= 16); ``persistent``: delivery-mode 2."""

    def __init__(self, conn: Connection, channel: int, exchange: str, routing_key: str, size: int,
                 persistent: bool = False):
        if size < 16:
            raise ValueError("bodies must be at least 16 bytes (sequence number + time stamp)")
        props = commands.Basic.Properties(delivery_mode=2 if persistent else 1)
        self.frames, self.stamp_at = message_frames(channel, exchange, routing_key, size, conn.frame_max, props)
        self.stride = len(self.frames)
        self._batch_of: dict[int, bytes] = {}

    def batch(self, first_seq: int, n: int, stamp: int) -> bytearray:
        """``n`` messages with sequence numbers ``first_seq``.. and send time ``stamp`` (ns)."""
        data = bytearray(self._batch_of.get(n) or self._batch_of.setdefault(n, self.frames * n))
        pack, at, stride = STAMP.pack_into, self.stamp_at, self.stride
        for i in range(n):
            pack(data, at + i * stride, first_seq + i, stamp)
        return data


def stream(conn: Connection, exchange: str, routing_key: str, size: int, seconds: float,
           count: int | None = None, rate: float | None = None, persistent: bool = False,
           first_seq: int = 0, batch: int = 500, channel: int = 1) -> dict:
    """Publish without confirms on a new ``channel`` for ``seconds`` (or
    until ``count`` messages), unpaced or paced at ``rate`` msg/s. Ends with a
    round trip on the channel (exchange.declare passive of "" is not allowed,
    so basic.qos) so the broker has read every publish when it returns, and
    raises AMQPClosed if the broker closed the channel meanwhile.
    Returns ``{"sent", "first_seq", "t0", "t_sent", "t_synced"}`` (times: monotonic seconds)."""
    conn.open_channel(channel)
    tpl = Template(conn, channel, exchange, routing_key, size, persistent)
    send, sent, limit = conn.send, 0, count if count is not None else 1 << 62
    t0 = time.monotonic()
    deadline = t0 + seconds
    if rate is None:
        while sent < limit:
            n = min(batch, limit - sent)
            send(tpl.batch(first_seq + sent, n, now_ns()))
            sent += n
            if time.monotonic() >= deadline:
                break
    else:
        while sent < limit:
            now = time.monotonic()
            if now >= deadline:
                break
            due = min(int((now - t0) * rate) + 1 - sent, batch, limit - sent)
            if due > 0:
                send(tpl.batch(first_seq + sent, due, now_ns()))
                sent += due
            else:
                time.sleep(max(0.0, t0 + sent / rate - time.monotonic()))
    t_sent = time.monotonic()
    conn.rpc(channel, commands.Basic.Qos(prefetch_count=0), commands.Basic.QosOk)
    return {"sent": sent, "first_seq": first_seq, "t0": t0, "t_sent": t_sent, "t_synced": time.monotonic()}


def confirm_latency(conn: Connection, routing_key: str, size: int, seconds: float, channel: int = 1,
                    persistent: bool = True, max_count: int | None = None) -> dict:
    """Window 1: publish one message, wait for its basic.ack, repeat, for
    ``seconds`` (or ``max_count`` messages). Returns ``{"sent", "t0", "t_end",
    "latency_ns"}``: ``latency_ns`` is a list of publish-to-confirm times (ns).
    Raises RuntimeError on a basic.nack or any other method."""
    conn.open_channel(channel)
    conn.rpc(channel, commands.Confirm.Select(), commands.Confirm.SelectOk)
    tpl = Template(conn, channel, "", routing_key, size, persistent)
    latencies: list[int] = []
    sent, limit = 0, max_count or 1 << 62
    t0 = time.monotonic()
    deadline = t0 + seconds
    while sent < limit and time.monotonic() < deadline:
        start = now_ns()
        conn.send(tpl.batch(sent, 1, start))
        sent += 1
        while True:
            ftype, _, begin, _ = conn.next_frame()
            if ftype == 1 and conn.buf[begin:begin + 4] == ACK_METHOD:
                break
            if ftype == 1:
                conn.pos = begin - 7
                conn.read_method()        # raises AMQPClosed on channel/connection close
                raise RuntimeError("unexpected method while waiting for a confirm")
        tag = struct.unpack_from(">Q", conn.buf, begin + 4)[0]
        if tag != sent:
            raise RuntimeError(f"confirm for tag {tag}, expected {sent}")
        latencies.append(now_ns() - start)
    return {"sent": sent, "t0": t0, "t_end": time.monotonic(), "latency_ns": latencies}
