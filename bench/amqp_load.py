"""Fast publish-with-confirms and consume loops over ``bench.amqp_client``.

Every message body is ``size`` bytes: an 8-byte big-endian sequence number
then a fixed filler (the same for every message), so a consumer can check
that each message arrives exactly once, in order, with its body intact.

``publish_confirmed`` encodes the basic.publish method frame, content header
frame and body frame(s) of one message once, copies that template ``batch``
times per ``sendall`` (patching in the sequence numbers) and keeps at most
``window`` messages unconfirmed, reading basic.ack (multiple) confirms out of
the connection's reused buffer. ``consume`` parses basic.deliver + header +
body frames with ``struct`` and acks with multiple=true every ``ack_every``.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from pamqp import commands
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp.body import ContentBody

from bench.amqp_client import FRAME_END, FRAME_HEAD, AMQPClosed, Connection

SEQ = struct.Struct(">Q")
_ACK_METHOD = b"\x00\x3c\x00\x50"       # basic.ack (class 60, method 80)
_NACK_METHOD = b"\x00\x3c\x00\x78"      # basic.nack (class 60, method 120)
_DELIVER_METHOD = b"\x00\x3c\x00\x3c"   # basic.deliver (class 60, method 60)
_TAG_BITS = struct.Struct(">QB")


def filler(size: int) -> bytes:
    """The ``size - 8`` bytes after the sequence number in every body."""
    pattern = bytes(range(256))
    return (pattern * (size // 256 + 1))[:max(size - 8, 0)]


def message_frames(channel: int, exchange: str, routing_key: str, size: int, frame_max: int,
                   properties: commands.Basic.Properties) -> tuple[bytes, int]:
    """One message's frames (publish method, content header, body frames of
    at most ``frame_max`` bytes each) with sequence number 0, and the offset
    of the sequence number in them."""
    head = pframe.marshal(commands.Basic.Publish(exchange=exchange, routing_key=routing_key), channel)
    head += pframe.marshal(pheader.ContentHeader(0, size, properties), channel)
    body = SEQ.pack(0) + filler(size)
    chunk = frame_max - 8
    parts = [pframe.marshal(ContentBody(body[i:i + chunk]), channel) for i in range(0, len(body), chunk)]
    return head + b"".join(parts), len(head) + 7


@dataclass
class PublishResult:
    """``count`` messages confirmed in ``seconds`` (first send to last ack)."""
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def publish_confirmed(conn: Connection, routing_key: str, count: int, size: int = 1024, first_seq: int = 0,
                      window: int = 20_000, batch: int = 1000, exchange: str = "", channel: int = 1,
                      persistent: bool = True) -> PublishResult:
    """Open ``channel``, confirm.select, publish ``count`` messages of
    ``size`` bytes with sequence numbers ``first_seq``.. and return once all
    are confirmed. ``window``: most unconfirmed messages; ``batch``: messages
    per ``sendall``. ``conn`` must carry no consumer (any other method is a
    RuntimeError). Raises RuntimeError on a basic.nack, AMQPClosed if the
    server closes the channel."""
    conn.open_channel(channel)
    conn.rpc(channel, commands.Confirm.Select(), commands.Confirm.SelectOk)
    props = commands.Basic.Properties(delivery_mode=2 if persistent else 1)
    template, seq_at = message_frames(channel, exchange, routing_key, size, conn.frame_max, props)
    stride = len(template)
    offsets = [seq_at + i * stride for i in range(batch)]
    pack_into = SEQ.pack_into
    sent = confirmed = 0
    singles: set[int] = set()   # tags acked singly beyond ``confirmed``
    started = time.perf_counter()
    while confirmed < count:
        room = min(batch, count - sent, window - (sent - confirmed))
        if room > 0:
            data = bytearray(template) * room
            seq = first_seq + sent
            for i in range(room):
                pack_into(data, offsets[i], seq + i)
            conn.send(data)
            sent += room
        if conn.fill(block=room <= 0) or room <= 0:
            confirmed = _read_confirms(conn, confirmed, singles)
    return PublishResult(count, time.perf_counter() - started)


def _read_confirms(conn: Connection, confirmed: int, singles: set[int]) -> int:
    """Parse every whole frame buffered; returns the new confirmed count."""
    buf, pos, end = conn.buf, conn.pos, conn.end
    while end - pos >= 7:
        ftype, channel, size = FRAME_HEAD.unpack_from(buf, pos)
        stop = pos + 7 + size
        if stop >= end:
            break
        method = buf[pos + 7:pos + 11]
        if ftype == 1 and method == _ACK_METHOD:
            tag, bits = _TAG_BITS.unpack_from(buf, pos + 11)
            if bits & 1:
                confirmed = max(confirmed, tag)
            else:
                singles.add(tag)
            while confirmed + 1 in singles:
                confirmed += 1
                singles.discard(confirmed)
        elif ftype == 1:
            conn.pos = pos
            if method == _NACK_METHOD:
                raise RuntimeError(f"basic.nack for delivery tag {_TAG_BITS.unpack_from(buf, pos + 11)[0]}")
            conn.read_method()                         # raises AMQPClosed on a close
            raise RuntimeError(f"unexpected method {bytes(method).hex()} while publishing")
        pos = stop + 1
    conn.pos = pos
    return confirmed


@dataclass
class ConsumeResult:
    """``count`` messages received in ``seconds`` (basic.consume to the
    last delivery), ``redelivered`` of them flagged so, ``errors`` a list of
    problems found (empty when every body arrived once, in order, intact)."""
    count: int
    seconds: float
    redelivered: int
    errors: list

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def consume(conn: Connection, queue: str, count: int, size: int = 1024, prefetch: int = 2000,
            ack_every: int = 500, channel: int = 1, ranges: list[tuple[int, int]] | None = None,
            max_errors: int = 20) -> ConsumeResult:
    """basic.consume ``queue`` until ``count`` messages arrived, acking with
    multiple=true every ``ack_every``. ``ranges``: the sequence-number ranges
    [start, stop) each publisher used (default [(0, count)]): within each the
    numbers must arrive in order, each exactly once. Bodies must be ``size``
    bytes matching ``filler``. Leaves the consumer running, so ``conn``
    must not be used for anything else afterwards but ``close``."""
    conn.open_channel(channel)
    conn.rpc(channel, commands.Basic.Qos(prefetch_count=prefetch), commands.Basic.QosOk)
    ranges = ranges or [(0, count)]
    expected = [start for start, _ in ranges]
    tail, errors = filler(size), []
    ack_head = FRAME_HEAD.pack(1, channel, 13) + _ACK_METHOD
    started = time.perf_counter()
    conn.rpc(channel, commands.Basic.Consume(queue=queue, consumer_tag="bench"), commands.Basic.ConsumeOk)
    received = redelivered = acked = tag = 0
    body_size, parts = 0, []
    buf = conn.buf
    while received < count:
        pos, end = conn.pos, conn.end
        while end - pos >= 7 and received < count:
            ftype, _ch, fsize = FRAME_HEAD.unpack_from(buf, pos)
            stop = pos + 7 + fsize
            if stop >= end:
                break
            if buf[stop] != FRAME_END:
                raise ConnectionError(f"bad frame end at offset {stop}")
            start = pos + 7
            if ftype == 3:
                if not parts and fsize >= body_size:
                    body = bytes(buf[start:stop])
                else:
                    parts.append(bytes(buf[start:stop]))
                    if sum(map(len, parts)) < body_size:
                        pos = stop + 1
                        continue
                    body, parts = b"".join(parts), []
                received += 1
                if len(errors) < max_errors:
                    _check(body, size, tail, ranges, expected, errors)
            elif ftype == 2:
                body_size = SEQ.unpack_from(buf, start + 4)[0]
            elif ftype == 1 and buf[start:start + 4] == _DELIVER_METHOD:
                o = start + 5 + buf[start + 4]          # after the consumer tag
                tag, bits = _TAG_BITS.unpack_from(buf, o)
                redelivered += bits & 1
            elif ftype == 1:
                conn.pos = pos
                conn.read_method()
                raise RuntimeError("unexpected method while consuming")
            pos = stop + 1
        conn.pos = pos
        if received - acked >= ack_every or (received == count and acked < received):
            conn.send(ack_head + _TAG_BITS.pack(tag, 1) + bytes((FRAME_END,)))
            acked = received
        if received < count:
            conn.fill()
    seconds = time.perf_counter() - started
    for (start, stop), nxt in zip(ranges, expected):
        if nxt != stop and len(errors) < max_errors:
            errors.append(f"range [{start}, {stop}): stopped at {nxt}")
    return ConsumeResult(received, seconds, redelivered, errors)


def _check(body: bytes, size: int, tail: bytes, ranges, expected: list, errors: list) -> None:
    if len(body) != size:
        errors.append(f"body of {len(body)} bytes, expected {size}")
        return
    seq = SEQ.unpack_from(body)[0]
    for i, (start, stop) in enumerate(ranges):
        if start <= seq < stop:
            if seq != expected[i]:
                errors.append(f"sequence {seq} arrived, expected {expected[i]}")
            expected[i] = max(expected[i], seq + 1)
            break
    else:
        errors.append(f"sequence {seq} outside every publisher's range")
    if body[8:] != tail:
        errors.append(f"body of sequence {seq} corrupted")
