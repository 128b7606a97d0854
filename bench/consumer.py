"""Consumer side of the benchmarks: parse deliveries, check exactly-once.

``Checker`` subscribes one queue on one ``bench.amqp_client.Connection``
and parses basic.deliver + content header + body frames with ``struct`` out
of the connection's reused buffer. Every body must be ``size`` bytes in the
``bench.publisher`` layout (sequence number, send time, filler); the checker
counts unique sequence numbers, duplicates, out-of-order arrivals (one
producer per queue, so the order must be kept), corrupt bodies and
redeliveries, and optionally the end-to-end latency (receive time minus the
send time in the body, nanoseconds). Acks: basic.ack multiple=true every
``ack_every`` messages and once more when done.

``consume_all`` drives several checkers (one socket each) from one
``selectors`` loop until each has seen its ``expected`` messages, or nothing
arrived for ``idle_timeout`` seconds once the expected count is known
(the rest are reported missing).
"""

from __future__ import annotations

import selectors
import struct
import time
from array import array

from pamqp import commands

from bench.amqp_client import FRAME_END, FRAME_HEAD, Connection
from bench.amqp_load import filler

DELIVER = b"\x00\x3c\x00\x3c"
TAG_BITS = struct.Struct(">QB")
STAMP = struct.Struct(">QQ")
U64 = struct.Struct(">Q")
MAX_EXAMPLES = 5


class Checker:
    """Deliveries of one queue. ``first_seq``: lowest sequence number the
    producer uses; ``expected``: messages to wait for (None until known);
    ``latency``: collect end-to-end latencies (ns) in ``latency_ns``."""

    def __init__(self, conn: Connection, queue: str, size: int, prefetch: int = 1000, ack_every: int = 250,
                 channel: int = 1, first_seq: int = 0, latency: bool = False, expected: int | None = None):
        self.conn, self.queue, self.size, self.channel = conn, queue, size, channel
        self.prefetch, self.ack_every, self.first_seq = prefetch, ack_every, first_seq
        self.expected, self.latency = expected, latency
        self.tail = filler(size)[8:]
        self.seen = bytearray(1 << 16)
        self.latency_ns = array("q")
        self.received = self.unique = self.duplicates = self.reordered = 0
        self.corrupt = self.out_of_range = self.redelivered = 0
        self.next_seq = first_seq
        self.examples: list[str] = []
        self.t_first = self.t_last = self.t_done = 0.0
        self._tag = self._acked_tag = 0
        self._body_size, self._parts = 0, []
        self._ack_head = FRAME_HEAD.pack(1, channel, 13) + b"\x00\x3c\x00\x50"

    def open(self, subscribe: bool = True) -> None:
        """channel.open + basic.qos (+ basic.consume when ``subscribe``)."""
        self.conn.open_channel(self.channel)
        self.conn.rpc(self.channel, commands.Basic.Qos(prefetch_count=self.prefetch), commands.Basic.QosOk)
        if subscribe:
            self.subscribe()

    def subscribe(self) -> None:
        self.conn.rpc(self.channel, commands.Basic.Consume(queue=self.queue, consumer_tag="bench"),
                      commands.Basic.ConsumeOk)

    @property
    def done(self) -> bool:
        return self.expected is not None and self.unique >= self.expected

    @property
    def missing(self) -> int:
        return max(0, (self.expected or 0) - self.unique)

    def ack(self) -> None:
        """basic.ack multiple=true up to the last delivery tag, if not acked yet."""
        if self._tag > self._acked_tag:
            self.conn.send(self._ack_head + TAG_BITS.pack(self._tag, 1) + b"\xce")
            self._acked_tag = self._tag

    def feed(self, now_ns: int) -> None:
        """Parse every whole frame buffered in ``conn`` (received at
        ``now_ns``, monotonic ns); ack as due."""
        conn = self.conn
        buf, pos, end = conn.buf, conn.pos, conn.end
        unpack_head = FRAME_HEAD.unpack_from
        while end - pos >= 7:
            ftype, _ch, fsize = unpack_head(buf, pos)
            stop = pos + 7 + fsize
            if stop >= end:
                break
            if buf[stop] != FRAME_END:
                raise ConnectionError(f"bad frame end at offset {stop}")
            start = pos + 7
            if ftype == 3:
                if not self._parts and fsize >= self._body_size:
                    self._body(buf, start, stop, now_ns)
                else:
                    self._parts.append(bytes(buf[start:stop]))
                    if sum(map(len, self._parts)) >= self._body_size:
                        body, self._parts = b"".join(self._parts), []
                        self._body(body, 0, len(body), now_ns)
            elif ftype == 2:
                self._body_size = U64.unpack_from(buf, start + 4)[0]
            elif ftype == 1 and buf[start:start + 4] == DELIVER:
                tag, bits = TAG_BITS.unpack_from(buf, start + 5 + buf[start + 4])
                self._tag = tag
                self.redelivered += bits & 1
            elif ftype == 1:
                conn.pos = pos
                conn.read_method()            # raises AMQPClosed on channel/connection close
                raise RuntimeError(f"unexpected method {bytes(buf[start:start + 4]).hex()} on {self.queue}")
            pos = stop + 1
            if self._tag - self._acked_tag >= self.ack_every:
                self.ack()
        conn.pos = pos
        if self.done:
            self.ack()

    def _body(self, data, start: int, stop: int, now_ns: int) -> None:
        self.received += 1
        if stop - start != self.size:
            self._problem("corrupt", f"body of {stop - start} bytes, expected {self.size}")
            return
        seq, stamp = STAMP.unpack_from(data, start)
        index = seq - self.first_seq
        if index < 0 or index > 1 << 40:
            self._problem("out_of_range", f"sequence {seq} below {self.first_seq} or absurd")
            return
        seen = self.seen
        if index >= len(seen):
            seen.extend(bytes(max(index + 1 - len(seen), len(seen))))
        if seen[index]:
            self._problem("duplicates", f"sequence {seq} received again")
        else:
            seen[index] = 1
            self.unique += 1
        if seq != self.next_seq:
            self._problem("reordered", f"sequence {seq} arrived, expected {self.next_seq}")
        self.next_seq = max(self.next_seq, seq + 1)
        if data[start + 16:stop] != self.tail:
            self._problem("corrupt", f"body of sequence {seq} corrupted")
        if self.latency:
            self.latency_ns.append(now_ns - stamp)
        if not self.t_first:
            self.t_first = now_ns / 1e9
        self.t_last = now_ns / 1e9
        if self.unique == self.expected:
            self.t_done = self.t_last

    def _problem(self, counter: str, text: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{self.queue}: {text}")

    def result(self) -> dict:
        """Counters as a dict. Times are monotonic seconds (0 when nothing
        arrived): first and last arrival, and ``t_done`` when the last
        expected message arrived (the last arrival if that is unknown)."""
        return {"received": self.received, "unique": self.unique, "expected": self.expected,
                "missing": self.missing, "duplicates": self.duplicates, "reordered": self.reordered,
                "corrupt": self.corrupt, "out_of_range": self.out_of_range, "redelivered": self.redelivered,
                "t_first": self.t_first, "t_last": self.t_last,
                "t_done": self.t_done or self.t_last, "examples": self.examples}


def consume_all(checkers: list[Checker], idle_timeout: float = 5.0, max_seconds: float = 120.0,
                expected=None, on_idle=None, grace: float = 0.2) -> None:
    """Run until every checker is ``done``, then ``grace`` seconds more (to
    catch duplicates). ``expected`` (a shared value, ``.value`` < 0 while
    unknown) sets every checker's ``expected`` once known. Stops early when
    nothing arrived for ``idle_timeout`` seconds while every expected count
    is known, or after ``max_seconds``. ``on_idle(now)``: called before each
    wait (publishers sharing the loop); returns how long it may wait, seconds."""
    sel = selectors.DefaultSelector()
    for c in checkers:
        sel.register(c.conn.sock, selectors.EVENT_READ, c)
        if c.conn.end > c.conn.pos:     # deliveries read along with consume-ok: the socket will not signal them
            c.feed(time.monotonic_ns())
    last_data = time.monotonic()
    deadline, all_done_at = last_data + max_seconds, None
    try:
        while True:
            if expected is not None and expected.value >= 0:
                for c in checkers:
                    c.expected = expected.value
            wait = min(on_idle(time.monotonic()), 0.05) if on_idle else 0.05
            events = sel.select(wait)
            now = time.monotonic()
            if events:
                last_data = now
                stamp = time.monotonic_ns()
                for key, _ in events:
                    key.data.conn.fill(block=False)
                    key.data.feed(stamp)
            if all_done_at is None and all(c.done for c in checkers):
                all_done_at = now
            if all_done_at is not None and now - all_done_at >= grace:
                break
            known = all(c.expected is not None for c in checkers)
            if now > deadline or (known and now - last_data > idle_timeout):
                break
    finally:
        sel.close()
    for c in checkers:
        c.ack()


def summarize(checkers: list[Checker]) -> dict:
    """Sum of the checkers' counters; first/last arrival over all;
    ``latency_ns``: every latency sample, as ``array('q').tobytes()``."""
    out: dict = {}
    for c in checkers:
        for key, value in c.result().items():
            if key == "examples":
                out.setdefault("examples", []).extend(value[:MAX_EXAMPLES - len(out.get("examples", []))])
            elif key == "t_first":
                out[key] = min(value, out.get(key) or value) if value else out.get(key, 0.0)
            elif key in ("t_last", "t_done"):
                out[key] = max(out.get(key, 0.0), value)
            elif key == "expected":
                out[key] = out.get(key, 0) + (value or 0)
            else:
                out[key] = out.get(key, 0) + value
    lat = array("q")
    for c in checkers:
        lat.extend(c.latency_ns)
    out["latency_ns"] = lat.tobytes()
    return out
